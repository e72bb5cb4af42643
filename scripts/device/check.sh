#!/usr/bin/env bash
# The GPU check of the release (issue 15), on a machine with a GPU: run from the repository
# root with `.device/` made by scripts/device/prepare.sh; results go to $OUT (default
# /tmp/device-out). Every step has its own time limit, so a hang costs one step, not the rest.
#
#  1. the release from the tarball, the CUDA plug-in beside its CPU libraries, the CUDA 13
#     runtime and cuBLAS found on the machine: `exitwise inspect` must list the GPU;
#  2. a model with the catalog model's shapes, tokenizer and quantization and random weights
#     (the real file cannot travel), built here by random-model.py and `exitwise quantize`;
#  3. `bench-engine --compare-cpu`: every layer's hidden states on the GPU against the CPU
#     (cosines per layer; see `bench` below on the threshold with random weights), then a stop after each layer timed on the GPU (all layers offloaded),
#     with half the layers offloaded (a stop must end the later splits too), and on the CPU;
#  4. the real workload: the trace of what the real model was fed for 500 IMDB reviews under
#     each policy (`eval --trace` on the CPU, by prepare.sh) replayed on the twin with every
#     layer on the GPU (all the documents, REPLAY_RUNS runs), with half the layers on the GPU
#     and on the CPU alone (the first REPLAY_CPU_DOCUMENTS, one run: both are bound by the
#     CPU) (`bench-engine --replay`): the same passes, taps, heads and stops; the table of
#     documents/s and speed-ups over `full` goes to $OUT/replay.md, rewritten after each replay;
#  5. the Vulkan plug-in instead of CUDA (when prepared), on NVIDIA's Vulkan driver.
#
# The whole check ends within CHECK_SECONDS (300): a session has 15 minutes of the device, the
# machine's start included, and must be able to run the check twice. Each step's limit is cut
# to what is left, a step with too little left is skipped and reported, and each step prints
# how long it took.
#
# The timings are of random weights with the real shapes: they measure the engine, not a
# classifier (the replay's exits are the real model's, recorded on the CPU). Environment:
# CHECK_SECONDS (300), CHECK_TOKENS (512), CHECK_RUNS (5), REPLAY_RUNS (3),
# REPLAY_CPU_DOCUMENTS (100).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-/tmp/device-out}
TOKENS=${CHECK_TOKENS:-512}
RUNS=${CHECK_RUNS:-5}
REPLAY_RUNS=${REPLAY_RUNS:-3}
mkdir -p "$OUT"
WORK=$(mktemp -d)
export HOME=$WORK/home NO_COLOR=1
mkdir -p "$HOME"
status=0
deadline=$((SECONDS + ${CHECK_SECONDS:-300}))
step_started=$SECONDS
step() {
  echo
  echo "== $* (at ${SECONDS} s; the step before took $((SECONDS - step_started)) s)"
  step_started=$SECONDS
}
fail() { echo "FAIL: $*"; status=1; }
# limit SECONDS: a step's own limit, cut to what is left of the check's time (at least 1 s:
# `timeout 0` would mean no limit).
limit() {
  local left=$((deadline - SECONDS))
  left=$((left < 1 ? 1 : left))
  echo $(($1 < left ? $1 : left))
}
# enough_time LABEL SECONDS: whether a step limited to SECONDS is worth starting.
enough_time() {
  [ "$2" -ge 15 ] && return 0
  fail "$1: skipped, $2 s of CHECK_SECONDS left"
  return 1
}

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 2
nproc

step "release and plug-ins"
tar -xzf .device/exitwise.tar.gz -C "$WORK"
release=$(ls -d "$WORK"/exitwise-*-x86_64-linux)
exitwise=$release/bin/exitwise
"$exitwise" --version
for plugin in .device/libggml-*.so.xz; do
  [ -e "$plugin" ] || continue
  name=$(basename "$plugin" .xz)
  xz -dc "$plugin" >"$WORK/$name"
done
[ -e "$WORK/libggml-cuda.so" ] && cp "$WORK/libggml-cuda.so" "$release/lib/exitwise/"
# The CUDA 13 runtime and cuBLAS: the toolkit's, else NVIDIA's wheels in Python's site-packages.
cuda_libraries=$(
  {
    ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib 2>/dev/null
    python3 -c 'import nvidia, os; [print(os.path.join(root)) for path in nvidia.__path__ for root, _, files in os.walk(path) if "libcublas.so.13" in files or "libcudart.so.13" in files]' 2>/dev/null
  } | while read -r folder; do
    [ -e "$folder/libcublas.so.13" ] || [ -e "$folder/libcudart.so.13" ] && echo "$folder"
  done | paste -sd:
)
echo "CUDA libraries: ${cuda_libraries:-none found}"
export LD_LIBRARY_PATH=${cuda_libraries}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

step "a random-weight twin of the catalog model"
python3 -m pip install --quiet --no-index --no-deps --target "$WORK/site" .device/gguf-*.whl
PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH} timeout "$(limit 300)" python3 scripts/device/random-model.py build \
  .device/model.spec.json.gz "$WORK/random-f16.gguf" || fail "building the random model"
