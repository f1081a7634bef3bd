#include "alerts/engine.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace opensense::alerts {

using json = nlohmann::json;

namespace {

// How far outside the range a value is (> 0 out, <= 0 in). `sticky`: the excursion is already
// on, so the bounds move inwards by the hysteresis margin.
double Excess(const Rule& r, double v, bool sticky) {
  const double h = sticky ? r.hysteresis : 0.0;
  double e = -INFINITY;
  if (r.above) e = std::max(e, v - (*r.above - h));
  if (r.below) e = std::max(e, (*r.below + h) - v);
  return e;
}

// The worse of two values for this rule (further outside the range).
bool Worse(const Rule& r, double a, double b) { return Excess(r, a, false) > Excess(r, b, false); }

void Reset(RuleState& s) {
  s.phase = Phase::kClear;
  s.since = 0;
  s.alert = 0;
  s.acknowledged = false;
  s.fired_at = 0;
  s.raised_at = 0;
  s.peak = 0;
  s.peak_at = 0;
  s.out_ms = 0;
  s.escalation_level = 0;
  s.last_notice_at = 0;
}

Transition Make(TransitionKind kind, DeviceId device, TimestampMs at, double value, const RuleState& s) {
  Transition t;
  t.kind = kind;
  t.device = device;
  t.at = at;
  t.value = value;
  t.peak = s.peak;
  t.peak_at = s.peak_at;
  t.since = s.since;
  t.out_ms = s.out_ms;
  t.level = s.escalation_level;
  t.alert = s.alert;
  return t;
}

void Fire(RuleState& s, DeviceId device, TimestampMs at, double value, const EvalContext& ctx,
          std::vector<Transition>* out) {
  s.phase = Phase::kFiring;
  s.fired_at = at;
  s.raised_at = ctx.now;
  s.last_notice_at = ctx.now;
  s.escalation_level = 0;
  s.acknowledged = false;
  Transition t = Make(TransitionKind::kFired, device, at, value, s);
  t.late = ctx.now - at > kLateAfterMs;
  out->push_back(t);
}

// One threshold reading, newer than anything judged before.
void Step(const Rule& r, RuleState& s, DeviceId device, const Sample& x, const EvalContext& ctx,
          std::vector<Transition>* out) {
  const bool sticky = s.phase != Phase::kClear;
  const bool is_out = Excess(r, x.value, sticky) > 0;
  if (s.phase != Phase::kClear && s.last_out && s.last_ts != kNever) s.out_ms += x.ts - s.last_ts;
  auto note_peak = [&] {
    if (Worse(r, x.value, s.peak)) {
      s.peak = x.value;
      s.peak_at = x.ts;
    }
  };
  switch (s.phase) {
    case Phase::kClear:
      if (is_out && ctx.calendar->Active(r, x.ts)) {
        Reset(s);
        s.phase = Phase::kPending;
        s.since = x.ts;
        s.peak = x.value;
        s.peak_at = x.ts;
        if (x.ts - s.since >= r.delay_ms) Fire(s, device, x.ts, x.value, ctx, out);
      }
      break;
    case Phase::kPending:
      if (!is_out || !ctx.calendar->Active(r, x.ts)) {
        Reset(s);  // cleared (or a quiet period began) before the delay: no alert
        break;
      }
      note_peak();
      if (x.ts - s.since >= r.delay_ms) Fire(s, device, x.ts, x.value, ctx, out);
      break;
    case Phase::kFiring:
      if (is_out) {
        note_peak();
      } else {
        out->push_back(Make(TransitionKind::kResolved, device, x.ts, x.value, s));
        Reset(s);
      }
      break;
  }
  s.last_ts = x.ts;
  s.last_value = x.value;
  s.last_out = is_out;
}

}  // namespace

std::string_view PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kClear: return "clear";
    case Phase::kPending: return "pending";
    case Phase::kFiring: return "firing";
  }
  return "clear";
}

