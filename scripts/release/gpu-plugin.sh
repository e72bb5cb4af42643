#!/usr/bin/env bash
# `make cuda-plugin` / `make vulkan-plugin`: ggml's CUDA or Vulkan back end as
# `dist/plugins/libggml-cuda.so` / `libggml-vulkan.so`, built from the same llama.cpp source as
# the release. Copy it next to the CPU libraries of an installed release (`lib/exitwise/`, for
# the Debian package `/usr/lib/exitwise/`): the binary loads it at start, `exitwise inspect`
# lists the GPU, and `--gpu-layers` offloads to it (default: every layer).
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
  ARCHITECTURES=${CUDA_ARCHITECTURES:-75-virtual;80-virtual;86-real;89-real;90-real}
  if [ "${CUDA_FROM_PIP:-0}" = 1 ]; then
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
  fi
  CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
  [ -x "$CUDA_HOME/bin/nvcc" ] || {
    echo "error: no nvcc in \`$CUDA_HOME/bin\`: set CUDA_HOME, or CUDA_FROM_PIP=1 to assemble a toolkit from the Python package registry" >&2
    exit 2
  }
  "$CUDA_HOME/bin/nvcc" --version | tail -n 2
  # GGML_CUDA_NO_VMM: no link against the driver library at build time (libcuda.so is the
  # driver's, not the toolkit's); the plug-in then allocates with cudaMalloc pools.
  FLAGS=(-DGGML_CUDA=ON -DGGML_CUDA_NO_VMM=ON
    -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_HOME"
    -DCMAKE_CUDA_ARCHITECTURES="$ARCHITECTURES")
  WHAT="CUDA ($ARCHITECTURES)"
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

BACKEND=${1:-}
case "$BACKEND" in
  cuda) cuda_flags ;;
  vulkan) vulkan_flags ;;
  *)
    echo "usage: $0 cuda|vulkan" >&2
    exit 2
    ;;
esac
BUILD=$ROOT/target/$BACKEND-plugin
LIBRARY=libggml-$BACKEND.so

# The llama.cpp source the release was built from: the one inside llama-cpp-sys-2.
LLAMA_SOURCE=$(scripts/release/llama-source.sh)

echo "== configuring ggml's $WHAT back end from $LLAMA_SOURCE"
start=$(date +%s)
cmake -S "$LLAMA_SOURCE" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=ON -DGGML_BACKEND_DL=ON -DGGML_NATIVE=OFF \
  "${FLAGS[@]}" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF >"$BUILD.configure.log" 2>&1 ||
  { tail -n 30 "$BUILD.configure.log"; exit 1; }
echo "== compiling (long: every kernel, for CUDA for every architecture)"
cmake --build "$BUILD" --target "ggml-$BACKEND" -j "$(nproc)"
mkdir -p dist/plugins
cp -L "$(find "$BUILD" -name "$LIBRARY" | head -n 1)" "dist/plugins/$LIBRARY"
strip --strip-unneeded "dist/plugins/$LIBRARY"
echo "built dist/plugins/$LIBRARY in $(($(date +%s) - start)) s"
