#include "alerts/service.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace opensense::alerts {

using json = nlohmann::json;

namespace {

// Fields whose change must reach the store (last_ts, last_value, out_ms and ticks need not:
// they are rebuilt from readings).
bool Significant(const RuleState& a, const RuleState& b) {
  return a.phase != b.phase || a.since != b.since || a.alert != b.alert || a.acknowledged != b.acknowledged ||
         a.peak != b.peak || a.peak_at != b.peak_at || a.escalation_level != b.escalation_level ||
         a.last_notice_at != b.last_notice_at || a.fired_at != b.fired_at;
}

// What a rule names must be the organisation's: its device or site (404 otherwise, as for any
// other organisation's object) and every notification channel of its recipients and escalation
// steps, of the kind the recipient says (400: the rule is what is wrong).
Status CheckReferences(store::Store& store, OrgId org, const Rule& rule) {
  if (rule.device) OS_RETURN_IF_ERROR(store.GetDevice(org, *rule.device).map([](auto&&) {}));
  if (rule.site) OS_RETURN_IF_ERROR(store.GetSite(org, *rule.site).map([](auto&&) {}));
  auto check = [&](const std::vector<Recipient>& list, const std::string& where) -> Status {
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (!list[i].channel) continue;
      const std::int64_t id = *list[i].channel;
      auto channel = store.Notify().GetChannel(org, id);
      if (!channel && channel.error().code == ErrorCode::kNotFound) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}[{}].channel: the organisation has no notification channel {}; GET "
                                     "/api/v1/channels lists them, POST /api/v1/channels (or `opensense channel "
                                     "create`) adds one",
                                     where, i, id));
      }
      if (!channel) return tl::unexpected(channel.error());
      if (channel->kind != list[i].kind) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}[{}].kind: channel {} is a {} channel, not {}", where, i, id,
                                     channel->kind, list[i].kind));
      }
    }
    return Ok();
  };
  OS_RETURN_IF_ERROR(check(rule.notify, "notify"));
  for (std::size_t i = 0; i < rule.escalation.size(); ++i) {
    OS_RETURN_IF_ERROR(check(rule.escalation[i].notify, fmt::format("escalation[{}].notify", i)));
  }
  return Ok();
}

std::string UnitOf(const std::string& metric) {
  if (metric == "temperature") return " °C";
  if (metric == "humidity") return " %RH";
  if (metric == "battery") return " %";
  return "";
}

