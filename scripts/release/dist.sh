#!/usr/bin/env bash
# `make dist`: the release artefacts of exitwise for x86-64 Linux, built for every x86-64 CPU:
#
#   dist/exitwise-VERSION-x86_64-linux.tar.gz   unpack anywhere (e.g. into /usr/local with
#                                               --strip-components=1) and run bin/exitwise
#   dist/exitwise_VERSION_amd64.deb             the same files in the FHS layout under /usr
#   dist/SHA256SUMS                             of both
#
# The binary is built without `-C target-cpu=native`; llama.cpp is built as shared libraries
# (`scripts/release/portable.cmake`) with ggml's CPU back end once per x86-64 level, of which the
# binary loads the best the CPU supports at start, as llama.cpp's own releases do. Models are not included (licences,
# size) unless WITH_MODELS=1. Needs what `make build` needs, plus dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VERSION=$(scripts/release/version.sh)
NAME="exitwise-$VERSION-x86_64-linux"
# llama-cpp-sys-2 does not rebuild llama.cpp when portable.cmake changes: the folder is named
# after the hash of its settings (comments aside) instead.
settings_hash=$(grep -v '^#' scripts/release/portable.cmake | sha256sum | cut -c1-12)
TARGET_DIR=${EXITWISE_DIST_TARGET_DIR:-$ROOT/target/portable-$settings_hash}
OUT=$ROOT/dist
WITH_MODELS=${WITH_MODELS:-0}

echo "== building the portable binary and llama.cpp's shared libraries (minutes)"
start=$(date +%s)
CARGO_TARGET_DIR=$TARGET_DIR \
  LLAMA_BUILD_SHARED_LIBS=1 \
  CMAKE_PROJECT_INCLUDE=$ROOT/scripts/release/portable.cmake \
  EXITWISE_RELEASE_BUILD=1 \
  RUSTFLAGS="-C target-cpu=x86-64" \
  ${CARGO:-cargo} build --release --locked
echo "built in $(($(date +%s) - start)) s"

# ggml's CPU back end for the x86-64 levels that matter, from the same source and settings:
# x64 (the baseline, SSE2 only: any x86-64 CPU), SSE4.2 (x86-64-v2), AVX2 (haswell:
# x86-64-v3), AVX-VNNI without AVX-512 (alderlake), AVX-512 (skylakex: x86-64-v4), AVX-512
# VNNI/VBMI (icelake; also the best fit for Zen 4 and Sapphire Rapids, whose AMX kernels
# crashed on this project's machines, see .cargo/config.toml). ggml scores each at start and
# loads the best the CPU supports. llama.cpp's releases build 14 variants; these six cover the
# same CPUs in well under half the build time.
VARIANTS="x64 sse42 haswell alderlake skylakex icelake"
variants_build=$TARGET_DIR/cpu-variants
echo "== building ggml's CPU variants: $VARIANTS"
start=$(date +%s)
# The whole llama.cpp tree, as the crate's build configures it (the crate's copy of ggml cannot
# be configured on its own); only the variants' targets are built.
cmake -S "$(scripts/release/llama-source.sh)" -B "$variants_build" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF \
  -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_CURL=OFF >"$variants_build.log" 2>&1 ||
  { tail -n 30 "$variants_build.log"; exit 1; }
cmake --build "$variants_build" -j "$(nproc)" --target $(printf 'ggml-cpu-%s ' $VARIANTS) >>"$variants_build.log" 2>&1 ||
  { tail -n 30 "$variants_build.log"; exit 1; }
echo "built in $(($(date +%s) - start)) s"

binary=$TARGET_DIR/release/exitwise
# The newest llama-cpp-sys-2 build holds the libraries this binary was linked against.
library_folder=$(ls -dt "$TARGET_DIR"/release/build/llama-cpp-sys-2-*/out/lib 2>/dev/null | while read -r folder; do
  [ -e "$folder/libllama.so" ] && { echo "$folder"; break; }
done)
[ -n "$library_folder" ] || { echo "error: no libllama.so under $TARGET_DIR/release/build" >&2; exit 2; }

