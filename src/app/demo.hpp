// `opensense serve --demo`: a demo organisation whose simulated fridges report through the real
// writer: 14 days of history back-filled, then live readings every minute.
#pragma once

#include <atomic>
#include <functional>

#include "core/clock.hpp"
#include "store/store.hpp"

namespace opensense::app {

struct DemoOptions {
  int devices = 6;
  int history_days = 14;
  std::uint64_t seed = 42;
  TimestampMs step_ms = kMsPerMinute;
};

struct DemoHandle {
  OrgId org = 0;
  std::vector<DeviceId> devices;
  bool created = false;  // false when an earlier demo organisation was reused
};

inline constexpr std::string_view kDemoOrgName = "OpenSense Demo";

// Creates (or finds) the demo organisation and its devices, back-fills history when it was
// created, and reports progress through `progress` (0..100).
Result<DemoHandle> SetUpDemo(store::Store* store, const Clock* clock, const DemoOptions& options,
                             const std::function<void(int percent)>& progress);

// Generates live readings until `stop` becomes true; returns after the last batch committed.
void RunDemoLive(store::Store* store, const Clock* clock, const DemoOptions& options,
                 const DemoHandle& demo, const std::atomic<bool>& stop);

}  // namespace opensense::app
