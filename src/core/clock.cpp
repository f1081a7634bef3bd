#include "core/clock.hpp"

#include <chrono>

namespace opensense {

TimestampMs SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace opensense
