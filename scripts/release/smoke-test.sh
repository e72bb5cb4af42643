#!/usr/bin/env bash
# `make dist-test`: tries the release artefacts as a new user on an air-gapped machine would.
# In a fresh folder, with an empty HOME, no source tree and no EXITWISE_* variables: unpack the
# tarball, `models import` a GGUF, `classify` a file, a PDF and stdin, `serve` a text and a PDF
# and stop it with SIGTERM; then the same binary from the Debian package (`dpkg-deb -x`). Nothing here
# reaches the network. Usage: [ARCH=arm64] scripts/release/smoke-test.sh [GGUF] (default:
# models/gemma3-270m.gguf).
#
# ARCH=arm64 on an x86-64 machine tries the arm64 artefacts under qemu-user: the kernel runs
# arm64 programs through qemu (binfmt_misc, registered here from Debian's qemu-user-binfmt if
# it is not yet and this runs as root), so the binary's own child processes (the PDF reader)
# are emulated as well, and QEMU_LD_PREFIX, the emulator's setting, points at Debian's arm64
# C library (and QEMU_CPU the CPU emulated). Then it checks that the package manager refuses the
# arm64 package on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MODEL=$(realpath "${1:-models/gemma3-270m.gguf}")
VERSION=$(scripts/release/version.sh)
ARCH=${ARCH:-x86_64}
# The emulator's settings, kept by the clean environment below (empty on a native run).
EMULATION=()
# How long a server may take to load the model (emulated: minutes).
READY_SECONDS=30
# The CPU variant `inspect` must name, where the CPU is known (the emulated one).
EXPECTED_VARIANT=""
case "$ARCH" in
  x86_64 | amd64) ARCH=x86_64 DEB_ARCH=amd64 ;;
  arm64 | aarch64)
    ARCH=aarch64 DEB_ARCH=arm64
    if [ "$(uname -m)" != aarch64 ]; then
      command -v qemu-aarch64 >/dev/null ||
        { echo "error: \`qemu-aarch64\` not found: apt-get install qemu-user qemu-user-binfmt" >&2; exit 2; }
      binfmt=/proc/sys/fs/binfmt_misc
      if ! grep -qx enabled "$binfmt/qemu-aarch64" 2>/dev/null; then
        registration=/usr/lib/binfmt.d/qemu-aarch64.conf
        [ "$(id -u)" = 0 ] && [ -f "$registration" ] || {
          echo "error: arm64 programs cannot run here: register qemu with binfmt_misc (as root, with qemu-user-binfmt installed, or \`update-binfmts --enable qemu-aarch64\`)" >&2
          exit 2
        }
        [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
        cat "$registration" >"$binfmt/register"
        echo "registered qemu-aarch64 with binfmt_misc"
      fi
      # The CPU emulated: a Cortex-A76 (Raspberry Pi 5; Jetson Orin's A78AE has the same
      # features), whose CPU variant is the one most arm64 boxes load; QEMU_CPU chooses another.
      EMULATION=(QEMU_LD_PREFIX=/usr/aarch64-linux-gnu "QEMU_CPU=${QEMU_CPU:-cortex-a76}")
      [ -n "${QEMU_CPU:-}" ] || EXPECTED_VARIANT=armv8.2_2
      READY_SECONDS=600
    fi
    ;;
  *) echo "error: ARCH=$ARCH: the release is built for x86_64 or arm64" >&2; exit 2 ;;
esac
NAME=exitwise-$VERSION-$ARCH-linux
TARBALL=$ROOT/dist/$NAME.tar.gz
DEB=$ROOT/dist/exitwise_${VERSION}_$DEB_ARCH.deb
PORT=${EXITWISE_SMOKE_PORT:-18181}
[ -f "$TARBALL" ] && [ -f "$DEB" ] || { echo "error: run \`make dist ARCH=$ARCH\` first" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "error: no model at \`$MODEL\`" >&2; exit 2; }
(cd dist && sha256sum --check --quiet SHA256SUMS)

WORK=$(mktemp -d)
SERVER=""
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/home" "$WORK/unpacked" "$WORK/deb"
# A clean environment: only PATH, an empty HOME, a neutral working folder.
clean() { (cd "$WORK" && exec env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8 "${EMULATION[@]}" "$@"); }
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
  grep -q "^cpu back end    libggml-cpu-$EXPECTED_VARIANT" "$WORK/inspect.txt" ||
    fail "the CPU back end was not loaded from a CPU variant library${EXPECTED_VARIANT:+ (expected $EXPECTED_VARIANT)}"
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
    "${EMULATION[@]}" "$exitwise" serve --listen "127.0.0.1:$PORT" --threads 1) 2>"$WORK/serve.log" &
  SERVER=$!
  for _ in $(seq 1 $((READY_SECONDS * 10))); do
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
(cd "$WORK/unpacked/$NAME" && sha256sum --check --quiet SHA256SUMS)
check_installation "$WORK/unpacked/$NAME/bin/exitwise" "tarball"

# A GPU plug-in that cannot be loaded (here not a library at all; on a real machine, say, one
# whose CUDA runtime is missing) is named with the loader's reason, not skipped in silence,
# and `--gpu-layers` falls back to the CPU with a warning.
echo "== tarball with a GPU plug-in that cannot load"
unpacked=$WORK/unpacked/$NAME
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

# On a machine of another architecture (and without it added to dpkg's foreign ones) the package
# manager refuses the package before unpacking anything. Tried on an empty dpkg database of its
# own, so that this machine's packages are not touched.
if [ "$DEB_ARCH" != "$(dpkg --print-architecture)" ] &&
  ! dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH"; then
  echo "== dpkg -i of the $DEB_ARCH package on this $(dpkg --print-architecture) machine"
  system=$WORK/dpkg-root
  mkdir -p "$system/var/lib/dpkg/info" "$system/var/lib/dpkg/updates"
  : >"$system/var/lib/dpkg/status"
  if dpkg --force-not-root --root="$system" --log=/dev/null -i "$DEB" 2>"$WORK/dpkg.log"; then
    fail "dpkg installed the $DEB_ARCH package on a $(dpkg --print-architecture) machine"
  fi
  cat "$WORK/dpkg.log"
  grep -q "package architecture ($DEB_ARCH) does not match system" "$WORK/dpkg.log" ||
    fail "dpkg refused the package, but not for its architecture"
  [ ! -e "$system/usr/bin/exitwise" ] && ! grep -q '^Package: exitwise' "$system/var/lib/dpkg/status" ||
    fail "the refused package was half installed"
fi
echo "PASS: the $ARCH tarball and the Debian package work from a fresh folder with an empty HOME${EMULATION[*]:+ (emulated)}"
