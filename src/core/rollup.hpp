// Rollup arithmetic: bucket boundaries and the aggregate kept per (series, bucket).
#pragma once

#include <cstdint>
#include <limits>

#include "core/types.hpp"

namespace opensense {

inline constexpr TimestampMs kBucket5m = 5 * kMsPerMinute;
inline constexpr TimestampMs kBucket1h = kMsPerHour;

constexpr TimestampMs FloorTo(TimestampMs ts, TimestampMs width) {
  TimestampMs q = ts / width;
  if (ts % width != 0 && ts < 0) --q;
  return q * width;
}

// count, sum, min, max, first and last timestamp of the readings in one bucket.
// Merging is commutative and associative except for the rounding of `sum`.
struct RollupAgg {
  std::int64_t count = 0;
  double sum = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  TimestampMs first_ts = std::numeric_limits<TimestampMs>::max();
  TimestampMs last_ts = std::numeric_limits<TimestampMs>::min();

  void Add(TimestampMs ts, double v) {
    ++count;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
    if (ts < first_ts) first_ts = ts;
    if (ts > last_ts) last_ts = ts;
  }
  void Merge(const RollupAgg& o) {
    if (o.count == 0) return;
    count += o.count;
    sum += o.sum;
    if (o.min < min) min = o.min;
    if (o.max > max) max = o.max;
    if (o.first_ts < first_ts) first_ts = o.first_ts;
    if (o.last_ts > last_ts) last_ts = o.last_ts;
  }
  double Mean() const { return count == 0 ? 0 : sum / static_cast<double>(count); }
  SeriesPoint ToPoint(TimestampMs bucket) const { return {bucket, Mean(), min, max, count}; }
};

// The resolution that `kAuto` picks for [from, to): the coarsest of 1d, 1h, 5m that still
// gives at least `min_points` buckets, else raw.
Resolution PickResolution(TimestampMs from, TimestampMs to, std::int64_t min_points = 300);

}  // namespace opensense
