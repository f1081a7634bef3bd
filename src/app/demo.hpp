// `opensense serve --demo`: a demo organisation whose simulated fridges report through the real
// writer: 14 days of history back-filled, then live readings every minute.
#pragma once

#include <atomic>
#include <functional>
#include <optional>

#include "core/clock.hpp"
#include "store/store.hpp"

namespace opensense::alerts {
class AlertService;
}

namespace opensense::app {

struct DemoHandle;

struct DemoOptions {
  int devices = 6;
  int history_days = 14;
  std::uint64_t seed = 42;
  TimestampMs step_ms = kMsPerMinute;
  // Called once the demo organisation and its devices exist, before history is back-filled
  // (serve creates the demo's alert rules here, so the back-filled hours are judged).
  std::function<Status(const DemoHandle&)> before_backfill;
};

struct DemoHandle {
  OrgId org = 0;
  std::vector<DeviceId> devices;
  std::optional<DeviceId> failing_device;  // the unit whose compressor keeps failing
  bool created = false;  // false when an earlier demo organisation was reused
};

inline constexpr std::string_view kDemoOrgName = "OpenSense Demo";
// The demo owner's address: the demo's alert rules notify it (the dev mailer logs the message).
// A reserved name (RFC 6761 .localhost) that the mail checks accept, so the demo owner can ask
// for a sign-in link and read it in the dev mailer's log line.
inline constexpr std::string_view kDemoOwnerEmail = "demo@opensense.localhost";

// The demo's alert rules: the failing fridge above 8 °C for 10 minutes is critical (judged from
// `judge_from`, so back-filled hours count), and any device silent for 30 minutes is a warning;
// both notify kDemoOwnerEmail.
Status CreateDemoAlertRules(alerts::AlertService* service, const DemoHandle& demo, TimestampMs judge_from);

// Creates (or finds) the demo organisation and its devices, back-fills history when it was
// created, and reports progress through `progress` (0..100).
Result<DemoHandle> SetUpDemo(store::Store* store, const Clock* clock, const DemoOptions& options,
                             const std::function<void(int percent)>& progress);

// Generates live readings until `stop` becomes true; returns after the last batch committed.
void RunDemoLive(store::Store* store, const Clock* clock, const DemoOptions& options,
                 const DemoHandle& demo, const std::atomic<bool>& stop);

}  // namespace opensense::app