std::string Trim(double v) {
  std::string s = fmt::format("{:.2f}", v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string Duration(TimestampMs ms) {
  const TimestampMs minutes = ms / kMsPerMinute;
  if (minutes < 60) return fmt::format("{} min", minutes);
  return fmt::format("{} h {} min", minutes / 60, minutes % 60);
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Condition(const Rule& rule, const store::AlertRecord& a) {
  const std::string unit = UnitOf(a.metric);
  switch (rule.kind) {
    case RuleKind::kOffline:
      return fmt::format("no reading for {} (limit {})", Duration(a.out_of_range_ms), Duration(rule.offline_after_ms));
    case RuleKind::kBattery:
      return fmt::format("battery {}{}, below {}{}", Trim(a.trigger_value), unit, Trim(rule.below.value_or(0)), unit);
    case RuleKind::kThreshold: break;
  }
  std::string limit;
  if (rule.above && rule.below) {
    limit = fmt::format("outside {}..{}{}", Trim(*rule.below), Trim(*rule.above), unit);
  } else if (rule.above) {
    limit = fmt::format("above {}{}", Trim(*rule.above), unit);
  } else {
    limit = fmt::format("below {}{}", Trim(rule.below.value_or(0)), unit);
  }
  return fmt::format("{} {}{}, {}", a.metric, Trim(a.trigger_value), unit, limit);
}

}  // namespace

AlertMessage ComposeMessage(std::string_view event, const store::AlertRecord& a, std::string_view device_name,
                            std::string_view site_name, const Rule& rule, const TimeZone& zone,
                            std::string_view link) {
  std::string severity = a.severity == "critical" ? "CRITICAL" : "WARNING";
  std::string where = site_name.empty() ? std::string(device_name) : fmt::format("{} ({})", device_name, site_name);
  std::string tag;
  if (event == "fired") tag = severity;
  else if (event == "resolved") tag = "RESOLVED";
  else if (event == "escalated") tag = fmt::format("ESCALATED {}", severity);
  else tag = fmt::format("REMINDER {}", severity);
  const std::string condition = Condition(rule, a);
  AlertMessage m;
  m.subject = fmt::format("[{}] {}: {}", tag, where, a.rule_name);
  std::vector<std::string> lines;
  lines.push_back(fmt::format("{} alert \"{}\" {}", severity, a.rule_name,
                              event == "fired" ? "fired" : event == "resolved" ? "resolved"
                              : event == "escalated" ? "is not acknowledged: escalated" : "is still firing"));
  lines.push_back(fmt::format("Where: {}", where));
  lines.push_back(fmt::format("What: {}", condition));
  if (a.peak_value) {
    lines.push_back(fmt::format("Worst: {}{} at {}", Trim(*a.peak_value), UnitOf(a.metric),
                                zone.FormatLocal(a.peak_at.value_or(a.fired_at), "%Y-%m-%d %H:%M")));
  }
  lines.push_back(fmt::format("Since: {} ({}), out of range {}", zone.FormatLocal(a.started_at, "%Y-%m-%d %H:%M"),
                              zone.name(), Duration(a.out_of_range_ms)));
  if (a.late) lines.push_back("Found late: in readings that arrived after an outage.");
  if (event == "resolved") {
    lines.push_back(fmt::format("Resolved: {} by {}{}", a.resolved_at ? zone.FormatLocal(*a.resolved_at, "%Y-%m-%d %H:%M") : "",
                                a.resolved_by, a.acknowledged_at ? "" : " (never acknowledged)"));
  }
  if (rule.require_note && event != "resolved") lines.push_back("Acknowledging needs a note of the corrective action taken.");
  lines.push_back(fmt::format("Alert: {}", link));
  for (const auto& l : lines) m.text += l + "\n";
  m.html = "<p>";
  for (const auto& l : lines) m.html += HtmlEscape(l) + "<br>";
  m.html += "</p>";
  json p = {{"event", event},
            {"alert", {{"id", a.id}, {"rule", a.rule_name}, {"rule_id", a.rule_id}, {"device", a.device},
                       {"device_name", device_name}, {"site", site_name}, {"severity", a.severity},
                       {"state", a.state}, {"metric", a.metric}, {"value", a.trigger_value},
                       {"started_at", FormatRfc3339(a.started_at)}, {"fired_at", FormatRfc3339(a.fired_at)},
                       {"late", a.late}, {"url", link}}}};
  if (a.peak_value) p["alert"]["peak"] = *a.peak_value;
  m.payload_json = p.dump();
  return m;
}

AlertService::AlertService(store::Store* store, AlertServiceOptions options)
    : store_(store), options_(std::move(options)) {
  clock_ = options_.clock != nullptr ? options_.clock : &system_clock_;
}

AlertService::~AlertService() { Stop(); }

void AlertService::AddRuleOrg(OrgId org) {
  std::unique_lock lock(rule_orgs_mu_);
  rule_orgs_.insert(org);
}

Status AlertService::Start() {
  OS_ASSIGN_OR_RETURN(auto orgs, store_->Alerts().OrganizationsWithRules());
  {
    std::lock_guard lock(mu_);
    for (OrgId org : orgs) OS_RETURN_IF_ERROR(View(org));
  }
  for (OrgId org : orgs) AddRuleOrg(org);
  listener_ = store_->AddCommitListener([this](std::vector<store::CommittedReadings>&& b) { OnCommitted(std::move(b)); },
                            [this](OrgId org) {
                              std::shared_lock lock(rule_orgs_mu_);
                              return rule_orgs_.count(org) > 0;
                            });
  started_ = true;
  if (options_.evaluator_thread) thread_ = std::thread([this] { EvaluatorLoop(); });
  return Ok();
}

void AlertService::Stop() {
  if (!started_) return;
  started_ = false;
  store_->RemoveCommitListener(listener_);
  {
    std::lock_guard lock(queue_mu_);
    stop_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  Drain();
}

std::size_t AlertService::queued_readings() const {
  std::lock_guard lock(queue_mu_);
  return queued_;
}

void AlertService::OnCommitted(std::vector<store::CommittedReadings>&& batches) {
  std::size_t dropped = 0;
  {
    std::lock_guard lock(queue_mu_);
    for (auto& b : batches) {
      if (b.readings.empty()) continue;
      if (queued_ + b.readings.size() > options_.max_queued_readings) {
        // Never block the writer: remember what to re-read from the store instead.
        auto [lo, hi] = std::minmax_element(b.readings.begin(), b.readings.end(),
                                            [](const Reading& x, const Reading& y) { return x.ts < y.ts; });
        auto [it, fresh] = overflow_.try_emplace(b.org, Overflow{lo->ts, hi->ts + 1});
        if (!fresh) {
          it->second.from = std::min(it->second.from, lo->ts);
          it->second.to = std::max(it->second.to, hi->ts + 1);
        }
        dropped += b.readings.size();
        continue;
      }
      queued_ += b.readings.size();
      queue_.push_back(std::move(b));
    }
  }
  if (dropped > 0 && options_.metrics != nullptr) {
    options_.metrics->GetCounter("opensense_alert_queue_overflows_total",
                                 "Readings not queued for alert evaluation (re-read from the store later).")
        .Inc(dropped);
  }
  queue_cv_.notify_one();
}

void AlertService::EvaluatorLoop() {
  while (true) {
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !overflow_.empty(); });
      if (stop_) return;
    }
    Drain();
  }
}

