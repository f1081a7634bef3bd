#!/usr/bin/env bash
# Installs what is missing, builds OpenSense and runs `opensense serve --demo`
# (SQLite in ./data, no other service). Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release -DOPENSENSE_BUILD_TESTS=OFF -DOPENSENSE_BUILD_BENCH=OFF >/dev/null
cmake --build --preset release --target opensense
exec build/release/opensense serve --demo "$@"
