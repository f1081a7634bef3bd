// PostgreSQL-specific behaviour (the shared contract is in store_conformance_test.cpp).
#include <gtest/gtest.h>

#include <map>

#include "core/clock.hpp"
#include "core/rollup.hpp"
#include "store/store.hpp"
#include "store/test_util.hpp"

namespace opensense::store {
namespace {

constexpr TimestampMs kNow = 1768478400000;  // 2026-01-15T12:00:00Z

class PostgresStore : public testing::Test {
 protected:
  void SetUp() override {
    admin_ = TestPostgresUrl();
    if (!admin_) GTEST_SKIP() << "no PostgreSQL test cluster (run through ctest)";
    dir_ = std::make_unique<ScratchDir>("pg");
    url_ = FreshPostgresDatabase(*admin_, dir_->path());
  }
  std::unique_ptr<Store> Open(bool writer = true) {
    StoreOptions o;
    o.url = url_;
    o.clock = &clock_;
    o.writer = writer;
    auto s = OpenStore(o);
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  std::optional<std::string> admin_;
  std::unique_ptr<ScratchDir> dir_;
  std::string url_;
  ManualClock clock_{kNow};
};

TEST_F(PostgresStore, APasswordInTheUrlIsRefused) {
  StoreOptions o;
  o.url = "postgres://user:hunter2@127.0.0.1:5432/db";
  auto s = OpenStore(o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message.find("OPENSENSE_STORE_PASSWORD"), std::string::npos);
  EXPECT_EQ(s.error().message.find("hunter2"), std::string::npos);
}

TEST_F(PostgresStore, AnUnreachableServerIsUnavailable) {
  StoreOptions o;
  o.url = "postgres://127.0.0.1:1/db";
  auto s = OpenStore(o);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kUnavailable);
}

TEST_F(PostgresStore, AReadingForAMonthWithoutPartitionIsStored) {
  auto store = Open();
  auto org = store->CreateOrganization({"Cafe", "UTC", Tier::kFree});
  ASSERT_TRUE(org);
  auto dev = store->CreateDevice({org->id, "Fridge", std::nullopt, std::nullopt});
  ASSERT_TRUE(dev);
  // Ten months back: no partition was created ahead for it.
  const TimestampMs old = kNow - 300 * kMsPerDay;
  auto res = store->Ingest(org->id, {Reading{dev->id, "temperature", "", old, 4.5},
                                     Reading{dev->id, "temperature", "", kNow, 4.6}})
                 .get();
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->accepted, 2u);
  auto points = store->QuerySeries({org->id, dev->id, "temperature", old, kNow + 1, Resolution::kRaw});
  ASSERT_TRUE(points);
  EXPECT_EQ(points->points.size(), 2u);
}

TEST_F(PostgresStore, RetentionRunsInOneProcessAndAnotherTakesOver) {
  auto a = Open(), b = Open();
  auto org = a->CreateOrganization({"Cafe", "UTC", Tier::kFree});
  ASSERT_TRUE(org);
  auto dev = a->CreateDevice({org->id, "Fridge", std::nullopt, std::nullopt});
  ASSERT_TRUE(dev);
  // Two readings that become older than the 13-month retention when the clock moves on.
  const TimestampMs then = kNow;
  ASSERT_TRUE(a->Ingest(org->id, {Reading{dev->id, "temperature", "", then - 60000, 1},
                                  Reading{dev->id, "temperature", "", then, 2}})
                  .get());
  clock_.Set(then + 420 * kMsPerDay);
  auto first = a->RunRetention(false);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->classes[0].rows, 2);
  // `a` keeps the maintenance lock: `b` does no time-based work while `a` lives.
  ASSERT_TRUE(b->Ingest(org->id, {Reading{dev->id, "humidity", "", then + 420 * kMsPerDay, 50}}).get());
  clock_.Set(then + 420 * kMsPerDay + 420 * kMsPerDay);
  auto skipped = b->RunRetention(false);
  ASSERT_TRUE(skipped);
  EXPECT_EQ(skipped->classes[0].rows, 0);
  EXPECT_EQ(b->QuerySeries({org->id, dev->id, "humidity", then, clock_.NowMs(), Resolution::kRaw})->points.size(), 1u);
  // `a` goes away (its session ends, as when the process dies): `b` takes over.
  a->Close();
  a.reset();
  auto taken = b->RunRetention(false);
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(taken->classes[0].rows, 1);
}

