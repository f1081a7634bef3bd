#include "alerts/rule.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "core/validation.hpp"

namespace opensense::alerts {

using json = nlohmann::json;

namespace {

constexpr std::array<std::string_view, 7> kDays = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
constexpr int kMaxJsonDepth = 8;

Error Bad(std::string msg) { return Error{ErrorCode::kInvalidArgument, std::move(msg)}; }

int Depth(const json& j) {
  if (!j.is_structured()) return 0;
  int d = 0;
  for (const auto& v : j) d = std::max(d, Depth(v));
  return d + 1;
}

Status OnlyKeys(const json& j, std::string_view where, std::initializer_list<std::string_view> keys) {
  if (!j.is_object()) return tl::unexpected(Bad(fmt::format("{} must be a JSON object", where)));
  for (const auto& [k, v] : j.items()) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
      std::string allowed;
      for (auto key : keys) allowed += (allowed.empty() ? "" : ", ") + std::string(key);
      return tl::unexpected(Bad(fmt::format("{}: unknown field '{}' (allowed: {})", where,
                                            k.substr(0, 64), allowed)));
    }
  }
  return Ok();
}

Result<std::string> String(const json& j, std::string_view field, std::size_t max_len) {
  if (!j.is_string()) return tl::unexpected(Bad(fmt::format("{} must be a string", field)));
  auto s = j.get<std::string>();
  if (s.size() > max_len) {
    return tl::unexpected(Bad(fmt::format("{} is longer than {} bytes", field, max_len)));
  }
  return s;
}

Result<double> Number(const json& j, std::string_view field) {
  if (!j.is_number()) return tl::unexpected(Bad(fmt::format("{} must be a number", field)));
  double v = j.get<double>();
  if (!std::isfinite(v) || std::fabs(v) > 1e12) {
    return tl::unexpected(Bad(fmt::format("{} is out of range", field)));
  }
  return v;
}

Result<std::int64_t> Integer(const json& j, std::string_view field, std::int64_t lo, std::int64_t hi) {
  if (!j.is_number_integer()) {
    return tl::unexpected(Bad(fmt::format("{} must be a whole number", field)));
  }
  if (j.is_number_unsigned() && j.get<std::uint64_t>() > static_cast<std::uint64_t>(hi)) {
    return tl::unexpected(Bad(fmt::format("{} must be between {} and {}", field, lo, hi)));
  }
  auto v = j.get<std::int64_t>();
  if (v < lo || v > hi) {
    return tl::unexpected(Bad(fmt::format("{} must be between {} and {}", field, lo, hi)));
  }
  return v;
}

Result<TimestampMs> Minutes(const json& j, std::string_view field, TimestampMs max_ms) {
  OS_ASSIGN_OR_RETURN(auto m, Integer(j, field, 0, max_ms / kMsPerMinute));
  return m * kMsPerMinute;
}

Result<bool> Bool(const json& j, std::string_view field) {
  if (!j.is_boolean()) return tl::unexpected(Bad(fmt::format("{} must be true or false", field)));
  return j.get<bool>();
}

// "HH:MM" -> minutes after midnight; "24:00" allowed as the end of the day.
Result<int> ClockTime(const json& j, std::string_view field) {
  OS_ASSIGN_OR_RETURN(auto s, String(j, field, 5));
  if (s.size() != 5 || s[2] != ':' || !std::isdigit(static_cast<unsigned char>(s[0])) ||
      !std::isdigit(static_cast<unsigned char>(s[1])) || !std::isdigit(static_cast<unsigned char>(s[3])) ||
      !std::isdigit(static_cast<unsigned char>(s[4]))) {
    return tl::unexpected(Bad(fmt::format("{} must be a local time HH:MM", field)));
  }
  int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && m != 0)) {
    return tl::unexpected(Bad(fmt::format("{} must be a local time between 00:00 and 24:00", field)));
  }
  return h * 60 + m;
}

