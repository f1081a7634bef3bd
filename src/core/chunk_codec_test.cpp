#include "core/chunk_codec.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

namespace opensense {
namespace {

constexpr TimestampMs kT0 = 1705744800000;  // 2024-01-20T10:00:00Z
constexpr std::int64_t kI64Min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

std::uint64_t Bits(double v) { return std::bit_cast<std::uint64_t>(v); }

// Exact comparison: timestamps equal and values bit for bit (NaN payloads included), except that
// -0.0 may come back as +0.0 (the codec's documented normalisation, see NegativeZero below).
bool SameValue(double got, double want) {
  if (want == 0 && got == 0) return !std::signbit(got) || std::signbit(want);
  return Bits(got) == Bits(want);
}

::testing::AssertionResult SameSamples(const std::vector<Sample>& got,
                                       const std::vector<Sample>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  }
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i].ts != want[i].ts || !SameValue(got[i].value, want[i].value)) {
      return ::testing::AssertionFailure()
             << "sample " << i << ": got (" << got[i].ts << ", " << got[i].value << " bits 0x"
             << std::hex << Bits(got[i].value) << std::dec << "), want (" << want[i].ts << ", "
             << want[i].value << " bits 0x" << std::hex << Bits(want[i].value) << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult RoundTrips(const std::vector<Sample>& samples) {
  std::string chunk = EncodeChunk(samples);
  auto decoded = DecodeChunk(chunk);
  if (!decoded) return ::testing::AssertionFailure() << decoded.error().ToString();
  return SameSamples(*decoded, samples);
}

std::vector<Sample> Regular(std::size_t n, TimestampMs start, TimestampMs step,
                            double (*value)(std::size_t)) {
  std::vector<Sample> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back({start + static_cast<TimestampMs>(i) * step, value(i)});
  }
  return out;
}

// A sensor-like series: values are decimals with two fractional digits, as parsed from text.
std::vector<Sample> TwoDecimalRandomWalk(std::size_t n, std::uint64_t seed, TimestampMs step) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> hundredths(-10, 10);  // steps of -0.10 .. +0.10
  std::int64_t centi = 2137;                               // 21.37
  std::vector<Sample> out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back({kT0 + static_cast<TimestampMs>(i) * step, static_cast<double>(centi) / 100.0});
    centi += hundredths(rng);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(ChunkCodec, Empty) {
  std::string chunk = EncodeChunk({});
  EXPECT_FALSE(chunk.empty());
  auto decoded = DecodeChunk(chunk);
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_TRUE(decoded->empty());
}

TEST(ChunkCodec, OneSample) {
  EXPECT_TRUE(RoundTrips({{kT0, 3.9}}));
  EXPECT_TRUE(RoundTrips({{0, 0}}));
  EXPECT_TRUE(RoundTrips({{-1, -1}}));
  EXPECT_TRUE(RoundTrips({{kI64Max, 1.0 / 3}}));
  EXPECT_TRUE(RoundTrips({{kI64Min, -1e-300}}));
}

TEST(ChunkCodec, RegularSixtySecondSpacing) {
  EXPECT_TRUE(RoundTrips(Regular(1440, kT0, 60'000, [](std::size_t i) {
    return static_cast<double>(static_cast<int>(i % 50)) / 10.0;
  })));
}

TEST(ChunkCodec, IrregularSpacing) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<TimestampMs> gap(1, 3'600'000);
  std::vector<Sample> samples;
  TimestampMs ts = kT0;
  for (int i = 0; i < 2000; ++i) {
    ts += gap(rng);
    samples.push_back({ts, static_cast<double>(i % 97) / 4.0});
  }
  EXPECT_TRUE(RoundTrips(samples));
}

TEST(ChunkCodec, ConsecutiveMillisecondsAndDuplicateGapsChanging) {
  EXPECT_TRUE(RoundTrips({{0, 1}, {1, 2}, {2, 3}, {1000, 4}, {1001, 5}, {1'000'000, 6}}));
}