# Only this script's own artefacts are replaced: `dist/plugins/` holds the GPU plug-ins
# (`make cuda-plugin`, `make vulkan-plugin`), which take far longer to build than the release.
rm -rf "$OUT/$NAME" "$OUT/$NAME.tar.gz" "$OUT"/exitwise_*_amd64.deb "$OUT/SHA256SUMS"
mkdir -p "$OUT"
stage=$OUT/$NAME
echo "== staging $stage"
install -D -m 755 "$binary" "$stage/bin/exitwise"
mkdir -p "$stage/lib/exitwise"
# The libraries the binary needs (libllama, libggml, libggml-base: out/lib, each under its
# SONAME, the name the binary asks for) and the CPU variants. Not the CPU back end of the crate's
# build (out/build/bin/libggml-cpu.so): ggml's defaults compile it for AVX2 whenever
# GGML_NATIVE is off, so it is no baseline; the x64 variant is.
for library in "$library_folder"/*.so; do
  soname=$(readelf -d "$library" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  case "$soname" in libmtmd*) continue ;; esac
  cp -L "$library" "$stage/lib/exitwise/${soname:-$(basename "$library")}"
done
for variant in $VARIANTS; do
  cp "$variants_build/bin/libggml-cpu-$variant.so" "$stage/lib/exitwise/"
done
strip --strip-unneeded "$stage/bin/exitwise" "$stage/lib/exitwise/"*.so*
chmod 644 "$stage/lib/exitwise/"*.so*

run() { "$stage/bin/exitwise" "$@"; }
mkdir -p "$stage/share/man/man1" "$stage/share/bash-completion/completions" \
  "$stage/share/zsh/vendor-completions" "$stage/share/fish/vendor_completions.d"
run man >"$stage/share/man/man1/exitwise.1"
run completions bash >"$stage/share/bash-completion/completions/exitwise"
run completions zsh >"$stage/share/zsh/vendor-completions/_exitwise"
run completions fish >"$stage/share/fish/vendor_completions.d/exitwise.fish"

# The packs (each an adapter.toml and a heads.safetensors) and their README.
mkdir -p "$stage/share/exitwise"
cp -r adapters "$stage/share/exitwise/adapters"
if [ "$WITH_MODELS" = 1 ]; then
  mkdir -p "$stage/share/exitwise/models"
  for model in models/*.gguf; do
    cp "$model" "$stage/share/exitwise/models/"
  done
  run models verify --models-dir "$stage/share/exitwise/models"
fi

install -D -m 644 deploy/exitwise.service "$stage/lib/systemd/system/exitwise.service"
install -D -m 644 deploy/exitwise.socket "$stage/lib/systemd/system/exitwise.socket"
install -D -m 644 deploy/serve.toml "$stage/etc/exitwise/serve.toml"
install -D -m 644 README.md "$stage/share/doc/exitwise/README.md"
install -D -m 644 LICENSE "$stage/share/doc/exitwise/LICENSE"
scripts/release/third-party.sh >"$stage/share/doc/exitwise/THIRD-PARTY.md"
cp README.md LICENSE "$stage/"

(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)
echo "== tarball"
tar --owner=0 --group=0 --numeric-owner --sort=name -C "$OUT" -czf "$OUT/$NAME.tar.gz" "$NAME"

echo "== Debian package"
deb=$OUT/deb
mkdir -p "$deb/DEBIAN" "$deb/usr" "$deb/etc"
cp -a "$stage/bin" "$stage/lib" "$stage/share" "$deb/usr/"
# The packaged binary lives in /usr/bin, not /usr/local/bin.
sed -i 's|^ExecStart=/usr/local/bin/exitwise|ExecStart=/usr/bin/exitwise|' "$deb/usr/lib/systemd/system/exitwise.service"
cp -a "$stage/etc/exitwise" "$deb/etc/"
gzip -9n "$deb/usr/share/man/man1/exitwise.1"
mv "$deb/usr/share/doc/exitwise/LICENSE" "$deb/usr/share/doc/exitwise/copyright"
installed_kib=$(du -sk "$deb/usr" "$deb/etc" | awk '{total += $1} END {print total}')
cat >"$deb/DEBIAN/control" <<EOF
Package: exitwise
Version: $VERSION
Architecture: amd64
Maintainer: exitwise developers <exitwise@localhost>
Installed-Size: $installed_kib
Depends: libc6 (>= 2.35), libstdc++6 (>= 11), libgcc-s1
Section: utils
Priority: optional
Description: classify text with a GGUF language model, stopping early in two dimensions
 exitwise reads a document sentence by sentence and runs the model layer by layer inside
 each sentence; small per-layer classifier heads decide when it is confident enough to stop.
 Models are not included: install one with "exitwise models import FILE.gguf".
EOF
echo /etc/exitwise/serve.toml >"$deb/DEBIAN/conffiles"
(cd "$deb" && find usr etc -type f | LC_ALL=C sort | xargs md5sum >DEBIAN/md5sums)
dpkg-deb --root-owner-group -Zxz --build "$deb" "$OUT/exitwise_${VERSION}_amd64.deb" >/dev/null
rm -rf "$deb"

(cd "$OUT" && sha256sum "$NAME.tar.gz" "exitwise_${VERSION}_amd64.deb" >SHA256SUMS)
rm -rf "$stage"
ls -l "$OUT"