std::string_view TransitionName(TransitionKind kind) {
  switch (kind) {
    case TransitionKind::kFired: return "fired";
    case TransitionKind::kResolved: return "resolved";
    case TransitionKind::kEscalated: return "escalated";
    case TransitionKind::kReminder: return "reminder";
  }
  return "fired";
}

void Evaluate(const Rule& rule, RuleState& state, DeviceId device, std::span<const Sample> samples,
              const EvalContext& ctx, std::vector<Transition>* out) {
  if (rule.kind == RuleKind::kOffline) {
    for (const Sample& x : samples) {
      if (state.last_ts != kNever && x.ts <= state.last_ts) continue;
      state.last_ts = x.ts;
      if (state.phase == Phase::kFiring) {
        Transition t = Make(TransitionKind::kResolved, device, x.ts, 0, state);
        t.out_ms = x.ts - state.since;
        out->push_back(t);
        Reset(state);
      } else if (state.phase == Phase::kPending) {
        Reset(state);
      }
    }
    return;
  }
  std::vector<Sample> late;
  for (const Sample& x : samples) {
    if (x.ts < rule.created_at) continue;  // a rule does not judge readings older than itself
    if (state.last_ts != kNever && x.ts <= state.last_ts) {
      late.push_back(x);
      continue;
    }
    Step(rule, state, device, x, ctx, out);
  }
  if (late.empty() || state.phase == Phase::kFiring) return;  // a firing alert covers them
  // Out-of-order readings: their own timeline, from a clear state; whatever they raise is late
  // and closes at their end at the latest (newer readings were judged already).
  RuleState temp;
  std::vector<Transition> found;
  for (const Sample& x : late) {
    if (temp.last_ts != kNever && x.ts <= temp.last_ts) continue;  // duplicate
    Step(rule, temp, device, x, ctx, &found);
  }
  if (temp.phase == Phase::kFiring) {
    found.push_back(Make(TransitionKind::kResolved, device, temp.last_ts, temp.last_value, temp));
  }
  for (auto& t : found) {
    t.late_pass = true;
    if (t.kind == TransitionKind::kFired) t.late = true;
    out->push_back(t);
  }
}

void Tick(const Rule& rule, RuleState& s, DeviceId device, const EvalContext& ctx,
          std::vector<Transition>* out) {
  const TimestampMs t = ctx.now;
  const TimestampMs prev = s.last_tick;
  if (prev != kNever && t < prev) return;  // the clock went back: judge nothing until it catches up
  s.last_tick = t;
  if (prev != kNever && ctx.max_tick_gap_ms > 0 && t - prev > ctx.max_tick_gap_ms) {
    // The clock jumped forward: what was measured up to the previous tick stays, the jump does
    // not count as silence or as time waiting for an acknowledgement.
    const TimestampMs jump = t - prev;
    if (s.last_ts != kNever) s.offline_base = std::max(s.last_ts, s.offline_base) + jump;
    if (s.phase == Phase::kFiring) {
      s.raised_at += jump;
      s.last_notice_at += jump;
    }
    if (rule.kind == RuleKind::kOffline && s.phase == Phase::kPending) s.since += jump;
  }
  if (!rule.enabled) return;
  switch (rule.kind) {
    case RuleKind::kOffline: {
      if (s.last_ts == kNever) break;  // never seen: not offline
      const TimestampMs seen = std::max(s.last_ts, s.offline_base);
      const TimestampMs silent = t - seen;
      if (s.phase == Phase::kClear && silent >= rule.offline_after_ms && ctx.calendar->Active(rule, t)) {
        Reset(s);
        s.phase = Phase::kPending;
        s.since = seen + rule.offline_after_ms;
      }
      if (s.phase == Phase::kPending) {
        if (!ctx.calendar->Active(rule, t)) {
          Reset(s);
        } else if (t - s.since >= rule.delay_ms) {
          s.peak = static_cast<double>(silent / kMsPerMinute);
          s.peak_at = t;
          s.out_ms = silent;
          Fire(s, device, t, static_cast<double>(silent / kMsPerMinute), ctx, out);
          out->back().late = false;
        }
      } else if (s.phase == Phase::kFiring) {
        s.out_ms = silent;
        s.peak = static_cast<double>(silent / kMsPerMinute);
      }
      break;
    }
    case RuleKind::kThreshold:
    case RuleKind::kBattery:
      if (s.phase == Phase::kPending && s.last_out && s.last_ts != kNever && t >= s.last_ts &&
          t - s.last_ts <= kFreshReadingMs && t - s.since >= rule.delay_ms &&
          ctx.calendar->Active(rule, t)) {
        const TimestampMs at = s.since + rule.delay_ms;
        s.out_ms = at - s.since;
        Fire(s, device, at, s.last_value, ctx, out);
      }
      break;
  }
  if (s.phase != Phase::kFiring || s.acknowledged) return;
  while (s.escalation_level < static_cast<int>(rule.escalation.size())) {
    const auto& step = rule.escalation[static_cast<std::size_t>(s.escalation_level)];
    if (t - s.raised_at < step.after_minutes * kMsPerMinute) break;
    ++s.escalation_level;
    out->push_back(Make(TransitionKind::kEscalated, device, t, s.last_value, s));
  }
  if (rule.reminder_ms > 0 && t - s.last_notice_at >= rule.reminder_ms) {
    s.last_notice_at = t;
    out->push_back(Make(TransitionKind::kReminder, device, t, s.last_value, s));
  }
}

