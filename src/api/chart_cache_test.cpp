#include "api/chart_cache.hpp"

#include <gtest/gtest.h>

namespace opensense::api {
namespace {

std::shared_ptr<const std::string> Body(std::size_t n, char c = 'x') { return std::make_shared<const std::string>(n, c); }

TEST(ChartCache, FindsAnAnswerOnlyAtTheVersionItWasComputedAt) {
  ChartCache cache(1 << 20);
  const std::string k = ChartCache::KeyOf(1, 2, "temperature", 0, 1000, Resolution::k1h);
  EXPECT_EQ(cache.Find(k, 7), nullptr);
  cache.Put(k, 7, Body(100, 'a'));
  auto hit = cache.Find(k, 7);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(*hit, std::string(100, 'a'));
  // The data moved on: the old answer is gone for good, also for its old version.
  EXPECT_EQ(cache.Find(k, 8), nullptr);
  EXPECT_EQ(cache.Find(k, 7), nullptr);
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(ChartCache, KeysSeparateOrganisationsDevicesMetricsRangesAndResolutions) {
  const std::string base = ChartCache::KeyOf(1, 2, "temperature", 0, 1000, Resolution::k1h);
  EXPECT_NE(base, ChartCache::KeyOf(3, 2, "temperature", 0, 1000, Resolution::k1h));
  EXPECT_NE(base, ChartCache::KeyOf(1, 3, "temperature", 0, 1000, Resolution::k1h));
  EXPECT_NE(base, ChartCache::KeyOf(1, 2, "humidity", 0, 1000, Resolution::k1h));
  EXPECT_NE(base, ChartCache::KeyOf(1, 2, "temperature", 1, 1000, Resolution::k1h));
  EXPECT_NE(base, ChartCache::KeyOf(1, 2, "temperature", 0, 1001, Resolution::k1h));
  EXPECT_NE(base, ChartCache::KeyOf(1, 2, "temperature", 0, 1000, Resolution::k1d));
  // A metric holding the separator cannot pose as other numbers: they all come first.
  EXPECT_NE(ChartCache::KeyOf(1, 2, "a/3", 0, 1000, Resolution::k1h),
            ChartCache::KeyOf(1, 2, "a", 3, 1000, Resolution::k1h));
  ChartCache cache(1 << 20);
  cache.Put(base, 1, Body(10));
  EXPECT_EQ(cache.Find(ChartCache::KeyOf(3, 2, "temperature", 0, 1000, Resolution::k1h), 1), nullptr);
  EXPECT_NE(cache.Find(base, 1), nullptr);
}

TEST(ChartCache, EvictsTheLeastRecentlyUsedWithinTheBudget) {
  ChartCache cache(8 * 1000);  // one answer may take 1,000 bytes
  const auto key = [](int i) { return ChartCache::KeyOf(1, i, "t", 0, 1, Resolution::k1h); };
  for (int i = 0; i < 40; ++i) {
    cache.Put(key(i), 1, Body(600));
    if (i >= 1) {
      ASSERT_NE(cache.Find(key(0), 1), nullptr) << "used after every insert, kept: " << i;
    }
    EXPECT_LE(cache.bytes(), 8000u);
  }
  EXPECT_NE(cache.Find(key(39), 1), nullptr);
  EXPECT_EQ(cache.Find(key(1), 1), nullptr);  // the oldest unused went first
  EXPECT_LT(cache.entries(), 40u);
  // Too big for a share of the budget: not kept.
  cache.Put(key(100), 1, Body(2000));
  EXPECT_EQ(cache.Find(key(100), 1), nullptr);
}

TEST(ChartCache, KeepsTheNewerOfTwoAnswersComputedAtOnce) {
  ChartCache cache(1 << 20);
  const std::string k = ChartCache::KeyOf(1, 2, "t", 0, 1, Resolution::k5m);
  cache.Put(k, 5, Body(10, 'n'));
  cache.Put(k, 4, Body(10, 'o'));  // a slower request that read the version earlier
  auto hit = cache.Find(k, 5);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ((*hit)[0], 'n');
  EXPECT_EQ(cache.entries(), 1u);
}

TEST(ChartCache, ZeroBytesKeepsNothing) {
  ChartCache cache(0);
  const std::string k = ChartCache::KeyOf(1, 2, "t", 0, 1, Resolution::k5m);
  cache.Put(k, 1, Body(1));
  EXPECT_EQ(cache.Find(k, 1), nullptr);
}

}  // namespace
}  // namespace opensense::api