Result<WeeklyWindow> ParseWindow(const json& j, std::string_view where) {
  OS_RETURN_IF_ERROR(OnlyKeys(j, where, {"days", "from", "to"}));
  WeeklyWindow w;
  if (j.contains("days")) {
    const auto& d = j["days"];
    if (!d.is_array() || d.size() > 7) {
      return tl::unexpected(Bad(fmt::format("{}.days must be a list of mon..sun", where)));
    }
    std::set<int> seen;
    for (const auto& day : d) {
      OS_ASSIGN_OR_RETURN(auto name, String(day, fmt::format("{}.days", where), 3));
      auto it = std::find(kDays.begin(), kDays.end(), name);
      if (it == kDays.end()) {
        return tl::unexpected(Bad(fmt::format("{}.days: '{}' is not one of mon, tue, wed, thu, fri, sat, sun", where, name)));
      }
      seen.insert(static_cast<int>(it - kDays.begin()));
    }
    if (seen.empty()) return tl::unexpected(Bad(fmt::format("{}.days must name at least one day", where)));
    w.days.assign(seen.begin(), seen.end());
  }
  if (j.contains("from")) {
    OS_ASSIGN_OR_RETURN(w.from_minute, ClockTime(j["from"], fmt::format("{}.from", where)));
  }
  if (j.contains("to")) {
    OS_ASSIGN_OR_RETURN(w.to_minute, ClockTime(j["to"], fmt::format("{}.to", where)));
  }
  if (w.from_minute == w.to_minute) {
    return tl::unexpected(Bad(fmt::format("{}: from and to are the same time; omit both for the whole day", where)));
  }
  return w;
}

Result<std::vector<Recipient>> ParseRecipients(const json& j, std::string_view where) {
  if (!j.is_array()) return tl::unexpected(Bad(fmt::format("{} must be a list of recipients", where)));
  if (j.size() > kMaxRecipients) {
    return tl::unexpected(Bad(fmt::format("{} has more than {} recipients", where, kMaxRecipients)));
  }
  std::vector<Recipient> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const std::string w = fmt::format("{}[{}]", where, i);
    const auto& r = j[i];
    OS_RETURN_IF_ERROR(OnlyKeys(r, w, {"email", "channel", "kind", "to"}));
    Recipient rec;
    if (r.contains("email")) {
      if (r.contains("channel") || r.contains("kind") || r.contains("to")) {
        return tl::unexpected(Bad(fmt::format("{}: give either email, or channel with kind and to", w)));
      }
      OS_ASSIGN_OR_RETURN(rec.to, String(r["email"], w + ".email", 254));
      auto at = rec.to.find('@');
      if (at == std::string::npos || at == 0 || at + 1 >= rec.to.size() ||
          rec.to.find_first_of(" \t\r\n<>,;\"") != std::string::npos) {
        return tl::unexpected(Bad(fmt::format("{}.email is not an e-mail address", w)));
      }
    } else if (r.contains("channel")) {
      OS_ASSIGN_OR_RETURN(auto id, Integer(r["channel"], w + ".channel", 1, INT64_MAX));
      rec.channel = id;
      if (!r.contains("kind")) {
        return tl::unexpected(Bad(fmt::format("{}.kind is required with a channel: email, telegram or webhook", w)));
      }
      OS_ASSIGN_OR_RETURN(rec.kind, String(r["kind"], w + ".kind", 16));
      if (rec.kind != "email" && rec.kind != "telegram" && rec.kind != "webhook") {
        return tl::unexpected(Bad(fmt::format("{}.kind must be email, telegram or webhook", w)));
      }
      if (r.contains("to")) { OS_ASSIGN_OR_RETURN(rec.to, String(r["to"], w + ".to", 254)); }
      if (rec.kind != "webhook" && rec.to.empty()) {
        return tl::unexpected(Bad(fmt::format("{}.to is required for a {} channel", w, rec.kind)));
      }
      if (rec.to.find_first_of("\r\n") != std::string::npos) {
        return tl::unexpected(Bad(fmt::format("{}.to must be one line", w)));
      }
    } else {
      return tl::unexpected(Bad(fmt::format("{}: give email, or channel with kind and to", w)));
    }
    out.push_back(std::move(rec));
  }
  return out;
}

json RecipientsJson(const std::vector<Recipient>& list) {
  json arr = json::array();
  for (const auto& r : list) {
    if (!r.channel) {
      arr.push_back({{"email", r.to}});
    } else {
      json j = {{"channel", *r.channel}, {"kind", r.kind}};
      if (!r.to.empty()) j["to"] = r.to;
      arr.push_back(std::move(j));
    }
  }
  return arr;
}

std::string ClockText(int minute) { return fmt::format("{:02}:{:02}", minute / 60, minute % 60); }

json WindowJson(const WeeklyWindow& w) {
  json j = json::object();
  if (!w.days.empty()) {
    json d = json::array();
    for (int day : w.days) d.push_back(std::string(kDays[static_cast<std::size_t>(day)]));
    j["days"] = d;
  }
  if (w.from_minute != 0) j["from"] = ClockText(w.from_minute);
  if (w.to_minute != 24 * 60) j["to"] = ClockText(w.to_minute);
  return j;
}

