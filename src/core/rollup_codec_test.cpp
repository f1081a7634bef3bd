#include "core/rollup_codec.hpp"

#include <gtest/gtest.h>

#include "core/chunk_codec.hpp"

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

// A fridge sensor reporting every 5 minutes: one reading per 5-minute bucket. Such a bucket is
// stored as its first offset and one value (version 2), a few bytes.
TEST(RollupCodec, SingleReadingBucketsTakeAFewBytes) {
  std::mt19937 rng(7);
  std::vector<RollupBucket> buckets;
  double v = 4.0;
  for (int b = 0; b < 288; ++b) {
    RollupBucket rb;
    rb.bucket = 1700000100000 + b * 300000LL;
    v = std::round((v + (static_cast<int>(rng() % 21) - 10) / 100.0) * 100) / 100;
    rb.agg.Add(rb.bucket + 42'000 + (b % 7 == 0 ? 1000 : 0), v);  // some jitter in the offset
    buckets.push_back(rb);
  }
  buckets[100].agg.Add(buckets[100].bucket + 250'000, 9.75);  // one bucket with two readings
  const std::string data = EncodeRollupChunk(buckets);
  std::vector<RollupBucket> back;
  ASSERT_TRUE(DecodeRollupChunkInto(data, &back));
  ASSERT_EQ(back.size(), buckets.size());
  for (std::size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i], buckets[i]) << i;
    EXPECT_EQ(back[i].agg.Sum(), buckets[i].agg.Sum()) << i;
  }
  EXPECT_LT(data.size(), 288u * 5) << data.size() << " bytes";
  // The same in raw mode (values that are not short decimals): 8 bytes of value, not 24.
  for (auto& b : buckets) {
    RollupAgg a;
    a.Add(b.agg.first_ts, b.agg.min + 1.0 / 3);
    b.agg = a;
  }
  back.clear();
  const std::string raw = EncodeRollupChunk(buckets);
  ASSERT_TRUE(DecodeRollupChunkInto(raw, &back));
  ASSERT_EQ(back.size(), buckets.size());
  for (std::size_t i = 0; i < back.size(); ++i) EXPECT_EQ(back[i].agg, buckets[i].agg) << i;
  EXPECT_LT(raw.size(), 288u * 12) << raw.size() << " bytes";
}

// Chunks written before version 2 (bucket deltas, every field per bucket) still decode.
TEST(RollupCodec, Version1ChunksStillDecode) {
  std::string v1;
  auto zz = [&](std::int64_t x) { PutVarint(&v1, ZigZag(x)); };
  v1.push_back(1);     // version
  PutVarint(&v1, 2);   // buckets
  v1.push_back(0);     // decimal mode
  v1.push_back(1);     // scale: tenths
  // 1) bucket 3,000,000, one reading of 4.0 at +17 ms.
  zz(3'000'000); PutVarint(&v1, 1); zz(17); zz(17); zz(40); zz(40); zz(40);
  // 2) bucket 3,300,000, two readings 3.5 (+17) and 4.5 (+60,017): min 3.5, max 4.5, sum 8.0.
  zz(300'000); PutVarint(&v1, 2); zz(0); zz(60'000); zz(35 - 40); zz(45 - 40); zz(80 - 40);
  std::vector<RollupBucket> back;
  ASSERT_TRUE(DecodeRollupChunkInto(v1, &back));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].bucket, 3'000'000);
  EXPECT_EQ(back[0].agg.count, 1);
  EXPECT_EQ(back[0].agg.first_ts, 3'000'017);
  EXPECT_DOUBLE_EQ(back[0].agg.Mean(), 4.0);
  EXPECT_EQ(back[1].bucket, 3'300'000);
  EXPECT_EQ(back[1].agg.count, 2);
  EXPECT_EQ(back[1].agg.last_ts, 3'360'017);
  EXPECT_DOUBLE_EQ(back[1].agg.min, 3.5);
  EXPECT_DOUBLE_EQ(back[1].agg.max, 4.5);
  EXPECT_DOUBLE_EQ(back[1].agg.Sum(), 8.0);
  // Re-encoded, it is version 2 and decodes to the same buckets.
  const std::string v2 = EncodeRollupChunk(back);
  EXPECT_EQ(v2[0], 2);
  std::vector<RollupBucket> again;
  ASSERT_TRUE(DecodeRollupChunkInto(v2, &again));
  EXPECT_EQ(again, back);
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
