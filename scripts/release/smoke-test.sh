#!/usr/bin/env bash
# `make dist-test`: tries the release artefacts as a new user on an air-gapped machine would.
# In a fresh folder, with an empty HOME, no source tree and no EXITWISE_* variables: unpack the
# tarball, `models import` a GGUF, `classify` a file, a PDF and stdin, `serve` a text and a PDF
# and stop it with SIGTERM; then the same binary from the Debian package (`dpkg-deb -x`). Nothing here
# reaches the network. Usage: scripts/release/smoke-test.sh [GGUF] (default: models/gemma3-270m.gguf)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MODEL=$(realpath "${1:-models/gemma3-270m.gguf}")
VERSION=$(scripts/release/version.sh)
TARBALL=$ROOT/dist/exitwise-$VERSION-x86_64-linux.tar.gz
DEB=$ROOT/dist/exitwise_${VERSION}_amd64.deb
PORT=${EXITWISE_SMOKE_PORT:-18181}
[ -f "$TARBALL" ] && [ -f "$DEB" ] || { echo "error: run \`make dist\` first" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "error: no model at \`$MODEL\`" >&2; exit 2; }
(cd dist && sha256sum --check --quiet SHA256SUMS)

WORK=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/home" "$WORK/unpacked" "$WORK/deb"
# A clean environment: only PATH, an empty HOME, a neutral working folder.
clean() { (cd "$WORK" && exec env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 "$@"); }
fail() { echo "FAIL: $*" >&2; exit 1; }

check_installation() {
  local exitwise=$1 label=$2
  echo "== $label: $exitwise"
  clean "$exitwise" --version
  clean "$exitwise" models list
  clean "$exitwise" models import "$MODEL"
  [ -f "$WORK/home/.local/share/exitwise/models/gemma3-270m.gguf" ] ||
    fail "models import did not install into the user data folder"
  clean "$exitwise" inspect | tee "$WORK/inspect.txt"
  grep -q '^cpu back end    libggml-cpu-' "$WORK/inspect.txt" ||
    fail "the CPU back end was not loaded from a CPU variant library"
  printf 'A wonderful film. The cast is superb and the ending moved me to tears.\n' >"$WORK/review.txt"
  clean "$exitwise" classify "$WORK/review.txt" | tee "$WORK/classify.jsonl"
  grep -q '"label":"pos"' "$WORK/classify.jsonl" || fail "classify did not answer pos"
  printf 'Dull and badly acted; I nearly walked out.\n' | clean "$exitwise" classify --lines - |
    tee "$WORK/stdin.jsonl"
  grep -q '"label":"neg"' "$WORK/stdin.jsonl" || fail "classify from stdin did not answer neg"
  clean "$exitwise" classify --adapters gemma3-270m-bbc --format text "$WORK/review.txt" >/dev/null ||
    fail "the packaged adapter packs are not found"
  # A PDF is read by the installed binary's child reader (`read-container`), from a file and
  # from a request body.
  cp "$ROOT/tests/fixtures/formats/review.pdf" "$WORK/review.pdf"
  clean "$exitwise" classify "$WORK/review.pdf" | tee "$WORK/pdf.jsonl"
  grep -q '"format":"pdf","label":"pos"' "$WORK/pdf.jsonl" || fail "classify did not read the PDF"

  # Not through `clean`: the server must be this job itself, so that SIGTERM reaches it.
  (cd "$WORK" && exec env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 \
    "$exitwise" serve --listen "127.0.0.1:$PORT" --threads 1) 2>"$WORK/serve.log" &
  SERVER=$!
  for _ in $(seq 1 300); do
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.log"; fail "serve exited before it was ready"; }
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf -H 'content-type: application/json' -d '{"text": "Great film, I loved it."}' \
    "http://127.0.0.1:$PORT/v1/classify" | tee "$WORK/serve.json"
  echo
  grep -q '"label":"pos"' "$WORK/serve.json" || { cat "$WORK/serve.log"; fail "serve did not answer"; }
  curl -sf -H 'content-type: application/pdf' --data-binary "@$WORK/review.pdf" \
    "http://127.0.0.1:$PORT/v1/classify/document" | tee "$WORK/serve-pdf.json"
  echo
  grep -q '"format":"pdf"' "$WORK/serve-pdf.json" || { cat "$WORK/serve.log"; fail "serve did not read the PDF"; }
  kill -TERM "$SERVER"
  wait "$SERVER" || fail "serve did not exit 0 after SIGTERM"
  SERVER=""
  rm -rf "$WORK/home" && mkdir -p "$WORK/home"
}

tar -xzf "$TARBALL" -C "$WORK/unpacked"
(cd "$WORK/unpacked/exitwise-$VERSION-x86_64-linux" && sha256sum --check --quiet SHA256SUMS)
check_installation "$WORK/unpacked/exitwise-$VERSION-x86_64-linux/bin/exitwise" "tarball"

# A GPU plug-in that cannot be loaded (here not a library at all; on a real machine, say, one
# whose CUDA runtime is missing) is named with the loader's reason, not skipped in silence,
# and `--gpu-layers` falls back to the CPU with a warning.
echo "== tarball with a GPU plug-in that cannot load"
unpacked=$WORK/unpacked/exitwise-$VERSION-x86_64-linux
printf 'not a library\n' >"$unpacked/lib/exitwise/libggml-cuda.so"
clean "$unpacked/bin/exitwise" inspect --model "$MODEL" | tee "$WORK/inspect.txt"
grep -q '^gpu plug-ins    libggml-cuda.so (not loaded: ' "$WORK/inspect.txt" ||
  fail "inspect does not report the plug-in that failed to load"
clean "$unpacked/bin/exitwise" classify --model "$MODEL" --gpu-layers 4 "$WORK/review.txt" \
  2>"$WORK/gpu-layers.log" | tee "$WORK/classify.jsonl"
cat "$WORK/gpu-layers.log"
grep -q '"label":"pos"' "$WORK/classify.jsonl" || fail "classify with --gpu-layers and no GPU did not answer"
grep -q 'no GPU device' "$WORK/gpu-layers.log" || fail "--gpu-layers without a GPU gave no warning"
rm "$unpacked/lib/exitwise/libggml-cuda.so"

dpkg-deb --info "$DEB" | sed -n '/Package:/,/Depends:/p'
dpkg-deb -x "$DEB" "$WORK/deb"
for path in usr/bin/exitwise usr/share/man/man1/exitwise.1.gz usr/lib/systemd/system/exitwise.service \
  etc/exitwise/serve.toml usr/share/bash-completion/completions/exitwise usr/share/exitwise/adapters/gemma3-270m-imdb/adapter.toml; do
  [ -e "$WORK/deb/$path" ] || fail "the Debian package lacks /$path"
done
grep -q '^ExecStart=/usr/bin/exitwise ' "$WORK/deb/usr/lib/systemd/system/exitwise.service" ||
  fail "the packaged unit does not start /usr/bin/exitwise"
check_installation "$WORK/deb/usr/bin/exitwise" "Debian package"
echo "PASS: the tarball and the Debian package work from a fresh folder with an empty HOME"
