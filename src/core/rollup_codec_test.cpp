#include "core/rollup_codec.hpp"

#include <gtest/gtest.h>

#include "core/chunk_codec.hpp"

#include <cmath>
#include <limits>
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

// `data` decodes to exactly `want`: starts, counts, first and last timestamps, min, max, sum.
::testing::AssertionResult DecodesTo(std::string_view data, const std::vector<RollupBucket>& want) {
  std::vector<RollupBucket> back;
  if (auto st = DecodeRollupChunkInto(data, &back); !st) {
    return ::testing::AssertionFailure() << st.error().ToString();
  }
  if (back.size() != want.size()) return ::testing::AssertionFailure() << "size " << back.size();
  for (std::size_t i = 0; i < back.size(); ++i) {
    const RollupAgg &got = back[i].agg, &w = want[i].agg;
    if (back[i].bucket != want[i].bucket || !(got == w) || got.Sum() != w.Sum() ||
        got.first_ts != w.first_ts || got.last_ts != w.last_ts) {
      return ::testing::AssertionFailure() << "bucket " << i << " differs";
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult RoundTrips(const std::vector<RollupBucket>& buckets) {
  return DecodesTo(EncodeRollupChunk(buckets), buckets);
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
  EXPECT_TRUE(DecodesTo(data, buckets));
  EXPECT_LT(data.size(), 288u * 5) << data.size() << " bytes";
  // The same in raw mode (values that are not short decimals): 8 bytes of value, not 24.
  for (auto& b : buckets) {
    RollupAgg a;
    a.Add(b.agg.first_ts, b.agg.min + 1.0 / 3);
    b.agg = a;
  }
  const std::string raw = EncodeRollupChunk(buckets);
  EXPECT_TRUE(DecodesTo(raw, buckets));
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
  // Re-encoded, it is version 3 and decodes to the same buckets.
  const std::string v3 = EncodeRollupChunk(back);
  EXPECT_EQ(v3[0], 3);
  std::vector<RollupBucket> again;
  ASSERT_TRUE(DecodeRollupChunkInto(v3, &again));
  EXPECT_EQ(again, back);
}

// A single-reading bucket of `v` at `offset` ms into the 5-minute bucket `index` after kB0.
constexpr TimestampMs kB0 = 1700000100000;
RollupBucket Single(int index, TimestampMs offset, double v) {
  RollupBucket b;
  b.bucket = kB0 + index * 300'000LL;
  b.agg.Add(b.bucket + offset, v);
  return b;
}

// Bytes written by the version 2 encoder (commit f334370) before version 3 existed: three
// single-reading 5-minute buckets (4.1, 4.2, 4.15 at +17 ms), a bucket of two readings (3.5 at
// +17 ms, 4.25 at +60,017 ms), a single 4.0 at +17 ms; and a raw-mode chunk.
TEST(RollupCodec, Version2ChunksStillDecode) {
  const std::string v2_decimal(
      "\x02\x05\x00\x02\xc0\xba\xb7\xfe\xf9\x62\x01\x22\xb4\x06\xff\xea\x92\xfe\xf9\x62\x01\x00\x14"
      "\x00\x01\x00\x09\x00\x04\x00\xc0\xa9\x07\x81\x01\x14\xd0\x05\x00\x01\x00\x64",
      42);
  std::vector<RollupBucket> want = {Single(0, 17, 4.1), Single(1, 17, 4.2), Single(2, 17, 4.15)};
  want.push_back(Single(3, 17, 3.5));
  want.back().agg.Add(want.back().bucket + 60'017, 4.25);
  want.push_back(Single(4, 17, 4.0));
  EXPECT_TRUE(DecodesTo(v2_decimal, want));
  EXPECT_TRUE(RoundTrips(want));

  const std::string v2_raw(
      "\x02\x02\x01\x00\x01\x0a\x55\x55\x55\x55\x55\x55\xd5\x3f\xc0\xcf\x24\x04\x00\xbe\x01\x00"
      "\x00\x00\x00\x00\x00\xd0\x3f\x55\x55\x55\x55\x55\x55\xd5\x3f\xaa\xaa\xaa\xaa\xaa\xaa\xe2\x3f",
      45);
  std::vector<RollupBucket> raw(2);
  raw[0].agg.Add(5, 1.0 / 3);
  raw[1].bucket = 300'000;
  raw[1].agg.Add(300'005, 0.25);
  raw[1].agg.Add(300'100, 1.0 / 3);
  EXPECT_TRUE(DecodesTo(v2_raw, raw));
  EXPECT_TRUE(RoundTrips(raw));
}

// The format is on disk: its bytes must not change by accident.
TEST(RollupCodec, GoldenBytesOfVersion3) {
  std::vector<RollupBucket> buckets = {Single(0, 17, 4.1), Single(1, 17, 4.2), Single(2, 17, 4.15),
                                       Single(3, 17, 4.15), Single(4, 17, 4.05), Single(5, 17, 3.5)};
  buckets.back().agg.Add(buckets.back().bucket + 60'017, 4.25);
  const std::string want(
      "\x03\x06\x00\x02"                          // version 3, 6 buckets, decimal, hundredths
      "\x01\xc0\xba\xb7\xfe\xf9\x62\x22\xb4\x06"  // single: start (whole), +17 ms, 410
      "\x01\xc0\xcf\x24\x00\x14"                  // single: delta 300,000, offset +0, +10
      "\x00\x03\x09\x00\x13"                      // a run of 3 regular singles: -5, 0, -10
      "\x04\x00\x00\xc0\xa9\x07"                  // 2 readings: dod 0, first +0, last +60,000
      "\x6d\x28\xe4\x05",                         // min -55, max +20, sum +370
      35);
  EXPECT_EQ(EncodeRollupChunk(buckets), want);
  std::vector<RollupBucket> back;
  ASSERT_TRUE(DecodeRollupChunkInto(want, &back));
  EXPECT_EQ(back, buckets);
}

// A sensor reporting every 5 minutes: a 4-hour chunk of 48 single-reading 5-minute buckets is
// one full bucket and one run of one-byte values; its 1-hour buckets (12 readings each) cost
// their three value deltas.
TEST(RollupCodec, RegularBucketsCostTheirValuesOnly) {
  std::mt19937 rng(11);
  std::vector<RollupBucket> five, hourly;
  double v = 4.0;
  for (int i = 0; i < 48 * 12; ++i) {
    v = std::round((v + (static_cast<int>(rng() % 21) - 10) / 100.0) * 100) / 100;
    if (i < 48) five.push_back(Single(i, 0, v));
    const TimestampMs hour = kB0 - kB0 % kMsPerHour + (i / 12) * kMsPerHour;
    if (i % 12 == 0) hourly.push_back({hour, {}});
    hourly.back().agg.Add(hour + (i % 12) * 300'000, v);
  }
  ASSERT_TRUE(RoundTrips(five));
  ASSERT_TRUE(RoundTrips(hourly));
  // Header 4, first bucket 10, second 6 (its delta), the run's tag and length 2, 46 values.
  EXPECT_LE(EncodeRollupChunk(five).size(), 4u + 10 + 6 + 2 + 46) << "~1 byte a bucket";
  EXPECT_LE(EncodeRollupChunk(hourly).size(), 48u * 5) << "~4 bytes a bucket";
  // Raw mode: a regular single-reading bucket is its 8-byte value.
  for (auto& b : five) {
    RollupAgg a;
    a.Add(b.agg.first_ts, b.agg.min + 1.0 / 3);
    b.agg = a;
  }
  ASSERT_TRUE(RoundTrips(five));
  EXPECT_LE(EncodeRollupChunk(five).size(), 48u * 8 + 20);
}

// Each way a bucket can leave a run (its start, offset, count or kind), at every position, alone
// and in pairs: the run must stop before it and start again after it.
TEST(RollupCodec, RunsBrokenAtEveryPosition) {
  enum Break { kLate, kMissing, kOffset, kTwoReadings, kNotDecimal, kBreaks };
  for (int n : {1, 2, 3, 5, 12}) {
    for (int k = 0; k < n; ++k) {
      for (int br = 0; br < kBreaks; ++br) {
        std::vector<RollupBucket> buckets;
        for (int i = 0; i < n; ++i) {
          const int index = i + (br == kMissing && i >= k ? 1 : 0);
          buckets.push_back(Single(index, 17, 4.0 + i % 3 * 0.25));
        }
        RollupBucket& b = buckets[static_cast<std::size_t>(k)];
        if (br == kLate) b = Single(k, 18, 4.5);
        if (br == kOffset) b = Single(k, 200'000, 4.5);
        if (br == kTwoReadings) b.agg.Add(b.bucket + 100'000, 3.75);
        if (br == kNotDecimal) b = Single(k, 17, 1.0 / 3);  // the whole chunk goes raw
        ASSERT_TRUE(RoundTrips(buckets)) << n << " " << k << " " << br;
      }
    }
  }
  for (int a = 0; a < 12; ++a) {
    for (int b = a + 1; b < 12; ++b) {
      std::vector<RollupBucket> buckets;
      for (int i = 0; i < 12; ++i) buckets.push_back(Single(i, 17, 1.5 + i * 0.5));
      buckets[static_cast<std::size_t>(a)].agg.Add(buckets[static_cast<std::size_t>(a)].bucket + 9, -2);
      buckets[static_cast<std::size_t>(b)] = Single(b, 1234, 7.25);
      ASSERT_TRUE(RoundTrips(buckets)) << a << " " << b;
    }
  }
}

// Multi-reading buckets of the same count and offsets form runs too, and a run of them followed
// by single-reading buckets (or the other way round) keeps every field.
TEST(RollupCodec, RunsOfMultiReadingBucketsAndShapeChanges) {
  std::vector<RollupBucket> buckets;
  for (int i = 0; i < 30; ++i) {
    RollupBucket b = Single(i, 10, 2.0 + i);
    if (i < 10 || i >= 20) b.agg.Add(b.bucket + 250'000, -1.5 * i);
    buckets.push_back(b);
  }
  EXPECT_TRUE(RoundTrips(buckets));
  buckets[25].agg.Add(buckets[25].bucket + 260'000, 0.5);  // count 3 in a run of count 2
  EXPECT_TRUE(RoundTrips(buckets));
}

TEST(RollupCodec, ExtremeAndNegativeBucketStarts) {
  constexpr TimestampMs kMin = std::numeric_limits<TimestampMs>::min();
  constexpr TimestampMs kMax = std::numeric_limits<TimestampMs>::max();
  auto at = [](TimestampMs bucket, TimestampMs offset, double v) {
    RollupBucket b;
    b.bucket = bucket;
    b.agg.Add(bucket + offset, v);
    return b;
  };
  EXPECT_TRUE(RoundTrips({at(-900'000, 1, 1), at(-600'000, 1, 2), at(-300'000, 1, 3), at(0, 1, 4),
                          at(300'000, 1, 5)}));
  EXPECT_TRUE(RoundTrips({at(kMin, 0, 1), at(kMin + kMax / 2, 0, 2), at(kMin + kMax / 2 * 2, 0, 3),
                          at(kMax - 1, 0, 4)}));
  EXPECT_TRUE(RoundTrips({at(kMin, 0, -1e15), at(kMax - 1, 1, 1e15)}));
  EXPECT_TRUE(RoundTrips({at(kMax - 3, 0, 1), at(kMax - 2, 0, 2), at(kMax - 1, 0, 3)}));
  EXPECT_TRUE(RoundTrips({at(7, 0, 0.5)}));  // a single bucket
  EXPECT_TRUE(RoundTrips({}));
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
  std::vector<RollupBucket> regular;
  for (int i = 0; i < 20; ++i) regular.push_back(Single(i, 17, 4 + (i % 5) * 0.1));
  regular[12] = Single(12, 18, 3.5);
  for (const std::string& data : {EncodeRollupChunk(MinutelyBuckets(10, 3)), EncodeRollupChunk(regular)}) {
    std::vector<RollupBucket> out = MinutelyBuckets(1, 4);
    for (std::size_t cut = 0; cut < data.size(); ++cut) {
      EXPECT_FALSE(DecodeRollupChunkInto(std::string_view(data).substr(0, cut), &out)) << cut;
      EXPECT_EQ(out.size(), 1u);
    }
    std::mt19937 rng(5);
    for (int i = 0; i < 2000; ++i) {
      std::string bad = data;
      bad[rng() % bad.size()] = static_cast<char>(rng());
      std::vector<RollupBucket> o = out;
      if (!DecodeRollupChunkInto(bad, &o)) {  // must not crash either way
        EXPECT_EQ(o, out);
      }
    }
    EXPECT_FALSE(DecodeRollupChunkInto(data + "x", &out));
  }
}

TEST(RollupCodec, BadRunsAndTagsAreErrors) {
  // Version 3, 2 buckets, decimal, scale 0; the first bucket: single, start 0, offset 0, value 0.
  const std::string head("\x03\x02\x00\x00\x01\x00\x00\x00", 8);
  std::vector<RollupBucket> out;
  ASSERT_TRUE(DecodeRollupChunkInto(head + std::string("\x01\x02\x00\x02", 4), &out));  // +1 ms
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].bucket, 1);
  EXPECT_EQ(out[1].agg.min, 1);
  out.clear();
  // A run right after the first bucket repeats its step, which is 0: not after the bucket before.
  EXPECT_FALSE(DecodeRollupChunkInto(head + std::string("\x00\x01\x02", 3), &out));
  EXPECT_FALSE(DecodeRollupChunkInto(head + std::string("\x00\x00\x02", 3), &out));  // empty run
  EXPECT_FALSE(DecodeRollupChunkInto(head + std::string("\x00\x02\x02\x02", 4), &out));  // too long
  std::string huge = head + std::string(1, '\0');
  PutVarint(&huge, ~std::uint64_t{0});
  EXPECT_FALSE(DecodeRollupChunkInto(huge + std::string("\x02", 1), &out));
  EXPECT_FALSE(DecodeRollupChunkInto(head + std::string("\x03\x02\x00\x02", 4), &out));  // odd tag 3
  // A run cannot open a chunk: there is no bucket before it to repeat.
  EXPECT_FALSE(DecodeRollupChunkInto(std::string("\x03\x01\x00\x00\x00\x01\x00", 7), &out));
  EXPECT_TRUE(out.empty());
  // A run after two buckets 5 ms apart continues 5 ms apart.
  const std::string three("\x03\x03\x00\x00\x01\x00\x00\x00\x01\x0a\x00\x02\x00\x01\x02", 15);
  ASSERT_TRUE(DecodeRollupChunkInto(three, &out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].bucket, 10);
  EXPECT_EQ(out[2].agg.first_ts, 10);
  EXPECT_EQ(out[2].agg.min, 2);
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
