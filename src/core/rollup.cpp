#include "core/rollup.hpp"

namespace opensense {

Resolution PickResolution(TimestampMs from, TimestampMs to, std::int64_t min_points) {
  if (to <= from) return Resolution::kRaw;
  // `from` and `to` come from a query and may be any int64: the span of [INT64_MIN, INT64_MAX)
  // does not fit an int64, but always fits unsigned arithmetic once to > from.
  const std::uint64_t span = static_cast<std::uint64_t>(to) - static_cast<std::uint64_t>(from);
  // Widths are at least 5 minutes, so the bucket count is far below INT64_MAX.
  auto buckets = [&](TimestampMs width) {
    return static_cast<std::int64_t>(span / static_cast<std::uint64_t>(width));
  };
  if (buckets(kMsPerDay) >= min_points) return Resolution::k1d;
  if (buckets(kBucket1h) >= min_points) return Resolution::k1h;
  if (buckets(kBucket5m) >= min_points) return Resolution::k5m;
  return Resolution::kRaw;
}

}  // namespace opensense
