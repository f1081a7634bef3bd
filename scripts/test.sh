#!/usr/bin/env bash
# Installs what is missing, builds OpenSense (tests and benchmarks included) and runs the whole
# test suite: every unit and integration test through CTest, then each fuzz target for a short,
# bounded run (FUZZ_SECONDS, default 10). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

jobs=$(nproc)
echo "== build (release preset, $jobs jobs)"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"

echo "== fuzz targets (clang, libFuzzer)"
scripts/fuzz.sh "${FUZZ_SECONDS:-10}"

echo "== tests"
ctest --preset release -j "$jobs"
