// On-disk codec speed and size (Google Benchmark): EncodeChunk / DecodeChunkInto (raw readings:
// the writer's compaction encodes, every raw query decodes) and EncodeRollupChunk /
// DecodeRollupChunkInto (every rollup merge decodes and encodes, every chart decodes), on the
// shapes the store holds: chunks of 512 readings, rollup chunks of one period (48 buckets).
// Counters: items/s (readings or buckets) and B/item (encoded size).
// Run: build/release/bench/codec_bench   (figures: docs/performance.md)
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/chunk_codec.hpp"
#include "core/rollup_codec.hpp"

namespace {

using opensense::RollupBucket;
using opensense::Sample;
using opensense::TimestampMs;

constexpr TimestampMs kT0 = 1705708800000;  // 2024-01-20T00:00:00Z

enum Shape : int {
  kEvery5Min = 0,   // a gateway's clock: exactly every 5 minutes
  kEvery1MinJitter,  // a sensor's own clock: 60 s +- a few ms
  kRawDoubles,       // values that are not short decimals
};

// A sensor-like random walk in hundredths (steps of at most 0.10), as the benchmarks send.
std::vector<Sample> Series(Shape shape, std::size_t n) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> step(-10, 10), jitter(-20, 20);
  std::vector<Sample> out;
  std::int64_t cents = 412;
  TimestampMs ts = kT0;
  for (std::size_t i = 0; i < n; ++i) {
    double v = static_cast<double>(cents) / 100.0;
    out.push_back({ts, shape == kRawDoubles ? v + 1.0 / 3 : v});
    cents += step(rng);
    ts += shape == kEvery1MinJitter ? 60'000 + jitter(rng) : 300'000;
  }
  return out;
}

// `per_bucket` readings of Series(kEvery5Min) per bucket of `width` ms: 1 per 5-minute bucket,
// 12 per 1-hour bucket.
std::vector<RollupBucket> Buckets(TimestampMs width, std::size_t buckets) {
  const std::size_t per_bucket = static_cast<std::size_t>(width / 300'000);
  std::vector<Sample> s = Series(kEvery5Min, buckets * per_bucket);
  std::vector<RollupBucket> out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    TimestampMs start = s[i].ts - (s[i].ts - kT0) % width;
    if (out.empty() || out.back().bucket != start) out.push_back({start, {}});
    out.back().agg.Add(s[i].ts + 17'000, s[i].value);
  }
  return out;
}

// Encodes `items` (readings or buckets) over and over.
template <typename T>
void Encode(benchmark::State& state, const std::vector<T>& items,
            std::string (*encode)(std::span<const T>)) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string data = encode(items);
    bytes = data.size();
    benchmark::DoNotOptimize(data);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * items.size()));
  state.counters["B/item"] = static_cast<double>(bytes) / static_cast<double>(items.size());
}

// Decodes the encoding of `items` over and over, into a vector of the right capacity.
template <typename T>
void Decode(benchmark::State& state, const std::vector<T>& items,
            std::string (*encode)(std::span<const T>),
            opensense::Status (*decode)(std::string_view, std::vector<T>*)) {
  const std::string data = encode(items);
  std::vector<T> out;
  out.reserve(items.size());
  for (auto _ : state) {
    out.clear();
    if (!decode(data, &out)) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * items.size()));
  state.counters["B/item"] = static_cast<double>(data.size()) / static_cast<double>(items.size());
}

void BM_EncodeChunk(benchmark::State& state) {
  Encode(state, Series(static_cast<Shape>(state.range(0)), 512), &opensense::EncodeChunk);
}
void BM_DecodeChunk(benchmark::State& state) {
  Decode(state, Series(static_cast<Shape>(state.range(0)), 512), &opensense::EncodeChunk,
         &opensense::DecodeChunkInto);
}
void BM_EncodeRollupChunk(benchmark::State& state) {
  Encode(state, Buckets(state.range(0) * 60'000, 48), &opensense::EncodeRollupChunk);
}
void BM_DecodeRollupChunk(benchmark::State& state) {
  Decode(state, Buckets(state.range(0) * 60'000, 48), &opensense::EncodeRollupChunk,
         &opensense::DecodeRollupChunkInto);
}

// Argument: the Shape (0: every 5 min, 1: every minute with jitter, 2: raw doubles).
BENCHMARK(BM_EncodeChunk)->Arg(kEvery5Min)->Arg(kEvery1MinJitter)->Arg(kRawDoubles);
BENCHMARK(BM_DecodeChunk)->Arg(kEvery5Min)->Arg(kEvery1MinJitter)->Arg(kRawDoubles);
// Argument: the bucket width in minutes (5: single-reading buckets, 60: 12 readings each).
BENCHMARK(BM_EncodeRollupChunk)->Arg(5)->Arg(60);
BENCHMARK(BM_DecodeRollupChunk)->Arg(5)->Arg(60);

}  // namespace

BENCHMARK_MAIN();
