#include "store/postgres/pg_notify_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "store/notify_columns.hpp"

namespace opensense::store::postgres {
namespace {

constexpr const char* kChannelColumns = kNotifyChannelColumns;
constexpr const char* kOutboxColumns = kNotifyOutboxColumns;
constexpr const char* kAttemptColumns = kNotifyAttemptColumns;

NotificationChannel ChannelFrom(const PgResult& r, int i) {
  NotificationChannel c;
  c.id = r.Int(i, 0);
  c.org = r.Int(i, 1);
  c.kind = r.Text(i, 2);
  c.name = r.Text(i, 3);
  c.target = r.Text(i, 4);
  c.secret = r.Text(i, 5);
  c.enabled = r.Bool(i, 6);
  c.created_at = r.Int(i, 7);
  return c;
}

OutboxMessage MessageFrom(const PgResult& r, int i) {
  OutboxMessage m;
  m.id = r.Int(i, 0);
  if (auto org = r.OptInt(i, 1)) m.org = *org;
  m.channel = r.OptInt(i, 2);
  m.channel_kind = r.Text(i, 3);
  m.recipient = r.Text(i, 4);
  m.subject = r.Text(i, 5);
  m.text_body = r.Text(i, 6);
  m.html_body = r.Text(i, 7);
  m.payload_json = r.Text(i, 8);
  m.idempotency_key = r.Text(i, 9);
  m.alert_id = r.OptInt(i, 10);
  m.event_id = r.OptInt(i, 11);
  m.created_at = r.Int(i, 12);
  m.next_attempt_at = r.Int(i, 13);
  m.attempts = static_cast<int>(r.Int(i, 14));
  m.state = r.Text(i, 15);
  m.last_error = r.Text(i, 16);
  m.done_at = r.OptInt(i, 17);
  return m;
}

NotificationAttempt AttemptFrom(const PgResult& r, int i) {
  NotificationAttempt a;
  a.id = r.Int(i, 0);
  a.outbox_id = r.Int(i, 1);
  if (auto org = r.OptInt(i, 2)) a.org = *org;
  a.at = r.Int(i, 3);
  a.channel_kind = r.Text(i, 4);
  a.recipient = r.Text(i, 5);
  a.status = r.Text(i, 6);
  if (auto code = r.OptInt(i, 7)) a.provider_code = static_cast<int>(*code);
  a.latency_ms = r.Int(i, 8);
  a.detail = r.Text(i, 9);
  return a;
}

template <typename T, typename F>
std::vector<T> All(const PgResult& r, F from) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(r.Rows()));
  for (int i = 0; i < r.Rows(); ++i) out.push_back(from(r, i));
  return out;
}

tl::unexpected<Error> NoChannel(std::int64_t id) {
  return MakeError(ErrorCode::kNotFound, fmt::format("no notification channel {}", id));
}

class PgNotifyStore final : public NotifyStore {
 public:
  explicit PgNotifyStore(Pool* pool) : pool_(pool) {}

  Result<NotificationChannel> CreateChannel(const NotificationChannel& c) override {
    auto r = Query(
        "INSERT INTO notification_channels(org_id, kind, name, target, secret, enabled, created_at) "
        "VALUES($1,$2,$3,$4,$5,$6,$7) RETURNING id",
        {P(c.org), P(c.kind), P(c.name), P(c.target), P(c.secret), P(c.enabled), P(c.created_at)});
    if (!r) {
      // A foreign-key violation: the organisation does not exist.
      if (r.error().code == ErrorCode::kInvalidArgument) {
        return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", c.org));
      }
      return tl::unexpected(r.error());
    }
    NotificationChannel out = c;
    out.id = r->Int(0, 0);
    return out;
  }

