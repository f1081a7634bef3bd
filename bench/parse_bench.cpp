// Payload parsing speed (Google Benchmark): records/s for each ingest format, on a million-record
// document (the per-request limit) and on the 1,000-record batches sensors and gateways send.
// Run: build/release/bench/parse_bench   (figures: docs/performance.md)
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <string>

#include "ingest/payload.hpp"

namespace {

using opensense::ingest::ParseOptions;
using opensense::ingest::PayloadFormat;

// `records` readings of the given format; line protocol and JSON carry two metrics per line or
// object, so they hold records / 2 lines or objects.
std::string Document(PayloadFormat format, std::size_t records) {
  std::string out;
  out.reserve(records * 40);
  switch (format) {
    case PayloadFormat::kSenML:
      out += '[';
      for (std::size_t i = 0; i < records; ++i) {
        if (i > 0) out += ',';
        out += fmt::format(R"({{"n":"temperature","t":{},"v":{}.5}})", 1700000000 + i, i % 100);
      }
      out += ']';
      break;
    case PayloadFormat::kOpenSenseJson:
      out += '[';
      for (std::size_t i = 0; i < records / 2; ++i) {
        if (i > 0) out += ',';
        out += fmt::format(R"({{"ts":{},"temperature":3.{},"humidity":5{}.1}})", 1705744800000 + i,
                           i % 10, i % 10);
      }
      out += ']';
      break;
    case PayloadFormat::kLineProtocol:
      for (std::size_t i = 0; i < records / 2; ++i) {
        out += fmt::format("r,device=dev-{} temperature=3.{},humidity=5{}.1 {}\n", i % 500, i % 10,
                           i % 10, (1705744800000 + i) * 1'000'000);
      }
      break;
  }
  return out;
}

void BM_Parse(benchmark::State& state) {
  const auto format = static_cast<PayloadFormat>(state.range(0));
  const auto records = static_cast<std::size_t>(state.range(1));
  const std::string body = Document(format, records);
  ParseOptions options;
  options.gateway = format == PayloadFormat::kLineProtocol;
  options.max_records = records;
  for (auto _ : state) {
    auto result = opensense::ingest::Parse(format, body, options);
    if (!result || result->records.size() != records) {
      state.SkipWithError("the document did not parse whole");
      break;
    }
    benchmark::DoNotOptimize(result->records.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(records));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
  state.SetLabel(std::string(opensense::ingest::PayloadFormatName(format)));
}

BENCHMARK(BM_Parse)
    ->ArgsProduct({{static_cast<int>(PayloadFormat::kSenML), static_cast<int>(PayloadFormat::kOpenSenseJson),
                    static_cast<int>(PayloadFormat::kLineProtocol)},
                   {1'000, 1'000'000}})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
