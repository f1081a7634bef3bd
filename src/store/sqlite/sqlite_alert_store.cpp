#include "store/sqlite/sqlite_alert_store.hpp"

#include <fmt/format.h>

#include <mutex>
#include <utility>

namespace opensense::store::sqlite {
namespace {

constexpr const char* kRuleColumns = "id, org_id, name, definition, created_at, updated_at";
constexpr const char* kAlertColumns =
    "id, org_id, rule_id, rule_name, device_id, kind, metric, severity, state, late, started_at, "
    "fired_at, raised_at, trigger_value, peak_value, peak_at, out_of_range_ms, escalation_level, "
    "acknowledged_at, acknowledged_by, ack_note, resolved_at, resolved_by, resolve_note";

StoredRule RuleFrom(const Stmt& s) {
  return StoredRule{s.Int(0), s.Int(1), s.Text(2), s.Text(3), s.Int(4), s.Int(5)};
}

AlertRecord AlertFrom(const Stmt& s) {
  AlertRecord a;
  a.id = s.Int(0);
  a.org = s.Int(1);
  a.rule_id = s.Int(2);
  a.rule_name = s.Text(3);
  a.device = s.Int(4);
  a.kind = s.Text(5);
  a.metric = s.Text(6);
  a.severity = s.Text(7);
  a.state = s.Text(8);
  a.late = s.Int(9) != 0;
  a.started_at = s.Int(10);
  a.fired_at = s.Int(11);
  a.raised_at = s.Int(12);
  a.trigger_value = s.Double(13);
  if (!s.IsNull(14)) a.peak_value = s.Double(14);
  if (!s.IsNull(15)) a.peak_at = s.Int(15);
  a.out_of_range_ms = s.Int(16);
  a.escalation_level = static_cast<int>(s.Int(17));
  if (!s.IsNull(18)) a.acknowledged_at = s.Int(18);
  a.acknowledged_by = s.Text(19);
  a.ack_note = s.Text(20);
  if (!s.IsNull(21)) a.resolved_at = s.Int(21);
  a.resolved_by = s.Text(22);
  a.resolve_note = s.Text(23);
  return a;
}

// Binds the columns after id (org_id .. resolve_note) at 1..23.
void BindAlert(Stmt* s, const AlertRecord& a) {
  s->Bind(1, a.org).Bind(2, a.rule_id).Bind(3, a.rule_name).Bind(4, a.device).Bind(5, a.kind);
  s->Bind(6, a.metric).Bind(7, a.severity).Bind(8, a.state).Bind(9, a.late ? 1 : 0);
  s->Bind(10, a.started_at).Bind(11, a.fired_at).Bind(12, a.raised_at).Bind(13, a.trigger_value);
  if (a.peak_value) s->Bind(14, *a.peak_value); else s->BindNull(14);
  if (a.peak_at) s->Bind(15, *a.peak_at); else s->BindNull(15);
  s->Bind(16, a.out_of_range_ms).Bind(17, a.escalation_level);
  if (a.acknowledged_at) s->Bind(18, *a.acknowledged_at); else s->BindNull(18);
  s->Bind(19, a.acknowledged_by).Bind(20, a.ack_note);
  if (a.resolved_at) s->Bind(21, *a.resolved_at); else s->BindNull(21);
  s->Bind(22, a.resolved_by).Bind(23, a.resolve_note);
}

template <typename T, typename F>
Result<std::vector<T>> All(Stmt& s, F from) {
  std::vector<T> out;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(from(s));
  }
  return out;
}

template <typename T, typename F>
Result<T> One(Stmt& s, F from, std::string missing) {
  OS_ASSIGN_OR_RETURN(auto list, All<T>(s, from));
  if (list.empty()) return MakeError(ErrorCode::kNotFound, std::move(missing));
  return std::move(list.front());
}

class Txn final : public AlertTxn {
 public:
  Txn(Db* db, OrgId org) : db_(db), org_(org) {}

