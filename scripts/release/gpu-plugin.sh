#!/usr/bin/env bash
# `make cuda-plugin` / `make vulkan-plugin`: ggml's CUDA or Vulkan back end as
# `dist/plugins/libggml-cuda.so` / `libggml-vulkan.so` (arm64: `dist/plugins/aarch64/`), built
# from the same llama.cpp source as the release. Copy it next to the CPU libraries of an
# installed release (`lib/exitwise/`, for the Debian package `/usr/lib/exitwise/`): the binary
# loads it at start, `exitwise inspect` lists the GPU, and `--gpu-layers` offloads to it
# (default: every layer).
#
# CUDA: the machine that runs it needs NVIDIA's driver and the CUDA runtime and cuBLAS
# libraries of the toolkit it was built with (for CUDA 13: libcudart.so.13, libcublas.so.13 and
# libcublasLt.so.13, and a driver of the 580 series or newer), e.g. from the distribution,
# NVIDIA's packages or the same wheels (`pip install nvidia-cuda-runtime nvidia-cublas`).
# Building needs a CUDA toolkit: CUDA_HOME (default /usr/local/cuda), or CUDA_FROM_PIP=1 to
# assemble a CUDA 13 one from NVIDIA's wheels on the Python package registry (nvcc, runtime,
# cuBLAS, CCCL) under target/cuda-toolkit. CUDA_ARCHITECTURES chooses the GPUs compiled for
# (CMake's syntax; the default covers Turing to Hopper; one architecture, e.g. `90-real`,
# compiles several times faster).
#
# ARCH=arm64 (CUDA only) cross-compiles the plug-in for arm64 Linux with the aarch64 cross
# compilers of `make dist ARCH=arm64`: nvcc runs here, the host code is compiled by
# aarch64-linux-gnu-g++, against the arm64 CUDA runtime and cuBLAS (with CUDA_FROM_PIP=1, NVIDIA's
# manylinux aarch64 wheels, placed as the toolkit's `targets/sbsa-linux`; otherwise CUDA_HOME
# must hold NVIDIA's cross-compilation files for arm64). The default architecture is 87-real:
# Jetson Orin, which runs CUDA 13 (the server-ARM, "SBSA", CUDA the wheels are) from JetPack
# 7.2 on; JetPack 6 has CUDA 12 for Tegra, which the package registry does not carry and this
# plug-in cannot use (docs/design.md, "Jetson"). Jetson Thor is 110-real, ARM servers with a
# discrete GPU (Grace Hopper) 90-real.
#
# Vulkan: runs on any GPU with a Vulkan 1.2 driver (AMD, Intel, NVIDIA; the loader
# `libvulkan.so.1` must be installed). Building needs the Vulkan headers (1.3.261 or newer;
# VULKAN_INCLUDE_DIR for others than the system's) and loader and the `glslc` shader compiler
# (Debian/Ubuntu: `apt-get install libvulkan-dev glslc`; a newer glslc also compiles the
# cooperative-matrix and integer-dot-product shader variants).
#
# Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

