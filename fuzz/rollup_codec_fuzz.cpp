// libFuzzer target for the rollup chunk codec: arbitrary bytes decode to an error or to buckets,
// never a crash; a failed decode leaves the caller's vector alone; whatever decodes re-encodes
// to something that decodes to the same buckets (starts, counts, timestamps, min, max and sum
// bit for bit) and encodes to the same bytes again. The same bytes also describe buckets (mostly
// regular: one step apart, of one shape) that must encode and decode back exactly, so the
// encoder's runs are exercised on inputs no decoder accepted.
//
//   scripts/fuzz.sh 600   (builds with clang + libFuzzer and runs each target for 10 minutes)
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/rollup_codec.hpp"

namespace {

using opensense::RollupAgg;
using opensense::RollupBucket;

[[noreturn]] void Fail(const char* what, std::size_t index) {
  std::fprintf(stderr, "rollup_codec_fuzz: %s (bucket %zu)\n", what, index);
  std::abort();
}

bool SameDouble(double a, double b) {
  return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b) ||
         (std::isnan(a) && std::isnan(b));
}

void ExpectSame(const std::vector<RollupBucket>& got, const std::vector<RollupBucket>& want,
                const char* what) {
  if (got.size() != want.size()) Fail(what, got.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const RollupAgg &a = got[i].agg, &b = want[i].agg;
    if (got[i].bucket != want[i].bucket || a.count != b.count || a.first_ts != b.first_ts ||
        a.last_ts != b.last_ts || !SameDouble(a.min, b.min) || !SameDouble(a.max, b.max) ||
        !SameDouble(a.Sum(), b.Sum())) {
      Fail(what, i);
    }
  }
}

// Buckets from the bytes, two per bucket. The first byte of a pair below 0x80 keeps the step
// and the shape (a run); 0x80-0xbf moves this bucket's first reading by 1-63 ms (a new shape);
// 0xc0 and above sets the step to 2^(byte & 31) + 1 ms (a broken run). Its low bits also pick
// one or two readings. The second is a small decimal step of the value, or 0xff for a value that
// turns the chunk into raw doubles.
std::vector<RollupBucket> BucketsOf(const std::uint8_t* data, std::size_t size) {
  std::vector<RollupBucket> out;
  std::int64_t step = 300'000, bucket = size > 0 ? (static_cast<std::int64_t>(data[0]) - 128) << 40 : 0;
  std::int64_t offset = 17, cents = 412;
  bool two = false;
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    const std::uint8_t t = data[i], v = data[i + 1];
    if (t >= 0xc0) step = (std::int64_t{1} << (t & 0x1f)) + 1;
    if (t >= 0x80 && t < 0xc0) offset = t & 0x3f;
    if (t >= 0x80) two = (t & 0x40) != 0;
    bucket += step;
    cents += static_cast<std::int8_t>(v) / 8;
    RollupBucket b;
    b.bucket = bucket;
    b.agg.Add(bucket + offset, v == 0xff ? 1.0 / 3 : static_cast<double>(cents) / 100.0);
    if (two && step > offset + 1) b.agg.Add(bucket + step - 1, static_cast<double>(cents - 7) / 10.0);
    out.push_back(b);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<RollupBucket> series = BucketsOf(data, size);
  std::vector<RollupBucket> series_back;
  if (!opensense::DecodeRollupChunkInto(opensense::EncodeRollupChunk(series), &series_back)) {
    Fail("encoded buckets do not decode", 0);
  }
  ExpectSame(series_back, series, "buckets round trip changed a bucket");

  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<RollupBucket> out(1);
  auto st = opensense::DecodeRollupChunkInto(input, &out);
  if (!st) {
    if (out.size() != 1) Fail("failed decode changed the output", 0);
    return 0;
  }
  std::vector<RollupBucket> decoded(out.begin() + 1, out.end());
  const std::string reencoded = opensense::EncodeRollupChunk(decoded);
  std::vector<RollupBucket> again;
  if (!opensense::DecodeRollupChunkInto(reencoded, &again)) Fail("re-encoded chunk does not decode", 0);
  ExpectSame(again, decoded, "round trip changed a bucket");
  if (opensense::EncodeRollupChunk(again) != reencoded) Fail("encoding is not stable", 0);
  return 0;
}
