#include "api/json_number.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace opensense::api {
namespace {

std::string Text(double v) {
  std::string s;
  AppendNumber(s, v);
  return s;
}

TEST(JsonNumber, ShortDecimalsPrintAsFmtDoes) {
  for (double v : {0.0, 1.0, -1.0, 4.12, -18.5, 0.05, -0.05, 0.0001, 0.0009, 55.03, 100000000.0, 999999999.9999,
                   123456789.1, 3.9, 1e-4, 12.3456, -0.1, 2.5e-3}) {
    EXPECT_EQ(Text(v), fmt::format("{}", v)) << v;
  }
}

TEST(JsonNumber, EveryOtherDoublePrintsAsFmtDoes) {
  for (double v : {1.0 / 3, -2.0 / 3, 1e9, 1e15, 1e16, 1e17, 1e300, 1e-5, 1e-300, 5e-324, 0.1 + 0.2, 12.34567,
                   std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(), -0.0}) {
    EXPECT_EQ(Text(v), fmt::format("{}", v)) << v;
  }
}

// Means of decimal readings, hundredths, tenths and random bit patterns: the text always equals
// fmt's shortest round-trip text, so the fast path never changes an answer.
TEST(JsonNumber, RandomValuesMatchFmtAndReadBack) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::int64_t> hundredths(-5'000'000, 5'000'000);
  std::uniform_int_distribution<int> count(1, 300);
  for (int i = 0; i < 200'000; ++i) {
    double v;
    switch (i % 4) {
      case 0: v = static_cast<double>(hundredths(rng)) / 100; break;
      case 1: v = static_cast<double>(hundredths(rng)) / 10; break;
      case 2: v = static_cast<double>(hundredths(rng)) / 100 / count(rng); break;
      default: {
        std::uint64_t bits = rng();
        std::memcpy(&v, &bits, sizeof v);
        if (!std::isfinite(v)) continue;
      }
    }
    const std::string text = Text(v);
    ASSERT_EQ(text, fmt::format("{}", v)) << i;
    ASSERT_EQ(std::strtod(text.c_str(), nullptr), v) << text;
  }
}

TEST(JsonNumber, Integers) {
  std::string s;
  AppendInt(s, 0);
  s += ',';
  AppendInt(s, -1732838400000);
  s += ',';
  AppendInt(s, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(s, "0,-1732838400000,-9223372036854775808");
}

}  // namespace
}  // namespace opensense::api