void AlertService::Drain() {
  while (true) {
    store::CommittedReadings batch;
    std::map<OrgId, Overflow> overflow;
    {
      std::lock_guard lock(queue_mu_);
      if (!queue_.empty()) {
        batch = std::move(queue_.front());
        queue_.pop_front();
        queued_ -= batch.readings.size();
      } else if (!overflow_.empty()) {
        overflow.swap(overflow_);
      } else {
        return;
      }
    }
    std::lock_guard lock(mu_);
    if (!batch.readings.empty()) Evaluate(batch.org, batch.readings);
    for (const auto& [org, range] : overflow) Reevaluate(org, range);
  }
}

Result<AlertService::OrgView*> AlertService::View(OrgId org) {
  auto it = views_.find(org);
  if (it != views_.end()) return it->second.get();
  auto view = std::make_unique<OrgView>();
  OS_ASSIGN_OR_RETURN(auto o, store_->GetOrganization(org));
  view->name = o.name;
  if (auto zone = TimeZone::Load(o.time_zone)) view->zone = *zone;
  view->calendar = std::make_unique<ActiveCalendar>(view->zone);
  OS_ASSIGN_OR_RETURN(auto rules, store_->Alerts().ListRules(org));
  for (const auto& sr : rules) {
    auto r = ParseRule(sr.definition);
    if (!r) {
      spdlog::error("alerts: rule {} of organisation {} is unreadable, skipped: {}", sr.id, org, r.error().message);
      continue;
    }
    r->id = sr.id;
    r->org = org;
    r->created_at = sr.created_at;
    view->rules.push_back(std::move(*r));
  }
  OS_ASSIGN_OR_RETURN(auto states, store_->Alerts().ListRuleStates(org));
  for (const auto& s : states) {
    auto st = RuleStateFromJson(s.state);
    if (st) states_[{s.rule_id, s.device}] = *st;
  }
  OS_RETURN_IF_ERROR(LoadDevices(org, *view));
  for (const auto& rule : view->rules) WatchSeenDevices(org, *view, rule);
  OrgView* out = view.get();
  views_[org] = std::move(view);
  return out;
}

// Offline rules: a device seen before (the restart, or the rule) is watched at once, from its
// newest reading; a device never seen is not.
void AlertService::WatchSeenDevices(OrgId org, OrgView& view, const Rule& rule) {
  if (rule.kind != RuleKind::kOffline || !rule.enabled) return;
  for (const auto& [device, info] : view.devices) {
    if (!RuleCovers(rule, device, info.site)) continue;
    auto latest = store_->Latest(org, device);
    if (!latest || latest->empty()) continue;
    TimestampMs newest = kNever;
    for (const auto& l : *latest) newest = std::max(newest, l.ts);
    RuleState& st = states_[{rule.id, device}];
    if (st.last_ts == kNever || st.last_ts < newest) st.last_ts = newest;
  }
}

