#!/usr/bin/env bash
# The package version in Cargo.toml (the release artefacts' names carry it).
set -euo pipefail
cd "$(dirname "$0")/../.."
sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1
