#include "ops/scheduler.hpp"

#include <gtest/gtest.h>

#include "core/time_zone.hpp"
#include "store/test_util.hpp"

namespace opensense::ops {
namespace {

constexpr TimestampMs kNow = 1768478400000;  // 2026-01-15T12:00:00Z

TEST(Scheduler, RunsRetentionWhenDueAndNotBefore) {
  store::ScratchDir dir("sched");
  ManualClock clock(kNow - 14 * 30 * kMsPerDay);
  auto options = store::Backends()[0].options(dir.path());
  options.clock = &clock;
  auto opened = store::OpenStore(options);
  ASSERT_TRUE(opened);
  auto& st = **opened;
  auto org = st.CreateOrganization({"Org", "UTC", Tier::kFree});
  auto dev = st.CreateDevice({org->id, "Fridge", std::nullopt, std::nullopt});
  // A reading that will be 14 months old "now".
  const TimestampMs old = clock.NowMs() - kMsPerHour;
  ASSERT_EQ(st.Ingest(org->id, {Reading{dev->id, "temperature", "", old, 4}}).get()->accepted, 1u);
  clock.Set(kNow);

  SchedulerOptions so;
  so.retention_interval_ms = kMsPerHour;
  so.tick_ms = 1000;
  Scheduler scheduler(&st, &clock, so);
  EXPECT_EQ(scheduler.RunDue(kNow), 1);  // first run: due at once
  auto raw = st.QuerySeries({org->id, dev->id, "temperature", old - 1, kNow, Resolution::kRaw});
  ASSERT_TRUE(raw);
  EXPECT_TRUE(raw->points.empty()) << "the 14-month-old reading should be gone";
  EXPECT_EQ(scheduler.RunDue(kNow + kMsPerHour - 1), 0);
  EXPECT_EQ(scheduler.RunDue(kNow + kMsPerHour), 1);
}

TEST(Scheduler, AddedJobsRunAtTheirIntervalAndAFailingJobDoesNotStopOthers) {
  store::ScratchDir dir("sched-jobs");
  ManualClock clock(kNow);
  auto options = store::Backends()[0].options(dir.path());
  options.clock = &clock;
  auto opened = store::OpenStore(options);
  ASSERT_TRUE(opened);
  SchedulerOptions so;
  so.retention_interval_ms = 1000 * kMsPerDay;
  Scheduler scheduler(opened->get(), &clock, so);
  std::vector<TimestampMs> a_runs;
  int b_runs = 0;
  scheduler.AddJob("throws", kMsPerMinute, [](TimestampMs) { throw std::runtime_error("boom"); });
  scheduler.AddJob("a", kMsPerMinute, [&](TimestampMs now) { a_runs.push_back(now); });
  scheduler.AddJob("b", 10 * kMsPerMinute, [&](TimestampMs) { ++b_runs; });
  scheduler.RunDue(kNow);  // retention + the three jobs (first run: due at once)
  scheduler.RunDue(kNow + kMsPerMinute - 1);
  scheduler.RunDue(kNow + kMsPerMinute);
  scheduler.RunDue(kNow + 10 * kMsPerMinute);
  EXPECT_EQ(a_runs, (std::vector<TimestampMs>{kNow, kNow + kMsPerMinute, kNow + 10 * kMsPerMinute}));
  EXPECT_EQ(b_runs, 2);
}

TEST(Scheduler, StartAndStopAreClean) {
  store::ScratchDir dir("sched");
  ManualClock clock(kNow);
  auto options = store::Backends()[0].options(dir.path());
  options.clock = &clock;
  auto opened = store::OpenStore(options);
  ASSERT_TRUE(opened);
  SchedulerOptions so;
  so.tick_ms = 10;
  Scheduler scheduler(opened->get(), &clock, so);
  scheduler.Start();
  scheduler.Stop();
  scheduler.Stop();  // idempotent
}

}  // namespace
}  // namespace opensense::ops