void Acknowledge(RuleState& state) { state.acknowledged = true; }

void ResolveManually(RuleState& state) {
  const TimestampMs last_ts = state.last_ts;
  const double last_value = state.last_value;
  Reset(state);
  state.last_ts = last_ts;
  state.last_value = last_value;
  state.last_out = false;  // a new excursion starts with the next out-of-range reading
}

std::string RuleStateToJson(const RuleState& s) {
  json j = {{"phase", PhaseName(s.phase)}, {"since", s.since}, {"last_ts", s.last_ts},
            {"last_value", s.last_value}, {"last_out", s.last_out}, {"alert", s.alert},
            {"acknowledged", s.acknowledged}, {"fired_at", s.fired_at}, {"raised_at", s.raised_at},
            {"peak", s.peak}, {"peak_at", s.peak_at}, {"out_ms", s.out_ms},
            {"escalation_level", s.escalation_level}, {"last_notice_at", s.last_notice_at},
            {"offline_base", s.offline_base}, {"last_tick", s.last_tick}};
  return j.dump();
}

Result<RuleState> RuleStateFromJson(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kInternal, "stored rule state is not a JSON object");
  }
  RuleState s;
  try {
    const std::string phase = j.value("phase", "clear");
    s.phase = phase == "pending" ? Phase::kPending : phase == "firing" ? Phase::kFiring : Phase::kClear;
    s.since = j.value("since", TimestampMs{0});
    s.last_ts = j.value("last_ts", kNever);
    s.last_value = j.value("last_value", 0.0);
    s.last_out = j.value("last_out", false);
    s.alert = j.value("alert", AlertId{0});
    s.acknowledged = j.value("acknowledged", false);
    s.fired_at = j.value("fired_at", TimestampMs{0});
    s.raised_at = j.value("raised_at", TimestampMs{0});
    s.peak = j.value("peak", 0.0);
    s.peak_at = j.value("peak_at", TimestampMs{0});
    s.out_ms = j.value("out_ms", TimestampMs{0});
    s.escalation_level = j.value("escalation_level", 0);
    s.last_notice_at = j.value("last_notice_at", TimestampMs{0});
    s.offline_base = j.value("offline_base", kNever);
    s.last_tick = j.value("last_tick", kNever);
  } catch (const json::exception& e) {
    return MakeError(ErrorCode::kInternal, std::string("stored rule state is malformed: ") + e.what());
  }
  return s;
}

}  // namespace opensense::alerts