TEST_F(PostgresStore, TwoWritersIngestTheSameSeriesWithExactRollups) {
  auto a = Open(), b = Open();
  auto org = a->CreateOrganization({"Cafe", "UTC", Tier::kFree});
  auto dev = a->CreateDevice({org->id, "Fridge", std::nullopt, std::nullopt});
  ASSERT_TRUE(dev);
  const TimestampMs t0 = FloorTo(kNow - kMsPerDay, kMsPerHour);
  std::vector<std::future<Result<IngestResult>>> futures;
  for (int round = 0; round < 20; ++round) {
    std::vector<Reading> batch;
    for (int i = 0; i < 60; ++i) batch.push_back({dev->id, "temperature", "", t0 + (round * 60 + i) * 1000LL, 0.25});
    futures.push_back(a->Ingest(org->id, batch));
    futures.push_back(b->Ingest(org->id, batch));  // the same readings: half are duplicates
  }
  std::size_t accepted = 0, duplicates = 0;
  for (auto& f : futures) {
    auto r = f.get();
    ASSERT_TRUE(r) << r.error().message;
    accepted += r->accepted;
    duplicates += r->duplicates;
  }
  EXPECT_EQ(accepted, 1200u);
  EXPECT_EQ(duplicates, 1200u);
  auto hours = a->QuerySeries({org->id, dev->id, "temperature", t0, t0 + kMsPerHour, Resolution::k1h});
  ASSERT_TRUE(hours);
  ASSERT_EQ(hours->points.size(), 1u);
  EXPECT_EQ(hours->points[0].count, 1200);
  EXPECT_EQ(hours->points[0].v, 0.25);
}

// The writer merges rollups in SQL when the sum stays an exact int64 (both sums decimal, far
// from the limits) and in C++ otherwise; both must give what RollupAgg::Merge gives.
TEST_F(PostgresStore, RollupMergeOutsideTheSqlFastPathMatchesRollupAgg) {
  auto st = Open();
  auto org = st->CreateOrganization({"Cafe", "UTC", Tier::kFree});
  auto dev = st->CreateDevice({org->id, "Fridge", std::nullopt, std::nullopt});
  ASSERT_TRUE(dev);
  const TimestampMs t0 = FloorTo(kNow - kMsPerDay, kMsPerHour);
  struct Step {
    const char* metric;
    int n;
    double v;
  };
  // temperature: decimal, then a non-decimal value (double sum), then decimal again.
  // humidity: sums of 4.5e15 (scale 0) growing past 2^62 (C++ merge, still exact) and past
  // 2^63 (C++ merge, falls back to a double sum).
  const std::vector<Step> steps = {{"temperature", 10, 2.5},     {"temperature", 3, 1.0 / 3},
                                   {"temperature", 4, 0.25},     {"humidity", 600, 4.5e15},
                                   {"humidity", 1200, 4.5e15},   {"humidity", 600, 4.5e15},
                                   {"humidity", 5, 1.5}};
  std::map<std::string, RollupAgg> want;
  std::map<std::string, int> next;
  for (const Step& s : steps) {
    std::vector<Reading> batch;
    RollupAgg part;
    for (int i = 0; i < s.n; ++i) {
      TimestampMs ts = t0 + next[s.metric]++;
      batch.push_back({dev->id, s.metric, "", ts, s.v});
      part.Add(ts, s.v);
    }
    auto r = st->Ingest(org->id, batch).get();
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->accepted, static_cast<std::size_t>(s.n));
    want[s.metric].Merge(part);
  }
  for (const auto& [metric, agg] : want) {
    for (Resolution res : {Resolution::k5m, Resolution::k1h, Resolution::k1d}) {
      auto got = st->QuerySeries({org->id, dev->id, metric, t0 - kMsPerDay, t0 + kMsPerDay, res});
      ASSERT_TRUE(got) << got.error().message;
      ASSERT_EQ(got->points.size(), 1u) << metric;
      EXPECT_EQ(got->points[0].count, agg.count) << metric;
      EXPECT_EQ(got->points[0].min, agg.min) << metric;
      EXPECT_EQ(got->points[0].max, agg.max) << metric;
      EXPECT_EQ(got->points[0].v, agg.Mean()) << metric << " " << ResolutionName(res);
    }
  }
}

}  // namespace
}  // namespace opensense::store
