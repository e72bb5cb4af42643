#!/usr/bin/env bash
# `make dist`: the release artefacts of exitwise for Linux, built for every CPU of the
# architecture (ARCH=x86_64, the default, or ARCH=arm64, cross-compiled on an x86-64 Debian):
#
#   dist/exitwise-VERSION-x86_64-linux.tar.gz   unpack anywhere (e.g. into /usr/local with
#   dist/exitwise-VERSION-aarch64-linux.tar.gz  --strip-components=1) and run bin/exitwise
#   dist/exitwise_VERSION_amd64.deb             the same files in the FHS layout under /usr
#   dist/exitwise_VERSION_arm64.deb
#   dist/SHA256SUMS                             of every architecture's built so far
#
# The binary is built without `-C target-cpu=native`; llama.cpp is built as shared libraries
# (`scripts/release/portable.cmake`) with ggml's CPU back end once per CPU level of the
# architecture, of which the binary loads the best the CPU supports at start, as llama.cpp's
# own releases do. Models are not included (licences, size) unless WITH_MODELS=1. Needs what
# `make build` needs, plus dpkg-deb; for arm64 also the cross compilers and qemu-user (Debian:
# gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user) and the Rust
# target (`rustup target add aarch64-unknown-linux-gnu`).
#
# `dist.sh --check-toolchain` (`make dist-check`, in CI, which cannot afford the arm64 build:
# docs/results.md) builds nothing of the release: it checks in a minute that the toolchain this
# script would use works. A Rust program built for the target (with its linker) runs (under
# qemu for arm64), llama.cpp's CMake configures with this script's settings and offers every CPU
# variant below, and ggml's base library compiles for the target.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VERSION=$(scripts/release/version.sh)
ARCH=${ARCH:-x86_64}
# The newest glibc symbol version the binary and libraries may need: Ubuntu 22.04 (2.35), also
# the base of JetPack 6 on Jetson Orin.
GLIBC_FLOOR=2.35
case "$ARCH" in
  x86_64 | amd64)
    ARCH=x86_64 DEB_ARCH=amd64 TRIPLE=""
    # ggml's CPU back end for the x86-64 levels that matter: x64 (the baseline, SSE2 only: any
    # x86-64 CPU), SSE4.2 (x86-64-v2), AVX2 (haswell: x86-64-v3), AVX-VNNI without AVX-512
    # (alderlake), AVX-512 (skylakex: x86-64-v4), AVX-512 VNNI/VBMI (icelake; also the best fit
    # for Zen 4 and Sapphire Rapids, whose AMX kernels crashed on this project's machines, see
    # .cargo/config.toml). llama.cpp's releases build 14 variants; these six cover the same CPUs
    # in well under half the build time.
    VARIANTS="x64 sse42 haswell alderlake skylakex icelake"
    RUST_FLAGS="-C target-cpu=x86-64"
    STRIP=strip
    ;;
  arm64 | aarch64)
    ARCH=aarch64 DEB_ARCH=arm64 TRIPLE=aarch64-unknown-linux-gnu
    # ggml's arm64 levels: ARMv8.0 (any arm64 CPU: Raspberry Pi 4), dot product, + FP16
    # arithmetic (Jetson Orin, Raspberry Pi 5, Graviton2, Ampere Altra), + SVE, + int8 matrix
    # multiply (Graviton3), + SVE2 (Graviton4). The ARMv9.2 (SME) ones need a newer GCC than
    # Debian 12's cross compiler; those CPUs load the SVE2 one.
    VARIANTS="armv8.0_1 armv8.2_1 armv8.2_2 armv8.2_3 armv8.6_1 armv8.6_2"
    # No target-cpu: the baseline is the target's own (ARMv8-A). Setting it also keeps
    # .cargo/config.toml's `native` off this build, as the empty CMake flags keep its x86-only
    # -mno-amx-* options away from the ARM compiler.
    RUST_FLAGS=""
    export CMAKE_C_FLAGS="" CMAKE_CXX_FLAGS=""
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu=--sysroot=/usr/aarch64-linux-gnu
    # The built binary runs here (man page, completions) under qemu.
    export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
    STRIP=aarch64-linux-gnu-strip
    for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64; do
      command -v "$tool" >/dev/null || {
        echo "error: \`$tool\` not found: apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user" >&2
        exit 2
      }
    done
    rustup target list --installed 2>/dev/null | grep -qx "$TRIPLE" || {
      echo "error: the Rust target $TRIPLE is not installed: rustup target add $TRIPLE" >&2
      exit 2
    }
    ;;
  *) echo "error: ARCH=$ARCH: this release is built for x86_64 or arm64" >&2; exit 2 ;;
