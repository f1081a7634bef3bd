#include "store/postgres/pg_alert_store.hpp"

#include <fmt/format.h>

#include <utility>

namespace opensense::store::postgres {
namespace {

constexpr const char* kRuleColumns = "id, org_id, name, definition, created_at, updated_at";
constexpr const char* kAlertColumns =
    "id, org_id, rule_id, rule_name, device_id, kind, metric, severity, state, late, started_at, "
    "fired_at, raised_at, trigger_value, peak_value, peak_at, out_of_range_ms, escalation_level, "
    "acknowledged_at, acknowledged_by, ack_note, resolved_at, resolved_by, resolve_note";

StoredRule RuleFrom(const PgResult& r, int i) {
  return StoredRule{r.Int(i, 0), r.Int(i, 1), std::string(r.Text(i, 2)), std::string(r.Text(i, 3)),
                    r.Int(i, 4), r.Int(i, 5)};
}

AlertRecord AlertFrom(const PgResult& r, int i) {
  AlertRecord a;
  a.id = r.Int(i, 0);
  a.org = r.Int(i, 1);
  a.rule_id = r.Int(i, 2);
  a.rule_name = r.Text(i, 3);
  a.device = r.Int(i, 4);
  a.kind = r.Text(i, 5);
  a.metric = r.Text(i, 6);
  a.severity = r.Text(i, 7);
  a.state = r.Text(i, 8);
  a.late = r.Bool(i, 9);
  a.started_at = r.Int(i, 10);
  a.fired_at = r.Int(i, 11);
  a.raised_at = r.Int(i, 12);
  a.trigger_value = r.Double(i, 13);
  if (!r.IsNull(i, 14)) a.peak_value = r.Double(i, 14);
  a.peak_at = r.OptInt(i, 15);
  a.out_of_range_ms = r.Int(i, 16);
  a.escalation_level = static_cast<int>(r.Int(i, 17));
  a.acknowledged_at = r.OptInt(i, 18);
  a.acknowledged_by = r.Text(i, 19);
  a.ack_note = r.Text(i, 20);
  a.resolved_at = r.OptInt(i, 21);
  a.resolved_by = r.Text(i, 22);
  a.resolve_note = r.Text(i, 23);
  return a;
}

// org_id .. resolve_note as $1..$23.
std::vector<Param> AlertParams(const AlertRecord& a) {
  return {P(a.org), P(a.rule_id), P(a.rule_name), P(a.device), P(a.kind), P(a.metric), P(a.severity),
          P(a.state), P(a.late), P(a.started_at), P(a.fired_at), P(a.raised_at), P(a.trigger_value),
          P(a.peak_value), P(a.peak_at), P(a.out_of_range_ms), P(a.escalation_level),
          P(a.acknowledged_at), P(a.acknowledged_by), P(a.ack_note), P(a.resolved_at),
          P(a.resolved_by), P(a.resolve_note)};
}

template <typename T, typename F>
std::vector<T> All(const PgResult& r, F from) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(r.Rows()));
  for (int i = 0; i < r.Rows(); ++i) out.push_back(from(r, i));
  return out;
}

class Txn final : public AlertTxn {
 public:
  Txn(Conn* c, OrgId org) : c_(c), org_(org) {}

