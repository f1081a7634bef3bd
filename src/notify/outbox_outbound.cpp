#include "notify/outbox_outbound.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "notify/channels.hpp"

namespace opensense::notify {
namespace {

std::uint64_t Fnv1a(std::string_view a, std::string_view b) {
  std::uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(a);
  mix(std::string_view("\0", 1));
  mix(b);
  return h;
}

}  // namespace

OutboxMailQueue::OutboxMailQueue(store::NotifyStore* store, const Clock* clock, std::function<void()> wake)
    : store_(store), clock_(clock), wake_(std::move(wake)) {}

Status OutboxMailQueue::Enqueue(const OutgoingEmail& email) {
  if (!ValidEmail(email.to)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'{}' is not an e-mail address", CleanText(email.to, 100)));
  }
  if (email.subject.empty()) return MakeError(ErrorCode::kInvalidArgument, "an e-mail needs a subject");
  store::OutboxMessage m;
  m.org = email.org;
  m.channel_kind = "email";
  m.recipient = email.to;
  m.subject = email.subject;
  m.text_body = email.text_body;
  m.html_body = email.html_body;
  m.idempotency_key = email.idempotency_key.empty()
                          ? fmt::format("mail:{}:{}", email.kind, RandomToken())
                          : email.idempotency_key;
  m.created_at = clock_->NowMs();
  m.next_attempt_at = m.created_at;
  OS_RETURN_IF_ERROR(store_->Enqueue(m));
  if (wake_) wake_();
  return {};
}

OutboxOperatorAlerts::OutboxOperatorAlerts(store::NotifyStore* store, OperatorChannel channel,
                                           const Clock* clock, std::function<void()> wake)
    : store_(store), channel_(std::move(channel)), clock_(clock), wake_(std::move(wake)) {}

void OutboxOperatorAlerts::Raise(const OperatorAlert& alert) {
  log_.Raise(alert);
  if (channel_.empty()) return;
  const TimestampMs now = clock_->NowMs();
  const std::string severity = alert.severity == OperatorSeverity::kCritical ? "critical" : "warning";
  const std::string dedup = alert.dedup_key.empty() ? alert.kind : alert.dedup_key;
  const std::string key_tail =
      fmt::format("{}:{:016x}", now / kMsPerDay, Fnv1a(alert.subject, alert.body));
  store::OutboxMessage base;
  base.subject = fmt::format("[OpenSense {}] {}", severity, alert.subject);
  base.text_body = alert.body;
  base.payload_json = nlohmann::json{{"kind", "operator_alert"},
                                     {"alert_kind", alert.kind},
                                     {"severity", severity},
                                     {"subject", alert.subject},
                                     {"text", alert.body},
                                     {"dedup_key", dedup}}
                          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  base.created_at = now;
  base.next_attempt_at = now;
  auto add = [&](std::string kind, std::string recipient) {
    store::OutboxMessage m = base;
    m.idempotency_key = fmt::format("operator:{}:{}:{}", dedup, kind, key_tail);
    m.channel_kind = std::move(kind);
    m.recipient = std::move(recipient);
    if (auto r = store_->Enqueue(m); !r) {
      spdlog::error("operator alert [{}]: cannot queue the {} notification: {}", alert.kind,
                    m.channel_kind, r.error().message);
    }
  };
  if (!channel_.email.empty()) add("email", channel_.email);
  if (!channel_.telegram_chat.empty()) add("telegram", channel_.telegram_chat);
  if (!channel_.webhook_url.empty()) add("webhook", channel_.webhook_url);
  if (wake_) wake_();
}

}  // namespace opensense::notify
