#include "core/rollup.hpp"

#include <algorithm>
#include <cmath>

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

namespace opensense {

double RollupAgg::Sum() const {
  return scale >= 0 ? static_cast<double>(scaled_sum) / Pow10(scale) : double_sum;
}

void RollupAgg::ToDouble() {
  if (scale < 0) return;
  double_sum = Sum();
  scale = -1;
  scaled_sum = 0;
}

bool RollupAgg::RaiseScale(int to) {
  while (scale < to) {
    if (__builtin_mul_overflow(scaled_sum, std::int64_t{10}, &scaled_sum)) return false;
    ++scale;
  }
  return true;
}

void RollupAgg::Add(TimestampMs ts, double v) { Add(ts, v, DecimalScale(v)); }

void RollupAgg::Add(TimestampMs ts, double v, int value_scale) {
  ++count;
  if (v < min) min = v;
  if (v > max) max = v;
  if (ts < first_ts) first_ts = ts;
  if (ts > last_ts) last_ts = ts;
  if (scale >= 0 && value_scale >= 0) {
    int before = scale;
    std::int64_t saved = scaled_sum;
    int target = std::max(scale, value_scale);
    std::int64_t iv = 0;
    if (RaiseScale(target)) {
      double x = RoundToInteger(v * Pow10(target));
      if (std::fabs(x) < 4.0e18) {
        iv = static_cast<std::int64_t>(x);
        if (!__builtin_add_overflow(scaled_sum, iv, &scaled_sum)) return;
      }
    }
    scale = before;  // overflow: fall back to a double sum
    scaled_sum = saved;
  }
  ToDouble();
  double_sum += v;
}

void RollupAgg::Merge(const RollupAgg& o) {
  if (o.count == 0) return;
  count += o.count;
  if (o.min < min) min = o.min;
  if (o.max > max) max = o.max;
  if (o.first_ts < first_ts) first_ts = o.first_ts;
  if (o.last_ts > last_ts) last_ts = o.last_ts;
  if (scale >= 0 && o.scale >= 0) {
    RollupAgg other = o;
    int target = std::max(scale, o.scale);
    int before = scale;
    std::int64_t saved = scaled_sum;
    if (RaiseScale(target) && other.RaiseScale(target) &&
        !__builtin_add_overflow(scaled_sum, other.scaled_sum, &scaled_sum)) {
      return;
    }
    scale = before;
    scaled_sum = saved;
  }
  double other_sum = o.Sum();
  ToDouble();
  double_sum += other_sum;
}

}  // namespace opensense