TEST(ChunkCodec, HugeTimestampJumps) {
  EXPECT_TRUE(RoundTrips({{kI64Min, 1}, {-1, 2}, {0, 3}, {1, 4}, {kI64Max, 5}}));
  EXPECT_TRUE(RoundTrips({{kI64Min, 1}, {kI64Max, 2}}));
  EXPECT_TRUE(RoundTrips({{kI64Min, 1}, {kI64Min + 1, 2}, {kI64Max - 1, 3}, {kI64Max, 4}}));
  EXPECT_TRUE(RoundTrips({{0, 1}, {kI64Max / 2, 2}, {kI64Max, 3}}));
}

TEST(ChunkCodec, NegativeTimestamps) {
  EXPECT_TRUE(RoundTrips(Regular(500, -86'400'000'000, 60'000,
                                 [](std::size_t i) { return -static_cast<double>(i) - 0.5; })));
  EXPECT_TRUE(RoundTrips({{-2208988800000, 1.5}, {-14182940000, 2.5}, {-1, 3.5}}));
}

TEST(ChunkCodec, TwoDecimalRandomWalk) {
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    EXPECT_TRUE(RoundTrips(TwoDecimalRandomWalk(1000, seed, 60'000))) << seed;
  }
}

TEST(ChunkCodec, Integers) {
  EXPECT_TRUE(RoundTrips(Regular(300, kT0, 1000, [](std::size_t i) {
    return static_cast<double>(static_cast<std::int64_t>(i * i) - 40000);
  })));
  EXPECT_TRUE(RoundTrips({{1, 0}, {2, 1}, {3, -1}, {4, 1e15}, {5, -1e15}}));
}

TEST(ChunkCodec, DecimalsUpToNineDigits) {
  EXPECT_TRUE(RoundTrips({{1, 0.1}, {2, 0.2}, {3, 0.3}, {4, 1e-9}, {5, 123.456789012}}));
  EXPECT_TRUE(RoundTrips({{1, 0.000000001}, {2, 0.999999999}, {3, -0.123456789}}));
}

TEST(ChunkCodec, ValuesNeedingRawMode) {
  EXPECT_TRUE(RoundTrips({{1, 1.0 / 3}, {2, 2.0 / 3}, {3, std::numbers::pi}}));
  EXPECT_TRUE(RoundTrips({{1, 1e300}, {2, -1e300}, {3, std::numeric_limits<double>::max()}}));
  EXPECT_TRUE(RoundTrips({{1, std::numeric_limits<double>::denorm_min()},
                          {2, -std::numeric_limits<double>::denorm_min()},
                          {3, std::numeric_limits<double>::min() / 3},
                          {4, std::numeric_limits<double>::min()}}));
  EXPECT_TRUE(RoundTrips({{1, 1e-10}, {2, 1.25e-12}}));  // finer than 9 decimals
}

TEST(ChunkCodec, MixedDecimalsAndRawValues) {
  EXPECT_TRUE(RoundTrips({{1, 21.5}, {2, 1.0 / 3}, {3, 22.25}, {4, 0}, {5, 1e300}, {6, 3}}));
  EXPECT_TRUE(RoundTrips({{1, 0.1}, {2, 5e-324}}));
}

TEST(ChunkCodec, LargeMagnitudeValuesNearTwoToThe53) {
  const double two53 = 9007199254740992.0;
  EXPECT_TRUE(RoundTrips({{1, two53 - 1}, {2, -(two53 - 1)}, {3, two53}, {4, two53 + 2}}));
  EXPECT_TRUE(RoundTrips({{1, two53}, {2, 0}}));
  EXPECT_TRUE(RoundTrips({{1, 4503599627370495.5}, {2, -4503599627370495.5}}));
}

TEST(ChunkCodec, LargeIntegerFollowedByDecimalStaysExact) {
  // Regression: the decimal scale was chosen sample by sample, so 2^53-1 was checked at scale 0
  // only; 0.5 then raised the scale to 1 and (2^53-1) * 10 no longer fit a double exactly.
  const double big = 9007199254740991.0;  // 2^53 - 1
  EXPECT_TRUE(RoundTrips({{1, big}, {2, 0.5}}));
  EXPECT_TRUE(RoundTrips({{1, big}, {2, 0.1}, {3, 0.123456789}}));
  EXPECT_TRUE(RoundTrips({{1, 123456789012345.0}, {2, 0.01}}));
  EXPECT_TRUE(RoundTrips({{1, 1e15 + 1}, {2, 0.25}}));
}

TEST(ChunkCodec, NegativeZeroDecodesAsZeroAndStaysCompact) {
  // Sensors near 0 degrees send "-0.0"; it must neither break the round trip nor push the whole
  // chunk into 8-byte raw values. The sign of zero is not kept.
  std::vector<Sample> samples = TwoDecimalRandomWalk(1000, 4, 60'000);
  samples[10].value = -0.0;
  samples[500].value = -0.0;
  std::string chunk = EncodeChunk(samples);
  EXPECT_LT(chunk.size(), 3 * samples.size());
  auto decoded = DecodeChunk(chunk);
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(SameSamples(*decoded, samples));
  EXPECT_EQ((*decoded)[10].value, 0.0);
  EXPECT_EQ(*decoded, samples);  // Sample::operator== compares values numerically
  EXPECT_TRUE(RoundTrips({{1, -0.0}}));
  // A +0.0 must never come back as -0.0.
  auto zero = DecodeChunk(EncodeChunk(std::vector<Sample>{{1, 0.0}, {2, 1.0 / 3}}));
  ASSERT_TRUE(zero);
  EXPECT_FALSE(std::signbit((*zero)[0].value));
}

TEST(ChunkCodec, NonFiniteValuesSurviveAlthoughNotExpected) {
  // The contract asks for finite values; storing what we were given is still the safe outcome.
  EXPECT_TRUE(RoundTrips({{1, std::numeric_limits<double>::infinity()},
                          {2, -std::numeric_limits<double>::infinity()},
                          {3, std::numeric_limits<double>::quiet_NaN()},
                          {4, 1.5}}));
}

TEST(ChunkCodec, RandomSeriesRoundTrip) {
  std::mt19937_64 rng(2024);
  std::uniform_int_distribution<int> kind(0, 5);
  std::uniform_int_distribution<int> len(0, 300);
  std::uniform_int_distribution<TimestampMs> gap(1, 100'000'000);
  std::uniform_int_distribution<std::int64_t> mantissa(-10'000'000'000, 10'000'000'000);
  std::uniform_int_distribution<int> decimals(0, 9);
  std::uniform_int_distribution<std::uint64_t> any_bits;
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<Sample> samples;
    TimestampMs ts =
        static_cast<TimestampMs>(any_bits(rng) % 4'000'000'000'000) - 2'000'000'000'000;
    int k = kind(rng);
    int n = len(rng);
    for (int i = 0; i < n; ++i) {
      ts += gap(rng);
      double v;
      switch (k) {
        case 0:
          v = static_cast<double>(mantissa(rng));
          break;
        case 1:
          v = static_cast<double>(mantissa(rng) % 100000) / 100.0;
          break;
        case 2: {
          double p = std::pow(10.0, decimals(rng));
          v = static_cast<double>(mantissa(rng)) / p;
          break;
        }
        case 3:
          v = std::uniform_real_distribution<double>(-1e6, 1e6)(rng);
          break;
        case 4: {
          v = std::bit_cast<double>(any_bits(rng));
          if (!std::isfinite(v)) v = 0.5;
          break;
        }
        default:
          v = (i % 10 == 0) ? 1.0 / 7 : static_cast<double>(mantissa(rng)) / 1000.0;
      }
      samples.push_back({ts, v});
    }
    ASSERT_TRUE(RoundTrips(samples)) << "trial " << trial << " kind " << k;
  }
}

// ---------------------------------------------------------------------------------------------
// Size

TEST(ChunkCodec, SensorSeriesCostsLessThanThreeBytesPerSample) {
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    std::vector<Sample> samples = TwoDecimalRandomWalk(1000, seed, 60'000);
    std::string chunk = EncodeChunk(samples);
    EXPECT_LT(chunk.size(), 3 * samples.size()) << "seed " << seed << ": " << chunk.size();
  }
}

TEST(ChunkCodec, RegularTimestampsCostAboutOneByte) {
  // Constant value at a constant interval: one byte of delta-of-delta and one of value delta.
  std::vector<Sample> samples = Regular(1000, kT0, 60'000, [](std::size_t) { return 4.0; });
  EXPECT_LT(EncodeChunk(samples).size(), 2 * samples.size() + 32);
}

// ---------------------------------------------------------------------------------------------
// Format 2: a run of zero delta-of-deltas is one 0 token and the run length minus one

// The samples of the golden chunks below: five readings 5 minutes apart, one a second late.
const std::vector<Sample> kGoldenSamples = {
    {1700000000000, 4.12}, {1700000300000, 4.15}, {1700000600000, 4.1}, {1700000900000, 4.1},
    {1700001200000, 4.11}, {1700001500000, 4.09}, {1700001801000, -0.5}};

// The format is on disk: its bytes must not change by accident.
TEST(ChunkCodecFormat, GoldenBytesOfVersion2) {
  const std::string want(
      "\x02\x07"                  // version 2, 7 samples
      "\x80\xa0\xab\xfe\xf9\x62"  // first timestamp, zig-zag
      "\xc0\xcf\x24"              // first delta: 300,000 ms
      "\x00\x03"                  // a run of 3 + 1 zero delta-of-deltas
      "\xd0\x0f"                  // delta-of-delta +1,000 ms
      "\x00\x02"                  // scaled values, hundredths
      "\xb8\x06\x06\x09\x00\x02\x03\x95\x07",  // 412, +3, -5, 0, +1, -2, -459
      26);
  EXPECT_EQ(EncodeChunk(kGoldenSamples), want);
  auto decoded = DecodeChunk(want);
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_TRUE(SameSamples(*decoded, kGoldenSamples));
}

// Bytes written by the version 1 encoder (commit f334370) before format 2 existed.
TEST(ChunkCodecFormat, Version1ChunksStillDecode) {
  const std::string v1_decimal(
      "\x01\x05\x80\xa0\xab\xfe\xf9\x62\xc0\xcf\x24\x00\x00\xd0\x0f\x00\x02\xb8\x06\x06\x09\x00"
      "\x97\x07",
      24);
  const std::vector<Sample> want_decimal = {{1700000000000, 4.12}, {1700000300000, 4.15},
                                            {1700000600000, 4.1},  {1700000900000, 4.1},
                                            {1700001201000, -0.5}};
  const std::string v1_raw(
      "\x01\x02\x09\x14\x01\x55\x55\x55\x55\x55\x55\xd5\x3f\x00\x00\x00\x00\x00\x00\x04\x40", 21);
  const std::vector<Sample> want_raw = {{-5, 1.0 / 3}, {5, 2.5}};
  for (const auto& [blob, want] : {std::pair{v1_decimal, want_decimal}, std::pair{v1_raw, want_raw}}) {
    auto decoded = DecodeChunk(blob);
    ASSERT_TRUE(decoded) << decoded.error().ToString();
    EXPECT_TRUE(SameSamples(*decoded, want));
    // Re-encoded (a merge rewrites a chunk), it is version 2 and decodes to the same samples.
    const std::string v2 = EncodeChunk(*decoded);
    EXPECT_EQ(v2[0], 2);
    EXPECT_TRUE(RoundTrips(*decoded));
  }
}

TEST(ChunkCodecFormat, RegularTimestampsCostAFewBytesPerChunk) {
  // A 5-minute series: timestamps take ~10 bytes in all, each value delta one byte.
  const std::vector<Sample> flat = Regular(1000, kT0, 300'000, [](std::size_t) { return 4.0; });
  EXPECT_LE(EncodeChunk(flat).size(), 1000u + 20);
  EXPECT_TRUE(RoundTrips(flat));
  for (std::uint64_t seed = 0; seed < 5; ++seed) {
    const std::vector<Sample> walk = TwoDecimalRandomWalk(1000, seed, 300'000);
    EXPECT_LE(EncodeChunk(walk).size(), 1000u + 20) << seed;
    EXPECT_TRUE(RoundTrips(walk)) << seed;
  }
}

// One irregular timestamp (a late reading, a missed one, a clock step back) at every position,
// alone and in pairs: the runs around it must split and resume exactly.
TEST(ChunkCodecFormat, RunsBrokenAtEveryPosition) {
  for (std::size_t n : {2u, 3u, 4u, 17u, 40u}) {
    for (std::size_t k = 0; k < n; ++k) {
      for (TimestampMs shift : {TimestampMs{1}, TimestampMs{-1}, TimestampMs{1000}}) {
        std::vector<Sample> samples = TwoDecimalRandomWalk(n, k, 300'000);
        samples[k].ts += shift;
        ASSERT_TRUE(RoundTrips(samples)) << n << " " << k << " " << shift;
      }
      std::vector<Sample> gap = TwoDecimalRandomWalk(n, k, 300'000);  // a missed reading before k
      for (std::size_t i = k; i < n; ++i) gap[i].ts += 300'000;
      ASSERT_TRUE(RoundTrips(gap)) << n << " " << k;
    }
  }
  for (std::size_t a = 0; a < 12; ++a) {
    for (std::size_t b = a + 1; b < 12; ++b) {
      std::vector<Sample> samples = TwoDecimalRandomWalk(12, a * 12 + b, 60'000);
      samples[a].ts += 7;
      samples[b].ts -= 7;
      ASSERT_TRUE(RoundTrips(samples)) << a << " " << b;
    }
  }
}

TEST(ChunkCodecFormat, RunsWithExtremeOrNegativeTimestampsAndRawValues) {
  std::vector<Sample> extreme;  // kI64Min, then 5 steps of kI64Max / 3
  for (TimestampMs ts = kI64Min; extreme.size() < 6; ts += kI64Max / 3) {
    extreme.push_back({ts, static_cast<double>(extreme.size())});
  }
  EXPECT_TRUE(RoundTrips(extreme));
  EXPECT_TRUE(RoundTrips({{kI64Max - 3, 1}, {kI64Max - 2, 2}, {kI64Max - 1, 3}, {kI64Max, 4}}));
  EXPECT_TRUE(RoundTrips({{-3, 1}, {-2, 2}, {-1, 3}, {0, 4}, {1, 5}, {2, 6}}));
  EXPECT_TRUE(RoundTrips(Regular(300, -1'000'000, 1, [](std::size_t i) { return i * 0.5; })));
  // Raw doubles with regular timestamps: the values stay 8 bytes, the timestamps shrink.
  const std::vector<Sample> raw =
      Regular(100, kT0, 300'000, [](std::size_t i) { return static_cast<double>(i) / 3; });
  EXPECT_TRUE(RoundTrips(raw));
  EXPECT_LE(EncodeChunk(raw).size(), 100u * 8 + 16);
}

// ---------------------------------------------------------------------------------------------
// Corrupt input

std::vector<std::string> ValidChunks() {
  std::vector<Sample> broken_runs = TwoDecimalRandomWalk(40, 8, 300'000);
  broken_runs[9].ts += 1;
  broken_runs[30].ts += 1000;
  return {EncodeChunk({}), EncodeChunk(std::vector<Sample>{{kT0, 3.9}}),
          EncodeChunk(TwoDecimalRandomWalk(50, 3, 60'000)),
          EncodeChunk(std::vector<Sample>{{1, 1.0 / 3}, {5, 1e300}, {9, -2.5}}),
          EncodeChunk(std::vector<Sample>{{kI64Min, 1}, {kI64Max, 2}}),
          EncodeChunk(TwoDecimalRandomWalk(60, 9, 300'000)), EncodeChunk(broken_runs),
          EncodeChunk(Regular(20, kT0, 300'000, [](std::size_t i) { return i / 7.0; }))};
}

TEST(ChunkCodecCorrupt, EveryTruncationIsAnError) {
  for (const std::string& chunk : ValidChunks()) {
    ASSERT_TRUE(DecodeChunk(chunk));
    for (std::size_t len = 0; len < chunk.size(); ++len) {
      EXPECT_FALSE(DecodeChunk(std::string_view(chunk).substr(0, len)))
          << "prefix " << len << " of " << chunk.size();
    }
  }
}

TEST(ChunkCodecCorrupt, TrailingBytesAreAnError) {
  for (const std::string& chunk : ValidChunks()) {
    EXPECT_FALSE(DecodeChunk(chunk + '\0')) << chunk.size();
    EXPECT_FALSE(DecodeChunk(chunk + "xyz")) << chunk.size();
  }
}

TEST(ChunkCodecCorrupt, EmptyChunkWithTrailingBytesIsAnError) {
  // Regression: a zero count returned early, before the trailing-bytes check.
  std::string chunk = EncodeChunk({});
  EXPECT_FALSE(DecodeChunk(chunk + "garbage"));
}

TEST(ChunkCodecCorrupt, HeaderErrors) {
  EXPECT_FALSE(DecodeChunk(""));
  std::string chunk = EncodeChunk(TwoDecimalRandomWalk(10, 1, 60'000));
  std::string bad_version = chunk;
  bad_version[0] = 3;
  EXPECT_FALSE(DecodeChunk(bad_version));
  bad_version[0] = 0;
  EXPECT_FALSE(DecodeChunk(bad_version));
  // A count far larger than the bytes that follow is refused before allocating.
  std::string huge_count(1, '\x01');
  PutVarint(&huge_count, kU64Max);
  EXPECT_FALSE(DecodeChunk(huge_count));
  std::string big_count(1, '\x01');
  PutVarint(&big_count, 1u << 30);
  big_count += std::string(64, '\0');
  EXPECT_FALSE(DecodeChunk(big_count));
}

TEST(ChunkCodecCorrupt, BadValueModeAndScale) {
  // version 1, one sample, ts 0, then the value section.
  const std::string head = std::string("\x01\x01\x00", 3);
  EXPECT_TRUE(DecodeChunk(head + std::string("\x00\x02\x04", 3)));  // scaled, scale 2, value 2
  EXPECT_EQ(DecodeChunk(head + std::string("\x00\x02\x04", 3))->at(0).value, 0.02);
  EXPECT_FALSE(DecodeChunk(head + std::string("\x00\x0a\x04", 3)));      // scale 10
  EXPECT_FALSE(DecodeChunk(head + std::string("\x00\xff\x04", 3)));      // scale 255
  EXPECT_FALSE(DecodeChunk(head + std::string("\x02\x00\x04", 3)));      // unknown mode
  EXPECT_FALSE(DecodeChunk(head + std::string("\x01\x00\x00\x00", 4)));  // raw, 4 of 8 bytes
  EXPECT_FALSE(DecodeChunk(head));                                       // no value section
}

TEST(ChunkCodecCorrupt, RunLongerThanTheChunkIsAnError) {
  // Version 2, 3 samples, first timestamp 0, first delta 1: one zero delta-of-delta is left.
  const std::string head("\x02\x03\x00\x02", 4);
  const std::string values("\x00\x00\x00\x02\x02", 5);  // scaled, scale 0: 0, 1, 2
  auto ok = DecodeChunk(head + std::string("\x00\x00", 2) + values);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(*ok, (std::vector<Sample>{{0, 0}, {1, 1}, {2, 2}}));
  EXPECT_FALSE(DecodeChunk(head + std::string("\x00\x01", 2) + values));  // a run of 2
  std::string huge_run = head + std::string(1, '\0');
  PutVarint(&huge_run, kU64Max);
  EXPECT_FALSE(DecodeChunk(huge_run + values));
  EXPECT_FALSE(DecodeChunk(head + std::string(1, '\0')));  // the run's length is missing
  // In version 1 a 0 token is one zero delta-of-delta, with no length after it.
  auto v1 = DecodeChunk(std::string("\x01\x03\x00\x02\x00", 5) + values);
  ASSERT_TRUE(v1) << v1.error().ToString();
  EXPECT_EQ(*v1, (std::vector<Sample>{{0, 0}, {1, 1}, {2, 2}}));
}

TEST(ChunkCodecCorrupt, RandomCorruptionNeverCrashes) {
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<int> byte(0, 255);
  int decoded_ok = 0;
  for (const std::string& original : ValidChunks()) {
    for (int trial = 0; trial < 2000; ++trial) {
      std::string chunk = original;
      int flips = 1 + trial % 4;
      for (int f = 0; f < flips; ++f) {
        chunk[rng() % chunk.size()] = static_cast<char>(byte(rng));
      }
      if (trial % 5 == 0) chunk.resize(rng() % (chunk.size() + 1));
      if (trial % 7 == 0) chunk.push_back(static_cast<char>(byte(rng)));
      auto decoded = DecodeChunk(chunk);
      if (!decoded) continue;
      ++decoded_ok;
      // Whatever decodes must re-encode to something that decodes to the same samples.
      ASSERT_TRUE(RoundTrips(*decoded)) << "trial " << trial;
    }
  }
  EXPECT_GT(decoded_ok, 0);  // the test really exercises the success path too
}

TEST(ChunkCodecCorrupt, RandomBytesNeverCrash) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 20000; ++trial) {
    std::string data(rng() % 48, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    if (!data.empty() && trial % 2 == 0) data[0] = static_cast<char>(1 + trial % 4 / 2);  // v1, v2
    auto decoded = DecodeChunk(data);
    if (decoded) {
      ASSERT_TRUE(RoundTrips(*decoded));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// DecodeChunkInto

TEST(DecodeChunkInto, AppendsOnSuccess) {
  std::vector<Sample> first = TwoDecimalRandomWalk(10, 1, 60'000);
  std::vector<Sample> second = {{kT0 + 10 * 60'000, 1.0 / 3}, {kT0 + 11 * 60'000, 2}};
  std::vector<Sample> out;
  ASSERT_TRUE(DecodeChunkInto(EncodeChunk(first), &out));
  ASSERT_TRUE(DecodeChunkInto(EncodeChunk(second), &out));
  ASSERT_TRUE(DecodeChunkInto(EncodeChunk({}), &out));
  std::vector<Sample> want = first;
  want.insert(want.end(), second.begin(), second.end());
  EXPECT_TRUE(SameSamples(out, want));
}

TEST(DecodeChunkInto, LeavesOutputUnchangedOnError) {
  const std::vector<Sample> existing = {{1, 1.5}, {2, -0.0}, {3, 1.0 / 3}};
  for (const std::string& chunk : ValidChunks()) {
    // Every truncation, and every single-byte corruption that fails, must leave `out` as it was.
    for (std::size_t len = 0; len < chunk.size(); ++len) {
      std::vector<Sample> out = existing;
      ASSERT_FALSE(DecodeChunkInto(std::string_view(chunk).substr(0, len), &out));
      ASSERT_TRUE(SameSamples(out, existing)) << "prefix " << len;
    }
    for (std::size_t pos = 0; pos < chunk.size(); ++pos) {
      for (int b : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
        std::string bad = chunk;
        bad[pos] = static_cast<char>(b);
        std::vector<Sample> out = existing;
        if (!DecodeChunkInto(bad, &out)) {
          ASSERT_TRUE(SameSamples(out, existing)) << "pos " << pos << " byte " << b;
        } else {
          ASSERT_GE(out.size(), existing.size());
          ASSERT_TRUE(SameSamples(std::vector<Sample>(out.begin(), out.begin() + 3), existing));
        }
      }
    }
  }
}

TEST(DecodeChunkInto, ErrorInTheValueSectionAfterTimestampsDecoded) {
  // Timestamps decode fine, then values run out: nothing of the half-read chunk may remain.
  std::string chunk = EncodeChunk(TwoDecimalRandomWalk(100, 2, 60'000));
  chunk.pop_back();
  std::vector<Sample> out = {{7, 7}};
  ASSERT_FALSE(DecodeChunkInto(chunk, &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], (Sample{7, 7}));
}

// ---------------------------------------------------------------------------------------------
// Varint and ZigZag

TEST(Varint, RoundTripsAtExtremes) {
  for (std::uint64_t v :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{127}, std::uint64_t{128},
        std::uint64_t{16383}, std::uint64_t{16384}, std::uint64_t{1} << 32,
        (std::uint64_t{1} << 63) - 1, std::uint64_t{1} << 63, kU64Max - 1, kU64Max}) {
    std::string buf;
    PutVarint(&buf, v);
    buf += "tail";
    std::string_view in = buf;
    std::uint64_t got = 0;
    ASSERT_TRUE(GetVarint(&in, &got)) << v;
    EXPECT_EQ(got, v);
    EXPECT_EQ(in, "tail") << "must consume exactly the varint of " << v;
  }
}

TEST(Varint, EncodedLengths) {
  auto len = [](std::uint64_t v) {
    std::string buf;
    PutVarint(&buf, v);
    return buf.size();
  };
  EXPECT_EQ(len(0), 1u);
  EXPECT_EQ(len(127), 1u);
  EXPECT_EQ(len(128), 2u);
  EXPECT_EQ(len(16383), 2u);
  EXPECT_EQ(len(16384), 3u);
  EXPECT_EQ(len(kU64Max), 10u);
}

TEST(Varint, TruncatedOrOverlongInputFails) {
  std::string buf;
  PutVarint(&buf, kU64Max);
  for (std::size_t len = 0; len < buf.size(); ++len) {
    std::string_view in = std::string_view(buf).substr(0, len);
    std::uint64_t v = 0;
    EXPECT_FALSE(GetVarint(&in, &v)) << len;
  }
  std::string overlong(11, '\x80');
  overlong.push_back('\x01');
  std::string_view in = overlong;
  std::uint64_t v = 0;
  EXPECT_FALSE(GetVarint(&in, &v));
}

TEST(Varint, ManyValuesBackToBack) {
  std::mt19937_64 rng(11);
  std::vector<std::uint64_t> values;
  std::string buf;
  for (int i = 0; i < 1000; ++i) {
    std::uint64_t v = rng() >> (rng() % 64);
    values.push_back(v);
    PutVarint(&buf, v);
  }
  std::string_view in = buf;
  for (std::uint64_t want : values) {
    std::uint64_t got = 0;
    ASSERT_TRUE(GetVarint(&in, &got));
    ASSERT_EQ(got, want);
  }
  EXPECT_TRUE(in.empty());
}

TEST(ZigZag, SmallValuesInterleave) {
  EXPECT_EQ(ZigZag(0), 0u);
  EXPECT_EQ(ZigZag(-1), 1u);
  EXPECT_EQ(ZigZag(1), 2u);
  EXPECT_EQ(ZigZag(-2), 3u);
  EXPECT_EQ(ZigZag(2), 4u);
}

TEST(ZigZag, Extremes) {
  EXPECT_EQ(ZigZag(kI64Max), kU64Max - 1);
  EXPECT_EQ(ZigZag(kI64Min), kU64Max);
  EXPECT_EQ(UnZigZag(kU64Max - 1), kI64Max);
  EXPECT_EQ(UnZigZag(kU64Max), kI64Min);
}

TEST(ZigZag, RoundTrips) {
  for (std::int64_t v : {kI64Min, kI64Min + 1, std::int64_t{-1}, std::int64_t{0}, std::int64_t{1},
                         kI64Max - 1, kI64Max}) {
    EXPECT_EQ(UnZigZag(ZigZag(v)), v);
  }
  std::mt19937_64 rng(3);
  for (int i = 0; i < 10000; ++i) {
    auto v = static_cast<std::int64_t>(rng());
    ASSERT_EQ(UnZigZag(ZigZag(v)), v);
    std::uint64_t u = rng();
    ASSERT_EQ(ZigZag(UnZigZag(u)), u);
  }
}

}  // namespace
}  // namespace opensense
