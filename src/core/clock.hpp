// Time is injected: production uses SystemClock, tests a ManualClock they move by hand.
#pragma once

#include <atomic>

#include "core/types.hpp"

namespace opensense {

// Thread-safe source of the current time.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimestampMs NowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimestampMs NowMs() const override;
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimestampMs now) : now_(now) {}
  TimestampMs NowMs() const override { return now_.load(); }
  void Set(TimestampMs now) { now_.store(now); }
  void Advance(TimestampMs delta) { now_.fetch_add(delta); }

 private:
  std::atomic<TimestampMs> now_;
};

}  // namespace opensense
