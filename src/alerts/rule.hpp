// Alert rules: what to watch (a threshold on a metric, a device going silent, a low battery),
// where (one device, every device of a site, the whole organisation), when (an active schedule
// and quiet periods in the organisation's time zone) and whom to tell (recipients, escalation
// steps, reminders). Rules are stored as JSON (the API's shape); ParseRule is the only way in
// and refuses anything malformed with a message that names the field.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time_zone.hpp"
#include "core/types.hpp"

namespace opensense::alerts {

using RuleId = std::int64_t;
using AlertId = std::int64_t;

enum class RuleKind { kThreshold, kOffline, kBattery };
enum class Severity { kWarning, kCritical };
std::string_view RuleKindName(RuleKind kind);
std::string_view SeverityName(Severity severity);

// Where a notification goes: a plain e-mail address (the server's own e-mail provider, or the
// dev mailer), or a notification channel of the organisation (notify module) with the
// recipient it needs (a chat id for Telegram, an address for e-mail, nothing for a webhook).
struct Recipient {
  std::optional<std::int64_t> channel;  // notification_channels.id
  std::string kind = "email";           // email | telegram | webhook
  std::string to;                       // address or chat id; "" for a webhook
  bool operator==(const Recipient&) const = default;
};

struct EscalationStep {
  std::int64_t after_minutes = 0;  // after the alert fired, if still unacknowledged
  std::vector<Recipient> notify;
  bool operator==(const EscalationStep&) const = default;
};

// A weekly window in local time: days of the week (0 = Monday .. 6 = Sunday) and [from, to)
// in minutes after local midnight; from > to wraps past midnight (22:00-06:00).
struct WeeklyWindow {
  std::vector<int> days;  // empty: every day
  int from_minute = 0;
  int to_minute = 24 * 60;
  bool operator==(const WeeklyWindow&) const = default;
};

// A quiet period: a weekly window, or a one-off interval [start, end) in UTC.
struct QuietPeriod {
  std::optional<WeeklyWindow> weekly;
  TimestampMs start = 0;
  TimestampMs end = 0;
  bool operator==(const QuietPeriod&) const = default;
};

struct Rule {
  RuleId id = 0;  // assigned by the store
  OrgId org = 0;
  std::string name;
  bool enabled = true;
  RuleKind kind = RuleKind::kThreshold;
  // Scope: one device, every device of a site, or (neither) every device of the organisation.
  std::optional<DeviceId> device;
  std::optional<SiteId> site;
  std::string metric = "temperature";  // threshold rules; battery rules watch "battery"
  std::optional<double> above;         // out of range when value > above
  std::optional<double> below;         // out of range when value < below (both: outside band)
  double hysteresis = 0;               // back in range only when inside by this margin
  TimestampMs delay_ms = 0;            // out of range this long before the alert fires
  TimestampMs offline_after_ms = 0;    // offline rules: no reading for this long
  Severity severity = Severity::kWarning;
  std::optional<WeeklyWindow> schedule;  // the rule fires only inside it (none: always)
  std::vector<QuietPeriod> quiet;        // ...and never inside one of these
  bool require_note = false;             // acknowledging needs a corrective-action note
  std::vector<Recipient> notify;
  std::vector<EscalationStep> escalation;  // ordered by after_minutes
  TimestampMs reminder_ms = 0;             // 0: no reminders while firing unacknowledged
  TimestampMs created_at = 0;              // readings older than this are not judged
  bool operator==(const Rule&) const = default;
};

// Bounds of what a rule may hold (a rule is user input).
inline constexpr std::size_t kMaxRuleNameBytes = 200;
inline constexpr std::size_t kMaxRecipients = 50;
inline constexpr std::size_t kMaxEscalationSteps = 10;
inline constexpr std::size_t kMaxQuietPeriods = 50;
inline constexpr TimestampMs kMaxDelayMs = 7 * kMsPerDay;

// Parses the JSON definition of a rule (the API body). Unknown fields are refused, every
// number is range-checked, the message names the offending field. id, org and created_at are
// not part of the definition.
Result<Rule> ParseRule(std::string_view json_text);
Result<Rule> ParseRuleJson(const nlohmann::json& j);
// The definition as JSON (ParseRule(RuleDefinitionJson(r)) == r, apart from id/org/created_at).
std::string RuleDefinitionJson(const Rule& rule);
nlohmann::json RuleToJson(const Rule& rule);  // definition plus id and created_at

// True if the rule watches this device (scope) and is enabled.
bool RuleCovers(const Rule& rule, DeviceId device, std::optional<SiteId> site);

// True when the rule may fire at `ts`: inside its schedule and outside its quiet periods.
class ActiveCalendar {
 public:
  explicit ActiveCalendar(TimeZone zone) : zone_(std::move(zone)) {}
  bool Active(const Rule& rule, TimestampMs ts);

 private:
  // Local weekday (0 = Monday) and minute of the day, cached per UTC quarter hour.
  std::pair<int, int> Local(TimestampMs ts);
  TimeZone zone_;
  TimestampMs bucket_ = -1;
  std::pair<int, int> bucket_local_{0, 0};
};

}  // namespace opensense::alerts
