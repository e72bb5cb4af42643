#!/usr/bin/env bash
# Faults on every writer that promises to keep a file (`make fault-test`; needs root for the
# small tmpfs mounts): a full disk, a read-only folder and `kill -9` in the middle. Each must
# end with exit 2 and a one-line error naming the path (or, after a kill, a rerun that
# succeeds), and never leave a half-written file under the final name or damage the previous
# one. Usage: tests/faults/run.sh [GGUF] (default: models/smollm2-135m.gguf, the small one)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${EXITWISE_BIN:-$PWD/target/release/exitwise}
MODEL=$(realpath "${1:-models/smollm2-135m.gguf}")
[ "$(id -u)" = 0 ] || { echo "error: the tmpfs mounts need root" >&2; exit 2; }
WORK=$(mktemp -d)
MOUNTS=()
cleanup() {
  for mount in "${MOUNTS[@]}"; do umount "$mount" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
export NO_COLOR=1 EXITWISE_MODELS_DIR="$WORK/no-models"

# A tmpfs of SIZE at FOLDER, filled but FREE kilobytes.
small_disk() { # folder size free_kb
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1"
  MOUNTS+=("$1")
  local total
  total=$(df -k --output=avail "$1" | tail -1)
  [ "$total" -gt "$3" ] && fallocate -l "$(( (total - $3) * 1024 ))" "$1/.filler"
  return 0
}

# One-line error, exit 2, naming the path.
expect_error() { # label path command...
  local label=$1 path=$2 status=0
  shift 2
  "$@" >"$WORK/out" 2>"$WORK/err" || status=$?
  [ "$status" = 2 ] || { cat "$WORK/err"; fail "$label: exit $status, not 2"; }
  grep -q '^error: ' "$WORK/err" || { cat "$WORK/err"; fail "$label: no error line"; }
  [ "$(grep -c '^error: ' "$WORK/err")" = 1 ] || { cat "$WORK/err"; fail "$label: more than one error line"; }
  grep -qF "$path" "$WORK/err" || { cat "$WORK/err"; fail "$label: the error does not name \`$path\`"; }
  pass "$label: $(grep '^error: ' "$WORK/err")"
}

no_partial_under_final_name() { # label file previous_sha
  if [ -n "$3" ]; then
    [ "$(sha256sum <"$2")" = "$3" ] || fail "$1: the previous \`$2\` changed"
  else
    [ ! -e "$2" ] || fail "$1: a half-written \`$2\` is under the final name"
  fi
}

echo "== a full disk"
small_disk "$WORK/full" 8m 64
# quantize: the previous file stays whole.
echo "previous model" >"$WORK/full/model.gguf"
previous=$(sha256sum <"$WORK/full/model.gguf")
expect_error "quantize" "$WORK/full/model.gguf" \
  "$BIN" quantize --model "$MODEL" --type Q8_0 --allow-requantize --out "$WORK/full/model.gguf" --force
no_partial_under_final_name "quantize" "$WORK/full/model.gguf" "$previous"
# models import: nothing under the final name.
expect_error "models import" "$WORK/full" \
  "$BIN" models import --models-dir "$WORK/full" "$MODEL"
no_partial_under_final_name "models import" "$WORK/full/smollm2-135m.gguf" ""
# calibrate --out: a pack (3 MB) into the few free kilobytes.
expect_error "calibrate --out" "$WORK/full/pack" \
  "$BIN" calibrate adapters/gemma3-270m-imdb --dev tests/fixtures/reviews-dev.jsonl \
  --method point --model "$(realpath models/gemma3-270m.gguf)" --cache-dir "$WORK/cache" \
  --out "$WORK/full/pack"
for file in adapter.toml heads.safetensors; do
  no_partial_under_final_name "calibrate --out" "$WORK/full/pack/$file" ""
done
# train: the feature cache on the full disk; what it holds is whole, and a run with room
# goes on from it.
expect_error "train (feature cache)" "$WORK/full/cache" \
  "$BIN" train --model "$MODEL" --train tests/fixtures/reviews-train.jsonl \
  --dev tests/fixtures/reviews-dev.jsonl --out "$WORK/train-full" --cache-dir "$WORK/full/cache"
cp -r "$WORK/full/cache" "$WORK/roomy-cache"
"$BIN" train --model "$MODEL" --train tests/fixtures/reviews-train.jsonl \
  --dev tests/fixtures/reviews-dev.jsonl --out "$WORK/train-full" --cache-dir "$WORK/roomy-cache" \
  >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; fail "train from a cache a full disk stopped"; }