Status AlertService::LoadDevices(OrgId org, OrgView& view) {
  OS_ASSIGN_OR_RETURN(auto devices, store_->ListDevices(org));
  OS_ASSIGN_OR_RETURN(auto sites, store_->ListSites(org));
  view.devices.clear();
  view.rules_of.clear();
  for (const auto& d : devices) {
    DeviceInfo info{d.name, d.site_id, ""};
    for (const auto& s : sites) {
      if (d.site_id && s.id == *d.site_id) info.site_name = s.name;
    }
    view.devices[d.id] = std::move(info);
  }
  return Ok();
}

const AlertService::DeviceInfo* AlertService::Device(OrgId org, OrgView& view, DeviceId device) {
  auto it = view.devices.find(device);
  if (it == view.devices.end()) {
    if (auto st = LoadDevices(org, view); !st) return nullptr;
    it = view.devices.find(device);
    if (it == view.devices.end()) return nullptr;
  }
  return &it->second;
}

const Rule* AlertService::FindRule(OrgView& view, RuleId id) {
  for (const auto& r : view.rules) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

void AlertService::Evaluate(OrgId org, std::vector<Reading>& readings) {
  auto view_or = View(org);
  if (!view_or) {
    spdlog::warn("alerts: organisation {} not evaluated: {}", org, view_or.error().message);
    return;
  }
  OrgView& view = **view_or;
  if (view.rules.empty()) return;
  std::stable_sort(readings.begin(), readings.end(), [](const Reading& a, const Reading& b) {
    return a.device != b.device ? a.device < b.device : a.ts < b.ts;
  });
  EvalContext ctx;
  ctx.now = clock_->NowMs();
  ctx.calendar = view.calendar.get();
  ctx.max_tick_gap_ms = options_.max_tick_gap_ms;
  std::vector<Pending> transitions;
  std::vector<StateKey> dirty;
  std::vector<Sample> samples;
  std::vector<Transition> out;
  for (std::size_t begin = 0; begin < readings.size();) {
    std::size_t end = begin;
    const DeviceId device = readings[begin].device;
    while (end < readings.size() && readings[end].device == device) ++end;
    const DeviceInfo* info = Device(org, view, device);
    if (info != nullptr) {
      auto covering = view.rules_of.find(device);
      if (covering == view.rules_of.end()) {
        std::vector<std::size_t> list;
        for (std::size_t k = 0; k < view.rules.size(); ++k) {
          if (RuleCovers(view.rules[k], device, info->site)) list.push_back(k);
        }
        covering = view.rules_of.emplace(device, std::move(list)).first;
      }
      for (std::size_t k : covering->second) {
        const Rule& rule = view.rules[k];
        samples.clear();
        for (std::size_t i = begin; i < end; ++i) {
          if (rule.kind == RuleKind::kOffline || readings[i].metric == rule.metric) {
            samples.push_back({readings[i].ts, readings[i].value});
          }
        }
        if (samples.empty()) continue;
        const StateKey key{rule.id, device};
        RuleState& state = states_[key];
        const RuleState before = state;
        out.clear();
        alerts::Evaluate(rule, state, device, samples, ctx, &out);
        for (const auto& t : out) transitions.push_back({rule.id, t});
        if (!out.empty() || Significant(before, state)) dirty.push_back(key);
      }
    }
    begin = end;
  }
  if (!transitions.empty() || !dirty.empty()) Persist(org, view, transitions, dirty);
}

void AlertService::Reevaluate(OrgId org, Overflow range) {
  auto view_or = View(org);
  if (!view_or || (*view_or)->rules.empty()) return;
  OrgView& view = **view_or;
  spdlog::warn("alerts: the evaluation queue overflowed; re-reading organisation {} readings {} .. {} from the store",
               org, FormatRfc3339(range.from), FormatRfc3339(range.to));
  std::vector<Reading> readings;
  for (const auto& [device, info] : view.devices) {
    std::vector<std::string> metrics;
    for (const Rule& rule : view.rules) {
      if (!RuleCovers(rule, device, info.site)) continue;
      const std::string metric = rule.kind == RuleKind::kOffline ? "temperature" : rule.metric;
      if (std::find(metrics.begin(), metrics.end(), metric) == metrics.end()) metrics.push_back(metric);
    }
    for (const auto& metric : metrics) {
      SeriesQuery q{org, device, metric, range.from, range.to, Resolution::kRaw};
      auto series = store_->QuerySeries(q);
      if (!series) continue;
      for (const auto& p : series->points) {
        // Only what the engine has not judged yet: older readings were seen before the overflow.
        bool fresh = false;
        for (const Rule& rule : view.rules) {
          auto it = states_.find({rule.id, device});
          if (it == states_.end() || it->second.last_ts < p.t) fresh = true;
        }
        if (fresh) readings.push_back(Reading{device, metric, "", p.t, p.v});
      }
    }
  }
  if (!readings.empty()) Evaluate(org, readings);
}

void AlertService::Tick(TimestampMs now) {
  std::lock_guard lock(mu_);
  EvalContext ctx;
  ctx.now = now;
  ctx.max_tick_gap_ms = options_.max_tick_gap_ms;
  for (auto& [org, view_ptr] : views_) {
    OrgView& view = *view_ptr;
    if (view.rules.empty()) continue;
    ctx.calendar = view.calendar.get();
    std::vector<Pending> transitions;
    std::vector<StateKey> dirty;
    std::vector<Transition> out;
    for (const Rule& rule : view.rules) {
      for (auto it = states_.lower_bound({rule.id, 0}); it != states_.end() && it->first.rule == rule.id; ++it) {
        const RuleState before = it->second;
        out.clear();
        alerts::Tick(rule, it->second, it->first.device, ctx, &out);
        for (const auto& t : out) transitions.push_back({rule.id, t});
        if (!out.empty() || Significant(before, it->second)) dirty.push_back(it->first);
      }
    }
    if (!transitions.empty() || !dirty.empty()) Persist(org, view, transitions, dirty);
  }
}

Status AlertService::PutState(OrgId org, const StateKey& key, store::AlertTxn& txn) {
  (void)org;
  auto it = states_.find(key);
  if (it == states_.end()) return Ok();
  return txn.PutRuleState({key.rule, key.device, RuleStateToJson(it->second), clock_->NowMs()});
}

void AlertService::Persist(OrgId org, OrgView& view, std::vector<Pending>& transitions,
                           const std::vector<StateKey>& dirty) {
  std::vector<Changed> changed;
  auto st = store_->Alerts().Transact(org, [&](store::AlertTxn& txn) -> Status {
    changed.clear();
    AlertId late_alert = 0;
    for (const auto& p : transitions) {
      const Rule* rule = FindRule(view, p.rule);
      if (rule == nullptr) continue;
      RuleState& state = states_[{p.rule, p.t.device}];
      OS_RETURN_IF_ERROR(WriteTransition(org, view, *rule, state, p.t, &late_alert, txn, &changed));
    }
    // Open alerts follow their excursion's worst value.
    for (const auto& key : dirty) {
      auto it = states_.find(key);
      if (it == states_.end()) continue;
      const RuleState& s = it->second;
      if (s.phase == Phase::kFiring && s.alert != 0) {
        OS_ASSIGN_OR_RETURN(auto a, txn.GetAlert(s.alert));
        if (a.state != "resolved" && (!a.peak_value || *a.peak_value != s.peak)) {
          a.peak_value = s.peak;
          a.peak_at = s.peak_at;
          a.out_of_range_ms = std::max(a.out_of_range_ms, s.out_ms);
          OS_RETURN_IF_ERROR(txn.UpdateAlert(a));
        }
      }
      OS_RETURN_IF_ERROR(PutState(org, key, txn));
    }
    return Ok();
  });
  if (!st) {
    // Memory ran ahead of the store: forget this organisation, reload it from the store next time.
    spdlog::error("alerts: could not store {} alert transitions of organisation {}: {}", transitions.size(), org,
                  st.error().message);
    views_.erase(org);
    for (auto it = states_.begin(); it != states_.end();) {
      bool ours = false;
      for (const auto& key : dirty) ours = ours || (key.rule == it->first.rule);
      it = ours ? states_.erase(it) : std::next(it);
    }
  }
  if (st && !transitions.empty() && options_.outbox_written) options_.outbox_written();
  if (st) Announce(org, changed);
  if (options_.metrics != nullptr) {
    for (const auto& p : transitions) {
      options_.metrics->GetCounter("opensense_alert_transitions_total", "Alert transitions by kind.",
                                   {{"kind", std::string(TransitionName(p.t.kind))}})
          .Inc();
    }
  }
}

void AlertService::Announce(OrgId org, const std::vector<Changed>& changed) const {
  if (!options_.alert_changed) return;
  for (const auto& c : changed) options_.alert_changed(org, c.alert, c.event);
}

Status AlertService::WriteTransition(OrgId org, OrgView& view, const Rule& rule, RuleState& state,
                                     const Transition& t, AlertId* late_alert, store::AlertTxn& txn,
                                     std::vector<Changed>* changed) {
  const TimestampMs now = clock_->NowMs();
  store::AlertEventRecord e;
  e.org = org;
  e.device = t.device;
  e.kind = std::string(TransitionName(t.kind));
  e.at = t.at;
  e.actor = "engine";
  json details = {{"value", t.value}, {"peak", t.peak}, {"since", FormatRfc3339(t.since)},
                  {"out_of_range_ms", t.out_ms}};
  if (t.late) details["late"] = true;
  if (t.kind == TransitionKind::kEscalated) details["level"] = t.level;
  e.details = details.dump();

  store::AlertRecord a;
  const std::vector<Recipient>* recipients = &rule.notify;
  if (t.kind == TransitionKind::kFired) {
    a.org = org;
    a.rule_id = rule.id;
    a.rule_name = rule.name;
    a.device = t.device;
    a.kind = std::string(RuleKindName(rule.kind));
    a.metric = rule.kind == RuleKind::kOffline ? "" : rule.metric;
    a.severity = std::string(SeverityName(rule.severity));
    a.state = "firing";
    a.late = t.late;
    a.started_at = t.since;
    a.fired_at = t.at;
    a.raised_at = now;
    a.trigger_value = t.value;
    a.peak_value = t.peak;
    a.peak_at = t.peak_at;
    a.out_of_range_ms = t.out_ms;
    OS_ASSIGN_OR_RETURN(a.id, txn.InsertAlert(a));
    if (t.late_pass) *late_alert = a.id;
    else state.alert = a.id;
  } else {
    const AlertId id = t.late_pass ? *late_alert : t.alert != 0 ? t.alert : state.alert;
    if (id == 0) return Ok();  // resolved in the engine after a manual resolve: nothing open
    OS_ASSIGN_OR_RETURN(a, txn.GetAlert(id));
    if (a.state == "resolved") return Ok();
    a.peak_value = t.peak;
    a.peak_at = t.peak_at;
    a.out_of_range_ms = std::max(a.out_of_range_ms, t.out_ms);
    if (t.kind == TransitionKind::kResolved) {
      a.state = "resolved";
      a.resolved_at = t.at;
      a.resolved_by = "auto";
    } else if (t.kind == TransitionKind::kEscalated) {
      a.escalation_level = t.level;
      if (t.level >= 1 && t.level <= static_cast<int>(rule.escalation.size())) {
        recipients = &rule.escalation[static_cast<std::size_t>(t.level - 1)].notify;
      }
    }
    OS_RETURN_IF_ERROR(txn.UpdateAlert(a));
  }
  e.alert_id = a.id;
  OS_ASSIGN_OR_RETURN(auto event_id, txn.AppendEvent(e));
  changed->push_back({a, e.kind});
  return QueueMessages(org, view, rule, a, e.kind, event_id, *recipients, txn);
}

Status AlertService::QueueMessages(OrgId org, OrgView& view, const Rule& rule, const store::AlertRecord& alert,
                                   std::string_view event, std::int64_t event_id,
                                   const std::vector<Recipient>& recipients, store::AlertTxn& txn) {
  if (recipients.empty()) return Ok();
  const DeviceInfo* info = Device(org, view, alert.device);
  const std::string link = fmt::format("{}/alerts/{}", options_.public_url.empty() ? "/api/v1" : options_.public_url,
                                       alert.id);
  AlertMessage m = ComposeMessage(event, alert, info ? info->name : fmt::format("device {}", alert.device),
                                  info ? info->site_name : "", rule, view.zone, link);
  const TimestampMs now = clock_->NowMs();
  for (const auto& r : recipients) {
    store::OutboxMessage o;
    o.org = org;
    o.channel = r.channel;
    o.channel_kind = r.kind;
    o.recipient = r.to;
    o.subject = m.subject;
    o.text_body = m.text;
    o.html_body = m.html;
    o.payload_json = m.payload_json;
    o.idempotency_key = fmt::format("alert-event:{}:channel:{}:{}", event_id,
                                    r.channel ? std::to_string(*r.channel) : "none", r.to);
    o.alert_id = alert.id;
    o.event_id = event_id;
    o.created_at = now;
    o.next_attempt_at = now;
    OS_RETURN_IF_ERROR(txn.InsertOutbox(o));
  }
  return Ok();
}

// ---- rules ---------------------------------------------------------------------------------

Result<RuleView> AlertService::CreateRule(OrgId org, std::string_view text, std::optional<TimestampMs> created_at) {
  OS_ASSIGN_OR_RETURN(Rule rule, ParseRule(text));
  // Before the rule exists: readings committed from now on reach the evaluator.
  AddRuleOrg(org);
  std::lock_guard lock(mu_);
  OS_RETURN_IF_ERROR(CheckReferences(*store_, org, rule));
  const TimestampMs now = clock_->NowMs();
  OS_ASSIGN_OR_RETURN(auto stored, store_->Alerts().CreateRule(org, rule.name, RuleDefinitionJson(rule),
                                                               created_at.value_or(now)));
  rule.id = stored.id;
  rule.org = org;
  rule.created_at = stored.created_at;
  auto it = views_.find(org);
  if (it == views_.end()) {
    OS_RETURN_IF_ERROR(View(org));  // loads every rule, this one included
  } else {
    it->second->rules.push_back(rule);
    it->second->rules_of.clear();
    WatchSeenDevices(org, *it->second, rule);
  }
  return RuleView{rule, stored.updated_at};
}

Result<RuleView> AlertService::UpdateRule(OrgId org, RuleId id, std::string_view patch_text) {
  json patch = json::parse(patch_text.begin(), patch_text.end(), nullptr, false);
  if (patch.is_discarded() || !patch.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "the body must be a JSON object (fields of the rule to change)");
  }
  std::lock_guard lock(mu_);
  OS_ASSIGN_OR_RETURN(auto stored, store_->Alerts().GetRule(org, id));
  json current = json::parse(stored.definition, nullptr, false);
  if (current.is_discarded()) current = json::object();
  current.merge_patch(patch);
  OS_ASSIGN_OR_RETURN(Rule rule, ParseRuleJson(current));
  OS_RETURN_IF_ERROR(CheckReferences(*store_, org, rule));
  OS_ASSIGN_OR_RETURN(auto updated, store_->Alerts().UpdateRule(org, id, rule.name, RuleDefinitionJson(rule),
                                                                clock_->NowMs()));
  rule.id = id;
  rule.org = org;
  rule.created_at = updated.created_at;
  views_.erase(org);
  OS_RETURN_IF_ERROR(View(org));
  return RuleView{rule, updated.updated_at};
}

