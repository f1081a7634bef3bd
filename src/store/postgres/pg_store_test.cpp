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
  std::unique_ptr<Store> Open(bool writer = true, MetricsRegistry* metrics = nullptr) {
    StoreOptions o;
    o.url = url_;
    o.clock = &clock_;
    o.writer = writer;
    o.metrics = metrics;
    auto s = OpenStore(o);
    EXPECT_TRUE(s) << s.error().message;
    return s ? std::move(*s) : nullptr;
  }
  // A UTC organisation with one device, created through `st`.
  std::pair<OrgId, DeviceId> NewFridge(Store* st) {
    auto org = st->CreateOrganization({"Cafe", "UTC", Tier::kFree});
    EXPECT_TRUE(org);
    auto dev = st->CreateDevice({org->id, "Fridge", std::nullopt, std::nullopt});
    EXPECT_TRUE(dev);
    return {org->id, dev ? dev->id : 0};
  }
  static constexpr TimestampMs kT0 = kNow - kMsPerDay;  // a whole hour
  std::optional<std::string> admin_;
  std::unique_ptr<ScratchDir> dir_;
  std::string url_;
  ManualClock clock_{kNow};
};

// What every level must hold for `truth` (ts -> value) of a series of a UTC organisation.
void ExpectExactRollups(Store* st, OrgId org, DeviceId dev, const std::string& metric,
                        const std::map<TimestampMs, double>& truth, const std::string& what) {
  const TimestampMs from = kNow - 3 * kMsPerDay, to = kNow + kMsPerDay;
  for (auto [res, width] : {std::pair{Resolution::k5m, kBucket5m}, std::pair{Resolution::k1h, kBucket1h},
                            std::pair{Resolution::k1d, kMsPerDay}}) {
    std::map<TimestampMs, RollupAgg> want;
    for (const auto& [ts, v] : truth) want[FloorTo(ts, width)].Add(ts, v);
    auto got = st->QuerySeries({org, dev, metric, from, to, res});
    ASSERT_TRUE(got) << got.error().message;
    ASSERT_EQ(got->points.size(), want.size()) << what << " " << ResolutionName(res);
    std::size_t i = 0;
    for (const auto& [bucket, agg] : want) {
      const SeriesPoint& p = got->points[i++];
      EXPECT_EQ(p.t, bucket) << what << " " << ResolutionName(res);
      EXPECT_EQ(p.count, agg.count) << what << " " << ResolutionName(res) << " bucket " << bucket;
      EXPECT_EQ(p.min, agg.min) << what;
      EXPECT_EQ(p.max, agg.max) << what;
      EXPECT_EQ(p.v, agg.Mean()) << what;
    }
  }
  auto raw = st->QuerySeries({org, dev, metric, from, to, Resolution::kRaw});
  ASSERT_TRUE(raw);
  ASSERT_EQ(raw->points.size(), truth.size()) << what;
  for (const SeriesPoint& p : raw->points) EXPECT_EQ(p.v, truth.at(p.t)) << what;
}

std::uint64_t CounterValue(MetricsRegistry& m, const char* name) {
  return m.GetCounter(name, "").Value();
}

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