bool InWindow(const WeeklyWindow& w, int weekday, int minute) {
  auto day_ok = [&](int d) {
    return w.days.empty() || std::find(w.days.begin(), w.days.end(), d) != w.days.end();
  };
  if (w.from_minute < w.to_minute) {
    return day_ok(weekday) && minute >= w.from_minute && minute < w.to_minute;
  }
  // Wraps past midnight: the part after midnight belongs to the previous day's window.
  if (minute >= w.from_minute) return day_ok(weekday);
  if (minute < w.to_minute) return day_ok((weekday + 6) % 7);
  return false;
}

}  // namespace

std::string_view RuleKindName(RuleKind kind) {
  switch (kind) {
    case RuleKind::kThreshold: return "threshold";
    case RuleKind::kOffline: return "offline";
    case RuleKind::kBattery: return "battery";
  }
  return "threshold";
}

std::string_view SeverityName(Severity severity) {
  return severity == Severity::kCritical ? "critical" : "warning";
}

Result<Rule> ParseRule(std::string_view json_text) {
  json j = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return tl::unexpected(Bad("the rule is not valid JSON"));
  return ParseRuleJson(j);
}

Result<Rule> ParseRuleJson(const json& j) {
  if (Depth(j) > kMaxJsonDepth) return tl::unexpected(Bad("the rule is nested too deeply"));
  OS_RETURN_IF_ERROR(OnlyKeys(j, "rule", {"name", "enabled", "kind", "device", "site", "metric", "above",
                                          "below", "hysteresis", "delay_minutes", "offline_after_minutes",
                                          "severity", "schedule", "quiet", "require_note", "notify",
                                          "escalation", "reminder_minutes"}));
  Rule r;
  if (!j.contains("name")) return tl::unexpected(Bad("name is required"));
  OS_ASSIGN_OR_RETURN(r.name, String(j["name"], "name", kMaxRuleNameBytes));
  if (r.name.empty() || r.name.find_first_of("\r\n") != std::string::npos) {
    return tl::unexpected(Bad("name must be one non-empty line"));
  }
  if (j.contains("enabled")) { OS_ASSIGN_OR_RETURN(r.enabled, Bool(j["enabled"], "enabled")); }
  std::string kind = "threshold";
  if (j.contains("kind")) { OS_ASSIGN_OR_RETURN(kind, String(j["kind"], "kind", 16)); }
  if (kind == "threshold") r.kind = RuleKind::kThreshold;
  else if (kind == "offline") r.kind = RuleKind::kOffline;
  else if (kind == "battery") r.kind = RuleKind::kBattery;
  else return tl::unexpected(Bad("kind must be threshold, offline or battery"));
  if (j.contains("device") && j.contains("site")) {
    return tl::unexpected(Bad("give device or site (or neither, for the whole organisation), not both"));
  }
  if (j.contains("device")) { OS_ASSIGN_OR_RETURN(r.device, Integer(j["device"], "device", 1, INT64_MAX)); }
  if (j.contains("site")) { OS_ASSIGN_OR_RETURN(r.site, Integer(j["site"], "site", 1, INT64_MAX)); }
  if (j.contains("metric")) {
    OS_ASSIGN_OR_RETURN(r.metric, String(j["metric"], "metric", 64));
    if (!IsValidMetricName(r.metric)) {
      return tl::unexpected(Bad("metric must be 1-64 characters of a-z 0-9 _ . -"));
    }
  }
  if (j.contains("above")) { OS_ASSIGN_OR_RETURN(r.above, Number(j["above"], "above")); }
  if (j.contains("below")) { OS_ASSIGN_OR_RETURN(r.below, Number(j["below"], "below")); }
  if (j.contains("hysteresis")) {
    OS_ASSIGN_OR_RETURN(r.hysteresis, Number(j["hysteresis"], "hysteresis"));
    if (r.hysteresis < 0) return tl::unexpected(Bad("hysteresis must not be negative"));
  }
  if (j.contains("delay_minutes")) {
    OS_ASSIGN_OR_RETURN(r.delay_ms, Minutes(j["delay_minutes"], "delay_minutes", kMaxDelayMs));
  }
  if (j.contains("offline_after_minutes")) {
    OS_ASSIGN_OR_RETURN(r.offline_after_ms,
                        Minutes(j["offline_after_minutes"], "offline_after_minutes", kMaxDelayMs));
  }
  std::string severity = "warning";
  if (j.contains("severity")) { OS_ASSIGN_OR_RETURN(severity, String(j["severity"], "severity", 16)); }
  if (severity == "warning") r.severity = Severity::kWarning;
  else if (severity == "critical") r.severity = Severity::kCritical;
  else return tl::unexpected(Bad("severity must be warning or critical"));

  switch (r.kind) {
    case RuleKind::kThreshold:
      if (!r.above && !r.below) {
        return tl::unexpected(Bad("a threshold rule needs above, below or both (a band)"));
      }
      if (r.above && r.below && *r.below >= *r.above) {
        return tl::unexpected(Bad("below must be less than above (the band between them is in range)"));
      }
      if (r.above && r.below && 2 * r.hysteresis >= *r.above - *r.below) {
        return tl::unexpected(Bad("hysteresis must be less than half the band"));
      }
      if (j.contains("offline_after_minutes")) {
        return tl::unexpected(Bad("offline_after_minutes belongs to an offline rule"));
      }
      break;
    case RuleKind::kBattery:
      if (!j.contains("metric")) r.metric = "battery";
      if (r.above || !r.below) return tl::unexpected(Bad("a battery rule needs below (a percentage), not above"));
      if (j.contains("offline_after_minutes")) {
        return tl::unexpected(Bad("offline_after_minutes belongs to an offline rule"));
      }
      break;
    case RuleKind::kOffline:
      if (r.above || r.below || j.contains("metric") || j.contains("hysteresis")) {
        return tl::unexpected(Bad("an offline rule takes offline_after_minutes, not metric/above/below/hysteresis"));
      }
      if (r.offline_after_ms < kMsPerMinute) {
        return tl::unexpected(Bad("an offline rule needs offline_after_minutes (at least 1)"));
      }
      r.metric.clear();
      break;
  }
  if (j.contains("schedule")) { OS_ASSIGN_OR_RETURN(r.schedule, ParseWindow(j["schedule"], "schedule")); }
  if (j.contains("quiet")) {
    const auto& q = j["quiet"];
    if (!q.is_array() || q.size() > kMaxQuietPeriods) {
      return tl::unexpected(Bad(fmt::format("quiet must be a list of at most {} periods", kMaxQuietPeriods)));
    }
    for (std::size_t i = 0; i < q.size(); ++i) {
      const std::string w = fmt::format("quiet[{}]", i);
      QuietPeriod p;
      if (q[i].is_object() && (q[i].contains("start") || q[i].contains("end"))) {
        OS_RETURN_IF_ERROR(OnlyKeys(q[i], w, {"start", "end"}));
        if (!q[i].contains("start") || !q[i].contains("end")) {
          return tl::unexpected(Bad(fmt::format("{}: a one-off quiet period needs start and end", w)));
        }
        OS_ASSIGN_OR_RETURN(auto s, String(q[i]["start"], w + ".start", 64));
        OS_ASSIGN_OR_RETURN(auto e, String(q[i]["end"], w + ".end", 64));
        auto st = ParseTimestamp(s), en = ParseTimestamp(e);
        if (!st || !en) return tl::unexpected(Bad(fmt::format("{}: start and end must be RFC 3339 times", w)));
        if (*en <= *st) return tl::unexpected(Bad(fmt::format("{}: end must be after start", w)));
        p.start = *st;
        p.end = *en;
      } else {
        OS_ASSIGN_OR_RETURN(p.weekly, ParseWindow(q[i], w));
      }
      r.quiet.push_back(std::move(p));
    }
  }
  if (j.contains("require_note")) { OS_ASSIGN_OR_RETURN(r.require_note, Bool(j["require_note"], "require_note")); }
  if (j.contains("notify")) { OS_ASSIGN_OR_RETURN(r.notify, ParseRecipients(j["notify"], "notify")); }
  if (j.contains("escalation")) {
    const auto& e = j["escalation"];
    if (!e.is_array() || e.size() > kMaxEscalationSteps) {
      return tl::unexpected(Bad(fmt::format("escalation must be a list of at most {} steps", kMaxEscalationSteps)));
    }
    for (std::size_t i = 0; i < e.size(); ++i) {
      const std::string w = fmt::format("escalation[{}]", i);
      OS_RETURN_IF_ERROR(OnlyKeys(e[i], w, {"after_minutes", "notify"}));
      if (!e[i].contains("after_minutes") || !e[i].contains("notify")) {
        return tl::unexpected(Bad(fmt::format("{} needs after_minutes and notify", w)));
      }
      EscalationStep step;
      OS_ASSIGN_OR_RETURN(auto ms, Minutes(e[i]["after_minutes"], w + ".after_minutes", kMaxDelayMs));
      step.after_minutes = ms / kMsPerMinute;
      if (step.after_minutes < 1) return tl::unexpected(Bad(fmt::format("{}.after_minutes must be at least 1", w)));
      if (!r.escalation.empty() && step.after_minutes <= r.escalation.back().after_minutes) {
        return tl::unexpected(Bad(fmt::format("{}.after_minutes must be later than the step before", w)));
      }
      OS_ASSIGN_OR_RETURN(step.notify, ParseRecipients(e[i]["notify"], w + ".notify"));
      r.escalation.push_back(std::move(step));
    }
  }
  if (j.contains("reminder_minutes")) {
    OS_ASSIGN_OR_RETURN(r.reminder_ms, Minutes(j["reminder_minutes"], "reminder_minutes", kMaxDelayMs));
    if (r.reminder_ms != 0 && r.reminder_ms < 5 * kMsPerMinute) {
      return tl::unexpected(Bad("reminder_minutes must be 0 (none) or at least 5"));
    }
  }
  return r;
}