  Result<std::vector<NotificationChannel>> ListChannels(OrgId org) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format("SELECT {} FROM notification_channels WHERE "
                                                  "org_id=$1 ORDER BY id",
                                                  kChannelColumns),
                                      {P(org)}));
    return All<NotificationChannel>(r, ChannelFrom);
  }

  Result<NotificationChannel> GetChannel(OrgId org, std::int64_t id) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format("SELECT {} FROM notification_channels WHERE "
                                                  "id=$1 AND org_id=$2",
                                                  kChannelColumns),
                                      {P(id), P(org)}));
    if (r.Rows() == 0) return NoChannel(id);
    return ChannelFrom(r, 0);
  }

  Result<NotificationChannel> UpdateChannel(OrgId org, std::int64_t id,
                                            const ChannelUpdate& u) override {
    OS_ASSIGN_OR_RETURN(
        auto r, Query(fmt::format("UPDATE notification_channels SET name=coalesce($3,name), "
                                  "target=coalesce($4,target), enabled=coalesce($5,enabled) "
                                  "WHERE id=$1 AND org_id=$2 RETURNING {}",
                                  kChannelColumns),
                      {P(id), P(org), P(u.name), P(u.target), P(u.enabled)}));
    if (r.Rows() == 0) return NoChannel(id);
    return ChannelFrom(r, 0);
  }

  Status DeleteChannel(OrgId org, std::int64_t id) override {
    OS_ASSIGN_OR_RETURN(auto r, Query("DELETE FROM notification_channels WHERE id=$1 AND org_id=$2",
                                      {P(id), P(org)}));
    if (r.Affected() == 0) return NoChannel(id);
    return {};
  }

  Result<std::optional<std::int64_t>> Enqueue(const OutboxMessage& m) override {
    OS_ASSIGN_OR_RETURN(
        auto r,
        Query("INSERT INTO notification_outbox(org_id, channel_id, channel_kind, recipient, "
              "subject, text_body, html_body, payload_json, idempotency_key, alert_id, event_id, "
              "created_at, next_attempt_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) "
              "ON CONFLICT(idempotency_key) DO NOTHING RETURNING id",
              {P(m.org), P(m.channel), P(m.channel_kind), P(m.recipient), P(m.subject),
               P(m.text_body), P(m.html_body), P(m.payload_json), P(m.idempotency_key),
               P(m.alert_id), P(m.event_id), P(m.created_at), P(m.next_attempt_at)}));
    if (r.Rows() == 0) return std::optional<std::int64_t>();
    return std::optional<std::int64_t>(r.Int(0, 0));
  }

  Result<std::vector<OutboxMessage>> ClaimDue(TimestampMs now, int limit,
                                              TimestampMs lease_until) override {
    // SKIP LOCKED: two dispatchers never claim the same row.
    OS_ASSIGN_OR_RETURN(
        auto r, Query(fmt::format("UPDATE notification_outbox SET next_attempt_at=$3, "
                                  "attempts=attempts+1 WHERE id IN (SELECT id FROM "
                                  "notification_outbox WHERE state='pending' AND "
                                  "next_attempt_at<=$1 ORDER BY next_attempt_at, id LIMIT $2 "
                                  "FOR UPDATE SKIP LOCKED) RETURNING {}",
                                  kOutboxColumns),
                      {P(now), P(limit), P(lease_until)}));
    auto out = All<OutboxMessage>(r, MessageFrom);
    std::sort(out.begin(), out.end(), [](const OutboxMessage& a, const OutboxMessage& b) {
      return a.id < b.id;
    });
    return out;
  }

  Status RecordAttempt(const NotificationAttempt& a, const OutboxUpdate& up) override {
    OS_ASSIGN_OR_RETURN(auto lease, pool_->Acquire());
    Conn* c = lease.get();
    OS_RETURN_IF_ERROR(c->Begin());
    auto ins = c->Exec(
        "INSERT INTO notification_attempts(outbox_id, org_id, at, channel_kind, recipient, "
        "status, provider_code, latency_ms, detail) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        {P(a.outbox_id), P(a.org), P(a.at), P(a.channel_kind), P(a.recipient), P(a.status),
         P(a.provider_code), P(a.latency_ms), P(a.detail)});
    if (!ins) {
      c->Rollback();
      return tl::unexpected(ins.error());
    }
    auto upd = c->Exec(
        "UPDATE notification_outbox SET state=$2, next_attempt_at=$3, last_error=$4, done_at=$5 "
        "WHERE id=$1",
        {P(a.outbox_id), P(up.state), P(up.next_attempt_at), P(up.last_error), P(up.done_at)});
    if (!upd) {
      c->Rollback();
      return tl::unexpected(upd.error());
    }
    return c->Commit();
  }

  Result<OutboxMessage> GetMessage(std::int64_t id) override {
    OS_ASSIGN_OR_RETURN(
        auto r, Query(fmt::format("SELECT {} FROM notification_outbox WHERE id=$1", kOutboxColumns),
                      {P(id)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no outbox message {}", id));
    return MessageFrom(r, 0);
  }

  Result<std::vector<OutboxMessage>> RecentMessages(OrgId org, int limit) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format("SELECT {} FROM notification_outbox WHERE "
                                                  "org_id=$1 ORDER BY created_at DESC, id DESC "
                                                  "LIMIT $2",
                                                  kOutboxColumns),
                                      {P(org), P(limit)}));
    return All<OutboxMessage>(r, MessageFrom);
  }

  Result<std::vector<NotificationAttempt>> RecentAttempts(OrgId org, int limit) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format("SELECT {} FROM notification_attempts WHERE "
                                                  "org_id=$1 ORDER BY at DESC, id DESC LIMIT $2",
                                                  kAttemptColumns),
                                      {P(org), P(limit)}));
    return All<NotificationAttempt>(r, AttemptFrom);
  }

  Result<std::vector<NotificationAttempt>> AttemptsOf(std::int64_t outbox_id) override {
    OS_ASSIGN_OR_RETURN(auto r, Query(fmt::format("SELECT {} FROM notification_attempts WHERE "
                                                  "outbox_id=$1 ORDER BY id",
                                                  kAttemptColumns),
                                      {P(outbox_id)}));
    return All<NotificationAttempt>(r, AttemptFrom);
  }

  Result<OutboxDepth> Depth() override {
    OS_ASSIGN_OR_RETURN(auto r, Query("SELECT count(*), min(created_at) FROM notification_outbox "
                                      "WHERE state='pending'"));
    OutboxDepth d;
    d.pending = r.Int(0, 0);
    d.oldest_pending_created_at = r.OptInt(0, 1);
    return d;
  }

  Result<std::int64_t> PruneAttempts(TimestampMs before) override {
    OS_ASSIGN_OR_RETURN(auto r, Query("DELETE FROM notification_attempts WHERE at<$1", {P(before)}));
    OS_RETURN_IF_ERROR(Query("DELETE FROM notification_outbox o WHERE state<>'pending' AND done_at<$1 AND NOT EXISTS "
                             "(SELECT 1 FROM notification_attempts a WHERE a.outbox_id=o.id)",
                             {P(before)})
                           .map([](auto&&) {}));
    return r.Affected();
  }

 private:
  Result<PgResult> Query(std::string_view sql, const std::vector<Param>& params = {}) {
    OS_ASSIGN_OR_RETURN(auto lease, pool_->Acquire());
    return lease->Exec(sql, params);
  }

  Pool* pool_;
};

}  // namespace

std::unique_ptr<NotifyStore> MakePgNotifyStore(Pool* pool) {
  return std::make_unique<PgNotifyStore>(pool);
}

}  // namespace opensense::store::postgres
