// The notification outbox (table notification_outbox): a message waiting for delivery, written
// in the same transaction as what caused it (an alert event, a magic link, an operator alert)
// and delivered later by the notify module's dispatcher, with retries. Nothing is lost across
// a restart; the idempotency key makes a second insert of the same message a no-op and is what
// the dispatcher sends to providers, so one event is delivered once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/types.hpp"

namespace opensense::store {

struct OutboxMessage {
  std::int64_t id = 0;                     // assigned on insert
  std::optional<OrgId> org;                // none: an operator message
  // notification_channels.id; none: the server's own e-mail provider (magic links,
  // invitations) or, with no org, the operator channel of the server configuration.
  std::optional<std::int64_t> channel;
  std::string channel_kind;                // "email", "telegram", "webhook"
  std::string recipient;                   // e-mail address or chat id; "" for a webhook
  std::string subject;
  std::string text_body;
  std::string html_body;
  std::string payload_json;                // structured details (the webhook body)
  std::string idempotency_key;             // unique
  std::optional<std::int64_t> alert_id;
  std::optional<std::int64_t> event_id;    // alert_events.id
  TimestampMs created_at = 0;
  TimestampMs next_attempt_at = 0;         // the dispatcher's next try
  int attempts = 0;
  std::string state = "pending";           // pending | sent | failed (permanent) | cancelled
  std::string last_error;
  std::optional<TimestampMs> done_at;
  bool operator==(const OutboxMessage&) const = default;
};

}  // namespace opensense::store
