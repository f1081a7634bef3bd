#include "store/sqlite/sqlite_notify_store.hpp"

#include <fmt/format.h>

#include <mutex>
#include <utility>

#include "store/notify_columns.hpp"

namespace opensense::store::sqlite {
namespace {

constexpr const char* kChannelColumns = kNotifyChannelColumns;
constexpr const char* kOutboxColumns = kNotifyOutboxColumns;
constexpr const char* kAttemptColumns = kNotifyAttemptColumns;

std::optional<std::int64_t> OptInt(const Stmt& s, int col) {
  if (s.IsNull(col)) return std::nullopt;
  return s.Int(col);
}

void BindOpt(Stmt* s, int index, const std::optional<std::int64_t>& v) {
  if (v) s->Bind(index, *v);
  else s->BindNull(index);
}

NotificationChannel ChannelFrom(const Stmt& s) {
  NotificationChannel c;
  c.id = s.Int(0);
  c.org = s.Int(1);
  c.kind = s.Text(2);
  c.name = s.Text(3);
  c.target = s.Text(4);
  c.secret = s.Text(5);
  c.enabled = s.Int(6) != 0;
  c.created_at = s.Int(7);
  return c;
}

OutboxMessage MessageFrom(const Stmt& s) {
  OutboxMessage m;
  m.id = s.Int(0);
  if (auto org = OptInt(s, 1)) m.org = *org;
  m.channel = OptInt(s, 2);
  m.channel_kind = s.Text(3);
  m.recipient = s.Text(4);
  m.subject = s.Text(5);
  m.text_body = s.Text(6);
  m.html_body = s.Text(7);
  m.payload_json = s.Text(8);
  m.idempotency_key = s.Text(9);
  m.alert_id = OptInt(s, 10);
  m.event_id = OptInt(s, 11);
  m.created_at = s.Int(12);
  m.next_attempt_at = s.Int(13);
  m.attempts = static_cast<int>(s.Int(14));
  m.state = s.Text(15);
  m.last_error = s.Text(16);
  m.done_at = OptInt(s, 17);
  return m;
}

NotificationAttempt AttemptFrom(const Stmt& s) {
  NotificationAttempt a;
  a.id = s.Int(0);
  a.outbox_id = s.Int(1);
  if (auto org = OptInt(s, 2)) a.org = *org;
  a.at = s.Int(3);
  a.channel_kind = s.Text(4);
  a.recipient = s.Text(5);
  a.status = s.Text(6);
  if (auto code = OptInt(s, 7)) a.provider_code = static_cast<int>(*code);
  a.latency_ms = s.Int(8);
  a.detail = s.Text(9);
  return a;
}

template <typename T, typename F>
Result<std::vector<T>> Collect(Stmt* s, F from) {
  std::vector<T> out;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(from(*s));
  }
  return out;
}

class SqliteNotifyStore final : public NotifyStore {
 public:
  explicit SqliteNotifyStore(std::unique_ptr<Db> db) : db_(std::move(db)) {}

