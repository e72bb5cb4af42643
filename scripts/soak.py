#!/usr/bin/env python3
"""Soak: long runs of `serve` and `classify`, resident memory every minute (not in CI).

  serve     `exitwise serve` under wrk for MINUTES, one wrk run of 60 s per minute (8 clients),
            recording after each minute the answers by status, the p50 and p99 latency of that
            minute and the server's resident memory (VmRSS);
  classify  `exitwise classify -o FILE` over DOCUMENTS documents in one process (the labelled
            JSON Lines files of ../shared/data, concatenated), recording every minute the
            records written and the process's resident memory.

Writes SERIES.csv and SERIES.svg (memory and p99 per minute) into OUT, and prints the growth of
resident memory after the warm-up (first 5 minutes) and the p99 range.

Usage: scripts/soak.py [--minutes 30] [--documents 10000] [--out soak] [--only serve|classify]
                       [--skip N] [--repeat K] [--jobs J]
       scripts/soak.py --plot OUT/serve.csv OUT2/classify.csv --out DIR   (plot earlier runs)
Environment: EXITWISE_BIN (default target/release/exitwise); wrk must be installed.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

BODY = '{"text": "A warm, funny film with a great cast. The plot drags a little in the middle, but the ending is moving and I would watch it again.", "policy": "full"}'
# Held-out documents first: the default pack's layer-0 head was fitted on imdb/train and
# answers those at once, without the model.
DATA = ["imdb/test.jsonl", "imdb/dev.jsonl", "amazon/dev.jsonl", "bbc/train.jsonl",
        "spam/train.jsonl", "bbc/test.jsonl", "spam/test.jsonl", "imdb/train.jsonl"]


def resident_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def milliseconds(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def soak_serve(binary: str, minutes: int, out: str) -> list[dict]:
    port = 18290
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--queue", "8"],
                              stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/readyz", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    script = os.path.join(out, "body.lua")
    with open(script, "w") as lua:
        lua.write(f"wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.body = [[{BODY}]]\n")
    rows = []
    try:
        for minute in range(1, minutes + 1):
            run = subprocess.run(["wrk", "-t2", "-c8", "-d60s", "--latency", "-s", script,
                                  f"{url}/v1/classify"], capture_output=True, text=True)
            text = run.stdout
            answers = int(re.search(r"(\d+) requests in", text).group(1))
            non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
            errors = re.search(r"Socket errors: (.*)", text)
            row = {
                "minute": minute,
                "answers": answers,
                "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
                "socket_errors": errors.group(1) if errors else "",
                # Anchored: "66.50%" in the Req/Sec line must not pass for the 50th percentile.
                "p50_ms": milliseconds(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)),
                "p99_ms": milliseconds(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)),
                "rss_mb": resident_mb(server.pid),
            }
            rows.append(row)
            print(f"serve minute {minute}: {row}", flush=True)
            # The jobs of the minute's clients that left are skipped from the queue; without
            # this pause the next minute's clients start against a full queue and count 429s.
            time.sleep(3)
    finally:
        server.terminate()
        server.wait(timeout=120)
    return rows


def soak_classify(binary: str, documents: int, out: str, skip: int = 0,
                  repeat: int = 1, jobs: int | None = None) -> list[dict]:
    shared = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
    inputs = os.path.join(out, "documents.jsonl")
    chosen = []
    for name in DATA:
        path = os.path.join(shared, name)
        if not os.path.exists(path):
            continue
        for line in open(path):
            chosen.append((name, json.loads(line)["text"]))
    chosen = chosen[skip:skip + documents]
    written = 0
    with open(inputs, "w") as target:
        # The same documents `repeat` times: memory that grows from one pass to the next is
        # held by something, not pages of buffers that larger documents touch first.
        for run in range(repeat):
            for number, (name, text) in enumerate(chosen):
                target.write(json.dumps({"id": f"{name}:{skip + number}:{run}", "text": text}) + "\n")
                written += 1
    output = os.path.join(out, "records.jsonl")
    if os.path.exists(output):
        os.remove(output)
    jobs_option = ["--jobs", str(jobs)] if jobs else []
    process = subprocess.Popen([binary, "classify", "--jsonl", *jobs_option, "-o", output, inputs],
                               stderr=open(os.path.join(out, "classify.log"), "w"))
    rows = []
    started = time.monotonic()
    minute = 0
    while process.poll() is None:
        time.sleep(1)
        if time.monotonic() - started >= 60 * (minute + 1):
            minute += 1
            records = sum(1 for _ in open(output)) if os.path.exists(output) else 0
            row = {"minute": minute, "records": records, "rss_mb": resident_mb(process.pid)}
            rows.append(row)
            print(f"classify minute {minute}: {row}", flush=True)
    records = [json.loads(line) for line in open(output)]
    errors = sum(1 for record in records if "error" in record)
    print(f"classify: exit {process.returncode}, {len(records)} records of {written}, "
          f"{errors} error records, {time.monotonic() - started:.0f} s", flush=True)
    return rows


def svg(series: dict[str, list[dict]], path: str) -> None:
    """Resident memory (and p99 for serve) per minute, one panel per series."""
    width, height, margin = 720, 220, 50
    panels = []
    for offset, (name, rows) in enumerate(series.items()):
        if not rows:
            continue
        top = offset * (height + 30)
        lines = [("rss_mb", "#1f77b4", "resident MB")]
        if "p99_ms" in rows[0]:
            lines.append(("p99_ms", "#d62728", "p99 ms"))
        minutes = max(row["minute"] for row in rows)
        panels.append(f'<text x="{margin}" y="{top + 15}" font-size="13">{name}: '
                      + ", ".join(f'<tspan fill="{color}">{label}</tspan>' for _, color, label in lines)
                      + " per minute</text>")
        for key, color, _ in lines:
            values = [row[key] for row in rows]
            low, high = 0.0, max(values) * 1.1 or 1.0
            points = " ".join(
                f"{margin + (row['minute'] - 1) / max(minutes - 1, 1) * (width - 2 * margin):.1f},"
                f"{top + 25 + (1 - (row[key] - low) / (high - low)) * (height - 50):.1f}"
                for row in rows)
            panels.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
            panels.append(f'<text x="{width - margin + 5}" y="{top + 30}" font-size="11" fill="{color}">'
                          f'max {high / 1.1:.0f}</text>')
        panels.append(f'<line x1="{margin}" y1="{top + height - 25}" x2="{width - margin}" '
                      f'y2="{top + height - 25}" stroke="#999"/>')
        panels.append(f'<text x="{margin}" y="{top + height - 8}" font-size="11">minute 1</text>'
                      f'<text x="{width - margin - 60}" y="{top + height - 8}" font-size="11">minute {minutes}</text>')
    total = len(panels) and (len([s for s in series.values() if s]) * (height + 30))
    with open(path, "w") as target:
        target.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 60}" height="{total}" '
                     f'font-family="sans-serif">{"".join(panels)}</svg>\n')


def growth(rows: list[dict], warm_up: int = 5) -> str:
    after = [row["rss_mb"] for row in rows if row["minute"] > warm_up]
    if len(after) < 2:
        return "too short to tell"
    return f"{after[0]:.0f} MB at minute {warm_up + 1} -> {after[-1]:.0f} MB at the end ({(after[-1] / after[0] - 1) * 100:+.1f} %)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--documents", type=int, default=10000)
    parser.add_argument("--out", default="soak")
    parser.add_argument("--only", choices=["serve", "classify"])
    parser.add_argument("--skip", type=int, default=0,
                        help="classify: leave out the first SKIP documents of the selection")
    parser.add_argument("--repeat", type=int, default=1,
                        help="classify: the same documents REPEAT times in the one process")
    parser.add_argument("--jobs", type=int,
                        help="classify: sessions (default: classify's own, one per CPU)")
    parser.add_argument("--plot", nargs="+", metavar="CSV",
                        help="plot these series (serve.csv, classify.csv of earlier runs) into "
                             "OUT/soak.svg, running nothing")
    arguments = parser.parse_args()
    if arguments.plot:
        os.makedirs(arguments.out, exist_ok=True)
        series = {}
        for path in arguments.plot:
            with open(path, newline="") as source:
                rows = list(csv.DictReader(source))
            for row in rows:
                for key in ("minute", "rss_mb", "p99_ms"):
                    if key in row:
                        row[key] = float(row[key]) if key != "minute" else int(row[key])
            series[os.path.splitext(os.path.basename(path))[0]] = rows
            print(f"{path}: resident memory after the warm-up: {growth(rows)}")
        svg(series, os.path.join(arguments.out, "soak.svg"))
        return 0
    binary = os.path.abspath(os.environ.get("EXITWISE_BIN", "target/release/exitwise"))
    os.makedirs(arguments.out, exist_ok=True)
    series = {}
    if arguments.only in (None, "serve"):
        series["serve"] = soak_serve(binary, arguments.minutes, arguments.out)
    if arguments.only in (None, "classify"):
        series["classify"] = soak_classify(binary, arguments.documents, arguments.out,
                                           arguments.skip, arguments.repeat, arguments.jobs)
    for name, rows in series.items():
        with open(os.path.join(arguments.out, f"{name}.csv"), "w", newline="") as target:
            if rows:
                writer = csv.DictWriter(target, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        print(f"{name}: resident memory after the warm-up: {growth(rows)}")
        if rows and "p99_ms" in rows[0]:
            p99 = [row["p99_ms"] for row in rows]
            print(f"{name}: p99 per minute {min(p99):.0f}-{max(p99):.0f} ms; "
                  f"non-2xx {sum(row['non_2xx'] for row in rows)}; "
                  f"answers {sum(row['answers'] for row in rows)}")
    svg(series, os.path.join(arguments.out, "soak.svg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
