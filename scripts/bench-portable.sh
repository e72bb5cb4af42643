#!/usr/bin/env bash
# Compares the release binary (portable: llama.cpp's CPU back end loaded at start, the variant
# ggml picks for this CPU) with the development binary (compiled with -march=native) on this
# machine, with `exitwise bench-engine`: the two alternate ROUNDS times (N P N P …) so that noise
# hits both alike; per variant, the median of all of each binary's samples and the ratio
# native / portable (≥ 1 would mean the portable one is as fast).
# Usage: scripts/bench-portable.sh NATIVE_BINARY PORTABLE_BINARY [ROUNDS] [RUNS]
# (the portable binary is bin/exitwise of an unpacked `make dist` tarball). Both need the model.
set -euo pipefail
NATIVE=${1:?native binary}
PORTABLE=${2:?portable binary}
ROUNDS=${3:-3}
RUNS=${4:-3}
MODEL=${EXITWISE_BENCH_MODEL:-gemma3-270m}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PORTABLE" inspect --model "$MODEL" | grep -E '^cpu (back end|features)'
for round in $(seq 1 "$ROUNDS"); do
  for kind in native portable; do
    binary=$NATIVE
    [ "$kind" = portable ] && binary=$PORTABLE
    "$binary" bench-engine --model "$MODEL" --tokens 512 --runs "$RUNS" --json "$WORK/$kind-$round.json" >/dev/null
    echo "round $round: $kind done" >&2
  done
done
python3 - "$WORK" <<'PY'
import glob, json, statistics, sys
work = sys.argv[1]
samples = {}
for kind in ("native", "portable"):
    for path in sorted(glob.glob(f"{work}/{kind}-*.json")):
        for row in json.load(open(path))["rows"]:
            samples.setdefault(row["variant"], {}).setdefault(kind, []).extend(row["samples_ms"])
print("| variant | native median ms | portable median ms | native / portable |")
print("|---|---:|---:|---:|")
for variant, by_kind in samples.items():
    native = statistics.median(by_kind["native"])
    portable = statistics.median(by_kind["portable"])
    print(f"| {variant} | {native:.1f} | {portable:.1f} | {native / portable:.3f} |")
PY
