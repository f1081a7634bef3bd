// The schedule: classes, pruning over 40 simulated days with an injected clock, off-site copies
// and the missed-backup rule.
#include "backup/schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/clock.hpp"
#include "core/time_zone.hpp"

namespace opensense::backup {
namespace {

TimestampMs At(const char* text) { return *ParseTimestamp(text); }

TEST(Schedule, ClassesAreTheFirstOfEachDayAndWeek) {
  // 2026-01-04 is a Sunday, 2026-01-05 a Monday.
  std::vector<BackupRecord> r = {{"sun-1", At("2026-01-04T01:00:00Z")}, {"sun-0", At("2026-01-04T00:00:00Z")},
                                 {"sun-2", At("2026-01-04T02:00:00Z")}, {"mon-0", At("2026-01-05T00:10:00Z")},
                                 {"mon-1", At("2026-01-05T01:10:00Z")}, {"tue-0", At("2026-01-06T00:10:00Z")}};
  auto c = ClassifyBackups(r);
  EXPECT_EQ(c, (std::vector<BackupClass>{BackupClass::kHourly, BackupClass::kWeekly, BackupClass::kHourly,
                                          BackupClass::kWeekly, BackupClass::kHourly, BackupClass::kDaily}));
  EXPECT_EQ(IsoWeekIndex(At("2026-01-05T00:00:00Z")), IsoWeekIndex(At("2026-01-11T23:59:59Z")));
  EXPECT_EQ(IsoWeekIndex(At("2026-01-05T00:00:00Z")), IsoWeekIndex(At("2026-01-04T23:59:59Z")) + 1);
  EXPECT_EQ(IsoWeekIndex(-1), IsoWeekIndex(0));  // 1969-12-31 and 1970-01-01: same week
}

// Hourly backups for 40 days, pruned after each one as the scheduler does. Drills pass for the
// first 20 days, then fail: the newest verified backup is an old hourly one and must survive.
TEST(Schedule, PruningOver40DaysKeepsExactlyThePromisedSets) {
  const TimestampMs t0 = At("2026-01-05T00:30:00Z");
  ManualClock clock(t0);
  RetentionSchedule schedule;
  std::vector<BackupRecord> kept;
  std::set<std::string> ever_pruned;
  std::optional<TimestampMs> newest_copy;
  std::vector<TimestampMs> offsite_copies;
  const int hours = 40 * 24;
  const TimestampMs last_verified_at = t0 + (20 * 24 - 5) * kMsPerHour;  // 19 days 19 hours
  for (int h = 0; h < hours; ++h) {
    const TimestampMs now = clock.NowMs();
    kept.push_back({std::to_string(now), now, now <= last_verified_at});
    if (OffsiteCopyDue(newest_copy, now)) {
      offsite_copies.push_back(now);
      newest_copy = now;
    }
    auto plan = PlanPrune(kept, now, schedule);
    std::vector<BackupRecord> next;
    for (std::size_t i = 0; i < kept.size(); ++i) {
      ASSERT_EQ(plan[i].name, kept[i].name);
      if (plan[i].keep) next.push_back(kept[i]);
      else ever_pruned.insert(kept[i].name);
    }
    // The newest verified backup is never pruned.
    ASSERT_TRUE(std::any_of(next.begin(), next.end(), [&](const BackupRecord& r) {
      return r.created_at == std::min(now, last_verified_at);
    })) << "hour " << h;
    kept = std::move(next);
    clock.Advance(kMsPerHour);
  }
  const TimestampMs now = t0 + (hours - 1) * kMsPerHour;
  // The promise, computed independently: every backup of the last 7 days, the first backup
  // (00:30) of every day of the last 30 days, and the newest verified one.
  std::set<TimestampMs> expected;
  for (int h = 0; h < hours; ++h) {
    const TimestampMs t = t0 + h * kMsPerHour;
    const bool first_of_day = h % 24 == 0;
    if (now - t < 7 * kMsPerDay || (first_of_day && now - t < 30 * kMsPerDay) || t == last_verified_at) {
      expected.insert(t);
    }
  }
  std::set<TimestampMs> actual;
  for (const auto& r : kept) actual.insert(r.created_at);
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(actual.size(), 7u * 24 + 23 + 1);
  EXPECT_TRUE(actual.count(last_verified_at));
  // Off-site: the first backup of each ISO week (t0 is a Monday): days 0, 7, ..., 35.
  ASSERT_EQ(offsite_copies.size(), 6u);
  for (std::size_t w = 0; w < offsite_copies.size(); ++w) {
    EXPECT_EQ(offsite_copies[w], t0 + static_cast<TimestampMs>(w) * 7 * kMsPerDay);
  }
  // Of the kept ones, the weekly ones are the first kept of each week.
  auto classes = ClassifyBackups(kept);
  std::set<TimestampMs> weekly;
  for (std::size_t i = 0; i < kept.size(); ++i) {
    if (classes[i] == BackupClass::kWeekly) weekly.insert(kept[i].created_at);
  }
  // (Week 1's Monday expired; its first kept backup, day 10, now stands for it.)
  EXPECT_EQ(weekly, (std::set<TimestampMs>{t0 + 10 * kMsPerDay, t0 + 14 * kMsPerDay, t0 + 21 * kMsPerDay, t0 + 28 * kMsPerDay,
                                           t0 + 35 * kMsPerDay}));
}

TEST(Schedule, OffsitePruningKeepsTwelveWeeksAndTheNewestVerified) {
  const TimestampMs t0 = At("2026-01-05T00:30:00Z");
  std::vector<BackupRecord> copies;
  for (int w = 0; w < 20; ++w) copies.push_back({std::to_string(w), t0 + w * 7 * kMsPerDay, w == 3});
  const TimestampMs now = t0 + 19 * 7 * kMsPerDay + kMsPerHour;
  auto plan = PlanOffsitePrune(copies, now, RetentionSchedule{});
  std::vector<int> kept;
  for (int w = 0; w < 20; ++w) {
    if (plan[static_cast<std::size_t>(w)].keep) kept.push_back(w);
  }
  EXPECT_EQ(kept, (std::vector<int>{3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}));
  EXPECT_EQ(plan[3].reason, "newest verified off-site copy");
}

TEST(Schedule, NewestBackupIsKeptEvenWhenEverythingExpired) {
  std::vector<BackupRecord> r = {{"a", 0}, {"b", kMsPerHour}};
  auto plan = PlanPrune(r, 100 * kMsPerDay, RetentionSchedule{});
  EXPECT_FALSE(plan[0].keep);
  EXPECT_TRUE(plan[1].keep);
  EXPECT_EQ(plan[1].reason, "newest backup");
}

TEST(Schedule, OverdueAfterTwoIntervals) {
  EXPECT_FALSE(BackupOverdue(std::nullopt, 0, 2 * kMsPerHour, kMsPerHour));
  EXPECT_TRUE(BackupOverdue(std::nullopt, 0, 2 * kMsPerHour + 1, kMsPerHour));
  EXPECT_FALSE(BackupOverdue(5 * kMsPerHour, 0, 7 * kMsPerHour, kMsPerHour));
  EXPECT_TRUE(BackupOverdue(5 * kMsPerHour, 0, 7 * kMsPerHour + 1, kMsPerHour));
}

}  // namespace
}  // namespace opensense::backup
