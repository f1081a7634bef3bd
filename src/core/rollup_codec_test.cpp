#include "core/rollup_codec.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace opensense {
namespace {

std::vector<RollupBucket> MinutelyBuckets(int n, std::uint32_t seed, bool decimal = true) {
  std::mt19937 rng(seed);
  std::vector<RollupBucket> out;
  double v = 4.0;
  for (int b = 0; b < n; ++b) {
    RollupBucket rb;
    rb.bucket = 1700000100000 + b * 300000LL;
    for (int m = 0; m < 5; ++m) {
      v = std::round((v + (static_cast<int>(rng() % 21) - 10) / 100.0) * 100) / 100;
      rb.agg.Add(rb.bucket + m * 60000 + 17, decimal ? v : v + 1.0 / 3);
    }
    out.push_back(rb);
  }
  return out;
}

TEST(RollupCodec, RoundTripsDecimalBucketsExactlyAndCompactly) {
  auto buckets = MinutelyBuckets(48, 1);
  std::string data = EncodeRollupChunk(buckets);
  std::vector<RollupBucket> back;
  ASSERT_TRUE(DecodeRollupChunkInto(data, &back));
  ASSERT_EQ(back.size(), buckets.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].bucket, buckets[i].bucket);
    EXPECT_EQ(back[i].agg, buckets[i].agg) << i;
    EXPECT_EQ(back[i].agg.Sum(), buckets[i].agg.Sum());
  }
  EXPECT_LT(data.size(), 48u * 12) << "a minutely sensor's 5-minute bucket should take ~10 bytes";
}

TEST(RollupCodec, RoundTripsNonDecimalValuesInRawMode) {
  auto buckets = MinutelyBuckets(20, 2, /*decimal=*/false);
  ASSERT_EQ(buckets[0].agg.scale, -1);
  std::vector<RollupBucket> back;
  ASSERT_TRUE(DecodeRollupChunkInto(EncodeRollupChunk(buckets), &back));
  ASSERT_EQ(back.size(), buckets.size());
  for (std::size_t i = 0; i < back.size(); ++i) EXPECT_EQ(back[i].agg, buckets[i].agg);
}

TEST(RollupCodec, CorruptInputIsAnErrorAndLeavesTheOutputAlone) {
  std::string data = EncodeRollupChunk(MinutelyBuckets(10, 3));
  std::vector<RollupBucket> out = MinutelyBuckets(1, 4);
  for (std::size_t cut = 0; cut < data.size(); ++cut) {
    EXPECT_FALSE(DecodeRollupChunkInto(std::string_view(data).substr(0, cut), &out)) << cut;
    EXPECT_EQ(out.size(), 1u);
  }
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    std::string bad = data;
    bad[rng() % bad.size()] = static_cast<char>(rng());
    std::vector<RollupBucket> o;
    (void)DecodeRollupChunkInto(bad, &o);  // must not crash
  }
  EXPECT_FALSE(DecodeRollupChunkInto(data + "x", &out));
}

TEST(RollupAggExactSum, MergeOrderDoesNotChangeTheSum) {
  std::mt19937 rng(6);
  std::vector<double> values;
  for (int i = 0; i < 1000; ++i) values.push_back((static_cast<int>(rng() % 100000) - 30000) / 100.0);
  RollupAgg forward, backward, pieces;
  for (std::size_t i = 0; i < values.size(); ++i) forward.Add(static_cast<TimestampMs>(i), values[i]);
  for (std::size_t i = values.size(); i-- > 0;) backward.Add(static_cast<TimestampMs>(i), values[i]);
  for (std::size_t start = 0; start < values.size(); start += 37) {
    RollupAgg piece;
    for (std::size_t i = start; i < std::min(values.size(), start + 37); ++i) {
      piece.Add(static_cast<TimestampMs>(i), values[i]);
    }
    pieces.Merge(piece);
  }
  EXPECT_EQ(forward.Sum(), backward.Sum());
  EXPECT_EQ(forward.Sum(), pieces.Sum());
  EXPECT_GE(forward.scale, 0);
}

TEST(RollupAggExactSum, ANonDecimalValueFallsBackToADoubleSum) {
  RollupAgg a;
  a.Add(1, 2.5);
  a.Add(2, 1.0 / 3);
  EXPECT_EQ(a.scale, -1);
  EXPECT_DOUBLE_EQ(a.Sum(), 2.5 + 1.0 / 3);
  RollupAgg b;
  b.Add(3, 1e300);  // too large to scale
  EXPECT_EQ(b.scale, -1);
}

}  // namespace
}  // namespace opensense
