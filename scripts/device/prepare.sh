#!/usr/bin/env bash
# Prepares `.device/`, everything the GPU check (scripts/device/check.sh) needs on a machine
# that has a GPU but no network and receives at most 64 MiB: the release tarball, the GPU
# plug-ins (xz), the catalog model's shapes and tokenizer (its file is too large to travel;
# check.sh builds a random-weight twin there), the `gguf` Python package, and the workload to
# replay: the first 500 IMDB test reviews (DEVICE_DATA, DEVICE_DOCUMENTS) and the trace of what
# the real model was fed for them (`eval --trace`, the default pack at budget 1, recorded here
# on the CPU once, about a quarter of an hour on 2 cores, into target/device-trace/; remove that
# folder to record again, or set TRACE=FILE).
#
# Run here after `make dist` and `CUDA_ARCHITECTURES=90-real make cuda-plugin` (the device's
# H100 or H200 alone: every architecture is over the 64 MiB), and `make vulkan-plugin`
# (optional), then hand `.device` to the device tool, e.g. run(command="bash
# scripts/device/check.sh", carry=[".device"], timeout_s=360): the check ends within 300 s.
# Python's `gguf` and numpy are fetched from the package registry into target/device-python.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VERSION=$(scripts/release/version.sh)
TARBALL=dist/exitwise-$VERSION-x86_64-linux.tar.gz
MODEL=${1:-models/gemma3-270m.gguf}
[ -f "$TARBALL" ] || { echo "error: no \`$TARBALL\`: run \`make dist\` first" >&2; exit 2; }
# The check runs the release's binary, not this tree's: it must be built from the source as it is.
newer=$(find src Cargo.toml Cargo.lock build.rs adapters -newer "$TARBALL" -print -quit)
[ -z "$newer" ] || { echo "error: \`$newer\` is newer than \`$TARBALL\`: run \`make dist\` again" >&2; exit 2; }
[ -f dist/plugins/libggml-cuda.so ] || [ -f dist/plugins/libggml-vulkan.so ] ||
  { echo "error: no GPU plug-in in \`dist/plugins\`: run \`make cuda-plugin\` or \`make vulkan-plugin\`" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "error: no model at \`$MODEL\`" >&2; exit 2; }

rm -rf .device && mkdir -p .device
cp "$TARBALL" .device/exitwise.tar.gz
for plugin in dist/plugins/libggml-*.so; do
  xz -T0 -6 -c "$plugin" >".device/$(basename "$plugin").xz"
done
# The Vulkan loader, for a machine whose image lacks it (check.sh unpacks it only then).
if [ -f dist/plugins/libggml-vulkan.so ]; then
  (cd .device && apt-get download libvulkan1 >/dev/null)
fi

# The same `gguf` here (to read the model) and there (to write its twin): pure Python.
python=$ROOT/target/device-python
if [ ! -d "$python/gguf" ]; then
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$python.wheels" 'gguf==0.19.0'
  python3 -m pip install --quiet --no-deps --target "$python" "$python.wheels"/gguf-*.whl
  python3 -m pip install --quiet --target "$python" numpy pyyaml tqdm requests
fi
cp "$python.wheels"/gguf-*.whl .device/
PYTHONPATH=$python python3 scripts/device/random-model.py spec "$MODEL" .device/model.spec.json.gz

# The workload: the reviews and what each policy fed the real model for them.
DATA=${DEVICE_DATA:-$ROOT/../shared/data/imdb/test.jsonl}
[ -f "$DATA" ] || { echo "error: no data at \`$DATA\` (set DEVICE_DATA)" >&2; exit 2; }
mkdir -p target/device-trace
head -n "${DEVICE_DOCUMENTS:-500}" "$DATA" >target/device-trace/reviews.jsonl
cp target/device-trace/reviews.jsonl .device/reviews.jsonl
TRACE=${TRACE:-target/device-trace/trace.jsonl}
if [ ! -f "$TRACE" ]; then
  [ -x target/release/exitwise ] || { echo "error: no target/release/exitwise: run \`make build\`" >&2; exit 2; }
  target/release/exitwise eval --model "$MODEL" --data target/device-trace/reviews.jsonl \
    --policies full,layer,sentence,2d --budget 1 --runs 1 --no-simulation \
    --json target/device-trace/eval.json --trace "$TRACE"
fi
cp "$TRACE" .device/trace.jsonl
ls -l .device
# The device tool carries at most 64 MiB: the CUDA plug-in for every architecture the release
# supports is 93 MB compressed.
bytes=$(du -cb .device/* | tail -n 1 | cut -f 1)
limit=$((64 * 1024 * 1024))
echo "\`.device\`: $((bytes / 1024 / 1024)) MiB of the device tool's 64"
[ "$bytes" -le "$limit" ] || {
  echo "error: \`.device\` is over the device tool's 64 MiB: build the CUDA plug-in for the device's GPU alone (H100, H200: \`CUDA_ARCHITECTURES=90-real make cuda-plugin\`) or leave the Vulkan plug-in out" >&2
  exit 2
}