Status AlertService::DeleteRule(OrgId org, RuleId id) {
  std::lock_guard lock(mu_);
  OS_RETURN_IF_ERROR(store_->Alerts().GetRule(org, id).map([](auto&&) {}));
  store::AlertFilter open;
  open.state = "open";
  open.rule_id = id;
  open.limit = 10'000;
  OS_ASSIGN_OR_RETURN(auto alerts, store_->Alerts().ListAlerts(org, open));
  const TimestampMs now = clock_->NowMs();
  std::vector<Changed> changed;
  OS_RETURN_IF_ERROR(store_->Alerts().Transact(org, [&](store::AlertTxn& txn) -> Status {
    changed.clear();
    for (auto a : alerts) {
      a.state = "resolved";
      a.resolved_at = now;
      a.resolved_by = "system";
      a.resolve_note = "the rule was deleted";
      OS_RETURN_IF_ERROR(txn.UpdateAlert(a));
      OS_RETURN_IF_ERROR(txn.AppendEvent({0, org, a.id, a.device, "resolved", now, "system", a.resolve_note, "{}"}));
      changed.push_back({a, "resolved"});
    }
    return Ok();
  }));
  Announce(org, changed);
  OS_RETURN_IF_ERROR(store_->Alerts().DeleteRule(org, id));
  for (auto it = states_.lower_bound({id, 0}); it != states_.end() && it->first.rule == id;) it = states_.erase(it);
  views_.erase(org);
  return Ok();
}

