// Generic webhooks: the message's JSON POSTed to the channel's URL, signed so the receiver can
// tell it came from OpenSense and is fresh:
//
//   X-OpenSense-Timestamp: <Unix seconds>
//   X-OpenSense-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//   Idempotency-Key: <the outbox key; the same on every retry of one notification>
//
// A receiver recomputes the HMAC over the timestamp header, a dot and the raw body with the
// channel's secret, compares in constant time, refuses timestamps more than 5 minutes from its
// clock (replays), and drops keys it has already processed (retries). See docs/security.md.
// Pure: no I/O.
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"
#include "notify/delivery.hpp"

namespace opensense::notify::webhook {

inline constexpr std::string_view kTimestampHeader = "X-OpenSense-Timestamp";
inline constexpr std::string_view kSignatureHeader = "X-OpenSense-Signature";
inline constexpr std::string_view kIdempotencyHeader = "Idempotency-Key";
// How far a timestamp may be from the receiver's clock.
inline constexpr std::int64_t kDefaultToleranceSeconds = 300;

// "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body).
std::string Sign(std::string_view secret, std::int64_t unix_seconds, std::string_view body);

HttpRequest BuildRequest(std::string_view url, std::string_view secret, std::string_view body,
                         std::string_view idempotency_key, TimestampMs now);

// What a receiver does (and what the tests check): OK when the signature matches and the
// timestamp is within `tolerance_seconds` of `now`; kPermissionDenied otherwise, saying why.
Status Verify(std::string_view secret, std::string_view timestamp_header,
              std::string_view signature_header, std::string_view body, TimestampMs now,
              std::int64_t tolerance_seconds = kDefaultToleranceSeconds);

// A new signing secret: "whsec_" + 48 hex characters from the system CSPRNG.
std::string NewSecret();

// 2xx sent; 408/429/5xx retry (Retry-After honoured); other statuses, redirects included,
// permanent.
Verdict Classify(const HttpAnswer& answer, TimestampMs now);

}  // namespace opensense::notify::webhook
