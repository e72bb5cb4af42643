#!/usr/bin/env bash
# `make dist-agreement`: do the arm64 and x86-64 releases answer the same? Unpacks both tarballs
# of dist/ into a fresh folder and classifies the first N documents (default 50) of a JSON Lines
# file (default ../shared/data/imdb/test.jsonl) with each, one document at a time on one thread,
# the compiled-in default pack and policy; the arm64 one under qemu on this x86-64 machine
# (emulated CPU: QEMU_CPU, default cortex-a76). Then scripts/release/compare-records.py: labels
# and exit cells equal, the largest probability difference. Minutes per document emulated.
# Usage: scripts/release/agreement.sh [N] [DATA] (GGUF: MODEL, default models/gemma3-270m.gguf)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
COUNT=${1:-50}
DATA=${2:-$ROOT/../shared/data/imdb/test.jsonl}
MODEL=$(realpath "${MODEL:-models/gemma3-270m.gguf}")
VERSION=$(scripts/release/version.sh)
[ -f "$DATA" ] || { echo "error: no documents at \`$DATA\`" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "error: no model at \`$MODEL\`" >&2; exit 2; }
for arch in x86_64 aarch64; do
  [ -f "dist/exitwise-$VERSION-$arch-linux.tar.gz" ] ||
    { echo "error: no $arch release in dist/: run \`make dist\` and \`make dist ARCH=arm64\`" >&2; exit 2; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
head -n "$COUNT" "$DATA" >"$WORK/documents.jsonl"
classify() {
  local arch=$1
  shift
  tar -xzf "dist/exitwise-$VERSION-$arch-linux.tar.gz" -C "$WORK"
  (cd "$WORK" && env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 "$@" \
    "$WORK/exitwise-$VERSION-$arch-linux/bin/exitwise" classify --model "$MODEL" \
    --jsonl documents.jsonl --jobs 1 --threads 1 >"$arch.jsonl" 2>"$arch.log") ||
    { cat "$WORK/$arch.log" >&2; exit 1; }
  tail -n 1 "$WORK/$arch.log"
}
echo "== x86-64, $COUNT documents of $DATA"
classify x86_64
echo "== arm64 under qemu (${QEMU_CPU:-cortex-a76})"
classify aarch64 QEMU_LD_PREFIX=/usr/aarch64-linux-gnu "QEMU_CPU=${QEMU_CPU:-cortex-a76}"
scripts/release/compare-records.py "$WORK/x86_64.jsonl" "$WORK/aarch64.jsonl"
