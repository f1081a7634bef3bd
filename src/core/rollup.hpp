// Rollup arithmetic: bucket boundaries and the aggregate kept per (series, bucket).
#pragma once

#include <cstdint>
#include <limits>

#include "core/decimal.hpp"
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
//
// The sum is exact whenever every reading is a short decimal (sensor values are): it is kept as
// an integer number of 10^-scale units, so merging aggregates in any order (incremental
// maintenance with late data, or a rebuild) gives bit-identical results. A reading that is not
// a short decimal turns the bucket's sum into a plain double for good (scale == -1).
struct RollupAgg {
  std::int64_t count = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  TimestampMs first_ts = std::numeric_limits<TimestampMs>::max();
  TimestampMs last_ts = std::numeric_limits<TimestampMs>::min();
  int scale = 0;                // decimal digits of scaled_sum; -1: use double_sum
  std::int64_t scaled_sum = 0;  // sum * 10^scale, exact (when scale >= 0)
  double double_sum = 0;        // the sum when scale == -1

  // Adds one reading; `value_scale` is DecimalScale(v) when the caller knows it.
  void Add(TimestampMs ts, double v);
  void Add(TimestampMs ts, double v, int value_scale);
  void Merge(const RollupAgg& o);
  double Sum() const;
  double Mean() const { return count == 0 ? 0 : Sum() / static_cast<double>(count); }
  SeriesPoint ToPoint(TimestampMs bucket) const { return {bucket, Mean(), min, max, count}; }
  bool operator==(const RollupAgg& o) const {
    return count == o.count && min == o.min && max == o.max && first_ts == o.first_ts &&
           last_ts == o.last_ts && Sum() == o.Sum();
  }

 private:
  bool RaiseScale(int to);
  void ToDouble();
};

// The resolution that `kAuto` picks for [from, to): the coarsest of 1d, 1h, 5m that still
// gives at least `min_points` buckets, else raw.
Resolution PickResolution(TimestampMs from, TimestampMs to, std::int64_t min_points = 300);

}  // namespace opensense
