// The Store conformance suite: the behaviour every backend must have. Parameterised by backend;
// SQLite runs it now, PostgreSQL joins by adding an entry to Backends().
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <random>

#include "core/rollup.hpp"
#include "core/time_zone.hpp"
#include "store/store.hpp"
#include "store/test_util.hpp"

namespace opensense::store {
namespace {

constexpr TimestampMs kNow = 1768478400000;  // 2026-01-15T12:00:00Z

class StoreConformance : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<ScratchDir>("conformance");
    Reopen();
  }
  void TearDown() override {
    if (store_) store_->Close();
  }

  StoreOptions Options() {
    StoreOptions o = GetParam().options(dir_->path());
    o.clock = &clock_;
    return o;
  }
  void Reopen() {
    if (store_) store_->Close();
    store_.reset();
    auto s = OpenStore(Options());
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  OrgId NewOrg(std::string tz = "UTC", Tier tier = Tier::kFree) {
    auto org = store_->CreateOrganization({"Org " + std::to_string(++orgs_), tz, tier});
    EXPECT_TRUE(org) << org.error().message;
    return org->id;
  }
  DeviceId NewDevice(OrgId org, std::optional<std::string> serial = std::nullopt) {
    auto d = store_->CreateDevice({org, "Fridge", std::nullopt, serial});
    EXPECT_TRUE(d) << d.error().message;
    return d->id;
  }
  IngestResult Ingest(OrgId org, std::vector<Reading> readings) {
    auto r = store_->Ingest(org, std::move(readings)).get();
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : IngestResult{};
  }
  std::vector<SeriesPoint> Query(OrgId org, DeviceId dev, std::string metric, TimestampMs from,
                                 TimestampMs to, Resolution res) {
    auto r = store_->QuerySeries({org, dev, metric, from, to, res});
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->points : std::vector<SeriesPoint>{};
  }

  std::unique_ptr<ScratchDir> dir_;
  ManualClock clock_{kNow};
  std::unique_ptr<Store> store_;
  int orgs_ = 0;
};

Reading R(DeviceId d, TimestampMs ts, double v, std::string metric = "temperature",
          std::string unit = "") {
  return Reading{d, std::move(metric), std::move(unit), ts, v};
}

// ---- organisations and devices ----------------------------------------------------------------

TEST_P(StoreConformance, OrganisationsAreCreatedListedAndValidated) {
  auto a = store_->CreateOrganization({"Cafe", "Europe/Berlin", Tier::kTeam});
  ASSERT_TRUE(a);
  EXPECT_GT(a->id, 0);
  auto got = store_->GetOrganization(a->id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->name, "Cafe");
  EXPECT_EQ(got->time_zone, "Europe/Berlin");
  EXPECT_EQ(got->tier, Tier::kTeam);
  EXPECT_EQ(got->created_at, kNow);
  EXPECT_EQ(store_->GetOrganization(a->id + 100).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->CreateOrganization({"X", "Mars/Olympus", Tier::kFree}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateOrganization({"", "UTC", Tier::kFree}).error().code,
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(store_->CreateOrganization({"Pharmacy", "UTC", Tier::kFree}));
  auto all = store_->ListOrganizations();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
}

TEST_P(StoreConformance, DevicesAreScopedToTheirOrganisation) {
  OrgId a = NewOrg(), b = NewOrg();
  DeviceId da = NewDevice(a, "AA:01");
  // The same serial in another organisation is fine; twice in one is not.
  DeviceId db = NewDevice(b, "AA:01");
  EXPECT_EQ(store_->CreateDevice({a, "Dup", std::nullopt, "AA:01"}).error().code,
            ErrorCode::kAlreadyExists);
  EXPECT_TRUE(store_->GetDevice(a, da));
  EXPECT_EQ(store_->GetDevice(b, da).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->FindDeviceBySerial(a, "AA:01")->id, da);
  EXPECT_EQ(store_->FindDeviceBySerial(b, "AA:01")->id, db);
  EXPECT_EQ(store_->ListDevices(a)->size(), 1u);
  EXPECT_EQ(store_->DecommissionDevice(b, da).error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(store_->GetDevice(a, da)->decommissioned);
  // A site of another organisation cannot be used.
  auto site_b = store_->CreateSite(b, "Kitchen");
  ASSERT_TRUE(site_b);
  EXPECT_EQ(store_->CreateDevice({a, "X", site_b->id, std::nullopt}).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListSites(a)->size(), 0u);
}

// ---- ingest -------------------------------------------------------------------------------------

TEST_P(StoreConformance, IngestAcceptsAndRetriesAreHarmless) {
  OrgId org = NewOrg();
  DeviceId d = NewDevice(org);
  std::vector<Reading> batch = {R(d, kNow - 120000, 3.9), R(d, kNow - 60000, 4.1),
                                R(d, kNow - 60000, 61, "humidity")};
  auto first = Ingest(org, batch);
  EXPECT_EQ(first.accepted, 3u);
  EXPECT_EQ(first.duplicates, 0u);
  auto retry = Ingest(org, batch);
  EXPECT_EQ(retry.accepted, 0u);
  EXPECT_EQ(retry.duplicates, 3u);
  // A duplicate inside one batch counts once.
  auto inner = Ingest(org, {R(d, kNow, 5), R(d, kNow, 5)});
  EXPECT_EQ(inner.accepted, 1u);
  EXPECT_EQ(inner.duplicates, 1u);
  auto points = Query(org, d, "temperature", kNow - kMsPerHour, kNow + 1, Resolution::kRaw);
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[0].t, kNow - 120000);
  EXPECT_DOUBLE_EQ(points[0].v, 3.9);
  EXPECT_DOUBLE_EQ(points[2].v, 5);
}

TEST_P(StoreConformance, DuplicatesAreDetectedAfterCompactionAndReopen) {
  OrgId org = NewOrg();
  DeviceId d = NewDevice(org);
  std::vector<Reading> batch;
  for (int i = 0; i < 100; ++i) batch.push_back(R(d, kNow - kMsPerDay + i * 60000, i * 0.5));
  EXPECT_EQ(Ingest(org, batch).accepted, 100u);
  ASSERT_TRUE(store_->Compact());
  EXPECT_EQ(Ingest(org, batch).duplicates, 100u);
  Reopen();
  EXPECT_EQ(Ingest(org, batch).duplicates, 100u);
  // Late data that falls between compacted readings is new.
  EXPECT_EQ(Ingest(org, {R(d, kNow - kMsPerDay + 30000, 7)}).accepted, 1u);
  EXPECT_EQ(Ingest(org, {R(d, kNow - kMsPerDay + 30000, 7)}).duplicates, 1u);
  auto points = Query(org, d, "temperature", kNow - 2 * kMsPerDay, kNow, Resolution::kRaw);
  EXPECT_EQ(points.size(), 101u);
}

TEST_P(StoreConformance, EachBadRecordIsRejectedWithItsReasonAndTheGoodOnesStored) {
  OrgId org = NewOrg(), other = NewOrg();
  DeviceId d = NewDevice(org), foreign = NewDevice(other), gone = NewDevice(org);
  ASSERT_TRUE(store_->DecommissionDevice(org, gone));
  const TimestampMs cutoff = SubtractCalendarMonthsUtc(kNow, 13);
  std::vector<Reading> batch = {
      R(d, kNow - 1000, 4.0),                                         // 0 ok
      R(d, kNow - 2000, std::numeric_limits<double>::quiet_NaN()),    // 1
      R(d, kNow - 3000, std::numeric_limits<double>::infinity()),     // 2
      R(d, kNow + 5 * kMsPerMinute, 4.0),                             // 3 ok: exactly 5 min
      R(d, kNow + 5 * kMsPerMinute + 1, 4.0),                         // 4 future
      R(d, cutoff - 1, 4.0),                                          // 5 too old
      R(d, cutoff, 4.0),                                              // 6 ok: the boundary
      R(999999, kNow, 4.0),                                           // 7 unknown device
      R(foreign, kNow, 4.0),                                          // 8 other organisation
      R(gone, kNow, 4.0),                                             // 9 decommissioned
      R(d, kNow, 4.0, "Temperature"),                                 // 10 bad metric
      R(d, kNow, 4.0, "temperature", "celsius"),                      // 11 unknown unit
      R(d, kNow - 4000, 4.0, "temperature", "K"),                     // 12 unit mismatch
      R(d, kNow - 5000, 4.0, "temperature", "Cel"),                   // 13 ok
  };
  auto res = Ingest(org, batch);
  EXPECT_EQ(res.accepted, 4u);
  EXPECT_EQ(res.duplicates, 0u);
  std::map<std::size_t, RejectReason> got;
  for (const auto& r : res.rejected) {
    got[r.index] = r.reason;
    EXPECT_FALSE(r.message.empty());
  }
  std::map<std::size_t, RejectReason> want = {
      {1, RejectReason::kNotFinite},         {2, RejectReason::kNotFinite},
      {4, RejectReason::kInFuture},          {5, RejectReason::kOlderThanRetention},
      {7, RejectReason::kUnknownDevice},     {8, RejectReason::kUnknownDevice},
      {9, RejectReason::kDeviceDecommissioned}, {10, RejectReason::kBadMetricName},
      {11, RejectReason::kUnknownUnit},      {12, RejectReason::kUnitMismatch}};
  EXPECT_EQ(got, want);
  auto points = Query(org, d, "temperature", cutoff - kMsPerDay, kNow + kMsPerHour, Resolution::kRaw);
  EXPECT_EQ(points.size(), 4u);
  // Nothing of the foreign organisation's device was written.
  EXPECT_TRUE(Query(other, foreign, "temperature", kNow - kMsPerDay, kNow + 1, Resolution::kRaw).empty());
  auto q = store_->QuerySeries({org, d, "temperature", kNow - 1, kNow, Resolution::kRaw});
  ASSERT_TRUE(q);
  EXPECT_EQ(q->unit, "Cel");
}

TEST_P(StoreConformance, EmptyAndHugeBatches) {
  OrgId org = NewOrg();
  std::vector<DeviceId> devices;
  for (int i = 0; i < 10; ++i) devices.push_back(NewDevice(org));
  auto empty = Ingest(org, {});
  EXPECT_EQ(empty.accepted + empty.duplicates + empty.rejected.size(), 0u);
  // One million readings in one batch: one transaction, all or nothing.
  std::vector<Reading> big;
  big.reserve(1'000'000);
  for (int i = 0; i < 100'000; ++i) {
    for (DeviceId d : devices) big.push_back(R(d, kNow - 100'000LL * 1000 + i * 1000LL, (i % 1000) * 0.01));
  }
  auto res = Ingest(org, std::move(big));
  EXPECT_EQ(res.accepted, 1'000'000u);
  EXPECT_TRUE(res.rejected.empty());
  auto stats = store_->Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->head_readings + stats->chunk_readings, 1'000'000);
}

TEST_P(StoreConformance, DecommissionedDeviceKeepsItsHistory) {
  OrgId org = NewOrg();
  DeviceId d = NewDevice(org);
  EXPECT_EQ(Ingest(org, {R(d, kNow - 60000, 4)}).accepted, 1u);
  ASSERT_TRUE(store_->DecommissionDevice(org, d));
  auto res = Ingest(org, {R(d, kNow, 5)});
  ASSERT_EQ(res.rejected.size(), 1u);
  EXPECT_EQ(res.rejected[0].reason, RejectReason::kDeviceDecommissioned);
  EXPECT_EQ(Query(org, d, "temperature", kNow - kMsPerHour, kNow + 1, Resolution::kRaw).size(), 1u);
}

// ---- series queries -----------------------------------------------------------------------------

TEST_P(StoreConformance, QueriesAreHalfOpenAndMergeRecentWithCompacted) {
  OrgId org = NewOrg();
  DeviceId d = NewDevice(org);
  const TimestampMs t0 = FloorTo(kNow - kMsPerDay, kMsPerHour);
  std::vector<Reading> older, newer;
  for (int i = 0; i < 60; ++i) older.push_back(R(d, t0 + i * 60000, i));
  for (int i = 60; i < 120; ++i) newer.push_back(R(d, t0 + i * 60000, i));
  Ingest(org, older);
  ASSERT_TRUE(store_->Compact());
  Ingest(org, newer);  // stays in the head
  auto raw = Query(org, d, "temperature", t0 + 30 * 60000, t0 + 90 * 60000, Resolution::kRaw);
  ASSERT_EQ(raw.size(), 60u);
  EXPECT_EQ(raw.front().t, t0 + 30 * 60000);
  EXPECT_EQ(raw.back().t, t0 + 89 * 60000);  // `to` is exclusive
  auto hours = Query(org, d, "temperature", t0, t0 + 2 * kMsPerHour, Resolution::k1h);
  ASSERT_EQ(hours.size(), 2u);
  EXPECT_EQ(hours[0].count, 60);
  EXPECT_DOUBLE_EQ(hours[0].v, 29.5);
  EXPECT_DOUBLE_EQ(hours[1].min, 60);
  EXPECT_DOUBLE_EQ(hours[1].max, 119);
  auto fives = Query(org, d, "temperature", t0, t0 + 2 * kMsPerHour, Resolution::k5m);
  ASSERT_EQ(fives.size(), 24u);
  EXPECT_EQ(fives[11].count, 5);
  EXPECT_EQ(fives[12].t, t0 + kMsPerHour);  // the bucket across the compaction boundary
  // auto: 2 hours -> raw; 30 days -> 1h; 400 days -> 1d.
  auto a = store_->QuerySeries({org, d, "temperature", t0, t0 + 2 * kMsPerHour, Resolution::kAuto});
  EXPECT_EQ(a->resolution, Resolution::kRaw);
  a = store_->QuerySeries({org, d, "temperature", kNow - 30 * kMsPerDay, kNow, Resolution::kAuto});
  EXPECT_EQ(a->resolution, Resolution::k1h);
  a = store_->QuerySeries({org, d, "temperature", kNow - 400 * kMsPerDay, kNow, Resolution::kAuto});
  EXPECT_EQ(a->resolution, Resolution::k1d);
  ASSERT_EQ(a->points.size(), 1u);
  EXPECT_EQ(a->points[0].count, 120);
  // Errors and scoping.
  EXPECT_EQ(store_->QuerySeries({org, d, "temperature", kNow, kNow, Resolution::kRaw}).error().code,
            ErrorCode::kInvalidArgument);
  OrgId other = NewOrg();
  EXPECT_EQ(store_->QuerySeries({other, d, "temperature", t0, kNow, Resolution::kRaw}).error().code,
            ErrorCode::kNotFound);
  EXPECT_TRUE(Query(org, d, "no_such_metric", t0, kNow, Resolution::k1h).empty());
}

TEST_P(StoreConformance, DailyRollupsFollowTheOrganisationsCalendarAcrossDst) {
  // 2025-10-26 is 25 hours long in Berlin; 2025-03-30 is 23 hours long.
  clock_.Set(*ParseTimestamp("2025-11-01T00:00:00Z"));
  OrgId org = NewOrg("Europe/Berlin");
  DeviceId d = NewDevice(org);
  auto zone = *TimeZone::Load("Europe/Berlin");
  std::vector<Reading> batch;
  for (TimestampMs t = *ParseTimestamp("2025-10-25T00:00:00Z"); t < *ParseTimestamp("2025-10-28T00:00:00Z");
       t += 15 * kMsPerMinute) {
    batch.push_back(R(d, t, 1));
  }
  Ingest(org, batch);
  for (bool compacted : {false, true}) {
    if (compacted) {
      ASSERT_TRUE(store_->Compact());
    }
    auto days = Query(org, d, "temperature", *ParseTimestamp("2025-10-25T22:00:00Z"),
                      *ParseTimestamp("2025-10-27T23:00:00Z"), Resolution::k1d);
    ASSERT_EQ(days.size(), 2u) << "compacted=" << compacted;
    EXPECT_EQ(days[0].t, *ParseTimestamp("2025-10-25T22:00:00Z"));  // 26 Oct 00:00 CEST
    EXPECT_EQ(days[0].count, 25 * 4);                                 // a 25-hour day
    EXPECT_EQ(days[1].t, *ParseTimestamp("2025-10-26T23:00:00Z"));  // 27 Oct 00:00 CET
    EXPECT_EQ(days[1].count, 24 * 4);
    EXPECT_EQ(zone.DayOf(days[0].t).end, days[1].t);
  }
}

TEST_P(StoreConformance, DailyRollupsInAHalfHourZone) {
  OrgId org = NewOrg("Asia/Kolkata");
  DeviceId d = NewDevice(org);
  const TimestampMs day = *ParseTimestamp("2026-01-10T18:30:00Z");  // 11 Jan 00:00 IST
  Ingest(org, {R(d, day - 1, 1), R(d, day, 2), R(d, day + kMsPerDay - 1, 3), R(d, day + kMsPerDay, 4)});
  ASSERT_TRUE(store_->Compact());
  auto days = Query(org, d, "temperature", day, day + kMsPerDay, Resolution::k1d);
  ASSERT_EQ(days.size(), 1u);
  EXPECT_EQ(days[0].t, day);
  EXPECT_EQ(days[0].count, 2);
  EXPECT_DOUBLE_EQ(days[0].min, 2);
  EXPECT_DOUBLE_EQ(days[0].max, 3);
}

// ---- rollups under late, duplicate and out-of-order data ----------------------------------------

struct Truth {
  std::map<TimestampMs, double> readings;
};

std::vector<SeriesPoint> Expected(const Truth& truth, TimestampMs from, TimestampMs to,
                                  Resolution res, const TimeZone& zone) {
  std::map<TimestampMs, RollupAgg> buckets;
  DayBucketer days(zone);
  for (auto [t, v] : truth.readings) {
    TimestampMs b = res == Resolution::k5m   ? FloorTo(t, kBucket5m)
                    : res == Resolution::k1h ? FloorTo(t, kBucket1h)
                                             : days.DayStart(t);
    TimestampMs first = res == Resolution::k5m   ? FloorTo(from, kBucket5m)
                        : res == Resolution::k1h ? FloorTo(from, kBucket1h)
                                                 : days.DayStart(from);
    if (b >= first && b < to) buckets[b].Add(t, v);
  }
  std::vector<SeriesPoint> out;
  for (auto& [b, a] : buckets) out.push_back(a.ToPoint(b));
  return out;
}

void ExpectSamePoints(const std::vector<SeriesPoint>& got, const std::vector<SeriesPoint>& want,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].t, want[i].t) << what << " #" << i;
    EXPECT_EQ(got[i].count, want[i].count) << what << " #" << i;
    EXPECT_EQ(got[i].min, want[i].min) << what << " #" << i;
    EXPECT_EQ(got[i].max, want[i].max) << what << " #" << i;
    // Decimal sums are exact, so the mean is identical whatever the order of merging.
    EXPECT_EQ(got[i].v, want[i].v) << what << " #" << i;
  }
}

TEST_P(StoreConformance, RollupsStayExactUnderLateDuplicateAndOutOfOrderStreams) {
  for (std::uint32_t seed : {1u, 2u, 3u}) {
    OrgId org = NewOrg("Asia/Kathmandu");  // +05:45: days that 1h buckets cannot serve
    DeviceId d = NewDevice(org);
    auto zone = *TimeZone::Load("Asia/Kathmandu");
    std::mt19937 rng(seed);
    Truth truth;
    const TimestampMs start = kNow - 20 * kMsPerDay;
    for (int round = 0; round < 12; ++round) {
      std::vector<Reading> batch;
      int n = 50 + static_cast<int>(rng() % 400);
      for (int i = 0; i < n; ++i) {
        // Mostly recent, sometimes far back (late), sometimes a repeat.
        TimestampMs t = start + static_cast<TimestampMs>(rng() % (20 * 24 * 60)) * 60000 +
                        static_cast<TimestampMs>(rng() % 3) * 1000;
        double v = (static_cast<int>(rng() % 2000) - 500) / 100.0;
        if (truth.readings.count(t) == 0) truth.readings[t] = v;  // the first write wins
        batch.push_back(R(d, t, v));
      }
      Ingest(org, batch);
      if (rng() % 3 == 0) {
        ASSERT_TRUE(store_->Compact());
      }
    }
    const TimestampMs from = start - kMsPerDay, to = kNow + kMsPerDay;
    for (Resolution res : {Resolution::k5m, Resolution::k1h, Resolution::k1d}) {
      auto want = Expected(truth, from, to, res, zone);
      ExpectSamePoints(Query(org, d, "temperature", from, to, res), want,
                       fmt::format("seed {} {} incremental", seed, ResolutionName(res)));
    }
    // Rebuilding from the finer level gives what incremental maintenance gave.
    ASSERT_TRUE(store_->Compact());
    ASSERT_TRUE(store_->RebuildRollups(org, d, from, to));
    for (Resolution res : {Resolution::k5m, Resolution::k1h, Resolution::k1d}) {
      ExpectSamePoints(Query(org, d, "temperature", from, to, res),
                       Expected(truth, from, to, res, zone),
                       fmt::format("seed {} {} rebuilt", seed, ResolutionName(res)));
    }
    auto raw = Query(org, d, "temperature", from, to, Resolution::kRaw);
    ASSERT_EQ(raw.size(), truth.readings.size());
  }
}

TEST_P(StoreConformance, ChangingTheTimeZoneRebuildsDailyRollups) {
  OrgId org = NewOrg("UTC", Tier::kTeam);
  DeviceId d = NewDevice(org);
  Truth truth;
  std::vector<Reading> batch;
  for (int i = 0; i < 3 * 24 * 12; ++i) {
    TimestampMs t = kNow - 4 * kMsPerDay + i * 5 * 60000LL;
    truth.readings[t] = i % 7;
    batch.push_back(R(d, t, i % 7));
  }
  Ingest(org, batch);
  ASSERT_TRUE(store_->Compact());
  ASSERT_TRUE(store_->SetOrganizationTimeZone(org, "America/New_York"));
  EXPECT_EQ(store_->GetOrganization(org)->time_zone, "America/New_York");
  auto ny = *TimeZone::Load("America/New_York");
  const TimestampMs from = kNow - 10 * kMsPerDay, to = kNow + kMsPerDay;
  ExpectSamePoints(Query(org, d, "temperature", from, to, Resolution::k1d),
                   Expected(truth, from, to, Resolution::k1d, ny), "after zone change");
  EXPECT_EQ(store_->SetOrganizationTimeZone(org, "Nowhere/Land").error().code,
            ErrorCode::kInvalidArgument);
}

// ---- the open hour and day ------------------------------------------------------------------------
// PostgreSQL stores a series' 1h and 1d buckets only once the series has moved past them and
// derives the open ones from its 5-minute rows (src/store/postgres/pg_fold.hpp); SQLite stores
// them all. Every query must see the same buckets either way.

TEST_P(StoreConformance, TheOpenHourAndDayStayExactAsTheSeriesMovesPastThem) {
  OrgId org = NewOrg("Asia/Kathmandu");  // +05:45: local days start at 18:15 UTC
  DeviceId d = NewDevice(org);
  auto zone = *TimeZone::Load("Asia/Kathmandu");
  const TimestampMs start = FloorTo(kNow - 3 * kMsPerDay, kMsPerHour) + 10 * kMsPerMinute;
  Truth truth;
  TimestampMs newest = start;
  auto ingest = [&](std::vector<std::pair<TimestampMs, double>> rows) {
    std::vector<Reading> batch;
    for (auto [t, v] : rows) {
      batch.push_back(R(d, t, v));
      if (truth.readings.count(t) == 0) truth.readings[t] = v;
      newest = std::max(newest, t);
    }
    Ingest(org, batch);
  };
  auto minutes = [&](TimestampMs from, int n, double v0) {
    std::vector<std::pair<TimestampMs, double>> rows;
    for (int i = 0; i < n; ++i) rows.emplace_back(from + i * kMsPerMinute, v0 + i * 0.25);
    return rows;
  };
  // Ranges a chart asks for around the newest reading: over everything, ending inside the open
  // hour and the open day, starting inside them, ending where they start, and auto.
  auto check = [&](const std::string& when) {
    const TimestampMs all_from = start - 2 * kMsPerDay, all_to = kNow + kMsPerDay;
    const Interval open_day = zone.DayOf(newest);
    const TimestampMs open_hour = FloorTo(newest, kMsPerHour);
    const std::pair<TimestampMs, TimestampMs> ranges[] = {
        {all_from, all_to},          {all_from, newest + 1},         {newest, all_to},
        {open_hour + 1, newest + 1}, {all_from, open_hour},          {all_from, open_day.start},
        {open_day.start + 1, all_to}, {open_day.start - 1, open_day.start + 1}};
    for (auto [from, to] : ranges) {
      for (Resolution res : {Resolution::k5m, Resolution::k1h, Resolution::k1d}) {
        ExpectSamePoints(Query(org, d, "temperature", from, to, res), Expected(truth, from, to, res, zone),
                         fmt::format("{}: {} [{}, {})", when, ResolutionName(res), FormatRfc3339(from),
                                     FormatRfc3339(to)));
      }
    }
    auto a = store_->QuerySeries({org, d, "temperature", kNow - 400 * kMsPerDay, all_to, Resolution::kAuto});
    ASSERT_TRUE(a);
    ExpectSamePoints(a->points, Expected(truth, kNow - 400 * kMsPerDay, all_to, a->resolution, zone),
                     when + ": auto");
  };
  ingest(minutes(start, 8, 1.5));
  check("first group");
  ingest(minutes(start + 8 * kMsPerMinute, 8, 2.5));
  check("same hour");
  ingest(minutes(start + 45 * kMsPerMinute, 20, 3.5));  // past the open hour
  check("next hour");
  ingest({{start + 3 * kMsPerMinute + 30000, -7.25}, {start + 4 * kMsPerMinute, 99}});  // late; repeat
  check("late reading into the folded hour");
  const TimestampMs day_end = zone.DayOf(newest).end;
  ingest(minutes(day_end - 20 * kMsPerMinute, 40, 4.75));  // past the open day
  check("next day");
  ingest({{day_end - 5 * kMsPerHour, 12.5}, {day_end - 10 * kMsPerMinute + 1000, -3.5}});
  check("late readings into the folded day and hour");
  Reopen();
  check("after a restart");
  ingest(minutes(newest + kMsPerMinute, 5, 6.25));
  ingest({{day_end - 7 * kMsPerHour, 8.5}});
  check("after a restart, more readings");
  ingest(minutes(newest + 2 * kMsPerDay + 3 * kMsPerHour, 3, 0.5));  // a gap of hours and days
  check("after a gap");
  ASSERT_TRUE(store_->RebuildRollups(org, d, start - kMsPerDay, kNow + kMsPerDay));
  check("rebuilt");
  ASSERT_TRUE(store_->Compact());
  ingest({{newest - 30 * kMsPerMinute, 1.25}, {newest + kMsPerMinute, 2.0}});
  check("compacted, then more");
  ASSERT_TRUE(store_->SetOrganizationTimeZone(org, "America/St_Johns"));  // -03:30
  zone = *TimeZone::Load("America/St_Johns");
  check("after a time-zone change");
  ingest(minutes(newest + kMsPerMinute, 70, 9.0));
  check("after a time-zone change, past the open hour");
}

TEST_P(StoreConformance, ARetentionRunKeepsTheOpenHourAndDayOfAQuietSeries) {
  OrgId org = NewOrg("Australia/Adelaide");  // +10:30 / +09:30
  DeviceId d = NewDevice(org);
  auto zone = *TimeZone::Load("Australia/Adelaide");
  // The series reports for a while, six years ago, then goes quiet: the 5-minute and 1-hour
  // rollups of its last hour and day pass their retention, the daily one stays.
  const TimestampMs old = FloorTo(kNow - 6 * 365 * kMsPerDay, kMsPerHour) + 20 * kMsPerMinute;
  clock_.Set(old + 2 * kMsPerHour);
  Truth truth;
  std::vector<Reading> batch;
  for (int i = 0; i < 90; ++i) {
    truth.readings[old + i * kMsPerMinute] = i * 0.5;
    batch.push_back(R(d, old + i * kMsPerMinute, i * 0.5));
  }
  Ingest(org, batch);
  clock_.Set(kNow);
  auto report = store_->RunRetention(false);
  ASSERT_TRUE(report);
  auto days = Query(org, d, "temperature", old - 2 * kMsPerDay, old + 2 * kMsPerDay, Resolution::k1d);
  ExpectSamePoints(days, Expected(truth, old - 2 * kMsPerDay, old + 2 * kMsPerDay, Resolution::k1d, zone),
                   "daily rollups after retention");
  EXPECT_TRUE(Query(org, d, "temperature", old - kMsPerDay, old + kMsPerDay, Resolution::k1h).empty());
  EXPECT_TRUE(Query(org, d, "temperature", old - kMsPerDay, old + kMsPerDay, Resolution::k5m).empty());
}

// ---- retention ----------------------------------------------------------------------------------

TEST_P(StoreConformance, RetentionOverridesAreValidated) {
  OrgId free_org = NewOrg("UTC", Tier::kFree), team = NewOrg("UTC", Tier::kTeam);
  EXPECT_EQ(store_->SetRetention(free_org, DataClass::kRawReadings, RetentionPeriod::Months(24))
                .error().code,
            ErrorCode::kPermissionDenied);
  auto shorter = store_->SetRetention(team, DataClass::kRawReadings, RetentionPeriod::Months(6));
  ASSERT_FALSE(shorter);
  EXPECT_NE(shorter.error().message.find("at least 13 months"), std::string::npos);
  ASSERT_TRUE(store_->SetRetention(team, DataClass::kRawReadings, RetentionPeriod::Months(24)));
  auto policy = store_->GetRetentionPolicy(team);
  ASSERT_TRUE(policy);
  EXPECT_EQ(policy->For(DataClass::kRawReadings), RetentionPeriod::Months(24));
  EXPECT_EQ(policy->For(DataClass::kRollup5m), RetentionPeriod::Months(60));
  EXPECT_EQ(store_->GetRetentionPolicy(free_org)->For(DataClass::kRawReadings), RetentionPeriod::Months(13));
}

TEST_P(StoreConformance, RetentionDeletesExactlyWhatIsTooOld) {
  OrgId org = NewOrg("UTC", Tier::kTeam), extended = NewOrg("UTC", Tier::kTeam);
  ASSERT_TRUE(store_->SetRetention(extended, DataClass::kRawReadings, RetentionPeriod::Months(24)));
  DeviceId d = NewDevice(org), e = NewDevice(extended);
  // Two years of hourly readings, ingested while they were recent (the clock moves).
  const TimestampMs start = kNow - 2 * 365 * kMsPerDay;
  clock_.Set(start);
  for (TimestampMs month = start; month < kNow; month += 30 * kMsPerDay) {
    clock_.Set(month + 30 * kMsPerDay);
    std::vector<Reading> a, b;
    for (TimestampMs t = month; t < std::min(kNow, month + 30 * kMsPerDay); t += kMsPerHour) {
      a.push_back(R(d, t, 1));
      b.push_back(R(e, t, 1));
    }
    Ingest(org, a);
    Ingest(extended, b);
  }
  clock_.Set(kNow);
  ASSERT_TRUE(store_->Compact());
  const TimestampMs cutoff = SubtractCalendarMonthsUtc(kNow, 13);
  auto count_raw = [&](OrgId o, DeviceId dev, TimestampMs from, TimestampMs to) {
    return static_cast<std::int64_t>(Query(o, dev, "temperature", from, to, Resolution::kRaw).size());
  };
  std::int64_t old_d = count_raw(org, d, start - 1, cutoff);
  ASSERT_GT(old_d, 0);
  std::int64_t kept_d = count_raw(org, d, cutoff, kNow + 1);
  std::int64_t all_e = count_raw(extended, e, start - 1, kNow + 1);

  auto dry = store_->RunRetention(/*dry_run=*/true);
  ASSERT_TRUE(dry);
  EXPECT_EQ(dry->classes[0].data_class, DataClass::kRawReadings);
  EXPECT_EQ(dry->classes[0].rows, old_d);
  EXPECT_EQ(count_raw(org, d, start - 1, cutoff), old_d);  // a dry run deletes nothing

  auto real = store_->RunRetention(false);
  ASSERT_TRUE(real);
  EXPECT_EQ(real->classes[0].rows, old_d);
  EXPECT_EQ(count_raw(org, d, start - 1, cutoff), 0);
  EXPECT_EQ(count_raw(org, d, cutoff, kNow + 1), kept_d);
  EXPECT_EQ(count_raw(extended, e, start - 1, kNow + 1), all_e);  // 24 months kept
  // Rollups are kept for 5 years / forever: the old days still have their daily summary.
  auto days = Query(org, d, "temperature", start, cutoff, Resolution::k1d);
  EXPECT_GE(days.size(), 300u);
  // Readings older than retention are refused at ingest.
  auto late = Ingest(org, {R(d, cutoff - kMsPerHour, 1)});
  ASSERT_EQ(late.rejected.size(), 1u);
  EXPECT_EQ(late.rejected[0].reason, RejectReason::kOlderThanRetention);
  // Running it again finds nothing.
  EXPECT_EQ(store_->RunRetention(false)->classes[0].rows, 0);
}

TEST_P(StoreConformance, RollupRetentionKeepsDailyForever) {
  OrgId org = NewOrg();
  DeviceId d = NewDevice(org);
  const TimestampMs old = kNow - 6 * 365 * kMsPerDay;
  clock_.Set(old + kMsPerHour);
  Ingest(org, {R(d, old, 1), R(d, old + 60000, 2)});
  ASSERT_TRUE(store_->Compact());
  clock_.Set(kNow);
  auto report = store_->RunRetention(false);
  ASSERT_TRUE(report);
  std::map<DataClass, std::int64_t> rows;
  for (const auto& c : report->classes) rows[c.data_class] = c.rows;
  EXPECT_EQ(rows[DataClass::kRawReadings], 2);
  EXPECT_EQ(rows[DataClass::kRollup5m], 1);
  EXPECT_EQ(rows[DataClass::kRollup1h], 1);
  EXPECT_EQ(rows[DataClass::kRollup1d], 0);
  auto days = Query(org, d, "temperature", old - kMsPerDay, old + kMsPerDay, Resolution::k1d);
  ASSERT_EQ(days.size(), 1u);
  EXPECT_EQ(days[0].count, 2);
  EXPECT_TRUE(Query(org, d, "temperature", old - kMsPerDay, old + kMsPerDay, Resolution::k5m).empty());
}

// ---- tokens, users, sites, latest, request log ---------------------------------------------------

TEST_P(StoreConformance, TokensAreStoredHashedScopedAndExpireOnlyEarlier) {
  OrgId org = NewOrg(), other = NewOrg();
  DeviceId d = NewDevice(org);
  TokenRecord t;
  t.public_id = "abc123";
  t.kind = TokenKind::kDevice;
  t.org_id = org;
  t.device = d;
  t.secret_hash = "$2b$10$hash";
  auto created = store_->CreateToken(t);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_GT(created->id, 0);
  EXPECT_EQ(created->created_at, kNow);
  auto found = store_->FindToken("abc123");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->device, d);
  EXPECT_FALSE(found->expires_at);
  EXPECT_EQ(store_->FindToken("nope").error().code, ErrorCode::kNotFound);
  // The public id is unique; a device of another organisation cannot get a token here.
  EXPECT_FALSE(store_->CreateToken(t));
  TokenRecord foreign = t;
  foreign.public_id = "xyz";
  foreign.org_id = other;
  EXPECT_EQ(store_->CreateToken(foreign).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->ExpireToken(other, created->id, kNow).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(store_->ExpireToken(org, created->id, kNow + 1000));
  ASSERT_TRUE(store_->ExpireToken(org, created->id, kNow + 5000));  // never extends
  EXPECT_EQ(store_->FindToken("abc123")->expires_at, kNow + 1000);
  ASSERT_TRUE(store_->TouchTokens({{created->id, kNow + 10}}));
  EXPECT_EQ(store_->FindToken("abc123")->last_used_at, kNow + 10);
  EXPECT_EQ(store_->ListTokens(org)->size(), 1u);
  EXPECT_EQ(store_->ListTokens(other)->size(), 0u);
}

TEST_P(StoreConformance, UsersSitesAndDeviceUpdates) {
  OrgId org = NewOrg(), other = NewOrg();
  auto u = store_->CreateUser(org, "ana@example.com", Role::kOwner);
  ASSERT_TRUE(u);
  EXPECT_EQ(store_->CreateUser(org, "ana@example.com", Role::kViewer).error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->CreateUser(org, "not-an-email", Role::kViewer).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetUser(other, u->id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetUser(org, u->id)->role, Role::kOwner);

  auto site = store_->CreateSite(org, "Kitchen");
  ASSERT_TRUE(site);
  auto renamed = store_->UpdateSite(org, site->id, "Bar", true);
  ASSERT_TRUE(renamed);
  EXPECT_EQ(renamed->name, "Bar");
  EXPECT_TRUE(renamed->auto_register);
  EXPECT_EQ(store_->UpdateSite(other, site->id, "X", std::nullopt).error().code, ErrorCode::kNotFound);
  DeviceId d = NewDevice(org, "S1");
  NewDevice(org, "S2");
  DeviceUpdate up;
  up.site = site->id;
  up.name = "Bar fridge";
  auto moved = store_->UpdateDevice(org, d, up);
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->site_id, site->id);
  EXPECT_EQ(moved->name, "Bar fridge");
  DeviceUpdate clash;
  clash.serial = std::optional<std::string>("S2");
  EXPECT_EQ(store_->UpdateDevice(org, d, clash).error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->UpdateDevice(other, d, up).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->DeleteSite(org, site->id).error().code, ErrorCode::kFailedPrecondition);
  DeviceUpdate away;
  away.site = std::optional<SiteId>();
  ASSERT_TRUE(store_->UpdateDevice(org, d, away));
  EXPECT_EQ(store_->DeleteSite(other, site->id).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->DeleteSite(org, site->id));
  EXPECT_EQ(store_->GetSite(org, site->id).error().code, ErrorCode::kNotFound);
}

TEST_P(StoreConformance, DeviceProfileIsStoredValidatedAndScoped) {
  OrgId org = NewOrg(), other = NewOrg();
  DeviceProfile p;
  p.target_min = 2;
  p.target_max = 8;
  p.expected_interval_s = 300;
  p.medicine_storage = true;
  p.calibration_date = "2025-03-01";
  p.calibration_due = "2026-03-01";
  auto created = store_->CreateDevice({org, "Vaccines", std::nullopt, std::nullopt, p});
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->profile, p);
  EXPECT_EQ(store_->GetDevice(org, created->id)->profile, p);
  Reopen();
  EXPECT_EQ(store_->ListDevices(org)->front().profile, p);

