#!/usr/bin/env python3
"""One Markdown table from `bench-engine --replay … --json replay-LABEL.json` files.

Usage: scripts/device/replay-table.py replay-LABEL.json…

A row per placement (LABEL), a column per setting: documents per second and, in parentheses,
the speed-up over `full` in wall-clock time on that placement; the last rows have the speed-ups
in token×layer operations, which are the trace's: one row per number of documents replayed
(the CPU-bound placements replay only the first ones).
"""

import json
import pathlib
import sys


def main(paths):
    replays = []
    for path in paths:
        path = pathlib.Path(path)
        if not path.exists():
            continue
        label = path.stem.removeprefix("replay-")
        replays.append((label, json.loads(path.read_text(encoding="utf-8"))))
    if not replays:
        print("no replay ran", file=sys.stderr)
        return 1
    names = [setting["name"] for setting in replays[0][1]["settings"]]
    first = replays[0][1]
    print(
        f"Replay of the exits recorded with `{first['recorded_with']['file']}` on the CPU, on a "
        "random-weight twin: documents/s (speed-up over `full`), medians over the runs"
    )
    print()
    print("| placement | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, replay in replays:
        cells = []
        for setting in replay["settings"]:
            speed_up = setting.get("speed_up")
            cells.append(
                f"{setting['documents_per_second']:.1f}"
                + (f" ({speed_up:.2f}×)" if speed_up is not None else "")
            )
        where = (
            f"{label}: {replay['placement']}, {replay['threads']} threads, "
            f"{replay['documents']} documents, {replay['runs']} run(s)"
        )
        print(f"| {where} | " + " | ".join(cells) + " |")
    operations_by_count = {}
    for _, replay in replays:
        operations_by_count.setdefault(
            replay["documents"],
            [setting.get("operations_speed_up") for setting in replay["settings"]],
        )
    for count, operations in sorted(operations_by_count.items(), reverse=True):
        print(
            f"| token×layer operations (the trace's, {count} documents) | "
            + " | ".join(f"{value:.2f}×" if value is not None else "-" for value in operations)
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
