// libFuzzer target for the rollup chunk codec: arbitrary bytes decode to an error or to buckets,
// never a crash; a failed decode leaves the caller's vector alone; whatever decodes re-encodes
// to something that decodes to the same buckets.
//
//   scripts/fuzz.sh 600   (builds with clang + libFuzzer and runs each target for 10 minutes)
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/rollup_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using opensense::RollupBucket;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<RollupBucket> out(1);
  auto st = opensense::DecodeRollupChunkInto(input, &out);
  if (!st) {
    if (out.size() != 1) {
      std::fprintf(stderr, "rollup_codec_fuzz: failed decode changed the output\n");
      std::abort();
    }
    return 0;
  }
  std::vector<RollupBucket> decoded(out.begin() + 1, out.end());
  for (std::size_t i = 1; i < decoded.size(); ++i) {
    if (decoded[i].bucket <= decoded[i - 1].bucket) return 0;  // order is the encoder's contract
  }
  std::vector<RollupBucket> again;
  if (!opensense::DecodeRollupChunkInto(opensense::EncodeRollupChunk(decoded), &again) ||
      again.size() != decoded.size()) {
    std::fprintf(stderr, "rollup_codec_fuzz: re-encoded chunk does not decode\n");
    std::abort();
  }
  for (std::size_t i = 0; i < again.size(); ++i) {
    if (again[i].bucket != decoded[i].bucket || again[i].agg.count != decoded[i].agg.count ||
        again[i].agg.first_ts != decoded[i].agg.first_ts ||
        again[i].agg.last_ts != decoded[i].agg.last_ts) {
      std::fprintf(stderr, "rollup_codec_fuzz: round trip changed bucket %zu\n", i);
      std::abort();
    }
  }
  return 0;
}
