#!/usr/bin/env python3
"""Documents per second of `exitwise classify` for sessions x threads combinations.

Each plan `SxT` runs `classify --jobs S --threads S*T` (S sessions of T threads over one loaded
model), and the plan `default` runs `classify` with neither flag, on the same documents, for each policy; plans interleaved and their order rotated each
round, so that machine noise hits all alike. Prints, per policy and plan, documents/s (median
over rounds, from the wall-clock of the whole process, model loading included), the ratio to
the first plan measured in the same rounds, and the process's peak resident memory.

Usage: scripts/bench-jobs.py [--documents N] [--rounds R] [--policies full,2d] [--plans 1x2,2x1]
Environment: EXITWISE_BIN (default target/release/exitwise), EXITWISE_ARGS (extra classify
flags), DATA (JSON Lines with `id` and `text`; default ../shared/data/imdb/test.jsonl).
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--policies", default="full,2d")
    parser.add_argument("--plans", default="1x2,2x1")
    arguments = parser.parse_args()

    binary = os.environ.get("EXITWISE_BIN", "target/release/exitwise")
    extra = shlex.split(os.environ.get("EXITWISE_ARGS", ""))
    data = os.environ.get("DATA", "../shared/data/imdb/test.jsonl")
    if not os.access(binary, os.X_OK):
        print(f"error: no exitwise binary at `{binary}` (set EXITWISE_BIN)", file=sys.stderr)
        return 2
    if not os.path.exists(data):
        print(f"error: no data at `{data}` (set DATA)", file=sys.stderr)
        return 2
    plans = []
    for plan in arguments.plans.split(","):
        if plan == "default":
            plans.append((plan, None, None))
            continue
        sessions, threads = (int(part) for part in plan.split("x"))
        plans.append((plan, sessions, threads))
    policies = arguments.policies.split(",")

    with tempfile.TemporaryDirectory() as work:
        documents = os.path.join(work, "documents.jsonl")
        with open(data) as source, open(documents, "w") as target:
            for _, line in zip(range(arguments.documents), source):
                target.write(line)
        seconds = {(policy, plan): [] for policy in policies for plan, _, _ in plans}
        memory = {(policy, plan): [] for policy in policies for plan, _, _ in plans}
        answers = {}
        for round_number in range(arguments.rounds):
            for policy in policies:
                for offset in range(len(plans)):
                    plan, sessions, threads = plans[(offset + round_number) % len(plans)]
                    plan_flags = [] if sessions is None else [
                        "--jobs", str(sessions), "--threads", str(sessions * threads)]
                    command = ["/usr/bin/time", "-f", "%M", binary, "classify", "--jsonl",
                               "--format", "jsonl", "--policy", policy, *plan_flags,
                               *extra, documents]
                    started = time.perf_counter()
                    run = subprocess.run(command, capture_output=True, text=True)
                    elapsed = time.perf_counter() - started
                    if run.returncode != 0:
                        print(run.stderr, file=sys.stderr)
                        return 1
                    seconds[(policy, plan)].append(elapsed)
                    memory[(policy, plan)].append(int(run.stderr.strip().splitlines()[-1]))
                    labels = [(record["id"], record["label"]) for record in map(json.loads, run.stdout.splitlines())]
                    if answers.setdefault(policy, labels) != labels:
                        print(f"error: plan {plan} answered {policy} differently", file=sys.stderr)
                        return 1
                    print(f"round {round_number + 1} {policy} {plan}: {elapsed:.1f} s",
                          file=sys.stderr, flush=True)

    count = sum(1 for _ in open(data)) if arguments.documents <= 0 else arguments.documents
    print(f"{count} documents, {arguments.rounds} rounds, medians; ratio to {plans[0][0]}")
    print(f"| policy | sessions x threads | docs/s | x {plans[0][0]} | peak RSS MB |")
    print("|---|---|---|---|---|")
    for policy in policies:
        baseline = statistics.median(seconds[(policy, plans[0][0])])
        for plan, _, _ in plans:
            median = statistics.median(seconds[(policy, plan)])
            rss = statistics.median(memory[(policy, plan)]) / 1024
            print(f"| {policy} | {plan} | {count / median:.2f} | {baseline / median:.2f} | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