esac
NAME="exitwise-$VERSION-$ARCH-linux"
# llama-cpp-sys-2 does not rebuild llama.cpp when portable.cmake changes: the folder is named
# after the hash of its settings (comments aside) instead.
settings_hash=$(grep -v '^#' scripts/release/portable.cmake | sha256sum | cut -c1-12)
TARGET_DIR=${EXITWISE_DIST_TARGET_DIR:-$ROOT/target/portable-$settings_hash${TRIPLE:+-$ARCH}}
# Cargo's output folder: a cross build adds the target's name.
BUILD_DIR=$TARGET_DIR/${TRIPLE:+$TRIPLE/}release
OUT=$ROOT/dist
WITH_MODELS=${WITH_MODELS:-0}

# llama.cpp's whole tree, as the crate's build configures it (the crate's copy of ggml cannot be
# configured on its own), for the CPU variants' targets.
configure_variants() {
  local folder=$1
  local cross=()
  if [ -n "$TRIPLE" ]; then
    cross=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64
      -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++)
  fi
  cmake -S "$(scripts/release/llama-source.sh)" -B "$folder" -DCMAKE_BUILD_TYPE=Release "${cross[@]}" \
    -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF \
    -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_CURL=OFF >"$folder.log" 2>&1 ||
    { tail -n 30 "$folder.log"; exit 1; }
}

if [ "${1:-}" = --check-toolchain ]; then
  start=$(date +%s)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "== the Rust target ${TRIPLE:-of this machine}, its linker and a run"
  printf '%s\n' 'fn main() {' \
    '    let sum: u64 = std::thread::spawn(|| (1..=100u64).sum()).join().unwrap();' \
    '    println!("{} {sum}", std::env::consts::ARCH);' '}' >"$work/check.rs"
  if [ -n "$TRIPLE" ]; then
    rustc --edition 2021 --target "$TRIPLE" -C linker=aarch64-linux-gnu-gcc -o "$work/check" "$work/check.rs"
    answer=$(qemu-aarch64 "$work/check")
  else
    rustc --edition 2021 -o "$work/check" "$work/check.rs"
    answer=$("$work/check")
  fi
  [ "$answer" = "$ARCH 5050" ] || { echo "error: the $ARCH test program answered \`$answer\`" >&2; exit 1; }
  echo "$answer"
  echo "== llama.cpp's CMake for $ARCH, with every CPU variant"
  configure_variants "$work/cpu-variants"
  targets=$(cmake --build "$work/cpu-variants" --target help)
  for variant in $VARIANTS; do
    grep -q "ggml-cpu-$variant\$" <<<"$targets" ||
      { echo "error: llama.cpp offers no CPU variant $variant for $ARCH" >&2; exit 1; }
  done
  echo "variants offered: $VARIANTS"
  echo "== ggml's base library, compiled for $ARCH"
  cmake --build "$work/cpu-variants" -j "$(nproc)" --target ggml-base >>"$work/cpu-variants.log" 2>&1 ||
    { tail -n 30 "$work/cpu-variants.log"; exit 1; }
  readelf -h "$work/cpu-variants/bin/libggml-base.so" | sed -n 's/^ *Machine: *//p'
  echo "PASS: the $ARCH release toolchain works ($(($(date +%s) - start)) s)"
  exit 0
fi

echo "== building the portable binary and llama.cpp's shared libraries (minutes)"
start=$(date +%s)
CARGO_TARGET_DIR=$TARGET_DIR \
  LLAMA_BUILD_SHARED_LIBS=1 \
  CMAKE_PROJECT_INCLUDE=$ROOT/scripts/release/portable.cmake \
  EXITWISE_RELEASE_BUILD=1 \
  RUSTFLAGS="$RUST_FLAGS" \
  ${CARGO:-cargo} build --release --locked ${TRIPLE:+--target "$TRIPLE"}
echo "built in $(($(date +%s) - start)) s"

# ggml's CPU back end for the levels above, from the same source and settings; ggml scores each
# at start and loads the best the CPU supports.
variants_build=$TARGET_DIR/cpu-variants
echo "== building ggml's CPU variants: $VARIANTS"
start=$(date +%s)
configure_variants "$variants_build"
cmake --build "$variants_build" -j "$(nproc)" --target $(printf 'ggml-cpu-%s ' $VARIANTS) >>"$variants_build.log" 2>&1 ||
  { tail -n 30 "$variants_build.log"; exit 1; }
