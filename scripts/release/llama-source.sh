#!/usr/bin/env bash
# Prints the folder of the llama.cpp source exitwise is built from: the copy inside the
# llama-cpp-sys-2 crate that Cargo.lock pins (no network: the crate is already downloaded by the
# build).
set -euo pipefail
cd "$(dirname "$0")/../.."
${CARGO:-cargo} metadata --format-version 1 --locked --filter-platform x86_64-unknown-linux-gnu |
  python3 -c 'import json, os, sys
packages = json.load(sys.stdin)["packages"]
manifest = next(package["manifest_path"] for package in packages if package["name"] == "llama-cpp-sys-2")
print(os.path.join(os.path.dirname(manifest), "llama.cpp"))'