  DeviceUpdate up;
  up.name = "Vaccines 2";  // the profile stays when the update does not name it
  EXPECT_EQ(store_->UpdateDevice(org, created->id, up)->profile, p);
  DeviceProfile freezer;
  freezer.target_max = -18;
  up.profile = freezer;
  EXPECT_EQ(store_->UpdateDevice(org, created->id, up)->profile, freezer);
  EXPECT_EQ(store_->UpdateDevice(other, created->id, up).error().code, ErrorCode::kNotFound);

  for (auto bad : std::vector<DeviceProfile>{
           DeviceProfile{8, 2}, DeviceProfile{std::nan(""), std::nullopt},
           DeviceProfile{std::nullopt, std::nullopt, 0},
           DeviceProfile{std::nullopt, std::nullopt, std::nullopt, false, "2025-02-30"},
           DeviceProfile{std::nullopt, std::nullopt, std::nullopt, false, "2025-03-01", "2025-02-01"}}) {
    up.profile = bad;
    EXPECT_EQ(store_->UpdateDevice(org, created->id, up).error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(store_->CreateDevice({org, "X", std::nullopt, std::nullopt, bad}).error().code,
              ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(store_->GetDevice(org, created->id)->profile, freezer);  // nothing half-written
  EXPECT_EQ(store_->ListDevices(org)->size(), 1u);
}

TEST_P(StoreConformance, LatestCoversCompactedAndRecentReadings) {
  OrgId org = NewOrg(), other = NewOrg();
  DeviceId d = NewDevice(org);
  Ingest(org, {R(d, kNow - 3000, 3.5), R(d, kNow - 2000, 61, "humidity")});
  ASSERT_TRUE(store_->Compact());
  Ingest(org, {R(d, kNow - 1000, 3.7)});
  auto latest = store_->Latest(org, d);
  ASSERT_TRUE(latest);
  ASSERT_EQ(latest->size(), 2u);
  EXPECT_EQ((*latest)[0].metric, "humidity");
  EXPECT_EQ((*latest)[0].ts, kNow - 2000);
  EXPECT_EQ((*latest)[1].metric, "temperature");
  EXPECT_EQ((*latest)[1].value, 3.7);
  EXPECT_EQ((*latest)[1].unit, "Cel");
  EXPECT_EQ(store_->Latest(other, d).error().code, ErrorCode::kNotFound);
  // The newest reading moves into the (rewritten) newest chunk, then a late one joins it: the
  // answer follows the chunk's contents, never a remembered earlier chunk.
  ASSERT_TRUE(store_->Compact());
  latest = store_->Latest(org, d);
  ASSERT_TRUE(latest);
  EXPECT_EQ((*latest)[1].ts, kNow - 1000);
  EXPECT_EQ((*latest)[1].value, 3.7);
  Ingest(org, {R(d, kNow - 2500, 9.9), R(d, kNow - 500, 3.8)});
  ASSERT_TRUE(store_->Compact());
  latest = store_->Latest(org, d);
  ASSERT_TRUE(latest);
  EXPECT_EQ((*latest)[1].ts, kNow - 500);
  EXPECT_EQ((*latest)[1].value, 3.8);
}

TEST_P(StoreConformance, LatestOfOrganizationIsLatestOfEachDeviceOfThatOrganisation) {
  OrgId org = NewOrg(), other = NewOrg();
  DeviceId a = NewDevice(org), quiet = NewDevice(org), b = NewDevice(org), foreign = NewDevice(other);
  Ingest(org, {R(a, kNow - 5000, 3.5), R(a, kNow - 4000, 61, "humidity"), R(b, kNow - 4500, 7)});
  Ingest(other, {R(foreign, kNow - 100, 99)});
  ASSERT_TRUE(store_->Compact());
  Ingest(org, {R(a, kNow - 1000, 3.7), R(b, kNow - 6000, 1)});  // b's is late: not its latest
  auto all = store_->LatestOfOrganization(org);
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 2u) << "the quiet device and the other organisation's are not in it";
  auto same = [](const std::vector<LatestValue>& x, const std::vector<LatestValue>& y) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (x[i].metric != y[i].metric || x[i].unit != y[i].unit || x[i].ts != y[i].ts || x[i].value != y[i].value) {
        return false;
      }
    }
    return true;
  };
  EXPECT_EQ((*all)[0].device, std::min(a, b));
  EXPECT_EQ((*all)[1].device, std::max(a, b));
  for (const auto& d : *all) {
    auto one = store_->Latest(org, d.device);
    ASSERT_TRUE(one);
    EXPECT_TRUE(same(d.values, *one)) << "device " << d.device;
  }
  const auto& of_a = (*all)[(*all)[0].device == a ? 0 : 1].values;
  ASSERT_EQ(of_a.size(), 2u);
  EXPECT_EQ(of_a[1].metric, "temperature");
  EXPECT_EQ(of_a[1].ts, kNow - 1000);
  const auto& of_b = (*all)[(*all)[0].device == b ? 0 : 1].values;
  ASSERT_EQ(of_b.size(), 1u);
  EXPECT_EQ(of_b[0].ts, kNow - 4500);
  (void)quiet;
  auto theirs = store_->LatestOfOrganization(other);
  ASSERT_TRUE(theirs);
  ASSERT_EQ(theirs->size(), 1u);
  EXPECT_EQ((*theirs)[0].device, foreign);
}