echo "built in $(($(date +%s) - start)) s"

binary=$BUILD_DIR/exitwise
# The newest llama-cpp-sys-2 build holds the libraries this binary was linked against.
library_folder=$(ls -dt "$BUILD_DIR"/build/llama-cpp-sys-2-*/out/lib 2>/dev/null | while read -r folder; do
  [ -e "$folder/libllama.so" ] && { echo "$folder"; break; }
done)
[ -n "$library_folder" ] || { echo "error: no libllama.so under $BUILD_DIR/build" >&2; exit 2; }

# Only this script's own artefacts are replaced: `dist/plugins/` holds the GPU plug-ins
# (`make cuda-plugin`, `make vulkan-plugin`), which take far longer to build than the release.
rm -rf "$OUT/$NAME" "$OUT/$NAME.tar.gz" "$OUT"/exitwise_*_"$DEB_ARCH".deb "$OUT/SHA256SUMS"
mkdir -p "$OUT"
stage=$OUT/$NAME
echo "== staging $stage"
install -D -m 755 "$binary" "$stage/bin/exitwise"
mkdir -p "$stage/lib/exitwise"
# The libraries the binary needs (libllama, libggml, libggml-base: out/lib, each under its
# SONAME, the name the binary asks for) and the CPU variants. Not the CPU back end of the crate's
# build (out/build/bin/libggml-cpu.so): ggml's defaults compile it for AVX2 whenever
# GGML_NATIVE is off, so it is no baseline; the x64 (armv8.0_1) variant is.
for library in "$library_folder"/*.so; do
  soname=$(readelf -d "$library" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  case "$soname" in libmtmd*) continue ;; esac
  cp -L "$library" "$stage/lib/exitwise/${soname:-$(basename "$library")}"
done
for variant in $VARIANTS; do
  cp "$variants_build/bin/libggml-cpu-$variant.so" "$stage/lib/exitwise/"
done
"$STRIP" --strip-unneeded "$stage/bin/exitwise" "$stage/lib/exitwise/"*.so*
chmod 644 "$stage/lib/exitwise/"*.so*

# The glibc floor: no file may need a symbol version newer than GLIBC_FLOOR.
newest=$(objdump -T "$stage/bin/exitwise" "$stage/lib/exitwise/"*.so* |
  grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
if [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_FLOOR" | sort -V | tail -n 1)" != "$GLIBC_FLOOR" ]; then
  echo "error: the release needs GLIBC_$newest, newer than its floor $GLIBC_FLOOR:" >&2
  objdump -T "$stage/bin/exitwise" "$stage/lib/exitwise/"*.so* | grep "GLIBC_$newest" >&2
  exit 1
fi
echo "glibc: the newest symbol version needed is GLIBC_$newest (floor $GLIBC_FLOOR)"

if [ -n "$TRIPLE" ]; then
  run() { qemu-aarch64 "$stage/bin/exitwise" "$@"; }
else
  run() { "$stage/bin/exitwise" "$@"; }
fi
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
scripts/release/third-party.sh "${TRIPLE:-x86_64-unknown-linux-gnu}" >"$stage/share/doc/exitwise/THIRD-PARTY.md"
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
Architecture: $DEB_ARCH
Maintainer: exitwise developers <exitwise@localhost>
Installed-Size: $installed_kib
Depends: libc6 (>= $GLIBC_FLOOR), libstdc++6 (>= 11), libgcc-s1
Section: utils
Priority: optional
Description: classify text with a GGUF language model, stopping early in two dimensions
 exitwise reads a document sentence by sentence and runs the model layer by layer inside
 each sentence; small per-layer classifier heads decide when it is confident enough to stop.
 Models are not included: install one with "exitwise models import FILE.gguf".
EOF
echo /etc/exitwise/serve.toml >"$deb/DEBIAN/conffiles"
(cd "$deb" && find usr etc -type f | LC_ALL=C sort | xargs md5sum >DEBIAN/md5sums)
dpkg-deb --root-owner-group -Zxz --build "$deb" "$OUT/exitwise_${VERSION}_${DEB_ARCH}.deb" >/dev/null
rm -rf "$deb"

# Of every architecture's artefacts of this version that dist/ holds.
(cd "$OUT" && sha256sum "exitwise-$VERSION-"*-linux.tar.gz "exitwise_${VERSION}_"*.deb >SHA256SUMS)
rm -rf "$stage"
ls -l "$OUT"
