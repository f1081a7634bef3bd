#include "core/rollup.hpp"
#include "core/decimal.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace opensense {
namespace {

constexpr TimestampMs kMin = std::numeric_limits<TimestampMs>::min();
constexpr TimestampMs kMax = std::numeric_limits<TimestampMs>::max();

// ---------------------------------------------------------------------------------------------
// FloorTo

static_assert(FloorTo(0, kBucket5m) == 0);
static_assert(FloorTo(-1, kBucket5m) == -kBucket5m);

TEST(FloorTo, BucketWidths) {
  EXPECT_EQ(kBucket5m, 300'000);
  EXPECT_EQ(kBucket1h, 3'600'000);
}

TEST(FloorTo, PositiveValues) {
  EXPECT_EQ(FloorTo(1, kBucket5m), 0);
  EXPECT_EQ(FloorTo(299'999, kBucket5m), 0);
  EXPECT_EQ(FloorTo(300'001, kBucket5m), 300'000);
  EXPECT_EQ(FloorTo(1705744987654, kBucket5m), 1705744800000);  // 10:03:07.654 -> 10:00
  EXPECT_EQ(FloorTo(1705744987654, kBucket1h), 1705744800000);
  EXPECT_EQ(FloorTo(1705746599999, kBucket1h), 1705744800000);  // 10:29:59.999 -> 10:00
  EXPECT_EQ(FloorTo(1705748399999, kBucket5m), 1705748100000);  // 10:59:59.999 -> 10:55
}

TEST(FloorTo, ExactBoundariesAreTheirOwnBucket) {
  EXPECT_EQ(FloorTo(0, kBucket1h), 0);
  EXPECT_EQ(FloorTo(300'000, kBucket5m), 300'000);
  EXPECT_EQ(FloorTo(1705744800000, kBucket1h), 1705744800000);
  EXPECT_EQ(FloorTo(-300'000, kBucket5m), -300'000);
  EXPECT_EQ(FloorTo(-kBucket1h, kBucket1h), -kBucket1h);
  EXPECT_EQ(FloorTo(-7 * kBucket1h, kBucket1h), -7 * kBucket1h);
}

TEST(FloorTo, NegativeValuesRoundTowardMinusInfinity) {
  EXPECT_EQ(FloorTo(-1, kBucket5m), -300'000);
  EXPECT_EQ(FloorTo(-299'999, kBucket5m), -300'000);
  EXPECT_EQ(FloorTo(-300'001, kBucket5m), -600'000);
  EXPECT_EQ(FloorTo(-1, kBucket1h), -kBucket1h);
  EXPECT_EQ(FloorTo(-kBucket1h - 1, kBucket1h), -2 * kBucket1h);
}

TEST(FloorTo, ResultIsTheLargestMultipleNotAboveTheInput) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<TimestampMs> dist(-4'000'000'000'000, 4'000'000'000'000);
  for (int i = 0; i < 10'000; ++i) {
    TimestampMs ts = dist(rng);
    for (TimestampMs width : {kBucket5m, kBucket1h, kMsPerDay, TimestampMs{7}}) {
      TimestampMs f = FloorTo(ts, width);
      ASSERT_LE(f, ts) << ts << " " << width;
      ASSERT_GT(f + width, ts) << ts << " " << width;
      ASSERT_EQ(f % width, 0) << ts << " " << width;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RollupAgg

TEST(RollupAgg, EmptyAggregate) {
  RollupAgg agg;
  EXPECT_EQ(agg.count, 0);
  EXPECT_EQ(agg.Mean(), 0);
}

TEST(RollupAgg, AddOne) {
  RollupAgg agg;
  agg.Add(1000, 3.5);
  EXPECT_EQ(agg.count, 1);
  EXPECT_EQ(agg.Sum(), 3.5);
  EXPECT_EQ(agg.min, 3.5);
  EXPECT_EQ(agg.max, 3.5);
  EXPECT_EQ(agg.first_ts, 1000);
  EXPECT_EQ(agg.last_ts, 1000);
  EXPECT_EQ(agg.Mean(), 3.5);
}

TEST(RollupAgg, MinMaxWithNegativeValues) {
  RollupAgg agg;
  agg.Add(1, -5);
  agg.Add(2, -20);
  agg.Add(3, -1);
  EXPECT_EQ(agg.min, -20);
  EXPECT_EQ(agg.max, -1);  // the initial max (-inf) must not win over negatives
  EXPECT_EQ(agg.Sum(), -26);
  EXPECT_DOUBLE_EQ(agg.Mean(), -26.0 / 3);
}

TEST(RollupAgg, FirstAndLastTimestampRegardlessOfArrivalOrder) {
  RollupAgg agg;
  agg.Add(5000, 1);
  agg.Add(1000, 2);  // late reading
  agg.Add(9000, 3);
  agg.Add(3000, 4);
  EXPECT_EQ(agg.first_ts, 1000);
  EXPECT_EQ(agg.last_ts, 9000);
}

TEST(RollupAgg, NegativeTimestamps) {
  RollupAgg agg;
  agg.Add(-5000, 1);
  agg.Add(-9000, 2);
  EXPECT_EQ(agg.first_ts, -9000);
  EXPECT_EQ(agg.last_ts, -5000);
}

TEST(RollupAgg, MergeEmptyIsNoOp) {
  RollupAgg agg;
  agg.Add(1000, -2);
  agg.Add(2000, 7);
  RollupAgg before = agg;
  agg.Merge(RollupAgg{});
  EXPECT_EQ(agg.count, before.count);
  EXPECT_EQ(agg.Sum(), before.Sum());
  EXPECT_EQ(agg.min, before.min);
  EXPECT_EQ(agg.max, before.max);
  EXPECT_EQ(agg.first_ts, before.first_ts);
  EXPECT_EQ(agg.last_ts, before.last_ts);
}

TEST(RollupAgg, MergeIntoEmptyCopies) {
  RollupAgg src;
  src.Add(1000, -2);
  src.Add(2000, 7);
  RollupAgg dst;
  dst.Merge(src);
  EXPECT_EQ(dst.count, 2);
  EXPECT_EQ(dst.Sum(), 5);
  EXPECT_EQ(dst.min, -2);
  EXPECT_EQ(dst.max, 7);
  EXPECT_EQ(dst.first_ts, 1000);
  EXPECT_EQ(dst.last_ts, 2000);
}

TEST(RollupAgg, MergeEqualsAddingAll) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> value(-5000, 5000);  // integers: sums are exact
  std::uniform_int_distribution<TimestampMs> ts(-1'000'000, 1'000'000);
  for (int trial = 0; trial < 50; ++trial) {
    RollupAgg all, parts[3];
    for (int i = 0; i < 100; ++i) {
      TimestampMs t = ts(rng);
      double v = value(rng) / 4.0;
      all.Add(t, v);
      parts[i % 3 == 0 ? 0 : (i % 7 == 0 ? 1 : 2)].Add(t, v);
    }
    RollupAgg merged;
    merged.Merge(parts[2]);
    merged.Merge(RollupAgg{});
    merged.Merge(parts[0]);
    merged.Merge(parts[1]);
    EXPECT_EQ(merged.count, all.count);
    EXPECT_EQ(merged.Sum(), all.Sum());
    EXPECT_EQ(merged.min, all.min);
    EXPECT_EQ(merged.max, all.max);
    EXPECT_EQ(merged.first_ts, all.first_ts);
    EXPECT_EQ(merged.last_ts, all.last_ts);
  }
}

TEST(RollupAgg, ToPoint) {
  RollupAgg agg;
  agg.Add(1, 2);
  agg.Add(2, 4);
  agg.Add(3, 9);
  SeriesPoint p = agg.ToPoint(kBucket5m);
  EXPECT_EQ(p.t, kBucket5m);
  EXPECT_EQ(p.v, 5);
  EXPECT_EQ(p.min, 2);
  EXPECT_EQ(p.max, 9);
  EXPECT_EQ(p.count, 3);
}

// ---------------------------------------------------------------------------------------------
// PickResolution

TEST(PickResolution, Thresholds) {
  const TimestampMs from = 1705744800000;
  EXPECT_EQ(PickResolution(from, from + 365 * kMsPerDay), Resolution::k1d);
  EXPECT_EQ(PickResolution(from, from + 30 * kMsPerDay), Resolution::k1h);
  EXPECT_EQ(PickResolution(from, from + 2 * kMsPerDay), Resolution::k5m);
  EXPECT_EQ(PickResolution(from, from + kMsPerHour), Resolution::kRaw);
}

TEST(PickResolution, EmptyOrNegativeRangeIsRaw) {
  EXPECT_EQ(PickResolution(1000, 1000), Resolution::kRaw);
  EXPECT_EQ(PickResolution(1000, 999), Resolution::kRaw);
  EXPECT_EQ(PickResolution(365 * kMsPerDay, 0), Resolution::kRaw);
  EXPECT_EQ(PickResolution(kMax, kMin), Resolution::kRaw);
}

TEST(PickResolution, ExactlyMinPointsBucketsChoosesTheCoarserLevel) {
  EXPECT_EQ(PickResolution(0, 300 * kMsPerDay), Resolution::k1d);
  EXPECT_EQ(PickResolution(0, 300 * kMsPerDay - 1), Resolution::k1h);
  EXPECT_EQ(PickResolution(0, 300 * kMsPerHour), Resolution::k1h);
  EXPECT_EQ(PickResolution(0, 300 * kMsPerHour - 1), Resolution::k5m);
  EXPECT_EQ(PickResolution(0, 300 * kBucket5m), Resolution::k5m);
  EXPECT_EQ(PickResolution(0, 300 * kBucket5m - 1), Resolution::kRaw);
}

TEST(PickResolution, CustomMinPoints) {
  EXPECT_EQ(PickResolution(0, 30 * kMsPerDay, 30), Resolution::k1d);
  EXPECT_EQ(PickResolution(0, kMsPerDay, 24), Resolution::k1h);
  EXPECT_EQ(PickResolution(0, kMsPerDay, 1000), Resolution::kRaw);
}

TEST(PickResolution, NegativeTimestamps) {
  EXPECT_EQ(PickResolution(-365 * kMsPerDay, 0), Resolution::k1d);
  EXPECT_EQ(PickResolution(-2 * kMsPerDay, -kMsPerHour), Resolution::k5m);
}

TEST(PickResolution, WholeTimeLineDoesNotOverflow) {
  // `from`/`to` come straight from a query string; the span of the widest range exceeds int64.
  EXPECT_EQ(PickResolution(kMin, kMax), Resolution::k1d);
  EXPECT_EQ(PickResolution(kMin, 0), Resolution::k1d);
  EXPECT_EQ(PickResolution(-1, kMax), Resolution::k1d);
  EXPECT_EQ(PickResolution(kMin, kMin + kMsPerHour), Resolution::kRaw);
}

}  // namespace
}  // namespace opensense

namespace opensense {
namespace {

// The libm-free rounding the decimal scale checks use agrees with std::nearbyint (default
// rounding mode) on every kind of double: halves, large, tiny, negative, zeros, NaN, infinities.
TEST(RoundToInteger, AgreesWithNearbyint) {
  std::mt19937_64 rng(11);
  std::vector<double> values = {0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, 4503599627370495.5,
                                4503599627370496.0, 9007199254740993.0, -4503599627370495.5, 1e300, -1e-300,
                                std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                                std::numeric_limits<double>::denorm_min()};
  for (int i = 0; i < 200000; ++i) {
    std::uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    values.push_back(v);
    values.push_back(static_cast<double>(static_cast<std::int64_t>(bits % 2000001) - 1000000) / 100 * 37.5);
  }
  for (double v : values) {
    const double want = std::nearbyint(v);
    const double got = RoundToInteger(v);
    if (std::isnan(v)) {
      ASSERT_TRUE(std::isnan(got));
      continue;
    }
    ASSERT_EQ(std::memcmp(&want, &got, sizeof want), 0) << v;
  }
}

}  // namespace
}  // namespace opensense
