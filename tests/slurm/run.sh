#!/usr/bin/env bash
# A real Slurm runs the job array of deploy/slurm/: a single-node cluster (Debian's slurm-wlm
# and munge, installed if missing and started here as root with a configuration in a temporary
# folder), `sbatch --array=0-2` over a folder of reviews, then the merged parts compared with
# one `exitwise classify` process over the same folder: every document exactly once, the same
# answers. A second submission of the same array (a rerun, as after a requeue) must classify
# nothing and leave the parts as they were. `make slurm-test` (run by CI); needs root.
# Usage: tests/slurm/run.sh [GGUF] (default: models/gemma3-270m.gguf)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${EXITWISE_BIN:-$ROOT/target/release/exitwise}
MODEL=$(realpath "${1:-models/gemma3-270m.gguf}")
[ "$(id -u)" = 0 ] || { echo "error: the single-node Slurm is started as root" >&2; exit 2; }
[ -x "$BIN" ] || { echo "error: no binary at \`$BIN\` (make build)" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "error: no model at \`$MODEL\`" >&2; exit 2; }
missing=""
for package in slurm-wlm munge; do dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"; done
if [ -n "$missing" ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

WORK=$(mktemp -d)
cleanup() {
  [ -f "$WORK/slurmd.pid" ] && kill "$(cat "$WORK/slurmd.pid")" 2>/dev/null
  [ -f "$WORK/slurmctld.pid" ] && kill "$(cat "$WORK/slurmctld.pid")" 2>/dev/null
  [ -f "$WORK/munged.pid" ] && kill "$(cat "$WORK/munged.pid")" 2>/dev/null
  sleep 1
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for log in "$WORK"/*.log "$WORK"/out/*.log; do [ -f "$log" ] && { echo "--- $log"; tail -20 "$log"; }; done
  exit 1
}

# munge: the key the package created, a socket of our own.
mkdir -p "$WORK/munge" "$WORK/state" "$WORK/spool" "$WORK/reviews" "$WORK/out"
chmod 700 "$WORK/munge"
[ -f /etc/munge/munge.key ] || /usr/sbin/mungekey --create
munged --force --socket "$WORK/munge/munge.socket" --pid-file "$WORK/munged.pid" \
  --log-file "$WORK/munged.log" --seed-file "$WORK/munge/munged.seed"

HOST=$(hostname -s)
CPUS=$(nproc)
MEMORY_MB=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
cat >"$WORK/slurm.conf" <<CONF
ClusterName=exitwise-test
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
SlurmctldPort=${EXITWISE_SLURM_PORT:-16817}
SlurmdPort=$(( ${EXITWISE_SLURM_PORT:-16817} + 1 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MpiDefault=none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEMORY_MB State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$WORK/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 100); do
  sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed)' && break
  sleep 0.2
done
sinfo -h -o '%T' | grep -qE '^(idle|mixed)' || fail "the node did not come up"
echo "== single-node Slurm up: $(sinfo -h -o '%N %c CPUs %T')"

# The documents: the fixtures' reviews, one file each.
python3 - "$WORK/reviews" tests/fixtures/reviews-train.jsonl tests/fixtures/reviews-dev.jsonl <<'PY'
import json, sys
folder = sys.argv[1]
for path in sys.argv[2:]:
    for line in open(path):
        record = json.loads(line)
        open(f"{folder}/{record['id']}.txt", "w").write(record["text"])
PY

"$BIN" classify --model "$MODEL" "$WORK/reviews" >"$WORK/one-process.jsonl" 2>"$WORK/one-process.log" ||
  fail "one process did not classify the folder"

submit() {
  (cd "$WORK/out" && EXITWISE="$BIN" OUT_DIR="$WORK/out" EXITWISE_ARGS="--model $MODEL" \
    sbatch --wait --array=0-2 --cpus-per-task=1 --mem-per-cpu=1024M \
    "$ROOT/deploy/slurm/classify-array.sbatch" "$WORK/reviews") || fail "the job array failed"
}
echo "== sbatch --array=0-2 deploy/slurm/classify-array.sbatch"
submit
cat "$WORK"/out/part-*.jsonl >"$WORK/merged.jsonl"
python3 - "$WORK/one-process.jsonl" "$WORK/merged.jsonl" "$WORK"/out/part-*.jsonl <<'PY' || fail "the merged parts differ from one process's output"
import json, sys
def read(path):
    return [json.loads(line) for line in open(path) if line.strip()]
one, merged, parts = read(sys.argv[1]), read(sys.argv[2]), sys.argv[3:]
ids = [record["id"] for record in merged]
assert len(ids) == len(set(ids)), "a document is in two parts"
assert sorted(ids) == sorted(r["id"] for r in one), "the parts miss documents"
by_id = {r["id"]: r for r in one}
for record in merged:
    other = by_id[record["id"]]
    for field in ("label", "exit", "cost", "tokens_total"):
        assert record[field] == other[field], (record["id"], field, record[field], other[field])
    for label, probability in record["probs"].items():
        assert abs(probability - other["probs"][label]) < 1e-4, (record["id"], label)
sizes = [sum(1 for line in open(part) if line.strip()) for part in parts]
print(f"{len(merged)} documents in {len(parts)} parts {sizes}, equal to one process's output")
PY
cp -r "$WORK/out" "$WORK/first"
rm "$WORK"/out/exitwise-*.log
echo "== the same array again (a rerun after a requeue): nothing left to classify"
submit
for part in "$WORK"/first/part-*.jsonl; do
  cmp -s "$part" "$WORK/out/$(basename "$part")" || fail "a rerun changed $(basename "$part")"
done
for log in "$WORK"/out/exitwise-*.log; do
  rerun=$(grep 'documents classified' "$log")
  echo "$(basename "$log"): $rerun"
  [[ $rerun == "0 documents classified, "*" already in the output"* ]] || fail "a rerun classified documents again"
done
echo "PASS"