  Result<AlertRecord> GetAlert(std::int64_t id) override {
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce(fmt::format("SELECT {} FROM alerts WHERE id = ? AND org_id = ?", kAlertColumns)));
    s.Bind(1, id).Bind(2, org_);
    return One<AlertRecord>(s, AlertFrom, "no such alert");
  }
  Result<std::int64_t> InsertAlert(const AlertRecord& a) override {
    OS_RETURN_IF_ERROR(Scoped(a.org));
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce(
        "INSERT INTO alerts(org_id, rule_id, rule_name, device_id, kind, metric, severity, state, late, "
        "started_at, fired_at, raised_at, trigger_value, peak_value, peak_at, out_of_range_ms, "
        "escalation_level, acknowledged_at, acknowledged_by, ack_note, resolved_at, resolved_by, "
        "resolve_note) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    BindAlert(&s, a);
    OS_RETURN_IF_ERROR(s.Run());
    return db_->LastInsertRowid();
  }
  Status UpdateAlert(const AlertRecord& a) override {
    OS_RETURN_IF_ERROR(Scoped(a.org));
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce(
        "UPDATE alerts SET org_id = ?, rule_id = ?, rule_name = ?, device_id = ?, kind = ?, metric = ?, "
        "severity = ?, state = ?, late = ?, started_at = ?, fired_at = ?, raised_at = ?, "
        "trigger_value = ?, peak_value = ?, peak_at = ?, out_of_range_ms = ?, escalation_level = ?, "
        "acknowledged_at = ?, acknowledged_by = ?, ack_note = ?, resolved_at = ?, resolved_by = ?, "
        "resolve_note = ? WHERE id = ? AND org_id = ?"));
    BindAlert(&s, a);
    s.Bind(24, a.id).Bind(25, org_);
    OS_RETURN_IF_ERROR(s.Run());
    if (db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, "no such alert");
    return Ok();
  }
  Result<std::int64_t> AppendEvent(const AlertEventRecord& e) override {
    OS_RETURN_IF_ERROR(Scoped(e.org));
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO alert_events(org_id, alert_id, device_id, kind, at, actor, note, details) "
        "VALUES(?,?,?,?,?,?,?,?)"));
    s->Bind(1, e.org).Bind(2, e.alert_id);
    if (e.device) s->Bind(3, *e.device); else s->BindNull(3);
    OS_RETURN_IF_ERROR(s->Bind(4, e.kind).Bind(5, e.at).Bind(6, e.actor).Bind(7, e.note).Bind(8, e.details).Run());
    return db_->LastInsertRowid();
  }
  Status PutRuleState(const StoredRuleState& st) override {
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO alert_rule_state(rule_id, device_id, org_id, state, updated_at) "
        "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM alert_rules WHERE id = ?1 AND org_id = ?3) "
        "ON CONFLICT(rule_id, device_id) DO UPDATE SET state = excluded.state, "
        "updated_at = excluded.updated_at WHERE alert_rule_state.org_id = excluded.org_id"));
    return s->Bind(1, st.rule_id).Bind(2, st.device).Bind(3, org_).Bind(4, st.state).Bind(5, st.updated_at).Run();
  }
  Status InsertOutbox(const OutboxMessage& m) override {
    if (m.org && *m.org != org_) return MakeError(ErrorCode::kInternal, "outbox row of another organisation");
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO notification_outbox(org_id, channel_id, channel_kind, recipient, subject, text_body, "
        "html_body, payload_json, idempotency_key, alert_id, event_id, created_at, next_attempt_at) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(idempotency_key) DO NOTHING"));
    s->Bind(1, org_);
    if (m.channel) s->Bind(2, *m.channel); else s->BindNull(2);
    s->Bind(3, m.channel_kind).Bind(4, m.recipient).Bind(5, m.subject).Bind(6, m.text_body);
    s->Bind(7, m.html_body).Bind(8, m.payload_json).Bind(9, m.idempotency_key);
    if (m.alert_id) s->Bind(10, *m.alert_id); else s->BindNull(10);
    if (m.event_id) s->Bind(11, *m.event_id); else s->BindNull(11);
    return s->Bind(12, m.created_at).Bind(13, m.next_attempt_at).Run();
  }

 private:
  Status Scoped(OrgId org) const {
    if (org != org_) return MakeError(ErrorCode::kInternal, "alert write for another organisation");
    return Ok();
  }
  Db* db_;
  OrgId org_;
};

class SqliteAlertStore final : public AlertStore {
 public:
  explicit SqliteAlertStore(std::unique_ptr<Db> db) : db_(std::move(db)) {}