nlohmann::json RuleToJson(const Rule& r) {
  json j = {{"name", r.name}, {"enabled", r.enabled}, {"kind", RuleKindName(r.kind)},
            {"severity", SeverityName(r.severity)}};
  if (r.device) j["device"] = *r.device;
  if (r.site) j["site"] = *r.site;
  if (r.kind != RuleKind::kOffline) j["metric"] = r.metric;
  if (r.above) j["above"] = *r.above;
  if (r.below) j["below"] = *r.below;
  if (r.kind != RuleKind::kOffline && r.hysteresis != 0) j["hysteresis"] = r.hysteresis;
  j["delay_minutes"] = r.delay_ms / kMsPerMinute;
  if (r.kind == RuleKind::kOffline) j["offline_after_minutes"] = r.offline_after_ms / kMsPerMinute;
  if (r.schedule) j["schedule"] = WindowJson(*r.schedule);
  if (!r.quiet.empty()) {
    json q = json::array();
    for (const auto& p : r.quiet) {
      if (p.weekly) q.push_back(WindowJson(*p.weekly));
      else q.push_back({{"start", FormatRfc3339(p.start)}, {"end", FormatRfc3339(p.end)}});
    }
    j["quiet"] = q;
  }
  j["require_note"] = r.require_note;
  j["notify"] = RecipientsJson(r.notify);
  if (!r.escalation.empty()) {
    json e = json::array();
    for (const auto& s : r.escalation) {
      e.push_back({{"after_minutes", s.after_minutes}, {"notify", RecipientsJson(s.notify)}});
    }
    j["escalation"] = e;
  }
  if (r.reminder_ms != 0) j["reminder_minutes"] = r.reminder_ms / kMsPerMinute;
  return j;
}

