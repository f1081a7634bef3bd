// Alert storage (SQLite migration 5, PostgreSQL migration 2): alert rules, the state of each
// rule per device (so a restart neither loses a pending delay nor re-fires a firing alert),
// alerts, and their append-only events (table alert_events, kept forever). Outbox rows that an
// alert event causes are written in the same transaction as the event (Transact).
//
// Every call is scoped to an organisation: another organisation's rows are kNotFound. The rule
// definition and the rule state are opaque JSON to the store (the alerts module owns their
// shape). Threads: every method may be called from any thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/types.hpp"
#include "store/outbox.hpp"

namespace opensense::store {

struct StoredRule {
  std::int64_t id = 0;
  OrgId org = 0;
  std::string name;
  std::string definition;  // the rule's JSON (alerts::ParseRule)
  TimestampMs created_at = 0;
  TimestampMs updated_at = 0;
  bool operator==(const StoredRule&) const = default;
};

// The state of one rule for one device (alerts::RuleState as JSON).
struct StoredRuleState {
  std::int64_t rule_id = 0;
  DeviceId device = 0;
  std::string state;
  TimestampMs updated_at = 0;
  bool operator==(const StoredRuleState&) const = default;
};

struct AlertRecord {
  std::int64_t id = 0;  // assigned on insert
  OrgId org = 0;
  std::int64_t rule_id = 0;
  std::string rule_name;
  DeviceId device = 0;
  std::string kind;      // threshold | offline | battery
  std::string metric;
  std::string severity;  // warning | critical
  std::string state;     // firing | acknowledged | resolved
  bool late = false;     // found in readings that arrived late (back-filled)
  TimestampMs started_at = 0;  // onset of the excursion (device time)
  TimestampMs fired_at = 0;    // when the delay ran out (device time)
  TimestampMs raised_at = 0;   // server time the alert was raised
  double trigger_value = 0;
  std::optional<double> peak_value;
  std::optional<TimestampMs> peak_at;
  TimestampMs out_of_range_ms = 0;
  int escalation_level = 0;
  std::optional<TimestampMs> acknowledged_at;
  std::string acknowledged_by;
  std::string ack_note;
  std::optional<TimestampMs> resolved_at;
  std::string resolved_by;  // "auto" or the user ("user:3")
  std::string resolve_note;
  bool operator==(const AlertRecord&) const = default;
};

struct AlertEventRecord {
  std::int64_t id = 0;  // assigned on append
  OrgId org = 0;
  std::int64_t alert_id = 0;
  std::optional<DeviceId> device;
  std::string kind;  // fired | acknowledged | resolved | escalated | reminder
  TimestampMs at = 0;
  std::string actor;  // "engine" or the user
  std::string note;
  std::string details;  // JSON
  bool operator==(const AlertEventRecord&) const = default;
};

struct AlertFilter {
  std::optional<std::string> state;  // firing | acknowledged | resolved | open (not resolved)
  std::optional<DeviceId> device;
  std::optional<std::int64_t> rule_id;
  std::optional<TimestampMs> from;   // fired_at >= from
  std::optional<TimestampMs> to;     // fired_at < to
  int limit = 100;                   // newest first
};

// The writes of one transaction (AlertStore::Transact). All scoped to the transaction's
// organisation.
class AlertTxn {
 public:
  virtual ~AlertTxn() = default;
  virtual Result<AlertRecord> GetAlert(std::int64_t id) = 0;  // locked until the end (PostgreSQL)
  virtual Result<std::int64_t> InsertAlert(const AlertRecord& alert) = 0;
  virtual Status UpdateAlert(const AlertRecord& alert) = 0;
  virtual Result<std::int64_t> AppendEvent(const AlertEventRecord& event) = 0;
  virtual Status PutRuleState(const StoredRuleState& state) = 0;
  // INSERT ... ON CONFLICT(idempotency_key) DO NOTHING.
  virtual Status InsertOutbox(const OutboxMessage& message) = 0;
};

class AlertStore {
 public:
  virtual ~AlertStore() = default;

  virtual Result<StoredRule> CreateRule(OrgId org, std::string_view name, std::string_view definition,
                                        TimestampMs now) = 0;
  virtual Result<StoredRule> GetRule(OrgId org, std::int64_t id) = 0;
  virtual Result<std::vector<StoredRule>> ListRules(OrgId org) = 0;
  virtual Result<StoredRule> UpdateRule(OrgId org, std::int64_t id, std::string_view name,
                                        std::string_view definition, TimestampMs now) = 0;
  // The rule and its states go; its alerts and events stay.
  virtual Status DeleteRule(OrgId org, std::int64_t id) = 0;
  // Organisations that have at least one rule (the evaluator loads them at start).
  virtual Result<std::vector<OrgId>> OrganizationsWithRules() = 0;

  virtual Result<std::vector<StoredRuleState>> ListRuleStates(OrgId org) = 0;

  virtual Result<AlertRecord> GetAlert(OrgId org, std::int64_t id) = 0;
  virtual Result<std::vector<AlertRecord>> ListAlerts(OrgId org, const AlertFilter& filter) = 0;
  virtual Result<std::vector<AlertEventRecord>> ListEvents(OrgId org, std::int64_t alert_id) = 0;

  // Runs `fn` in one transaction of `org`: committed if it returns OK, rolled back otherwise.
  virtual Status Transact(OrgId org, const std::function<Status(AlertTxn&)>& fn) = 0;
};

}  // namespace opensense::store
