# exitwise: two commands on a fresh Debian machine (root, no GPU):
#   make run   installs what is missing, builds in release mode, classifies examples/review.txt
#              and a few lines from stdin with the compiled-in default pack
#   make test  the same set-up, then the test suite
#   make dist  the release: a tarball and a Debian package for any x86-64 Linux (dist/);
#              `make dist ARCH=arm64` cross-compiles the same for arm64 Linux
#   make dist-test  tries them in a fresh folder with an empty HOME (as CI does; with ARCH=arm64
#                   under qemu, the arm64 build not in CI: about 15 minutes here)
#   make dist-check ARCH=arm64  checks the cross toolchain in a minute (as CI does)
#   make dist-agreement  the arm64 release's answers against the x86-64 one's (both built)
#   make deploy-test  checks deploy/: the Kubernetes manifests against the API's schemas, and
#                   a single-node Slurm (installed and started here, as root) running the job
#                   array over a folder (as CI does)
#   make fault-test  a full disk, a read-only folder and kill -9 for every writer (root), and
#                   hostile clients of serve (as CI does)
#   make cuda-plugin  the CUDA back end as a library for the release (needs a CUDA toolkit;
#                   ARCH=arm64: cross-compiled for Jetson Orin, JetPack 7.2 and newer)
#   make vulkan-plugin  the Vulkan back end as a library for the release (needs glslc and
#                     the Vulkan headers)
SHELL := /bin/bash
CARGO ?= cargo
EXITWISE := target/release/exitwise
# Debian packages the build needs: CMake for llama.cpp, libclang (and clang's headers) for bindgen.
APT_PACKAGES := cmake clang libclang-dev
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# The architecture built for: this machine's (`uname -m`), or ARCH=arm64 on an x86-64 machine
# (cross-compiled, tried under qemu).
ARCH ?= $(shell uname -m)
# What an arm64 release needs besides the native build: cross compilers, the target's C library
# and qemu to run the built binary (and, for `make dist-test ARCH=arm64`, its child processes:
# qemu-user-binfmt has the kernel run arm64 programs through qemu).
CROSS_PACKAGES := gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user qemu-user-binfmt

.PHONY: run test setup system-deps build models lint bench clean dist dist-check dist-agreement cross-deps dist-test deploy-test fault-test cuda-plugin vulkan-plugin

run: setup
	$(EXITWISE) inspect
	$(EXITWISE) classify --format text examples/review.txt
	printf '%s\n' 'Dull, slow and badly acted; I nearly walked out.' \
	  'A delight from start to finish, with a wonderful cast.' \
	  'The plot is thin, but the lead is great and the ending is moving.' \
	  | $(EXITWISE) classify --format text --lines

test: setup
	EXITWISE_REQUIRE_MODELS=1 $(CARGO) test --release --locked

setup: system-deps build models

system-deps:
	@missing=""; \
	for package in $(APT_PACKAGES); do \
	  dpkg -s "$$package" >/dev/null 2>&1 || missing="$$missing $$package"; \
	done; \
	python3 -m pip --version >/dev/null 2>&1 || missing="$$missing python3-pip"; \
	command -v cc >/dev/null && command -v c++ >/dev/null || missing="$$missing build-essential"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found: install Rust (https://rustup.rs)" >&2; exit 2; }

build: system-deps
	$(CARGO) build --release --locked

# Fetches (or checks) both catalog models; an intact file is not downloaded again.
models: build
	$(EXITWISE) models fetch gemma3-270m smollm2-135m

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings

bench: setup
	$(EXITWISE) bench-engine --tokens 512 --runs 5

# The release artefacts (scripts/release/dist.sh): WITH_MODELS=1 adds the catalog's models.
dist: system-deps cross-deps
	@command -v dpkg-deb >/dev/null || { echo "error: dpkg-deb not found (Debian package dpkg)" >&2; exit 2; }
	ARCH=$(ARCH) scripts/release/dist.sh

# The toolchain of `make dist` checked in a minute, without building the release (as CI does
# for ARCH=arm64, whose full build takes too long for it).
dist-check: system-deps cross-deps
	ARCH=$(ARCH) scripts/release/dist.sh --check-toolchain

# The arm64 release's answers against the x86-64 one's (scripts/release/agreement.sh): both
# built by `make dist` and `make dist ARCH=arm64`, the first 50 IMDB test reviews, arm64 under qemu.
dist-agreement: models
	scripts/release/agreement.sh 50

# For ARCH=arm64 on x86-64: the cross compilers, the target's C library, qemu and the Rust target.
cross-deps:
	@if { [ "$(ARCH)" = arm64 ] || [ "$(ARCH)" = aarch64 ]; } && [ "$$(uname -m)" != aarch64 ]; then \
	  missing=""; \
	  for package in $(CROSS_PACKAGES); do \
	    dpkg -s "$$package" >/dev/null 2>&1 || missing="$$missing $$package"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	  fi; \
	  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || \
	    rustup target add aarch64-unknown-linux-gnu; \
	fi

# What a user on an air-gapped machine does with them (scripts/release/smoke-test.sh).
dist-test: dist models
	@command -v curl >/dev/null || $(SUDO) apt-get install -y -q --no-install-recommends curl
	ARCH=$(ARCH) scripts/release/smoke-test.sh models/gemma3-270m.gguf

# deploy/ for real: the manifests validated offline (kubernetes-validate, from the Python
# package registry, carries the API's schemas) and the Slurm job array run by a real Slurm.
deploy-test: build models
	python3 -m pip --version >/dev/null 2>&1 || $(SUDO) apt-get install -y -q --no-install-recommends python3-pip
	[ -d target/deploy-tools/kubernetes_validate ] || \
	  python3 -m pip install --quiet --target target/deploy-tools kubernetes-validate==1.37.0
	PYTHONPATH=target/deploy-tools python3 -m kubernetes_validate --strict \
	  --kubernetes-version 1.31.0 deploy/kubernetes/*.yaml
	$(SUDO) tests/slurm/run.sh models/gemma3-270m.gguf

# Faults on every writer (tests/faults/run.sh, as root): a full disk and a read-only folder
# (small tmpfs mounts), kill -9 in the middle of quantize and models import; then hostile
# clients of serve (tests/load/hostile.py): 1000 idle connections, slowloris, a burst.
fault-test: build models
	$(SUDO) tests/faults/run.sh models/smollm2-135m.gguf
	tests/load/hostile.py

# ggml's GPU back ends as libraries beside the release's CPU ones (scripts/release/gpu-plugin.sh).
cuda-plugin: cross-deps
	ARCH=$(ARCH) scripts/release/gpu-plugin.sh cuda

vulkan-plugin:
	scripts/release/gpu-plugin.sh vulkan

clean:
	$(CARGO) clean
	rm -rf dist
