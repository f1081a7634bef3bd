#include "notify/channels.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "core/time_zone.hpp"
#include "notify/telegram/telegram.hpp"

namespace opensense::notify {
namespace {

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

bool HasControlOrSpace(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool ValidEmail(std::string_view a) {
  if (a.empty() || a.size() > 254 || HasControlOrSpace(a)) return false;
  const std::size_t at = a.find('@');
  if (at == 0 || at == std::string_view::npos || a.find('@', at + 1) != std::string_view::npos) return false;
  const std::string_view local = a.substr(0, at);
  const std::string_view domain = a.substr(at + 1);
  if (local.size() > 64 || domain.size() < 3) return false;
  if (local.find_first_of("<>()[],;:\\\"") != std::string_view::npos) return false;
  const std::size_t dot = domain.find('.');
  if (dot == std::string_view::npos || dot == 0 || domain.back() == '.') return false;
  return std::all_of(domain.begin(), domain.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
           static_cast<unsigned char>(c) >= 0x80;
  });
}

std::vector<std::string> SplitAddresses(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const std::size_t comma = std::min(list.find(','), list.size());
    const std::string_view item = Trim(list.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    list.remove_prefix(std::min(comma + 1, list.size()));
  }
  return out;
}

Status ValidateWebhookUrl(std::string_view url, const UrlPolicy& policy) {
  const std::string bad = "the webhook URL must be an absolute https:// URL (e.g. https://hooks.example.com/opensense)";
  if (url.size() > 2048) return Invalid("the webhook URL is longer than 2048 bytes");
  if (HasControlOrSpace(url)) return Invalid(bad + "; it contains spaces or control characters");
  std::string_view rest;
  bool http = false;
  if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
    http = true;
  } else {
    return Invalid(bad);
  }
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty()) return Invalid(bad + "; it has no host");
  if (authority.find('@') != std::string_view::npos) {
    return Invalid("the webhook URL must not contain user:password@; use the signing secret instead");
  }
  if (url.find('#') != std::string_view::npos) return Invalid("the webhook URL must not contain a #fragment");
  if (http) {
    std::string_view host = authority;
    if (host.front() == '[') {
      host = host.substr(0, host.find(']') + 1);
    } else {
      host = host.substr(0, host.find(':'));
    }
    const bool loopback = host == "127.0.0.1" || host == "localhost" || host == "[::1]";
    if (!policy.allow_http_loopback || !loopback) {
      return Invalid(bad + "; plain http:// would send alerts and the signature unencrypted");
    }
  }
  return {};
}

Status ValidateChannel(std::string_view kind, std::string_view name, std::string_view target,
                       const UrlPolicy& policy) {
  const bool control = std::any_of(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (Trim(name).empty() || name.size() > kMaxChannelName || control) {
    return Invalid(fmt::format("name: give 1..{} characters without line breaks", kMaxChannelName));
  }
  if (kind == "email") {
    const auto addresses = SplitAddresses(target);
    if (addresses.empty()) return Invalid("target: give one or more e-mail addresses, comma-separated");
    if (addresses.size() > kMaxEmailRecipients) {
      return Invalid(fmt::format("target: at most {} addresses per channel", kMaxEmailRecipients));
    }
    for (const auto& a : addresses) {
      if (!ValidEmail(a)) return Invalid(fmt::format("target: '{}' is not an e-mail address (name@example.com)", a.substr(0, 100)));
    }
    return {};
  }
  if (kind == "telegram") {
    if (!telegram::ValidChatId(target)) {
      return Invalid("target: a Telegram chat id is an integer (e.g. -1001234567890 for a group) or "
                     "@channelname");
    }
    return {};
  }
  if (kind == "webhook") {
    if (auto st = ValidateWebhookUrl(target, policy); !st) return Invalid("target: " + st.error().message);
    return {};
  }
  return Invalid(fmt::format("kind: '{}' is not one of email, telegram, webhook", std::string(kind).substr(0, 40)));
}

std::vector<store::OutboxMessage> OutboxRowsFor(const store::NotificationChannel& channel,
                                               const ChannelMessage& message, TimestampMs now) {
  store::OutboxMessage base;
  base.org = channel.org;
  base.channel = channel.id;
  base.channel_kind = channel.kind;
  base.subject = message.subject;
  base.text_body = message.text_body;
  base.html_body = message.html_body;
  base.payload_json = message.payload_json;
  if (base.payload_json.empty()) {
    base.payload_json = nlohmann::json{{"kind", "notification"},
                                       {"subject", message.subject},
                                       {"text", message.text_body},
                                       {"idempotency_key", message.key}}
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  base.alert_id = message.alert_id;
  base.event_id = message.event_id;
  base.created_at = now;
  base.next_attempt_at = now;
  std::vector<store::OutboxMessage> rows;
  if (channel.kind == "email") {
    for (const auto& to : SplitAddresses(channel.target)) {
      store::OutboxMessage m = base;
      m.recipient = to;
      m.idempotency_key = message.key + ":" + to;
      rows.push_back(std::move(m));
    }
  } else {
    store::OutboxMessage m = base;
    if (channel.kind == "telegram") m.recipient = channel.target;
    m.idempotency_key = message.key;
    rows.push_back(std::move(m));
  }
  return rows;
}

ChannelMessage TestMessage(const store::NotificationChannel& channel, std::string_view nonce,
                           TimestampMs now) {
  ChannelMessage m;
  m.subject = fmt::format("OpenSense test message for channel '{}'", channel.name);
  m.text_body = fmt::format(
      "This is a test of the notification channel '{}' (id {}), sent at {}. If you can read "
      "it, alerts will reach you here.",
      channel.name, channel.id, FormatRfc3339(now));
  m.payload_json = nlohmann::json{{"kind", "test"},
                                  {"channel_id", channel.id},
                                  {"subject", m.subject},
                                  {"text", m.text_body},
                                  {"sent_at", FormatRfc3339(now)}}
                       .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  m.key = fmt::format("channel-test:{}:{}", channel.id, nonce);
  return m;
}

}  // namespace opensense::notify