  Result<StoredRule> CreateRule(OrgId org, std::string_view name, std::string_view definition,
                                TimestampMs now) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO alert_rules(org_id, name, definition, created_at, updated_at) "
        "SELECT ?1, ?2, ?3, ?4, ?4 WHERE EXISTS (SELECT 1 FROM organizations WHERE id = ?1)"));
    OS_RETURN_IF_ERROR(s->Bind(1, org).Bind(2, name).Bind(3, definition).Bind(4, now).Run());
    if (db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, "no such organisation");
    return StoredRule{db_->LastInsertRowid(), org, std::string(name), std::string(definition), now, now};
  }
  Result<StoredRule> GetRule(OrgId org, std::int64_t id) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce(fmt::format("SELECT {} FROM alert_rules WHERE id = ? AND org_id = ?", kRuleColumns)));
    s.Bind(1, id).Bind(2, org);
    return One<StoredRule>(s, RuleFrom, "no such alert rule");
  }
  Result<std::vector<StoredRule>> ListRules(OrgId org) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce(fmt::format("SELECT {} FROM alert_rules WHERE org_id = ? ORDER BY id", kRuleColumns)));
    s.Bind(1, org);
    return All<StoredRule>(s, RuleFrom);
  }
  Result<StoredRule> UpdateRule(OrgId org, std::int64_t id, std::string_view name, std::string_view definition,
                                TimestampMs now) override {
    {
      std::lock_guard lock(mu_);
      OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
          "UPDATE alert_rules SET name = ?, definition = ?, updated_at = ? WHERE id = ? AND org_id = ?"));
      OS_RETURN_IF_ERROR(s->Bind(1, name).Bind(2, definition).Bind(3, now).Bind(4, id).Bind(5, org).Run());
      if (db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, "no such alert rule");
    }
    return GetRule(org, id);
  }
  Status DeleteRule(OrgId org, std::int64_t id) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(db_.get()));
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare("DELETE FROM alert_rules WHERE id = ? AND org_id = ?"));
    OS_RETURN_IF_ERROR(s->Bind(1, id).Bind(2, org).Run());
    if (db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, "no such alert rule");
    OS_ASSIGN_OR_RETURN(Stmt * d, db_->Prepare("DELETE FROM alert_rule_state WHERE rule_id = ? AND org_id = ?"));
    OS_RETURN_IF_ERROR(d->Bind(1, id).Bind(2, org).Run());
    return tx.Commit();
  }
  Result<std::vector<OrgId>> OrganizationsWithRules() override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce("SELECT DISTINCT org_id FROM alert_rules ORDER BY org_id"));
    return All<OrgId>(s, [](const Stmt& st) { return st.Int(0); });
  }
  Result<std::vector<StoredRuleState>> ListRuleStates(OrgId org) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce(
        "SELECT rule_id, device_id, state, updated_at FROM alert_rule_state WHERE org_id = ?"));
    s.Bind(1, org);
    return All<StoredRuleState>(s, [](const Stmt& st) {
      return StoredRuleState{st.Int(0), st.Int(1), st.Text(2), st.Int(3)};
    });
  }
  Result<AlertRecord> GetAlert(OrgId org, std::int64_t id) override {
    std::lock_guard lock(mu_);
    return Txn(db_.get(), org).GetAlert(id);
  }
  Result<std::vector<AlertRecord>> ListAlerts(OrgId org, const AlertFilter& f) override {
    std::string sql = fmt::format("SELECT {} FROM alerts WHERE org_id = ?1", kAlertColumns);
    if (f.state) sql += *f.state == "open" ? " AND state <> 'resolved'" : " AND state = ?2";
    if (f.device) sql += " AND device_id = ?3";
    if (f.rule_id) sql += " AND rule_id = ?4";
    if (f.from) sql += " AND fired_at >= ?5";
    if (f.to) sql += " AND fired_at < ?6";
    sql += " ORDER BY fired_at DESC, id DESC LIMIT ?7";
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce(sql));
    s.Bind(1, org);
    if (f.state && *f.state != "open") s.Bind(2, *f.state);
    if (f.device) s.Bind(3, *f.device);
    if (f.rule_id) s.Bind(4, *f.rule_id);
    if (f.from) s.Bind(5, *f.from);
    if (f.to) s.Bind(6, *f.to);
    s.Bind(7, f.limit);
    return All<AlertRecord>(s, AlertFrom);
  }
  Result<std::vector<AlertEventRecord>> ListEvents(OrgId org, std::int64_t alert_id) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto s, db_->PrepareOnce(
        "SELECT id, org_id, alert_id, device_id, kind, at, coalesce(actor, ''), coalesce(note, ''), "
        "coalesce(details, '') FROM alert_events WHERE org_id = ? AND alert_id = ? ORDER BY id"));
    s.Bind(1, org).Bind(2, alert_id);
    return All<AlertEventRecord>(s, [](const Stmt& st) {
      AlertEventRecord e;
      e.id = st.Int(0);
      e.org = st.Int(1);
      e.alert_id = st.Int(2);
      if (!st.IsNull(3)) e.device = st.Int(3);
      e.kind = st.Text(4);
      e.at = st.Int(5);
      e.actor = st.Text(6);
      e.note = st.Text(7);
      e.details = st.Text(8);
      return e;
    });
  }
  Status Transact(OrgId org, const std::function<Status(AlertTxn&)>& fn) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(db_.get()));
    Txn txn(db_.get(), org);
    OS_RETURN_IF_ERROR(fn(txn));
    return tx.Commit();
  }

 private:
  std::mutex mu_;
  std::unique_ptr<Db> db_;
};

}  // namespace

std::unique_ptr<AlertStore> MakeSqliteAlertStore(std::unique_ptr<Db> db) {
  return std::make_unique<SqliteAlertStore>(std::move(db));
}

}  // namespace opensense::store::sqlite
