// The scheduler runs timed maintenance against a Store: today the retention job; offline
// checks, escalations, backups and restore drills join it with their issues.
//
// Threads: Start() runs a background thread; Stop() ends it and waits. RunDue() does the work
// that is due at a given time and is what tests call, with a ManualClock.
#pragma once

#include <condition_variable>
#include <functional>
#include <string>
#include <vector>
#include <mutex>
#include <thread>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "store/store.hpp"

namespace opensense::ops {

struct SchedulerOptions {
  // How often the retention job runs (it deletes in small transactions, see Store).
  TimestampMs retention_interval_ms = kMsPerHour;
  // How often the thread wakes up to look for due work.
  TimestampMs tick_ms = 1000;
  // Where the jobs count their runs (opensense_retention_*); nullptr: not counted.
  MetricsRegistry* metrics = nullptr;
};

class Scheduler {
 public:
  Scheduler(store::Store* store, const Clock* clock, SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void Start();
  void Stop();
  // Runs every job whose time has come; returns how many ran.
  int RunDue(TimestampMs now);

  // Adds a periodic job (alert ticker, escalations, backups, restore drills...). `fn` gets the
  // current time; it runs on the scheduler thread, first one tick after Start() (or at the first
  // RunDue), then every `interval_ms`. Call before Start().
  void AddJob(std::string name, TimestampMs interval_ms, std::function<void(TimestampMs now)> fn);

 private:
  store::Store* store_;
  const Clock* clock_;
  SchedulerOptions options_;
  TimestampMs next_retention_ = 0;
  struct Job {
    std::string name;
    TimestampMs interval_ms = 0;
    std::function<void(TimestampMs)> fn;
    TimestampMs next = 0;
  };
  std::vector<Job> jobs_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace opensense::ops
