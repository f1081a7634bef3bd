#include "core/rollup.hpp"

namespace opensense {

Resolution PickResolution(TimestampMs from, TimestampMs to, std::int64_t min_points) {
  TimestampMs span = to - from;
  if (span <= 0) return Resolution::kRaw;
  if (span / kMsPerDay >= min_points) return Resolution::k1d;
  if (span / kBucket1h >= min_points) return Resolution::k1h;
  if (span / kBucket5m >= min_points) return Resolution::k5m;
  return Resolution::kRaw;
}

}  // namespace opensense