std::string RuleDefinitionJson(const Rule& rule) { return RuleToJson(rule).dump(); }

bool RuleCovers(const Rule& rule, DeviceId device, std::optional<SiteId> site) {
  if (!rule.enabled) return false;
  if (rule.device) return *rule.device == device;
  if (rule.site) return site && *site == *rule.site;
  return true;
}

std::pair<int, int> ActiveCalendar::Local(TimestampMs ts) {
  const TimestampMs bucket = ts - ((ts % (15 * kMsPerMinute)) + 15 * kMsPerMinute) % (15 * kMsPerMinute);
  if (bucket != bucket_) {
    // "%u": ISO weekday 1 (Monday) .. 7 (Sunday).
    std::string s = zone_.FormatLocal(bucket, "%u %H:%M");
    int weekday = s.size() >= 7 ? (s[0] - '1') : 0;
    int minute = s.size() >= 7 ? ((s[2] - '0') * 10 + (s[3] - '0')) * 60 + (s[5] - '0') * 10 + (s[6] - '0') : 0;
    bucket_ = bucket;
    bucket_local_ = {weekday, minute};
  }
  int minute = bucket_local_.second + static_cast<int>((ts - bucket) / kMsPerMinute);
  return {bucket_local_.first, minute};
}

bool ActiveCalendar::Active(const Rule& rule, TimestampMs ts) {
  if (!rule.schedule && rule.quiet.empty()) return true;
  std::optional<std::pair<int, int>> local;
  auto get_local = [&] {
    if (!local) local = Local(ts);
    return *local;
  };
  if (rule.schedule) {
    auto [day, minute] = get_local();
    if (!InWindow(*rule.schedule, day, minute)) return false;
  }
  for (const auto& q : rule.quiet) {
    if (q.weekly) {
      auto [day, minute] = get_local();
      if (InWindow(*q.weekly, day, minute)) return false;
    } else if (ts >= q.start && ts < q.end) {
      return false;
    }
  }
  return true;
}

}  // namespace opensense::alerts