pass "train (feature cache): a run with room goes on from what the full disk kept"
# classify -o: records that cannot be written stop the run.
python3 -c "
import json
for n in range(3000):
    print(json.dumps({'id': f'doc-{n:05d}-' + 'x' * 200, 'text': 'Great fun.'}))
" >"$WORK/many.jsonl"
expect_error "classify -o" "$WORK/full/out.jsonl" \
  "$BIN" classify --jsonl --policy full --model "$(realpath models/gemma3-270m.gguf)" \
  -o "$WORK/full/out.jsonl" "$WORK/many.jsonl"

echo "== a read-only folder"
mkdir -p "$WORK/readonly"
mount -t tmpfs -o size=1m,ro tmpfs "$WORK/readonly"
MOUNTS+=("$WORK/readonly")
expect_error "classify -o (read-only)" "$WORK/readonly/out.jsonl" \
  "$BIN" classify --model "$(realpath models/gemma3-270m.gguf)" -o "$WORK/readonly/out.jsonl" examples/review.txt
expect_error "quantize (read-only)" "$WORK/readonly" \
  "$BIN" quantize --model "$MODEL" --type Q8_0 --allow-requantize --out "$WORK/readonly/model.gguf"

echo "== kill -9 in the middle, then the same command again"
for attempt in 1 2 3; do
  rm -rf "$WORK/killed" && mkdir -p "$WORK/killed"
  delay=$(python3 -c "import random; print(round(random.uniform(0.2, 3.0), 2))")
  "$BIN" quantize --model "$MODEL" --type Q8_0 --allow-requantize --out "$WORK/killed/model.gguf" >/dev/null 2>&1 &
  sleep "$delay"; kill -9 $! 2>/dev/null || true; wait $! 2>/dev/null || true
  if [ -e "$WORK/killed/model.gguf" ]; then
    "$BIN" inspect --model "$WORK/killed/model.gguf" >/dev/null 2>&1 ||
      fail "quantize killed after $delay s left a file that does not load"
  fi
  "$BIN" quantize --model "$MODEL" --type Q8_0 --allow-requantize --out "$WORK/killed/model.gguf" --force >/dev/null 2>&1 ||
    fail "quantize after a kill at $delay s"
  "$BIN" inspect --model "$WORK/killed/model.gguf" >/dev/null || fail "the rerun's model does not load"
  pass "quantize killed after $delay s: the rerun succeeds and its model loads"

  rm -rf "$WORK/imported" && mkdir -p "$WORK/imported"
  delay=$(python3 -c "import random; print(round(random.uniform(0.05, 1.0), 2))")
  "$BIN" models import --models-dir "$WORK/imported" "$MODEL" >/dev/null 2>&1 &
  sleep "$delay"; kill -9 $! 2>/dev/null || true; wait $! 2>/dev/null || true
  if [ -e "$WORK/imported/smollm2-135m.gguf" ]; then
    "$BIN" models verify --models-dir "$WORK/imported" smollm2-135m >/dev/null 2>&1 ||
      fail "models import killed after $delay s left a model that does not verify"
  fi
  "$BIN" models import --models-dir "$WORK/imported" "$MODEL" --force >/dev/null 2>&1 ||
    fail "models import after a kill at $delay s"
  "$BIN" models verify --models-dir "$WORK/imported" smollm2-135m >/dev/null ||
    fail "the re-imported model does not verify"
  pass "models import killed after $delay s: the rerun succeeds and verifies"