  Result<AlertRecord> GetAlert(std::int64_t id) override {
    OS_ASSIGN_OR_RETURN(auto r, c_->Exec(fmt::format("SELECT {} FROM alerts WHERE id=$1 AND org_id=$2 FOR UPDATE",
                                                     kAlertColumns), {P(id), P(org_)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such alert");
    return AlertFrom(r, 0);
  }
  Result<std::int64_t> InsertAlert(const AlertRecord& a) override {
    OS_RETURN_IF_ERROR(Scoped(a.org));
    OS_ASSIGN_OR_RETURN(auto r, c_->Exec(
        "INSERT INTO alerts(org_id, rule_id, rule_name, device_id, kind, metric, severity, state, late, "
        "started_at, fired_at, raised_at, trigger_value, peak_value, peak_at, out_of_range_ms, "
        "escalation_level, acknowledged_at, acknowledged_by, ack_note, resolved_at, resolved_by, "
        "resolve_note) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,"
        "$21,$22,$23) RETURNING id", AlertParams(a)));
    return r.Int(0, 0);
  }
  Status UpdateAlert(const AlertRecord& a) override {
    OS_RETURN_IF_ERROR(Scoped(a.org));
    auto params = AlertParams(a);
    params.push_back(P(a.id));
    OS_ASSIGN_OR_RETURN(auto r, c_->Exec(
        "UPDATE alerts SET org_id=$1, rule_id=$2, rule_name=$3, device_id=$4, kind=$5, metric=$6, "
        "severity=$7, state=$8, late=$9, started_at=$10, fired_at=$11, raised_at=$12, trigger_value=$13, "
        "peak_value=$14, peak_at=$15, out_of_range_ms=$16, escalation_level=$17, acknowledged_at=$18, "
        "acknowledged_by=$19, ack_note=$20, resolved_at=$21, resolved_by=$22, resolve_note=$23 "
        "WHERE id=$24 AND org_id=$1", params));
    if (r.Affected() == 0) return MakeError(ErrorCode::kNotFound, "no such alert");
    return Ok();
  }
  Result<std::int64_t> AppendEvent(const AlertEventRecord& e) override {
    OS_RETURN_IF_ERROR(Scoped(e.org));
    OS_ASSIGN_OR_RETURN(auto r, c_->Exec(
        "INSERT INTO alert_events(org_id, alert_id, device_id, kind, at, actor, note, details) "
        "VALUES($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id",
        {P(e.org), P(e.alert_id), P(e.device), P(e.kind), P(e.at), P(e.actor), P(e.note), P(e.details)}));
    return r.Int(0, 0);
  }
  Status PutRuleState(const StoredRuleState& st) override {
    return c_->Exec(
        "INSERT INTO alert_rule_state(rule_id, device_id, org_id, state, updated_at) "
        "SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM alert_rules WHERE id=$1 AND org_id=$3) "
        "ON CONFLICT(rule_id, device_id) DO UPDATE SET state=excluded.state, "
        "updated_at=excluded.updated_at WHERE alert_rule_state.org_id=excluded.org_id",
        {P(st.rule_id), P(st.device), P(org_), P(st.state), P(st.updated_at)})
        .map([](PgResult&&) {});
  }
  Status InsertOutbox(const OutboxMessage& m) override {
    if (m.org && *m.org != org_) return MakeError(ErrorCode::kInternal, "outbox row of another organisation");
    return c_->Exec(
        "INSERT INTO notification_outbox(org_id, channel_id, channel_kind, recipient, subject, text_body, "
        "html_body, payload_json, idempotency_key, alert_id, event_id, created_at, next_attempt_at) "
        "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT(idempotency_key) DO NOTHING",
        {P(org_), P(m.channel), P(m.channel_kind), P(m.recipient), P(m.subject), P(m.text_body),
         P(m.html_body), P(m.payload_json), P(m.idempotency_key), P(m.alert_id), P(m.event_id),
         P(m.created_at), P(m.next_attempt_at)})
        .map([](PgResult&&) {});
  }

 private:
  Status Scoped(OrgId org) const {
    if (org != org_) return MakeError(ErrorCode::kInternal, "alert write for another organisation");
    return Ok();
  }
  Conn* c_;
  OrgId org_;
};

class PgAlertStore final : public AlertStore {
 public:
  explicit PgAlertStore(Pool* pool) : pool_(pool) {}

  Result<StoredRule> CreateRule(OrgId org, std::string_view name, std::string_view definition,
                                TimestampMs now) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format(
        "INSERT INTO alert_rules(org_id, name, definition, created_at, updated_at) SELECT $1, $2, $3, $4, $4 "
        "WHERE EXISTS (SELECT 1 FROM organizations WHERE id=$1) RETURNING {}", kRuleColumns),
        {P(org), P(name), P(definition), P(now)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such organisation");
    return RuleFrom(r, 0);
  }
  Result<StoredRule> GetRule(OrgId org, std::int64_t id) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format("SELECT {} FROM alert_rules WHERE id=$1 AND org_id=$2", kRuleColumns),
                                      {P(id), P(org)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such alert rule");
    return RuleFrom(r, 0);
  }
  Result<std::vector<StoredRule>> ListRules(OrgId org) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format("SELECT {} FROM alert_rules WHERE org_id=$1 ORDER BY id", kRuleColumns),
                                      {P(org)}));
    return All<StoredRule>(r, RuleFrom);
  }
  Result<StoredRule> UpdateRule(OrgId org, std::int64_t id, std::string_view name, std::string_view definition,
                                TimestampMs now) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format(
        "UPDATE alert_rules SET name=$3, definition=$4, updated_at=$5 WHERE id=$1 AND org_id=$2 RETURNING {}",
        kRuleColumns), {P(id), P(org), P(name), P(definition), P(now)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such alert rule");
    return RuleFrom(r, 0);
  }
  Status DeleteRule(OrgId org, std::int64_t id) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(
        "WITH gone AS (DELETE FROM alert_rules WHERE id=$1 AND org_id=$2 RETURNING id), "
        "states AS (DELETE FROM alert_rule_state WHERE rule_id IN (SELECT id FROM gone) AND org_id=$2) "
        "SELECT count(*) FROM gone", {P(id), P(org)}));
    if (r.Int(0, 0) == 0) return MakeError(ErrorCode::kNotFound, "no such alert rule");
    return Ok();
  }
  Result<std::vector<OrgId>> OrganizationsWithRules() override {
    OS_ASSIGN_OR_RETURN(auto r, Query("SELECT DISTINCT org_id FROM alert_rules ORDER BY org_id"));
    return All<OrgId>(r, [](const PgResult& res, int i) { return res.Int(i, 0); });
  }
  Result<std::vector<StoredRuleState>> ListRuleStates(OrgId org) override {
    OS_ASSIGN_OR_RETURN(auto r, Query("SELECT rule_id, device_id, state, updated_at FROM alert_rule_state WHERE org_id=$1",
                                      {P(org)}));
    return All<StoredRuleState>(r, [](const PgResult& res, int i) {
      return StoredRuleState{res.Int(i, 0), res.Int(i, 1), std::string(res.Text(i, 2)), res.Int(i, 3)};
    });
  }
  Result<AlertRecord> GetAlert(OrgId org, std::int64_t id) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format("SELECT {} FROM alerts WHERE id=$1 AND org_id=$2", kAlertColumns),
                                      {P(id), P(org)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such alert");
    return AlertFrom(r, 0);
  }
  Result<std::vector<AlertRecord>> ListAlerts(OrgId org, const AlertFilter& f) override {
    std::string sql = fmt::format("SELECT {} FROM alerts WHERE org_id=$1", kAlertColumns);
    std::vector<Param> params = {P(org)};
    auto add = [&](std::string cond, Param p) {
      params.push_back(std::move(p));
      sql += fmt::format(fmt::runtime(cond), params.size());
    };
    if (f.state) {
      if (*f.state == "open") sql += " AND state <> 'resolved'";
      else add(" AND state=${}", P(*f.state));
    }
    if (f.device) add(" AND device_id=${}", P(*f.device));
    if (f.rule_id) add(" AND rule_id=${}", P(*f.rule_id));
    if (f.from) add(" AND fired_at>=${}", P(*f.from));
    if (f.to) add(" AND fired_at<${}", P(*f.to));
    add(" ORDER BY fired_at DESC, id DESC LIMIT ${}", P(f.limit));
    OS_ASSIGN_OR_RETURN(auto r, Query(sql, params));
    return All<AlertRecord>(r, AlertFrom);
  }
  Result<std::vector<AlertEventRecord>> ListEvents(OrgId org, std::int64_t alert_id) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(
        "SELECT id, org_id, alert_id, device_id, kind, at, coalesce(actor, ''), coalesce(note, ''), "
        "coalesce(details, '') FROM alert_events WHERE org_id=$1 AND alert_id=$2 ORDER BY id",
        {P(org), P(alert_id)}));
    return All<AlertEventRecord>(r, [](const PgResult& res, int i) {
      AlertEventRecord e;
      e.id = res.Int(i, 0);
      e.org = res.Int(i, 1);
      e.alert_id = res.Int(i, 2);
      e.device = res.OptInt(i, 3);
      e.kind = res.Text(i, 4);
      e.at = res.Int(i, 5);
      e.actor = res.Text(i, 6);
      e.note = res.Text(i, 7);
      e.details = res.Text(i, 8);
      return e;
    });
  }
  Status Transact(OrgId org, const std::function<Status(AlertTxn&)>& fn) override {
    OS_ASSIGN_OR_RETURN(auto lease, pool_->Acquire());
    Conn* c = lease.get();
    OS_RETURN_IF_ERROR(c->Begin());
    Txn txn(c, org);
    if (auto st = fn(txn); !st) {
      c->Rollback();
      return st;
    }
    if (auto st = c->Commit(); !st) {
      c->Rollback();
      return st;
    }
    return Ok();
  }

 private:
  Result<PgResult> Query(std::string_view sql, const std::vector<Param>& params = {}) {
    OS_ASSIGN_OR_RETURN(auto lease, pool_->Acquire());
    return lease->Exec(sql, params);
  }
  Pool* pool_;
};

}  // namespace

std::unique_ptr<AlertStore> MakePgAlertStore(Pool* pool) { return std::make_unique<PgAlertStore>(pool); }

}  // namespace opensense::store::postgres
