#!/usr/bin/env bash
# Builds every fuzz target with clang + libFuzzer (ASan, UBSan) and runs each for SECONDS
# (default 10; use e.g. 600 for a long run). A crash leaves its input in build/fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
targets=(chunk_codec_fuzz rollup_codec_fuzz senml_fuzz opensense_json_fuzz line_protocol_fuzz mqtt_codec_fuzz mqtt_hook_answer_fuzz secrets_file_fuzz backup_manifest_fuzz report_query_fuzz notify_answer_fuzz alert_rule_fuzz login_input_fuzz)
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DOPENSENSE_FUZZ=ON -DOPENSENSE_BUILD_TESTS=OFF -DOPENSENSE_BUILD_BENCH=OFF >/dev/null
cmake --build build/fuzz --target "${targets[@]}"
mkdir -p build/fuzz/crashes
for t in "${targets[@]}"; do
  corpus=build/fuzz/corpus/$t
  mkdir -p "$corpus"
  echo "fuzz: $t for ${seconds}s"
  build/fuzz/fuzz/$t "$corpus" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/crashes/ -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || true
  if ls build/fuzz/crashes/ 2>/dev/null | grep -q .; then
    echo "fuzz: $t found a crash: build/fuzz/crashes/" >&2
    exit 1
  fi
done
echo "fuzz: no crashes"
