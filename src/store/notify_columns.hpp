// The column lists of the notification tables, shared by the SQLite and PostgreSQL NotifyStore
// implementations (their row readers expect exactly this order). Private to the store module.
#pragma once

namespace opensense::store {

inline constexpr const char* kNotifyChannelColumns =
    "id, org_id, kind, name, target, secret, enabled, created_at";
inline constexpr const char* kNotifyOutboxColumns =
    "id, org_id, channel_id, channel_kind, recipient, subject, text_body, html_body, payload_json, "
    "idempotency_key, alert_id, event_id, created_at, next_attempt_at, attempts, state, last_error, "
    "done_at";
inline constexpr const char* kNotifyAttemptColumns =
    "id, outbox_id, org_id, at, channel_kind, recipient, status, provider_code, latency_ms, detail";

}  // namespace opensense::store