Result<std::vector<RuleView>> AlertService::ListRules(OrgId org) {
  OS_ASSIGN_OR_RETURN(auto stored, store_->Alerts().ListRules(org));
  std::vector<RuleView> out;
  for (const auto& s : stored) {
    auto r = ParseRule(s.definition);
    if (!r) continue;
    r->id = s.id;
    r->org = org;
    r->created_at = s.created_at;
    out.push_back({std::move(*r), s.updated_at});
  }
  return out;
}

Result<RuleView> AlertService::GetRule(OrgId org, RuleId id) {
  OS_ASSIGN_OR_RETURN(auto s, store_->Alerts().GetRule(org, id));
  OS_ASSIGN_OR_RETURN(Rule r, ParseRule(s.definition));
  r.id = s.id;
  r.org = org;
  r.created_at = s.created_at;
  return RuleView{std::move(r), s.updated_at};
}

// ---- lifecycle -----------------------------------------------------------------------------

Result<store::AlertRecord> AlertService::Acknowledge(OrgId org, AlertId id, std::string_view actor,
                                                     std::string_view note) {
  if (note.size() > 4000) return MakeError(ErrorCode::kInvalidArgument, "the note is longer than 4000 bytes");
  std::lock_guard lock(mu_);
  // The rule's requirement first (outside the transaction: the store serialises its calls).
  OS_ASSIGN_OR_RETURN(auto before, store_->Alerts().GetAlert(org, id));
  if (auto rule = store_->Alerts().GetRule(org, before.rule_id)) {
    auto r = ParseRule(rule->definition);
    if (r && r->require_note && note.find_first_not_of(" \t\r\n") == std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "this rule requires a corrective-action note: say what was done (\"note\")");
    }
  }
  store::AlertRecord out;
  OS_RETURN_IF_ERROR(store_->Alerts().Transact(org, [&](store::AlertTxn& txn) -> Status {
    OS_ASSIGN_OR_RETURN(out, txn.GetAlert(id));
    if (out.state == "resolved") {
      return MakeError(ErrorCode::kFailedPrecondition, "the alert is resolved already; nothing to acknowledge");
    }
    if (out.state == "acknowledged") {
      return MakeError(ErrorCode::kConflict, fmt::format("the alert was acknowledged already by {}", out.acknowledged_by));
    }
    const TimestampMs now = clock_->NowMs();
    out.state = "acknowledged";
    out.acknowledged_at = now;
    out.acknowledged_by = std::string(actor);
    out.ack_note = std::string(note);
    OS_RETURN_IF_ERROR(txn.UpdateAlert(out));
    OS_RETURN_IF_ERROR(txn.AppendEvent({0, org, id, out.device, "acknowledged", now, std::string(actor), std::string(note), "{}"}));
    auto it = states_.find({out.rule_id, out.device});
    if (it != states_.end() && it->second.alert == id) {
      alerts::Acknowledge(it->second);
      OS_RETURN_IF_ERROR(PutState(org, it->first, txn));
    }
    return Ok();
  }));
  Announce(org, {{out, "acknowledged"}});
  return out;
}

