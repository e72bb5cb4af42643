#!/usr/bin/env bash
# How exitwise keeps its speed on a busy machine: `exitwise classify` of the same documents
#   alone     nothing else running,
#   busy      next to a plain busy loop (one core kept busy),
#   two       as two exitwise processes at once (each classifying the documents),
#   memory    next to a memory-heavy neighbour (one process streaming through 1 GiB),
# for each policy; scenarios interleaved and their order rotated each round, so that machine
# noise hits all alike. Prints, per scenario and policy, documents/s (median over rounds; for
# `two`, of each process), the median ms per document, and the ratio to `alone`.
#
# Usage: scripts/bench-contention.sh [DOCUMENTS] [ROUNDS] [POLICIES]
#   DOCUMENTS  how many documents (default 10), from $DATA (JSON Lines with a `text` field;
#              default ../shared/data/imdb/test.jsonl, else examples/review.txt repeated)
#   ROUNDS     repetitions of every scenario (default 3)
#   POLICIES   comma-separated (default full,2d)
# Environment: EXITWISE_BIN (default target/release/exitwise), EXITWISE_ARGS (extra flags for
# every classify, e.g. `--threads 2`), JSON=FILE to write every measurement.
set -euo pipefail
cd "$(dirname "$0")/.."

documents=${1:-10}
rounds=${2:-3}
policies=${3:-full,2d}
bin=${EXITWISE_BIN:-target/release/exitwise}
extra=${EXITWISE_ARGS:-}
data=${DATA:-../shared/data/imdb/test.jsonl}

command -v python3 >/dev/null || { echo "error: python3 is needed for the statistics" >&2; exit 2; }
[ -x "$bin" ] || { echo "error: no exitwise binary at \`$bin\` (build it, or set EXITWISE_BIN)" >&2; exit 2; }

work=$(mktemp -d)
neighbour=""
cleanup() {
  [ -n "$neighbour" ] && kill "$neighbour" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The documents, as JSON Lines.
if [ -f "$data" ]; then
  head -n "$documents" "$data" > "$work/documents.jsonl"
else
  python3 - "$documents" > "$work/documents.jsonl" <<'PYTHON'
import json, sys
text = open("examples/review.txt").read()
for index in range(int(sys.argv[1])):
    print(json.dumps({"id": str(index), "text": text}))
PYTHON
fi
count=$(wc -l < "$work/documents.jsonl")

# Each run: the wall-clock seconds of the process and its per-document ms (from the records).
classify() { # policy output
  local started ended
  started=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$bin" classify --jsonl --format jsonl --policy "$1" $extra "$work/documents.jsonl" > "$2.jsonl" 2> "$2.err"
  ended=$(date +%s.%N)
  echo "$started $ended" > "$2.time"
}

start_neighbour() { # kind
  case "$1" in
    busy) python3 -c 'while True: pass' & ;;
    memory) python3 -c '
import array
block = array.array("d", bytes(1 << 30))  # 1 GiB, touched again and again
step = 512
while True:
    for index in range(0, len(block), step):
        block[index] += 1.0
' & ;;
  esac
  neighbour=$!
  sleep 1
}

stop_neighbour() {
  [ -n "$neighbour" ] && { kill "$neighbour" 2>/dev/null || true; wait "$neighbour" 2>/dev/null || true; }
  neighbour=""
}

scenarios=(alone busy two memory)
IFS=',' read -r -a policy_list <<< "$policies"
# Warm-up: the page cache holds the model and the binary for every scenario alike.
classify "${policy_list[0]}" "$work/warmup"
for ((round = 0; round < rounds; round++)); do
  for ((offset = 0; offset < ${#scenarios[@]}; offset++)); do
    scenario=${scenarios[$(((round + offset) % ${#scenarios[@]}))]}
    for policy in "${policy_list[@]}"; do
      base="$work/$scenario-$policy-$round"
      echo "round $((round + 1))/$rounds: $scenario, $policy" >&2
      case "$scenario" in
        alone) classify "$policy" "$base" ;;
        busy|memory) start_neighbour "$scenario"; classify "$policy" "$base"; stop_neighbour ;;
        two) classify "$policy" "$base-a" & first=$!
             classify "$policy" "$base-b" & second=$!
             wait "$first" "$second" ;;
      esac
    done
  done
done

python3 - "$work" "$count" "$rounds" "$policies" "${JSON:-}" <<'PYTHON'
import glob, json, os, statistics, sys
work, count, rounds, policies, json_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","), sys.argv[5]
def runs(scenario, policy):
    found = []
    for round_ in range(rounds):
        stems = [f"{work}/{scenario}-{policy}-{round_}"] if scenario != "two" else [f"{work}/two-{policy}-{round_}-a", f"{work}/two-{policy}-{round_}-b"]
        for stem in stems:
            started, ended = map(float, open(stem + ".time").read().split())
            ms = [json.loads(line)["ms"] for line in open(stem + ".jsonl") if line.strip()]
            if len(ms) != count:
                sys.exit(f"error: {stem} classified {len(ms)} of {count} documents: " + open(stem + ".err").read())
            found.append({"seconds": ended - started, "documents_per_s": count / (ended - started), "ms": ms})
    return found
report = {"documents": count, "rounds": rounds, "scenarios": {}}
print(f"{count} documents, {rounds} rounds, scenarios interleaved; documents/s is the median over runs (per process for `two`)")
print(f"{'scenario':<8} {'policy':<8} {'docs/s':>8} {'ms median':>10} {'× alone':>8}")
for policy in policies:
    alone = None
    for scenario in ["alone", "busy", "two", "memory"]:
        measured = runs(scenario, policy)
        rate = statistics.median(run["documents_per_s"] for run in measured)
        ms = statistics.median(value for run in measured for value in run["ms"])
        alone = alone or rate
        report["scenarios"].setdefault(scenario, {})[policy] = {"documents_per_s": rate, "ms_median": ms, "ratio_to_alone": rate / alone, "runs": measured}
        print(f"{scenario:<8} {policy:<8} {rate:>8.2f} {ms:>10.1f} {rate / alone:>8.2f}")
if json_out:
    with open(json_out, "w") as out:
        json.dump(report, out, indent=2)
PYTHON