  Result<NotificationChannel> CreateChannel(const NotificationChannel& c) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO notification_channels(org_id, kind, name, target, secret, enabled, created_at) "
        "VALUES(?,?,?,?,?,?,?)"));
    s->Bind(1, c.org).Bind(2, c.kind).Bind(3, c.name).Bind(4, c.target).Bind(5, c.secret)
        .Bind(6, c.enabled ? 1 : 0).Bind(7, c.created_at);
    if (auto st = s->Run(); !st) {
      // The only constraint that can fail here is the organisation's foreign key.
      if (st.error().code == ErrorCode::kAlreadyExists) {
        return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", c.org));
      }
      return tl::unexpected(st.error());
    }
    NotificationChannel out = c;
    out.id = db_->LastInsertRowid();
    return out;
  }

  Result<std::vector<NotificationChannel>> ListChannels(OrgId org) override {
    std::lock_guard lock(mu_);
    static const std::string sql = fmt::format(
        "SELECT {} FROM notification_channels WHERE org_id=? ORDER BY id", kChannelColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, org);
    return Collect<NotificationChannel>(s, ChannelFrom);
  }

  Result<NotificationChannel> GetChannel(OrgId org, std::int64_t id) override {
    std::lock_guard lock(mu_);
    return GetChannelLocked(org, id);
  }

  Result<NotificationChannel> UpdateChannel(OrgId org, std::int64_t id,
                                            const ChannelUpdate& u) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(NotificationChannel c, GetChannelLocked(org, id));
    if (u.name) c.name = *u.name;
    if (u.target) c.target = *u.target;
    if (u.enabled) c.enabled = *u.enabled;
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "UPDATE notification_channels SET name=?, target=?, enabled=? WHERE id=? AND org_id=?"));
    s->Bind(1, c.name).Bind(2, c.target).Bind(3, c.enabled ? 1 : 0).Bind(4, id).Bind(5, org);
    OS_RETURN_IF_ERROR(s->Run());
    return c;
  }

  Status DeleteChannel(OrgId org, std::int64_t id) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s,
                        db_->Prepare("DELETE FROM notification_channels WHERE id=? AND org_id=?"));
    s->Bind(1, id).Bind(2, org);
    OS_RETURN_IF_ERROR(s->Run());
    if (db_->Changes() == 0) return NoChannel(id);
    return {};
  }

  Result<std::optional<std::int64_t>> Enqueue(const OutboxMessage& m) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO notification_outbox(org_id, channel_id, channel_kind, recipient, subject, "
        "text_body, html_body, payload_json, idempotency_key, alert_id, event_id, created_at, "
        "next_attempt_at, attempts, state, last_error) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,0,'pending','') "
        "ON CONFLICT(idempotency_key) DO NOTHING"));
    BindOpt(s, 1, m.org);
    BindOpt(s, 2, m.channel);
    s->Bind(3, m.channel_kind).Bind(4, m.recipient).Bind(5, m.subject).Bind(6, m.text_body)
        .Bind(7, m.html_body).Bind(8, m.payload_json).Bind(9, m.idempotency_key);
    BindOpt(s, 10, m.alert_id);
    BindOpt(s, 11, m.event_id);
    s->Bind(12, m.created_at).Bind(13, m.next_attempt_at);
    OS_RETURN_IF_ERROR(s->Run());
    if (db_->Changes() == 0) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(db_->LastInsertRowid());
  }

  Result<std::vector<OutboxMessage>> ClaimDue(TimestampMs now, int limit,
                                              TimestampMs lease_until) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(db_.get()));
    static const std::string select = fmt::format(
        "SELECT {} FROM notification_outbox WHERE state='pending' AND next_attempt_at<=? "
        "ORDER BY next_attempt_at, id LIMIT ?",
        kOutboxColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(select.c_str()));
    s->Bind(1, now).Bind(2, limit);
    OS_ASSIGN_OR_RETURN(auto due, Collect<OutboxMessage>(s, MessageFrom));
    s->Reset();
    OS_ASSIGN_OR_RETURN(Stmt * u, db_->Prepare(
        "UPDATE notification_outbox SET next_attempt_at=?, attempts=attempts+1 WHERE id=?"));
    for (auto& m : due) {
      u->Bind(1, lease_until).Bind(2, m.id);
      OS_RETURN_IF_ERROR(u->Run());
      u->Reset();
      m.attempts += 1;
      m.next_attempt_at = lease_until;
    }
    OS_RETURN_IF_ERROR(tx.Commit());
    return due;
  }

  Status RecordAttempt(const NotificationAttempt& a, const OutboxUpdate& up) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(db_.get()));
    OS_ASSIGN_OR_RETURN(Stmt * ins, db_->Prepare(
        "INSERT INTO notification_attempts(outbox_id, org_id, at, channel_kind, recipient, status, "
        "provider_code, latency_ms, detail) VALUES(?,?,?,?,?,?,?,?,?)"));
    ins->Bind(1, a.outbox_id);
    BindOpt(ins, 2, a.org);
    ins->Bind(3, a.at).Bind(4, a.channel_kind).Bind(5, a.recipient).Bind(6, a.status);
    if (a.provider_code) ins->Bind(7, *a.provider_code);
    else ins->BindNull(7);
    ins->Bind(8, a.latency_ms).Bind(9, a.detail);
    OS_RETURN_IF_ERROR(ins->Run());
    OS_ASSIGN_OR_RETURN(Stmt * u, db_->Prepare(
        "UPDATE notification_outbox SET state=?, next_attempt_at=?, last_error=?, done_at=? "
        "WHERE id=?"));
    u->Bind(1, up.state).Bind(2, up.next_attempt_at).Bind(3, up.last_error);
    BindOpt(u, 4, up.done_at);
    u->Bind(5, a.outbox_id);
    OS_RETURN_IF_ERROR(u->Run());
    return tx.Commit();
  }

  Result<OutboxMessage> GetMessage(std::int64_t id) override {
    std::lock_guard lock(mu_);
    static const std::string sql =
        fmt::format("SELECT {} FROM notification_outbox WHERE id=?", kOutboxColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, id);
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return MakeError(ErrorCode::kNotFound, fmt::format("no outbox message {}", id));
    OutboxMessage m = MessageFrom(*s);
    s->Reset();
    return m;
  }

  Result<std::vector<OutboxMessage>> RecentMessages(OrgId org, int limit) override {
    std::lock_guard lock(mu_);
    static const std::string sql = fmt::format(
        "SELECT {} FROM notification_outbox WHERE org_id=? ORDER BY created_at DESC, id DESC "
        "LIMIT ?",
        kOutboxColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, org).Bind(2, limit);
    return Collect<OutboxMessage>(s, MessageFrom);
  }

  Result<std::vector<NotificationAttempt>> RecentAttempts(OrgId org, int limit) override {
    std::lock_guard lock(mu_);
    static const std::string sql = fmt::format(
        "SELECT {} FROM notification_attempts WHERE org_id=? ORDER BY at DESC, id DESC LIMIT ?",
        kAttemptColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, org).Bind(2, limit);
    return Collect<NotificationAttempt>(s, AttemptFrom);
  }

  Result<std::vector<NotificationAttempt>> AttemptsOf(std::int64_t outbox_id) override {
    std::lock_guard lock(mu_);
    static const std::string sql = fmt::format(
        "SELECT {} FROM notification_attempts WHERE outbox_id=? ORDER BY id", kAttemptColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, outbox_id);
    return Collect<NotificationAttempt>(s, AttemptFrom);
  }

  Result<OutboxDepth> Depth() override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "SELECT count(*), min(created_at) FROM notification_outbox WHERE state='pending'"));
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    OutboxDepth d;
    if (row) {
      d.pending = s->Int(0);
      d.oldest_pending_created_at = OptInt(*s, 1);
    }
    s->Reset();
    return d;
  }

  Result<std::int64_t> PruneAttempts(TimestampMs before) override {
    std::lock_guard lock(mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare("DELETE FROM notification_attempts WHERE at<?"));
    s->Bind(1, before);
    OS_RETURN_IF_ERROR(s->Run());
    const auto attempts = static_cast<std::int64_t>(db_->Changes());
    OS_ASSIGN_OR_RETURN(Stmt * m, db_->Prepare(
        "DELETE FROM notification_outbox WHERE state<>'pending' AND done_at<? AND NOT EXISTS "
        "(SELECT 1 FROM notification_attempts a WHERE a.outbox_id=notification_outbox.id)"));
    m->Bind(1, before);
    OS_RETURN_IF_ERROR(m->Run());
    return attempts;
  }

 private:
  static tl::unexpected<Error> NoChannel(std::int64_t id) {
    return MakeError(ErrorCode::kNotFound, fmt::format("no notification channel {}", id));
  }

  Result<NotificationChannel> GetChannelLocked(OrgId org, std::int64_t id) {
    static const std::string sql = fmt::format(
        "SELECT {} FROM notification_channels WHERE id=? AND org_id=?", kChannelColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, id).Bind(2, org);
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return NoChannel(id);
    NotificationChannel c = ChannelFrom(*s);
    s->Reset();
    return c;
  }

  std::mutex mu_;
  std::unique_ptr<Db> db_;
};

}  // namespace

std::unique_ptr<NotifyStore> MakeSqliteNotifyStore(std::unique_ptr<Db> db) {
  return std::make_unique<SqliteNotifyStore>(std::move(db));
}

}  // namespace opensense::store::sqlite
