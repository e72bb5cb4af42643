#!/usr/bin/env python3
"""One Markdown table from `bench-engine --replay … --json replay-LABEL.json` files.

Usage: scripts/device/replay-table.py replay-LABEL.json…

A row per placement (LABEL), a column per setting: documents per second and, in parentheses,
the speed-up over `full` in wall-clock time on that placement; the last row has the speed-ups
in token×layer operations, which are the trace's and the same for every placement.
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
    operations = [setting.get("operations_speed_up") for setting in first["settings"]]
    print(
        f"| token×layer operations (the trace's, {first['documents']} documents) | "
        + " | ".join(f"{value:.2f}×" if value is not None else "-" for value in operations)
        + " |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
