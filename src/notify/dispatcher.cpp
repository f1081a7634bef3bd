#include "notify/dispatcher.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "notify/postmark/postmark.hpp"
#include "notify/telegram/telegram.hpp"
#include "notify/webhook/webhook.hpp"

namespace opensense::notify {

std::string CleanText(std::string_view text, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes));
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t len = 1;
    bool ok = true;
    if (c < 0x80) {
      ok = c >= 0x20 || c == '\n';
      if (c == 0x7f) ok = false;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      len = 4;
    } else {
      ok = false;
    }
    if (ok && len > 1) {
      if (i + len > text.size()) {
        ok = false;
        len = 1;
      } else {
        for (std::size_t k = 1; k < len; ++k) {
          if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) ok = false;
        }
        const auto c1 = static_cast<unsigned char>(text[i + 1]);
        if (c == 0xE0 && c1 < 0xA0) ok = false;  // overlong
        if (c == 0xED && c1 >= 0xA0) ok = false; // surrogates
        if (c == 0xF0 && c1 < 0x90) ok = false;  // overlong
        if (c == 0xF4 && c1 >= 0x90) ok = false; // beyond U+10FFFF
        if (!ok) len = 1;
      }
    }
    const std::size_t add = ok ? len : 1;
    if (out.size() + add > max_bytes) break;
    if (ok) out.append(text.substr(i, len));
    else out += '?';
    i += len;
  }
  return out;
}

namespace {

constexpr std::string_view kOperatorKeyPrefix = "operator:";

bool IsOperatorMessage(const store::OutboxMessage& m) {
  return !m.org && m.idempotency_key.rfind(kOperatorKeyPrefix, 0) == 0;
}

}  // namespace

// Where one row goes, resolved at delivery time (a channel edited since the row was written
// applies; a deleted or disabled channel cancels the row).
struct Dispatcher::Target {
  std::string url;        // webhook
  std::string secret;     // webhook
  std::string recipient;  // e-mail address(es) or chat id
};

Dispatcher::Dispatcher(store::NotifyStore* store, HttpTransport* transport, DispatcherOptions options)
    : store_(store), transport_(transport), options_(std::move(options)), rng_(options_.jitter_seed) {}

Dispatcher::~Dispatcher() { Stop(); }

TimestampMs Dispatcher::Now() const {
  return options_.clock != nullptr ? options_.clock->NowMs() : system_clock_.NowMs();
}

void Dispatcher::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Dispatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Dispatcher::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Dispatcher::Loop() {
  TimestampMs next_prune = 0;
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    RunOnce();
    if (Now() >= next_prune) {
      if (auto st = Prune(); !st) spdlog::warn("notify: pruning old attempts: {}", st.error().message);
      next_prune = Now() + kMsPerHour;
    }
    RefreshGauges();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms), [this] { return stop_ || woken_; });
    woken_ = false;
  }
}

int Dispatcher::RunOnce(int max_messages) {
  const TimestampMs lease = options_.request_timeout.count() + 5 * kMsPerSecond;
  int tried = 0;
  while (tried < max_messages) {
    {
      std::lock_guard lock(mu_);
      if (stop_) break;
    }
    const TimestampMs now = Now();
    auto claimed = store_->ClaimDue(now, 1, now + lease);
    if (!claimed) {
      spdlog::warn("notify: cannot read the outbox: {}", claimed.error().message);
      break;
    }
    if (claimed->empty()) break;
    Deliver(claimed->front());
    ++tried;
  }
  return tried;
}

Status Dispatcher::Prune() {
  OS_ASSIGN_OR_RETURN(std::int64_t n, store_->PruneAttempts(Now() - options_.attempt_retention_ms));
  if (n > 0) spdlog::info("notify: deleted {} delivery attempts older than {} days", n,
                          options_.attempt_retention_ms / kMsPerDay);
  return {};
}

void Dispatcher::RefreshGauges() {
  if (options_.metrics == nullptr) return;
  auto depth = store_->Depth();
  if (!depth) return;
  options_.metrics->GetGauge("opensense_notification_outbox_pending",
                             "Notifications waiting for delivery (including retries).")
      .Set(static_cast<double>(depth->pending));
  const double age = depth->oldest_pending_created_at
                         ? static_cast<double>(std::max<TimestampMs>(0, Now() - *depth->oldest_pending_created_at)) / 1000.0
                         : 0.0;
  options_.metrics->GetGauge("opensense_notification_outbox_oldest_pending_age_seconds",
                             "Age of the oldest notification waiting for delivery (0: none).")
      .Set(age);
}

