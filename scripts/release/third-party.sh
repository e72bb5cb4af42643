#!/usr/bin/env bash
# Prints THIRD-PARTY.md: the software compiled into exitwise and its licences (llama.cpp and
# every Rust crate of the release build, from Cargo.lock via `cargo metadata`, no network).
# Usage: scripts/release/third-party.sh [RUST-TARGET] (default x86_64-unknown-linux-gnu): a
# crate's dependencies differ by target.
set -euo pipefail
cd "$(dirname "$0")/../.."
${CARGO:-cargo} metadata --format-version 1 --locked --filter-platform "${1:-x86_64-unknown-linux-gnu}" | python3 -c '
import json, sys
metadata = json.load(sys.stdin)
root = metadata["resolve"]["root"]
nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
packages = {package["id"]: package for package in metadata["packages"]}
# Crates the release binary links: normal (not dev or build) dependencies, transitively.
seen, stack = set(), [root]
while stack:
    current = stack.pop()
    for dependency in nodes[current]["deps"]:
        if any(kind["kind"] is None for kind in dependency["dep_kinds"]) and dependency["pkg"] not in seen:
            seen.add(dependency["pkg"])
            stack.append(dependency["pkg"])
print("# Third-party software in exitwise\n")
print("exitwise itself is under the Apache License 2.0 (`LICENSE`).\n")
print("- **llama.cpp / ggml** (compiled in, and the `lib/exitwise` libraries): MIT licence,")
print("  Copyright (c) The ggml authors, https://github.com/ggml-org/llama.cpp\n")
print("Rust crates linked into the binary (name, version, licence as the crate declares it):\n")
print("| crate | version | licence |")
print("|---|---|---|")
for package in sorted((packages[identifier] for identifier in seen), key=lambda package: (package["name"], package["version"])):
    print("| {} | {} | {} |".format(package["name"], package["version"], package.get("license") or "see the crate"))
print("\nModels are not part of this software; each model in the catalog keeps its own licence")
print("(`exitwise models list`).")
'
