// Compressed encoding of a run of rollup buckets of one series and level (a "rollup chunk").
//
// Per bucket: the bucket start as a delta of deltas, the count, first/last offsets within the
// bucket as deltas from the previous bucket's, and min/max/sum as deltas of integers at one
// decimal scale for the whole chunk (about 10 bytes a bucket for a sensor reporting every
// minute, against ~60 for a table row). A bucket holding a single reading stores its offset and
// one value only (~4 bytes: a sensor reporting every 5 minutes has one per 5-minute bucket). Chunks whose values are not short decimals store min/max/sum as raw
// doubles. Decoding is bounds-checked: a corrupt chunk yields an error, never a crash.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/rollup.hpp"

namespace opensense {

struct RollupBucket {
  TimestampMs bucket = 0;
  RollupAgg agg;
  bool operator==(const RollupBucket&) const = default;
};

// `buckets` sorted by strictly increasing bucket start, each with count > 0.
std::string EncodeRollupChunk(std::span<const RollupBucket> buckets);
// Appends the decoded buckets to `out`; on error `out` is left as it was.
Status DecodeRollupChunkInto(std::string_view data, std::vector<RollupBucket>* out);

}  // namespace opensense
