// Compressed encoding of a run of rollup buckets of one series and level (a "rollup chunk").
//
// Per bucket: the count, the bucket start as a delta of deltas, first/last offsets within the
// bucket as deltas from the previous bucket's, and min/max/sum as deltas of integers at one
// decimal scale for the whole chunk (up to ~10 bytes a bucket for a sensor reporting every
// minute with a jittery clock, against ~60 for a table row). A bucket holding a single reading
// stores its offset and one value only. A run of regular buckets (each one step after the one
// before, with its count and offsets) stores a run length and then their values only (format
// 3): a sensor reporting every 5 minutes costs ~1.4 bytes per 5-minute bucket (one reading
// each) and ~4 per 1-hour bucket. Formats 1 and 2 are still read. Chunks whose values are not short decimals store
// min/max/sum as raw doubles. Decoding is bounds-checked: a corrupt chunk yields an error, never
// a crash. The format's details are in rollup_codec.cpp.
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