done

# A pack folder left by a kill: absent, or a pack that loads whole (its manifest records the
# weights' hash, so new weights beside an old manifest are refused, never classified with).
pack_is_whole_or_absent() { # label folder model
  if [ -e "$2/adapter.toml" ]; then
    "$BIN" classify --adapters "$2" --model "$3" examples/review.txt >/dev/null 2>"$WORK/err" ||
      grep -q "was being written when it was interrupted" "$WORK/err" ||
      { cat "$WORK/err"; fail "$1 left a pack that neither loads nor says it was interrupted"; }
  fi
}
# Kills a pack writer after a random delay in [LOW, HIGH] s, checks what it left, runs it again
# and classifies with the pack it writes.
kill_pack_writer_and_rerun() { # label low high pack model command...
  local label=$1 low=$2 high=$3 pack=$4 model=$5 delay
  shift 5
  delay=$(python3 -c "import random; print(round(random.uniform($low, $high), 2))")
  "$@" >/dev/null 2>&1 &
  sleep "$delay"; kill -9 $! 2>/dev/null || true; wait $! 2>/dev/null || true
  pack_is_whole_or_absent "$label killed after $delay s" "$pack" "$model"
  "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; fail "$label after a kill at $delay s"; }
  "$BIN" classify --adapters "$pack" --model "$model" examples/review.txt >/dev/null 2>"$WORK/err" ||
    { cat "$WORK/err"; fail "the pack $label wrote again after a kill does not classify"; }
  pass "$label killed after $delay s: the rerun succeeds and its pack classifies"
}
GEMMA=$(realpath models/gemma3-270m.gguf)
for attempt in 1 2; do
  # train: killed while extracting features, fitting or saving; the rerun resumes from the
  # feature cache (a torn record is extracted again) and writes a whole pack.
  rm -rf "$WORK/trained" && mkdir -p "$WORK/trained"
  kill_pack_writer_and_rerun train 0.5 15.0 "$WORK/trained/pack" "$MODEL" \
    "$BIN" train --model "$MODEL" --train tests/fixtures/reviews-train.jsonl \
    --dev tests/fixtures/reviews-dev.jsonl --out "$WORK/trained/pack" --cache-dir "$WORK/trained/cache"
  # calibrate in place: the pack is replaced file by file; killed at any point it is the old
  # pack, the new one, or refused as interrupted, and the rerun succeeds.
  rm -rf "$WORK/calibrated" && mkdir -p "$WORK/calibrated"
  cp -r adapters/gemma3-270m-imdb "$WORK/calibrated/pack"
  kill_pack_writer_and_rerun calibrate 0.2 4.0 "$WORK/calibrated/pack" "$GEMMA" \
    "$BIN" calibrate "$WORK/calibrated/pack" --dev tests/fixtures/reviews-dev.jsonl \
    --model "$GEMMA" --cache-dir "$WORK/calibrated/cache" --force
done

# The window between the two renames of a pack, made on purpose: new weights beside the old
# manifest are refused with the reason (the kills above show that writing it again mends it).
rm -rf "$WORK/torn" && mkdir -p "$WORK/torn"
cp -r "$WORK/trained/pack" "$WORK/torn/pack"
python3 - "$WORK/torn/pack/heads.safetensors" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[-1] ^= 1  # other weights, same size: what a newer write's weights look like to the old manifest
open(path, "wb").write(bytes(data))
PY
expect_error "a torn pack" "$WORK/torn/pack" \
  "$BIN" classify --adapters "$WORK/torn/pack" --model "$MODEL" examples/review.txt
grep -q "was being written when it was interrupted" "$WORK/err" || fail "a torn pack: no reason"
echo "PASS"