TEST_P(StoreConformance, RequestLogIsWrittenAndKeptThirtyDays) {
  OrgId org = NewOrg();
  store_->LogRequests({ApiRequestLog{kNow - 31 * kMsPerDay, org, "user:1", "GET", "/api/v1/devices", 200, 150, "127.0.0.1"},
                       ApiRequestLog{kNow - kMsPerDay, org, "user:1", "GET", "/api/v1/devices", 200, 120, "127.0.0.1"},
                       ApiRequestLog{kNow - 40 * kMsPerDay, std::nullopt, "", "POST", "/api/v1/ingest", 401, 90, "127.0.0.1"}});
  ASSERT_TRUE(store_->Compact());  // a writer round trip: the log rows are flushed by then
  auto dry = store_->RunRetention(true);
  ASSERT_TRUE(dry);
  std::int64_t logs = 0;
  for (const auto& c : dry->classes) if (c.data_class == DataClass::kApiRequestLogs) logs = c.rows;
  EXPECT_EQ(logs, 2);
  auto real = store_->RunRetention(false);
  for (const auto& c : real->classes) if (c.data_class == DataClass::kApiRequestLogs) logs = c.rows;
  EXPECT_EQ(logs, 2);
  auto again = store_->RunRetention(true);
  for (const auto& c : again->classes) if (c.data_class == DataClass::kApiRequestLogs) logs = c.rows;
  EXPECT_EQ(logs, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, testing::ValuesIn(Backends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace opensense::store
