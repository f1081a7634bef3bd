// Notification channels as users configure them: validation of a channel's target (e-mail
// addresses, a Telegram chat id, an https webhook URL) and the outbox rows a message to a
// channel becomes (one per e-mail recipient). Pure: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "store/notify_store.hpp"
#include "store/outbox.hpp"

namespace opensense::notify {

inline constexpr std::size_t kMaxChannelName = 100;
inline constexpr std::size_t kMaxEmailRecipients = 20;

// A plain address local@domain (no display name, no spaces, no control characters, at most
// 254 bytes, a dot in the domain).
bool ValidEmail(std::string_view address);
// "a@x.org, b@y.org" -> {"a@x.org", "b@y.org"} (trimmed, empty items dropped).
std::vector<std::string> SplitAddresses(std::string_view list);

struct UrlPolicy {
  // Tests: http://127.0.0.1, http://localhost and http://[::1] are accepted besides https.
  bool allow_http_loopback = false;
};
// An absolute https URL with a host, no user info, no fragment, at most 2048 bytes, no
// whitespace or control characters (or loopback http when the policy allows it).
Status ValidateWebhookUrl(std::string_view url, const UrlPolicy& policy);

// Checks kind ("email", "telegram", "webhook"), name (1..kMaxChannelName) and target for the
// kind; kInvalidArgument naming the field and what is accepted.
Status ValidateChannel(std::string_view kind, std::string_view name, std::string_view target,
                       const UrlPolicy& policy);

// What to say through a channel.
struct ChannelMessage {
  std::string subject;
  std::string text_body;
  std::string html_body;
  std::string payload_json;  // the webhook body; built from subject/text when empty
  // Unique per message; each row's idempotency key is "<key>:<recipient>" (e-mail) or "<key>".
  std::string key;
  std::optional<std::int64_t> alert_id;
  std::optional<std::int64_t> event_id;
};

// The outbox rows for `message` through `channel`, due at `now`.
std::vector<store::OutboxMessage> OutboxRowsFor(const store::NotificationChannel& channel,
                                               const ChannelMessage& message, TimestampMs now);

// The "send test message" of a channel (POST /api/v1/channels/{id}/test, `opensense channel
// test`): unique per call (`nonce`).
ChannelMessage TestMessage(const store::NotificationChannel& channel, std::string_view nonce,
                           TimestampMs now);

}  // namespace opensense::notify