cuda_flags() {
  if [ "$ARCH" = aarch64 ]; then
    ARCHITECTURES=${CUDA_ARCHITECTURES:-87-real}
  else
    ARCHITECTURES=${CUDA_ARCHITECTURES:-75-virtual;80-virtual;86-real;89-real;90-real}
  fi
  if [ "${CUDA_FROM_PIP:-0}" = 1 ]; then
    [ "$HOST" = x86_64 ] ||
      { echo "error: CUDA_FROM_PIP=1 assembles a toolkit for x86-64 machines only: set CUDA_HOME" >&2; exit 2; }
    # NVIDIA's CUDA 13 wheels hold a complete toolkit under `nvidia/cu13` (nvcc, cicc, ptxas,
    # the headers, cudart and cuBLAS); the CUDA 12 compiler wheel carries only ptxas, no nvcc.
    # 13.0: the CCCL of later 13.x releases no longer compiles this llama.cpp's argsort.cu
    # (`cuda::make_strided_iterator` not found with CCCL 13.3).
    wheels=$ROOT/target/cuda-toolkit/wheels-13
    CUDA_HOME=$wheels/nvidia/cu13
    if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
      echo "== assembling a CUDA toolkit from NVIDIA's wheels in $CUDA_HOME"
      rm -rf "$wheels"
      python3 -m pip install --quiet --no-deps --target "$wheels" \
        'nvidia-cuda-nvcc==13.0.*' 'nvidia-cuda-crt==13.0.*' 'nvidia-nvvm==13.0.*' \
        'nvidia-cuda-runtime==13.0.*' 'nvidia-cublas==13.0.*' 'nvidia-cuda-cccl==13.0.*'
      # The wheels carry only the versioned libraries; the linker looks for the plain names.
      for library in "$CUDA_HOME"/lib/lib*.so.*; do
        plain=${library%%.so.*}.so
        [ -e "$plain" ] || ln -s "$(basename "$library")" "$plain"
      done
      # nvcc 13.0 looks for its headers and libraries in the toolkit's usual
      # `targets/x86_64-linux` folder, which the wheels do not have.
      mkdir -p "$CUDA_HOME/targets/x86_64-linux"
      ln -sfn ../../include "$CUDA_HOME/targets/x86_64-linux/include"
      ln -sfn ../../lib "$CUDA_HOME/targets/x86_64-linux/lib"
      chmod +x "$CUDA_HOME"/bin/* "$CUDA_HOME"/nvvm/bin/* 2>/dev/null || true
    fi
    if [ ${#CROSS[@]} -gt 0 ] && [ ! -e "$CUDA_HOME/targets/sbsa-linux/lib/libcublas.so" ]; then
      # The arm64 side: the same wheels' manylinux aarch64 builds, for their headers (the
      # compiler's wheel has those nvcc's output includes) and libraries. nvcc looks for them
      # in `targets/sbsa-linux` when its host compiler is an arm64 one; CMake's FindCUDAToolkit,
      # when cross-compiling, in `targets/aarch64-linux`.
      target_wheels=$ROOT/target/cuda-toolkit/wheels-13-aarch64
      echo "== adding the arm64 CUDA runtime and cuBLAS from NVIDIA's wheels in $target_wheels"
      rm -rf "$target_wheels"
      python3 -m pip install --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
        --target "$target_wheels" \
        'nvidia-cuda-nvcc==13.0.*' 'nvidia-cuda-crt==13.0.*' 'nvidia-cuda-runtime==13.0.*' \
        'nvidia-cublas==13.0.*' 'nvidia-cuda-cccl==13.0.*'
      for library in "$target_wheels"/nvidia/cu13/lib/lib*.so.*; do
        plain=${library%%.so.*}.so
        [ -e "$plain" ] || ln -s "$(basename "$library")" "$plain"
      done
      ln -sfn "$target_wheels/nvidia/cu13" "$CUDA_HOME/targets/sbsa-linux"
      ln -sfn "$target_wheels/nvidia/cu13" "$CUDA_HOME/targets/aarch64-linux"
    fi
  fi
  CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
  [ -x "$CUDA_HOME/bin/nvcc" ] || {
    echo "error: no nvcc in \`$CUDA_HOME/bin\`: set CUDA_HOME, or CUDA_FROM_PIP=1 to assemble a toolkit from the Python package registry" >&2
    exit 2
  }
  "$CUDA_HOME/bin/nvcc" --version | tail -n 2
  # GGML_CUDA_NO_VMM: no link against the driver library at build time (libcuda.so is the
  # driver's, not the toolkit's); the plug-in then allocates with cudaMalloc pools.
  # It also keeps the 32 GiB virtual-memory reservation of ggml's VMM pool, which fails on
  # Jetson Orin, off every build.
  FLAGS=(-DGGML_CUDA=ON -DGGML_CUDA_NO_VMM=ON
    -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_HOME"
    -DCMAKE_CUDA_ARCHITECTURES="$ARCHITECTURES")
  if [ ${#CROSS[@]} -gt 0 ]; then
    [ -d "$CUDA_HOME/targets/sbsa-linux" ] || [ -d "$CUDA_HOME/targets/aarch64-linux" ] || {
      echo "error: no arm64 CUDA files in \`$CUDA_HOME/targets\` (sbsa-linux or aarch64-linux): install NVIDIA's cross-compilation package for arm64, or set CUDA_FROM_PIP=1" >&2
      exit 2
    }
    FLAGS+=(-DCMAKE_CUDA_HOST_COMPILER=aarch64-linux-gnu-g++)
  fi
  WHAT="CUDA ($ARCHITECTURES, $ARCH)"
}

vulkan_flags() {
  command -v glslc >/dev/null || {
    echo "error: no \`glslc\` (the shader compiler) on PATH: install it, e.g. \`apt-get install glslc libvulkan-dev\`" >&2
    exit 2
  }
  # This llama.cpp uses VK_EXT_layer_settings: headers of Vulkan 1.3.261 or newer (Ubuntu
  # 24.04's libvulkan-dev; Debian 12's 1.3.239 is too old: unpack a newer libvulkan-dev
  # package with `dpkg -x` and point VULKAN_INCLUDE_DIR at its usr/include).
  local include=${VULKAN_INCLUDE_DIR:-/usr/include}
  local header=$include/vulkan/vulkan_core.h
  [ -e "$include/vulkan/vulkan.hpp" ] || {
    echo "error: no Vulkan headers (\`vulkan/vulkan.hpp\`) in \`$include\`: install them, e.g. \`apt-get install libvulkan-dev\`, or set VULKAN_INCLUDE_DIR" >&2
    exit 2
  }
  local version
  version=$(sed -n 's/^#define VK_HEADER_VERSION \([0-9]*\)$/\1/p' "$header")
  [ "${version:-0}" -ge 261 ] || {
    echo "error: the Vulkan headers in \`$include\` are of version 1.x.${version:-?}; this llama.cpp needs 1.3.261 or newer: set VULKAN_INCLUDE_DIR to newer ones (see the comment in $0)" >&2
    exit 2
  }
  echo "Vulkan headers 1.x.$version in $include; $(glslc --version | head -n 1)"
  FLAGS=(-DGGML_VULKAN=ON -DVulkan_INCLUDE_DIR="$include")
  WHAT=Vulkan
}

# The architecture built for: this machine's, or ARCH=arm64 on an x86-64 one (cross-compiled,
# with the cross-compilation setup of `make dist ARCH=arm64`'s CPU variants).
HOST=$(uname -m)
ARCH=${ARCH:-$HOST}
case "$ARCH" in
  x86_64 | amd64) ARCH=x86_64 ;;
  arm64 | aarch64) ARCH=aarch64 ;;
  *) echo "error: ARCH=$ARCH: the plug-ins are built for x86_64 or arm64" >&2; exit 2 ;;
esac
CROSS=()
STRIP=strip
if [ "$ARCH" != "$HOST" ]; then
  [ "$ARCH:$HOST" = aarch64:x86_64 ] ||
    { echo "error: a plug-in for $ARCH cannot be built on $HOST (only arm64 on x86-64)" >&2; exit 2; }
  command -v aarch64-linux-gnu-g++ >/dev/null || {
    echo "error: \`aarch64-linux-gnu-g++\` not found: apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross" >&2
    exit 2
  }
  CROSS=(-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64
    -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++)
  STRIP=aarch64-linux-gnu-strip
fi

BACKEND=${1:-}
case "$BACKEND" in
  cuda) cuda_flags ;;
  vulkan)
    [ ${#CROSS[@]} -eq 0 ] || { echo "error: the Vulkan plug-in is not cross-compiled: build it on the $ARCH machine" >&2; exit 2; }
    vulkan_flags
    ;;
  *)
    echo "usage: $0 cuda|vulkan" >&2
    exit 2
    ;;
esac
BUILD=$ROOT/target/$BACKEND-plugin${CROSS[0]:+-$ARCH}
LIBRARY=libggml-$BACKEND.so
# The library keeps its name (ggml's loader looks for `libggml-*.so`); other architectures' in
# a folder of their own.
PLUGINS=dist/plugins${CROSS[0]:+/$ARCH}

# The llama.cpp source the release was built from: the one inside llama-cpp-sys-2.
LLAMA_SOURCE=$(scripts/release/llama-source.sh)

echo "== configuring ggml's $WHAT back end from $LLAMA_SOURCE"
start=$(date +%s)
cmake -S "$LLAMA_SOURCE" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_NATIVE=OFF \
  "${CROSS[@]}" "${FLAGS[@]}" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF >"$BUILD.configure.log" 2>&1 ||
  { tail -n 30 "$BUILD.configure.log"; exit 1; }
echo "== compiling (long: every kernel, for CUDA for every architecture)"
cmake --build "$BUILD" --target "ggml-$BACKEND" -j "$(nproc)"
mkdir -p "$PLUGINS"
cp -L "$(find "$BUILD" -name "$LIBRARY" | head -n 1)" "$PLUGINS/$LIBRARY"
"$STRIP" --strip-unneeded "$PLUGINS/$LIBRARY"
# A cross build that picked up a library of this machine's architecture fails at the link; this
# names what was built and what it needs at run time.
machine=$(readelf -h "$PLUGINS/$LIBRARY" | sed -n 's/^ *Machine: *//p')
echo "built $PLUGINS/$LIBRARY ($machine) in $(($(date +%s) - start)) s; it needs:"
readelf -d "$PLUGINS/$LIBRARY" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/  \1/p'
case "$ARCH:$machine" in
  x86_64:*X86-64* | aarch64:AArch64) ;;
  *) echo "error: \`$PLUGINS/$LIBRARY\` is not a library for $ARCH" >&2; exit 1 ;;
esac