timeout "$(limit 300)" "$exitwise" quantize --model "$WORK/random-f16.gguf" --type Q4_K_M \
  --out "$WORK/random.gguf" || fail "quantizing the random model"
model=$WORK/random.gguf

# bench LABEL "GLOBAL OPTIONS" "BENCH-ENGINE OPTIONS"
bench() {
  local label=$1 global=$2 extra=$3
  step "$label"
  local seconds
  seconds=$(limit 240)
  enough_time "$label" "$seconds" || return 0
  # shellcheck disable=SC2086 # the options are words on purpose
  timeout "$seconds" "$exitwise" $global bench-engine --model "$model" --tokens "$TOKENS" \
    --runs "$RUNS" --json "$OUT/$label.json" $extra 2>&1 | tee "$OUT/$label.txt"
  local code=${PIPESTATUS[0]}
  if [ "$code" = 124 ]; then
    fail "$label: timed out after $seconds s"
  elif [ "$code" = 1 ]; then
    # Random weights make isotropic hidden states, whose cosine shows every rounding
    # difference, growing with depth; a trained model's are dominated by a few large
    # directions. On Mesa's lavapipe with 16 tokens the catalog model's layers agreed at
    # 0.99981 or more, its random twin's at 0.99904 (layer 17).
    echo "NOTE: $label: a cosine below the threshold, on random weights (see the comment in $0)"
  elif [ "$code" != 0 ]; then
    fail "$label: exit code $code"
  fi
}

# replay LABEL "GLOBAL OPTIONS" "REPLAY OPTIONS": the trace's workload on the twin.
replay() {
  local label=$1 global=$2 extra=$3
  step "replay: $label"
  [ -e .device/trace.jsonl ] || { echo "no trace prepared"; return; }
  local seconds
  seconds=$(limit 180)
  enough_time "replay $label" "$seconds" || return 0
  # shellcheck disable=SC2086 # the options are words on purpose
  timeout "$seconds" "$exitwise" $global bench-engine --model "$model" \
    --replay .device/trace.jsonl --data .device/reviews.jsonl --json "$OUT/replay-$label.json" \
    $extra 2>&1 | tee "$OUT/replay-$label.txt"
  local code=${PIPESTATUS[0]}
  [ "$code" = 124 ] && code="timed out after $seconds s"
  [ "$code" = 0 ] || fail "replay $label: $code"
  # The table so far, so that a check cut short still leaves it.
  if compgen -G "$OUT/replay-*.json" >/dev/null; then
    python3 scripts/device/replay-table.py "$OUT"/replay-*.json >"$OUT/replay.md" 2>&1 ||
      fail "the replay table"
  fi
}

cpu_documents=${REPLAY_CPU_DOCUMENTS:-100}
if [ -e "$release/lib/exitwise/libggml-cuda.so" ]; then
  step "CUDA: inspect"
  timeout "$(limit 120)" "$exitwise" inspect --model "$model" 2>&1 | tee "$OUT/inspect-cuda.txt"
  if grep -q '^gpu devices     CUDA0' "$OUT/inspect-cuda.txt"; then
    # First whether the GPU agrees with the CPU, then the real workload on it.
    bench cuda-all-layers "--gpu-layers 999" --compare-cpu
    replay cuda-all-layers "--gpu-layers 999" "--runs $REPLAY_RUNS"
    replay cuda-half-layers "--gpu-layers 9" "--runs 1 --max-docs $cpu_documents"
    bench cuda-half-layers "--gpu-layers 9" ""
  else
    fail "the CUDA plug-in found no GPU"
  fi
  # Without the plug-in for the CPU alone: with a GPU present, llama.cpp moves a large batch's
  # matrix products to it even with --gpu-layers 0 (its context's `op_offload`).
  rm "$release/lib/exitwise/libggml-cuda.so"
fi
replay cpu-only "--gpu-layers 0" "--runs 1 --max-docs $cpu_documents"
bench cpu-only "--gpu-layers 0" ""
[ -e "$OUT/replay.md" ] && cat "$OUT/replay.md"

if [ -e "$WORK/libggml-vulkan.so" ]; then
  cp "$WORK/libggml-vulkan.so" "$release/lib/exitwise/"
  # The Vulkan loader, where the machine has none (prepare.sh packs Debian's libvulkan1).
  if ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
    for package in .device/*.deb; do [ -e "$package" ] && dpkg -x "$package" /; done
    ldconfig
  fi
  # NVIDIA's Vulkan driver, where the machine's ICD list lacks it.
  [ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  step "Vulkan: inspect"
  timeout "$(limit 120)" "$exitwise" inspect --model "$model" 2>&1 | tee "$OUT/inspect-vulkan.txt"
  if grep -q '^gpu devices     Vulkan0' "$OUT/inspect-vulkan.txt"; then
    bench vulkan-all-layers "--gpu-layers 999" --compare-cpu
  else
    fail "the Vulkan plug-in found no GPU"
  fi
fi

rm -rf "$WORK"
step "done"
[ "$status" = 0 ] && echo "PASS" || echo "some steps FAILED (see above)"
exit "$status"
