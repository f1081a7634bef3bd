#include "ops/scheduler.hpp"

#include <spdlog/spdlog.h>

namespace opensense::ops {

Scheduler::Scheduler(store::Store* store, const Clock* clock, SchedulerOptions options)
    : store_(store), clock_(clock), options_(options) {}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  // The first retention run comes one tick after start, so start-up stays fast.
  next_retention_ = clock_->NowMs() + options_.tick_ms;
  for (auto& j : jobs_) j.next = clock_->NowMs() + options_.tick_ms;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      RunDue(clock_->NowMs());
      lock.lock();
      cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms), [this] { return stop_; });
    }
  });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int Scheduler::RunDue(TimestampMs now) {
  int ran = 0;
  if (now >= next_retention_) {
    next_retention_ = now + options_.retention_interval_ms;
    ++ran;
    auto report = store_->RunRetention(/*dry_run=*/false);
    MetricsRegistry* m = options_.metrics;
    if (m != nullptr) {
      m->GetCounter("opensense_retention_runs_total", "Retention runs by result.",
                    {{"result", report ? "ok" : "error"}})
          .Inc();
    }
    if (!report) {
      spdlog::error("retention: {}", report.error().message);
    } else {
      if (m != nullptr) {
        m->GetGauge("opensense_retention_last_success_timestamp_seconds",
                    "When retention last completed (Unix time).")
            .Set(static_cast<double>(now) / 1000.0);
      }
      for (const auto& c : report->classes) {
        if (m != nullptr) {
          m->GetCounter("opensense_retention_deleted_rows_total", "Rows deleted by retention, by data class.",
                        {{"data_class", std::string(DataClassName(c.data_class))}})
              .Inc(static_cast<std::uint64_t>(c.rows));
        }
        if (c.rows > 0) {
          spdlog::info("retention: deleted {} {} rows", c.rows, DataClassName(c.data_class));
        }
      }
    }
  }
  for (auto& j : jobs_) {
    if (now < j.next) continue;
    j.next = now + j.interval_ms;
    ++ran;
    try {
      j.fn(now);
    } catch (const std::exception& e) {
      spdlog::error("scheduler: job {} failed: {}", j.name, e.what());
    }
  }
  return ran;
}

void Scheduler::AddJob(std::string name, TimestampMs interval_ms, std::function<void(TimestampMs)> fn) {
  jobs_.push_back(Job{std::move(name), interval_ms, std::move(fn), 0});
}

}  // namespace opensense::ops