Result<store::AlertRecord> AlertService::Resolve(OrgId org, AlertId id, std::string_view actor, std::string_view note) {
  if (note.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "resolving by hand needs a note (\"note\"): why is it resolved?");
  }
  if (note.size() > 4000) return MakeError(ErrorCode::kInvalidArgument, "the note is longer than 4000 bytes");
  std::lock_guard lock(mu_);
  store::AlertRecord out;
  OS_RETURN_IF_ERROR(store_->Alerts().Transact(org, [&](store::AlertTxn& txn) -> Status {
    OS_ASSIGN_OR_RETURN(out, txn.GetAlert(id));
    if (out.state == "resolved") return MakeError(ErrorCode::kFailedPrecondition, "the alert is resolved already");
    const TimestampMs now = clock_->NowMs();
    out.state = "resolved";
    out.resolved_at = now;
    out.resolved_by = std::string(actor);
    out.resolve_note = std::string(note);
    OS_RETURN_IF_ERROR(txn.UpdateAlert(out));
    OS_RETURN_IF_ERROR(txn.AppendEvent({0, org, id, out.device, "resolved", now, std::string(actor), std::string(note), "{}"}));
    auto it = states_.find({out.rule_id, out.device});
    if (it != states_.end() && it->second.alert == id) {
      alerts::ResolveManually(it->second);
      OS_RETURN_IF_ERROR(PutState(org, it->first, txn));
    }
    return Ok();
  }));
  Announce(org, {{out, "resolved"}});
  return out;
}

}  // namespace opensense::alerts