// The writer's fast path COPYs a series' rows straight into `readings` when they are all newer
// than the newest reading it knows of, and new buckets straight into `rollups`. Another process
// (here a second store on the same database) can have stored the same rows or buckets since:
// the direct COPY then fails on the primary key and the group goes the general way, exactly.
TEST_F(PostgresStore, ASecondWriterStoringTheSameRowsFirstSendsTheFastPathTheGeneralWay) {
  MetricsRegistry ma, mb;
  auto a = Open(true, &ma), b = Open(true, &mb);
  auto [org, dev] = NewFridge(a.get());
  const TimestampMs t0 = kT0;
  std::map<TimestampMs, double> truth;
  auto batch = [&](int from, int to, double v) {  // minutes [from, to) after t0
    std::vector<Reading> out;
    for (int m = from; m < to; ++m) {
      const TimestampMs ts = t0 + m * kMsPerMinute;
      out.push_back({dev, "temperature", "", ts, v + m * 0.01});
      truth.emplace(ts, v + m * 0.01);  // the first write wins
    }
    return out;
  };
  auto ingest = [&](Store* st, std::vector<Reading> readings) {
    auto r = st->Ingest(org, std::move(readings)).get();
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : IngestResult{};
  };
  // a: minutes 0-9 (fast path: a new series). b: minutes 10-19 (b reads the newest reading, 9).
  EXPECT_EQ(ingest(a.get(), batch(0, 10, 4.0)).accepted, 10u);
  EXPECT_EQ(ingest(b.get(), batch(10, 20, 5.0)).accepted, 10u);
  EXPECT_EQ(CounterValue(ma, "opensense_pg_writer_direct_readings_total"), 10u);
  EXPECT_EQ(CounterValue(mb, "opensense_pg_writer_direct_readings_total"), 10u);
  // a still believes minute 9 is the newest: its direct COPY of minutes 10-24 meets b's rows,
  // goes back to the savepoint, and the staging path counts b's ten as duplicates.
  auto r = ingest(a.get(), batch(10, 25, 6.0));
  EXPECT_EQ(r.accepted, 5u);
  EXPECT_EQ(r.duplicates, 10u);
  EXPECT_EQ(CounterValue(ma, "opensense_pg_writer_fallbacks_total"), 1u);
  EXPECT_EQ(CounterValue(ma, "opensense_pg_writer_direct_readings_total"), 10u);
  ExpectExactRollups(a.get(), org, dev, "temperature", truth, "after the readings fallback");

  // The rollups' own fallback: a reads its hint again (24). b stores minute 40, opening the 5m
  // bucket 40-44. a's minute 41 is new to `readings` (its direct COPY succeeds), but its bucket
  // starts after 24, so a COPYs it as new, meets b's row and merges it instead.
  EXPECT_EQ(ingest(a.get(), batch(25, 30, 7.0)).accepted, 5u);
  EXPECT_EQ(ingest(b.get(), batch(40, 41, 8.0)).accepted, 1u);
  r = ingest(a.get(), batch(41, 43, 9.0));
  EXPECT_EQ(r.accepted, 2u);
  EXPECT_EQ(r.duplicates, 0u);
  EXPECT_EQ(CounterValue(ma, "opensense_pg_writer_fallbacks_total"), 2u);
  EXPECT_EQ(CounterValue(ma, "opensense_pg_writer_direct_readings_total"), 17u);
  ExpectExactRollups(a.get(), org, dev, "temperature", truth, "after the rollups fallback");
  ExpectExactRollups(b.get(), org, dev, "temperature", truth, "read through b");
}

// Late and repeated readings of a series that went the fast path before, in one group with a
// series that still goes it: each takes its own path, and counts and rollups stay exact.
TEST_F(PostgresStore, LateReadingsAfterTheFastPathAreMergedExactly) {
  MetricsRegistry m;
  auto st = Open(true, &m);
  auto [org, dev] = NewFridge(st.get());
  const TimestampMs t0 = kT0;
  std::map<std::string, std::map<TimestampMs, double>> truth;
  std::vector<Reading> first;
  for (int i = 0; i < 120; ++i) {
    for (const char* metric : {"temperature", "humidity"}) {
      const TimestampMs ts = t0 + i * kMsPerMinute;
      first.push_back({dev, metric, "", ts, 3.5 + i * 0.25});
      truth[metric][ts] = 3.5 + i * 0.25;
    }
  }
  auto r = st->Ingest(org, first).get();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->accepted, 240u);
  EXPECT_EQ(CounterValue(m, "opensense_pg_writer_direct_readings_total"), 240u);
  // temperature: a repeat with another value (the stored one stays), a reading older than all,
  // one between two stored minutes (late, in stored buckets), and newer ones.
  // humidity: only newer readings (the fast path), including a bucket it has already.
  std::vector<Reading> second = {
      {dev, "temperature", "", t0 + 5 * kMsPerMinute, 99.0},
      {dev, "temperature", "", t0 - 2 * kMsPerHour, -1.5},
      {dev, "temperature", "", t0 + 30 * kMsPerMinute + 30000, 7.25},
      {dev, "temperature", "", t0 + 150 * kMsPerMinute, 8.5},
      {dev, "humidity", "", t0 + 119 * kMsPerMinute + 30000, 55.5},
      {dev, "humidity", "", t0 + 200 * kMsPerMinute, 56.5},
      {dev, "temperature", "", t0 + 5 * kMsPerMinute, 98.0},  // repeated within the batch
  };
  for (const Reading& x : second) truth[x.metric].emplace(x.ts, x.value);
  r = st->Ingest(org, second).get();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->accepted, 5u);
  EXPECT_EQ(r->duplicates, 2u);
  EXPECT_EQ(CounterValue(m, "opensense_pg_writer_direct_readings_total"), 242u);
  EXPECT_EQ(CounterValue(m, "opensense_pg_writer_fallbacks_total"), 0u);
  for (const auto& [metric, rows] : truth) ExpectExactRollups(st.get(), org, dev, metric, rows, metric);
}

