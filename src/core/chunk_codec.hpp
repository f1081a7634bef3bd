// Compressed encoding of one series' readings (a "chunk"): the on-disk form of raw data.
//
// Timestamps are stored as delta-of-deltas, a run of zero delta-of-deltas as one token and its
// length (format 2: a sensor reporting at a fixed interval costs a few bytes of timestamps per
// chunk; format 1, one varint per delta-of-delta, is still read), values as zig-zag varint
// deltas of a decimal-scaled integer when every value of the chunk is an exact decimal with at
// most 9 fractional digits (sensor values are: about one byte a reading), otherwise as raw IEEE
// doubles. Decoding is bounds-checked: a corrupt chunk yields an error, never a crash.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.hpp"

namespace opensense {

struct Sample {
  TimestampMs ts = 0;
  double value = 0;
  bool operator==(const Sample&) const = default;
};

// `samples` must be sorted by strictly increasing ts and hold finite values.
std::string EncodeChunk(std::span<const Sample> samples);
Result<std::vector<Sample>> DecodeChunk(std::string_view data);
// Appends the decoded samples to `out` (no allocation per chunk in hot loops).
Status DecodeChunkInto(std::string_view data, std::vector<Sample>* out);

// Little helpers shared with the write-ahead log encoding.
void PutVarint(std::string* out, std::uint64_t v);
// Any varint; GetVarint below reads one-byte varints (most of a chunk's) inline.
bool GetVarintSlow(std::string_view* in, std::uint64_t* v);
inline bool GetVarint(std::string_view* in, std::uint64_t* v) {
  if (!in->empty() && static_cast<unsigned char>(in->front()) < 0x80) {
    *v = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    return true;
  }
  return GetVarintSlow(in, v);
}
inline std::uint64_t ZigZag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline std::int64_t UnZigZag(std::uint64_t v) {
  return static_cast<std::int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

}  // namespace opensense
