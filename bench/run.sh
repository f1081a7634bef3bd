#!/usr/bin/env bash
# Builds the benchmarks (release preset) and runs the ingest, query and HTTP load drivers, writing
# the results as markdown to stdout (build logs and progress go to stderr).
#
#   bench/run.sh                    # full run: ingest x3 (FULL, NORMAL), query on a fresh 28.5M DB
#   QUICK=1 bench/run.sh            # case (b) of the ingest bench loads 200k rows, not 2M
#   QUERY_DB=/tmp/q.db bench/run.sh # build the query DB there once and reuse it on later runs
#   HTTP=only bench/run.sh          # only the HTTP driver (HTTP=0 skips it)
#
# Environment: BUILD_DIR (default: the `release` preset's build/release; any other directory is
# configured with CMAKE_BUILD_TYPE=Release), BENCH_TMP (where temporary databases go, default
# /tmp), INGEST_ARGS (default "--runs 3"), QUERY_ARGS (extra query_bench options), HTTP_ARGS
# (extra http_bench options, e.g. "--no-rate-flag"), QUICK, QUERY_DB, HTTP (1 default, 0, only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BENCH_TMP="${BENCH_TMP:-/tmp}"
INGEST_ARGS="${INGEST_ARGS:---runs 3}"
QUERY_ARGS="${QUERY_ARGS:-}"
HTTP_ARGS="${HTTP_ARGS:-}"
HTTP="${HTTP:-1}"

if [[ -z "${BUILD_DIR:-}" ]]; then
  BUILD_DIR="$ROOT/build/release"
  BUILD_DESC="preset release (RelWithDebInfo)"
  cmake --preset release -DOPENSENSE_BUILD_BENCH=ON >&2
  cmake --build --preset release --target ingest_bench query_bench http_bench opensense >&2
else
  BUILD_DESC="$BUILD_DIR (Release)"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOPENSENSE_BUILD_TESTS=OFF \
    -DOPENSENSE_BUILD_BENCH=ON >&2
  cmake --build "$BUILD_DIR" --target ingest_bench query_bench http_bench opensense >&2
fi
INGEST="$BUILD_DIR/bench/ingest_bench"
QUERY="$BUILD_DIR/bench/query_bench"
HTTPB="$BUILD_DIR/bench/http_bench"

# HTTP: the real server (`opensense serve` on 127.0.0.1:0, temp data dir) loaded by 16 keep-alive
# clients; the in-process writer is measured in the same run for the ratio.
http_cmd=("$HTTPB" --binary "$BUILD_DIR/opensense" --dir "$BENCH_TMP")
# shellcheck disable=SC2206
http_cmd+=($HTTP_ARGS)

ingest_cmd=("$INGEST" --dir "$BENCH_TMP")
# shellcheck disable=SC2206
ingest_cmd+=($INGEST_ARGS)
[[ -n "${QUICK:-}" ]] && ingest_cmd+=(--quick)

query_cmds=()
if [[ -n "${QUERY_DB:-}" ]]; then
  if [[ ! -e "$QUERY_DB" ]]; then
    query_cmds+=("$QUERY --build-only $QUERY_DB $QUERY_ARGS")
  fi
  query_cmds+=("$QUERY --reuse $QUERY_DB $QUERY_ARGS")
else
  query_cmds+=("$QUERY --dir $BENCH_TMP $QUERY_ARGS")
fi

echo "# OpenSense benchmarks"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
echo "- machine: $(nproc) CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- build: $BUILD_DESC; temp databases under $BENCH_TMP (deleted afterwards)"
echo "- commands:"
if [[ "$HTTP" != only ]]; then
  echo "  - \`${ingest_cmd[*]}\`"
  for c in "${query_cmds[@]}"; do echo "  - \`$c\`"; done
fi
if [[ "$HTTP" != 0 ]]; then echo "  - \`${http_cmd[*]}\`"; fi
echo
if [[ "$HTTP" != only ]]; then
  "${ingest_cmd[@]}"
  echo
  for c in "${query_cmds[@]}"; do
    # shellcheck disable=SC2086
    $c
    echo
  done
fi
if [[ "$HTTP" != 0 ]]; then
  "${http_cmd[@]}"
  echo
fi
