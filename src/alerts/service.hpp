// The alert service: feeds the pure engine (engine.hpp) and stores what comes out.
//
// - Committed readings arrive from the writer (Store::AddCommitListener) and go to a bounded
//   queue; an evaluator thread judges them. The listener never blocks ingest: when the queue is
//   full the batch is dropped from the queue and its organisation and time range are remembered,
//   and the evaluator re-reads those readings from the store (QuerySeries) once it catches up.
// - Tick(now) (the scheduler's alert job) judges time-based conditions: offline, delays
//   expiring between readings, escalation, reminders.
// - Every transition is written in one store transaction: the alert row, an append-only alert
//   event, the rule state, and one outbox row per recipient (notify delivers them).
// - Rule CRUD, acknowledge and resolve (the API and CLI) go through here, so the engine's view
//   and the store never disagree.
//
// Threads: every public method may be called from any thread; one mutex serialises evaluation,
// ticks and user actions.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <shared_mutex>
#include <thread>
#include <unordered_set>
#include <unordered_map>
#include <vector>

#include "alerts/engine.hpp"
#include "alerts/rule.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "store/store.hpp"

namespace opensense::alerts {

struct AlertServiceOptions {
  // Time source (not owned); nullptr: the system clock.
  const Clock* clock = nullptr;
  // Base of the links in messages ("https://opensense.example.com"); empty: the API path only.
  std::string public_url;
  // Readings queued for evaluation beyond this are dropped from the queue and re-read from the
  // store later (never lost silently; counted in opensense_alert_queue_overflows_total).
  std::size_t max_queued_readings = 1'000'000;
  // Ticks further apart than this are a server clock jump (engine.hpp).
  TimestampMs max_tick_gap_ms = 10 * kMsPerMinute;
  // Run the evaluator thread (false: the caller calls Drain(), as tests do).
  bool evaluator_thread = true;
  MetricsRegistry* metrics = nullptr;  // not owned; may be null
  // Called after a transaction that may have queued outbox rows (wakes the dispatcher).
  std::function<void()> outbox_written;
  // Called after each committed transaction that changed an alert, once per alert, with the
  // event ("fired", "escalated", "reminder", "acknowledged", "resolved"): the dashboard's live
  // updates. Runs on the thread that made the change, under the service's lock: it must return
  // at once and must not call the service.
  std::function<void(OrgId org, const store::AlertRecord& alert, std::string_view event)> alert_changed;
};

// A rule as the API shows it: the definition plus what the store assigned.
struct RuleView {
  Rule rule;
  TimestampMs updated_at = 0;
};

class AlertService {
 public:
  AlertService(store::Store* store, AlertServiceOptions options);
  ~AlertService();
  AlertService(const AlertService&) = delete;
  AlertService& operator=(const AlertService&) = delete;

  // Loads rules and rule states, registers the commit listener and starts the evaluator.
  Status Start();
  // Unregisters the listener, evaluates what is queued, stops the thread. Idempotent.
  void Stop();

  // The commit listener (public for tests and the benchmark): queues, never blocks.
  void OnCommitted(std::vector<store::CommittedReadings>&& batches);
  // Evaluates everything queued (and re-reads dropped ranges) on the calling thread.
  void Drain();
  // Time-based conditions at server time `now`.
  void Tick(TimestampMs now);

  // Rules. `json` is the rule definition (rule.hpp); PATCH merges into the current definition
  // (RFC 7386). created_at: when the rule starts judging readings (default: now). The rule's
  // device or site must be the organisation's (kNotFound), and so must every notification
  // channel its recipients name, of the recipient's kind (kInvalidArgument naming the field).
  Result<RuleView> CreateRule(OrgId org, std::string_view json, std::optional<TimestampMs> created_at = {});
  Result<RuleView> UpdateRule(OrgId org, RuleId id, std::string_view merge_patch);
  // Open alerts of the rule are resolved ("the rule was deleted"); the record stays.
  Status DeleteRule(OrgId org, RuleId id);
  Result<std::vector<RuleView>> ListRules(OrgId org);
  Result<RuleView> GetRule(OrgId org, RuleId id);