// The newest-reading hint lives in memory: a restarted store reads it again from the table and
// does not take the readings it has already for new ones.
TEST_F(PostgresStore, TheNewestReadingHintIsReadAgainAfterARestart) {
  MetricsRegistry m1;
  auto st = Open(true, &m1);
  auto [org, dev] = NewFridge(st.get());
  const TimestampMs t0 = kT0;
  std::map<TimestampMs, double> truth;
  std::vector<Reading> batch;
  for (int i = 0; i < 30; ++i) {
    batch.push_back({dev, "temperature", "", t0 + i * kMsPerMinute, 2.0 + i * 0.5});
    truth[t0 + i * kMsPerMinute] = 2.0 + i * 0.5;
  }
  ASSERT_EQ(st->Ingest(org, batch).get()->accepted, 30u);
  st->Close();
  st.reset();

  MetricsRegistry m2;
  st = Open(true, &m2);
  // The same readings again, and three new ones: the stored thirty are duplicates.
  for (int i = 30; i < 33; ++i) {
    batch.push_back({dev, "temperature", "", t0 + i * kMsPerMinute, 2.0 + i * 0.5});
    truth[t0 + i * kMsPerMinute] = 2.0 + i * 0.5;
  }
  auto r = st->Ingest(org, batch).get();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->accepted, 3u);
  EXPECT_EQ(r->duplicates, 30u);
  EXPECT_EQ(CounterValue(m2, "opensense_pg_writer_fallbacks_total"), 0u);  // the hint was read, not guessed
  EXPECT_EQ(CounterValue(m2, "opensense_pg_writer_direct_readings_total"), 0u);
  // Newer ones only: the fast path again.
  std::vector<Reading> next = {{dev, "temperature", "", t0 + 40 * kMsPerMinute, 9.0}};
  truth[t0 + 40 * kMsPerMinute] = 9.0;
  ASSERT_EQ(st->Ingest(org, next).get()->accepted, 1u);
  EXPECT_EQ(CounterValue(m2, "opensense_pg_writer_direct_readings_total"), 1u);
  ExpectExactRollups(st.get(), org, dev, "temperature", truth, "after a restart");
}

// Two writers (two stores on one database, as two processes would be) move the same series past
// its open hours and across midnight at once, with late readings: the fold marks
// (pg_fold.hpp) move under the series locks, so every bucket is stored once or derived, never
// both or neither.
TEST_F(PostgresStore, TwoWritersMovingOneSeriesPastItsOpenHourAndDayKeepItsRollupsExact) {
  auto a = Open(), b = Open();
  auto [org, dev] = NewFridge(a.get());
  const TimestampMs t0 = kNow - 14 * kMsPerHour;  // 22:00 UTC: midnight two hours later
  std::map<TimestampMs, double> truth;
  std::vector<std::future<Result<IngestResult>>> futures;
  for (int round = 0; round < 30; ++round) {
    for (int w = 0; w < 2; ++w) {
      std::vector<Reading> batch;
      for (int i = 0; i < 8; ++i) {
        const TimestampMs ts = t0 + ((round * 2 + w) * 8 + i) * 30 * kMsPerSecond;
        const double v = round * 0.5 + i * 0.25 + w;
        batch.push_back({dev, "temperature", "", ts, v});
        truth.emplace(ts, v);
      }
      // A late reading into an hour the series has moved past, at a second no other uses.
      const TimestampMs late = t0 + round * 2 * kMsPerMinute + w * 1000 + 7;
      batch.push_back({dev, "temperature", "", late, -1.75});
      truth.emplace(late, -1.75);
      futures.push_back((w == 0 ? a : b)->Ingest(org, batch));
    }
  }
  for (auto& f : futures) {
    auto r = f.get();
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->accepted, 9u);
  }
  ExpectExactRollups(a.get(), org, dev, "temperature", truth, "read through a");
  ExpectExactRollups(b.get(), org, dev, "temperature", truth, "read through b");
  ASSERT_TRUE(a->RebuildRollups(org, dev, t0 - kMsPerDay, kNow + kMsPerDay));
  ExpectExactRollups(b.get(), org, dev, "temperature", truth, "rebuilt");
}

}  // namespace
}  // namespace opensense::store
