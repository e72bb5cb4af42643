# exitwise: two commands on a fresh Debian machine (root, no GPU):
#   make run   installs what is missing, builds in release mode, classifies examples/review.txt
#              and a few lines from stdin with the compiled-in default pack
#   make test  the same set-up, then the test suite
SHELL := /bin/bash
CARGO ?= cargo
EXITWISE := target/release/exitwise
# Debian packages the build needs: CMake for llama.cpp, libclang (and clang's headers) for bindgen.
APT_PACKAGES := cmake clang libclang-dev
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test setup system-deps build models lint bench clean

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

clean:
	$(CARGO) clean
