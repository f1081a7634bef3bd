// The rule engine: a pure state machine. (rule, rule state of one device, readings in timestamp
// order or a tick at time t) -> new rule state + alert transitions. No I/O, no clock, no
// threads: the service (service.hpp) feeds it and stores what comes out.
//
// Per rule and device the state is clear, pending (out of range, the delay is running) or
// firing (an open alert). A condition that clears before its delay creates no alert. Once out
// of range the value counts as out until it is back inside by the hysteresis margin. Readings
// older than the newest one judged (back-filled out of order) are judged in a separate pass
// from a clear state; an excursion found there is raised late. An alert is also marked late
// when it fires more than kLateAfterMs after the reading that fired it (a device that uploads
// its buffer after an outage).
#pragma once

#include <climits>
#include <span>
#include <string>
#include <vector>

#include "alerts/rule.hpp"

namespace opensense::alerts {

inline constexpr TimestampMs kNever = INT64_MIN;
// An alert that fires this long after the reading that fired it is marked late.
inline constexpr TimestampMs kLateAfterMs = 5 * kMsPerMinute;
// A pending threshold condition fires on a tick only if the device reported within this long
// (otherwise the next reading decides).
inline constexpr TimestampMs kFreshReadingMs = 5 * kMsPerMinute;

enum class Phase { kClear, kPending, kFiring };
std::string_view PhaseName(Phase phase);

// The state of one rule for one device. Persisted (as JSON) by the service whenever a
// significant field changes, so a restart neither loses a pending delay nor re-fires.
struct RuleState {
  Phase phase = Phase::kClear;
  TimestampMs since = 0;          // onset of the current excursion (device time)
  TimestampMs last_ts = kNever;   // newest reading judged (device time); offline: last seen
  double last_value = 0;
  bool last_out = false;          // the newest reading was out of range
  AlertId alert = 0;              // the open alert while firing (set by the service)
  bool acknowledged = false;
  TimestampMs fired_at = 0;       // device time of the firing reading
  TimestampMs raised_at = 0;      // server time the alert was raised (escalation counts from it)
  double peak = 0;                // the worst value of the excursion
  TimestampMs peak_at = 0;
  TimestampMs out_ms = 0;         // time out of range in this excursion
  int escalation_level = 0;       // escalation steps already notified
  TimestampMs last_notice_at = 0; // server time of the last notice (fired or reminder)
  TimestampMs offline_base = kNever;  // server-time floor for "last seen" (clock jumps)
  TimestampMs last_tick = kNever;     // the newest tick (server time)
  bool operator==(const RuleState&) const = default;
};

std::string RuleStateToJson(const RuleState& s);
Result<RuleState> RuleStateFromJson(std::string_view text);

enum class TransitionKind { kFired, kResolved, kEscalated, kReminder };
std::string_view TransitionName(TransitionKind kind);

struct Transition {
  TransitionKind kind = TransitionKind::kFired;
  DeviceId device = 0;
  TimestampMs at = 0;         // device time (fired/resolved by a reading), server time otherwise
  bool late = false;          // fired: the excursion was found late
  bool late_pass = false;     // from the out-of-order pass: kResolved closes the kFired before it
  double value = 0;           // the reading that fired or resolved it (offline: minutes silent)
  double peak = 0;
  TimestampMs peak_at = 0;
  TimestampMs since = 0;      // onset of the excursion
  TimestampMs out_ms = 0;     // time out of range so far
  int level = 0;              // kEscalated: the step (1-based) now notified
  AlertId alert = 0;          // the open alert it concerns (state.alert when it happened)
};

struct Sample {
  TimestampMs ts = 0;
  double value = 0;
};

struct EvalContext {
  TimestampMs now = 0;               // server time of this evaluation
  ActiveCalendar* calendar = nullptr;
  // Ticks further apart than this are a clock jump (0: never).
  TimestampMs max_tick_gap_ms = 0;
};

// Judges readings of one device for one rule: threshold and battery rules the rule's metric
// (samples of that metric only), offline rules any reading (values ignored). `samples` must
// be sorted by ts.
void Evaluate(const Rule& rule, RuleState& state, DeviceId device, std::span<const Sample> samples,
              const EvalContext& ctx, std::vector<Transition>* out);

// Time-based conditions at server time ctx.now: offline, delays expiring, escalation, reminders.
void Tick(const Rule& rule, RuleState& state, DeviceId device, const EvalContext& ctx,
          std::vector<Transition>* out);

// Someone acknowledged the open alert: no more escalations or reminders.
void Acknowledge(RuleState& state);
// An admin resolved the open alert by hand: back to clear (a condition that persists raises a
// new alert after the delay).
void ResolveManually(RuleState& state);

}  // namespace opensense::alerts