TimestampMs Dispatcher::Backoff(int attempts) {
  const int shift = std::clamp(attempts - 1, 0, 30);
  TimestampMs d = options_.initial_backoff_ms;
  for (int i = 0; i < shift && d < options_.max_backoff_ms; ++i) d *= 2;
  d = std::min(d, options_.max_backoff_ms);
  // Jitter: a random point in the upper half, so retries of many messages spread out.
  std::uniform_int_distribution<TimestampMs> dist(d / 2, d);
  return dist(rng_);
}

Verdict Dispatcher::Send(const store::OutboxMessage& m, const Target& t, std::optional<int>* code,
                         std::int64_t* latency_ms) {
  HttpRequest request;
  const TimestampMs now = Now();
  if (m.channel_kind == "email") {
    if (options_.postmark_token.empty()) {
      // The dev mailer: the whole message in one log entry, so the demo shows it end to end.
      spdlog::info("dev mailer (no Postmark token configured): message {}\nFrom: {}\nTo: {}\nSubject: {}\n\n{}",
                   m.id, options_.mail_from, t.recipient, m.subject, m.text_body);
      return {Outcome::kSent, std::nullopt, "dev mailer: written to the log"};
    }
    postmark::Email e{options_.mail_from, t.recipient, m.subject, m.text_body,
                      m.html_body,        options_.message_stream, m.idempotency_key};
    request = postmark::BuildRequest(options_.postmark_base_url, options_.postmark_token, e);
  } else if (m.channel_kind == "telegram") {
    if (options_.telegram_token.empty()) {
      return {Outcome::kPermanent, std::nullopt,
              "no Telegram bot token configured: set OPENSENSE_TELEGRAM_TOKEN in the secrets file"};
    }
    request = telegram::BuildRequest(options_.telegram_base_url, options_.telegram_token, t.recipient,
                                     m.subject, m.text_body);
  } else if (m.channel_kind == "webhook") {
    if (auto st = ValidateWebhookUrl(t.url, options_.url_policy); !st) {
      return {Outcome::kPermanent, std::nullopt, st.error().message};
    }
    // A row written without a payload still gets a JSON body a receiver can use.
    const std::string body =
        m.payload_json.empty()
            ? nlohmann::json{{"kind", "notification"}, {"subject", m.subject}, {"text", m.text_body},
                             {"idempotency_key", m.idempotency_key},
                             {"alert_id", m.alert_id ? nlohmann::json(*m.alert_id) : nlohmann::json(nullptr)},
                             {"event_id", m.event_id ? nlohmann::json(*m.event_id) : nlohmann::json(nullptr)}}
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
            : m.payload_json;
    request = webhook::BuildRequest(t.url, t.secret, body, m.idempotency_key, now);
  } else {
    return {Outcome::kPermanent, std::nullopt, fmt::format("unknown channel kind '{}'", m.channel_kind)};
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto answer = transport_->Post(request, options_.request_timeout);
  *latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  if (!answer) return {Outcome::kRetry, std::nullopt, answer.error().message};
  *code = answer->status;
  const TimestampMs after = Now();
  if (m.channel_kind == "email") return postmark::Classify(*answer, after);
  if (m.channel_kind == "telegram") return telegram::Classify(*answer, after);
  return webhook::Classify(*answer, after);
}

void Dispatcher::Deliver(const store::OutboxMessage& m) {
  const bool operator_message = IsOperatorMessage(m);
  Target t;
  std::optional<Verdict> cancel;
  t.recipient = m.recipient;
  if (m.channel) {
    auto ch = m.org ? store_->GetChannel(*m.org, *m.channel)
                    : Result<store::NotificationChannel>(MakeError(ErrorCode::kNotFound, "no org"));
    if (!ch && ch.error().code == ErrorCode::kNotFound) {
      cancel = Verdict{Outcome::kPermanent, std::nullopt, "the channel was deleted"};
    } else if (!ch) {
      // The store is unavailable: try again later without counting it against the provider.
      spdlog::warn("notify: message {}: cannot read channel {}: {}", m.id, *m.channel, ch.error().message);
      cancel = Verdict{Outcome::kRetry, std::nullopt, "cannot read the channel: " + ch.error().message};
    } else if (!ch->enabled) {
      cancel = Verdict{Outcome::kPermanent, std::nullopt, "the channel is disabled"};
    } else {
      t.url = ch->target;
      t.secret = ch->secret;
      if (t.recipient.empty()) t.recipient = ch->target;
    }
  } else if (operator_message) {
    if (m.channel_kind == "webhook") {
      t.url = options_.operator_channel.webhook_url;
      t.secret = options_.operator_channel.webhook_secret;
      if (t.url.empty()) cancel = Verdict{Outcome::kPermanent, std::nullopt, "no operator webhook configured"};
    } else if (m.channel_kind == "telegram" && t.recipient.empty()) {
      t.recipient = options_.operator_channel.telegram_chat;
    }
  } else if (m.channel_kind != "email") {
    cancel = Verdict{Outcome::kPermanent, std::nullopt, "a message without a channel can only be e-mail"};
  }

  std::optional<int> code;
  std::int64_t latency_ms = 0;
  Verdict v = cancel ? *cancel : Send(m, t, &code, &latency_ms);
  const TimestampMs now = Now();

  store::OutboxUpdate up;
  store::NotificationAttempt a;
  a.outbox_id = m.id;
  a.org = m.org;
  a.at = now;
  a.channel_kind = m.channel_kind;
  // A webhook URL's path and query may hold a secret (Slack-style hooks): log the origin only.
  a.recipient = m.channel_kind == "webhook"
                    ? CleanText(t.url.substr(0, t.url.find_first_of("/?#", t.url.find("://") + 3)), 200)
                    : CleanText(t.recipient, 300);
  a.provider_code = code;
  a.latency_ms = latency_ms;
  const std::string kind_label = m.channel_kind;
  auto count = [&](const char* name, const char* help) {
    if (options_.metrics != nullptr) options_.metrics->GetCounter(name, help, {{"kind", kind_label}}).Inc();
  };
  switch (v.outcome) {
    case Outcome::kSent:
      a.status = "sent";
      up.state = "sent";
      up.next_attempt_at = now;
      up.done_at = now;
      count("opensense_notifications_sent_total", "Notifications delivered, by channel kind.");
      break;
    case Outcome::kRetry:
      if (m.attempts >= options_.max_attempts) {
        a.status = "failed";
        up.state = "failed";
        up.next_attempt_at = now;
        up.done_at = now;
        v.detail = fmt::format("gave up after {} attempts; last: {}", m.attempts, v.detail);
        count("opensense_notifications_failed_total", "Notifications given up (permanent errors, too many attempts), by channel kind.");
      } else {
        a.status = "retry";
        up.state = "pending";
        up.next_attempt_at = now + (v.retry_after_ms ? std::max<TimestampMs>(*v.retry_after_ms, 1000)
                                                     : Backoff(m.attempts));
        count("opensense_notifications_retried_total", "Delivery attempts that will be retried, by channel kind.");
      }
      break;
    case Outcome::kPermanent:
      a.status = "failed";
      up.state = cancel ? "cancelled" : "failed";
      up.next_attempt_at = now;
      up.done_at = now;
      count("opensense_notifications_failed_total", "Notifications given up (permanent errors, too many attempts), by channel kind.");
      break;
  }
  a.detail = CleanText(v.detail, 1000);
  up.last_error = a.status == "sent" ? std::string() : a.detail;
  if (a.status == "retry") {
    spdlog::warn("notify: message {} ({} to {}) attempt {}: {} (HTTP {}, {} ms); retry at {}", m.id,
                 m.channel_kind, a.recipient, m.attempts, a.detail, code ? std::to_string(*code) : "-",
                 latency_ms, up.next_attempt_at);
  } else {
    spdlog::log(a.status == "sent" ? spdlog::level::info : spdlog::level::err,
                "notify: message {} ({} to {}) attempt {}: {}: {} (HTTP {}, {} ms)", m.id, m.channel_kind,
                a.recipient, m.attempts, up.state, a.detail, code ? std::to_string(*code) : "-", latency_ms);
  }
  if (auto st = store_->RecordAttempt(a, up); !st) {
    spdlog::error("notify: message {}: cannot record the attempt ({}); it is retried after its lease",
                  m.id, st.error().message);
    return;
  }
  if (a.status == "failed" && !operator_message && options_.operator_alerts != nullptr) {
    OperatorAlert alert;
    alert.kind = "notification_failed";
    alert.severity = OperatorSeverity::kWarning;
    alert.subject = fmt::format("A {} notification could not be delivered", m.channel_kind);
    alert.body = fmt::format(
        "Outbox message {} (organisation {}, channel {}, to {}) was given up after {} attempt(s): "
        "{}\nCheck the channel's settings (GET /api/v1/notifications shows the attempts) and the "
        "provider configuration (docs/operations.md).",
        m.id, m.org ? std::to_string(*m.org) : "-", m.channel ? std::to_string(*m.channel) : "-",
        a.recipient, m.attempts, a.detail);
    alert.dedup_key = fmt::format("notification_failed:{}", m.id);
    options_.operator_alerts->Raise(alert);
  }
}

}  // namespace opensense::notify