  // Lifecycle by a person. `actor` is who ("user:3"). Acknowledge needs a note when the rule
  // requires one; Resolve always needs one.
  Result<store::AlertRecord> Acknowledge(OrgId org, AlertId id, std::string_view actor, std::string_view note);
  Result<store::AlertRecord> Resolve(OrgId org, AlertId id, std::string_view actor, std::string_view note);

  // Queue depth in readings (for metrics and tests).
  std::size_t queued_readings() const;

 private:
  struct DeviceInfo {
    std::string name;
    std::optional<SiteId> site;
    std::string site_name;
  };
  struct OrgView {
    std::string name;
    TimeZone zone = TimeZone::Utc();
    std::unique_ptr<ActiveCalendar> calendar;
    std::vector<Rule> rules;
    std::unordered_map<DeviceId, DeviceInfo> devices;
    // The rules (indexes into `rules`) covering each device; rebuilt when rules or devices change.
    std::unordered_map<DeviceId, std::vector<std::size_t>> rules_of;
  };
  struct StateKey {
    RuleId rule;
    DeviceId device;
    bool operator<(const StateKey& o) const { return rule != o.rule ? rule < o.rule : device < o.device; }
  };
  struct Pending {
    RuleId rule;
    Transition t;
  };
  struct Overflow {
    TimestampMs from = 0;
    TimestampMs to = 0;
  };

  Result<OrgView*> View(OrgId org);
  Status LoadDevices(OrgId org, OrgView& view);
  void WatchSeenDevices(OrgId org, OrgView& view, const Rule& rule);
  const DeviceInfo* Device(OrgId org, OrgView& view, DeviceId device);
  void Evaluate(OrgId org, std::vector<Reading>& readings);
  void Reevaluate(OrgId org, Overflow range);
  // Writes transitions and changed states in one transaction; on failure the org is reloaded.
  void Persist(OrgId org, OrgView& view, std::vector<Pending>& transitions, const std::vector<StateKey>& dirty);
  // An alert a transaction changed, and the event (for AlertServiceOptions::alert_changed).
  struct Changed {
    store::AlertRecord alert;
    std::string event;
  };
  Status WriteTransition(OrgId org, OrgView& view, const Rule& rule, RuleState& state,
                         const Transition& t, AlertId* late_alert, store::AlertTxn& txn,
                         std::vector<Changed>* changed);
  void Announce(OrgId org, const std::vector<Changed>& changed) const;
  Status QueueMessages(OrgId org, OrgView& view, const Rule& rule, const store::AlertRecord& alert,
                       std::string_view event, std::int64_t event_id,
                       const std::vector<Recipient>& recipients, store::AlertTxn& txn);
  const Rule* FindRule(OrgView& view, RuleId id);
  Status PutState(OrgId org, const StateKey& key, store::AlertTxn& txn);
  void EvaluatorLoop();

  store::Store* store_;
  AlertServiceOptions options_;
  SystemClock system_clock_;
  const Clock* clock_;

  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<store::CommittedReadings> queue_;
  std::size_t queued_ = 0;
  std::map<OrgId, Overflow> overflow_;
  bool stop_ = false;
  std::thread thread_;
  bool started_ = false;
  store::CommitListenerId listener_ = 0;

  // Organisations with at least one rule (ever, this run): the commit filter. Readings of the
  // others are not even copied for evaluation.
  mutable std::shared_mutex rule_orgs_mu_;
  std::unordered_set<OrgId> rule_orgs_;
  void AddRuleOrg(OrgId org);

  std::mutex mu_;  // everything below
  std::map<OrgId, std::unique_ptr<OrgView>> views_;
  std::map<StateKey, RuleState> states_;
};

// The subject and text of a notification (what, where, how bad, since when, link), for tests
// and the dev mailer.
struct AlertMessage {
  std::string subject;
  std::string text;
  std::string html;
  std::string payload_json;
};
AlertMessage ComposeMessage(std::string_view event, const store::AlertRecord& alert,
                            std::string_view device_name, std::string_view site_name,
                            const Rule& rule, const TimeZone& zone, std::string_view link);

}  // namespace opensense::alerts
