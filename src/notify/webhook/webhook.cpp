#include "notify/webhook/webhook.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

namespace opensense::notify::webhook {

std::string Sign(std::string_view secret, std::int64_t unix_seconds, std::string_view body) {
  std::string message = std::to_string(unix_seconds);
  message += '.';
  message.append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return "v1=" + Hex(std::string_view(reinterpret_cast<const char*>(mac), len));
}

HttpRequest BuildRequest(std::string_view url, std::string_view secret, std::string_view body,
                         std::string_view idempotency_key, TimestampMs now) {
  const std::int64_t ts = now / 1000;
  HttpRequest r;
  r.url = std::string(url);
  r.headers = {{"Content-Type", "application/json"},
               {std::string(kTimestampHeader), std::to_string(ts)},
               {std::string(kSignatureHeader), Sign(secret, ts, body)},
               {std::string(kIdempotencyHeader), std::string(idempotency_key)}};
  r.body = std::string(body);
  return r;
}

Status Verify(std::string_view secret, std::string_view timestamp_header,
              std::string_view signature_header, std::string_view body, TimestampMs now,
              std::int64_t tolerance_seconds) {
  std::int64_t ts = 0;
  auto [end, ec] = std::from_chars(timestamp_header.data(),
                                   timestamp_header.data() + timestamp_header.size(), ts);
  if (timestamp_header.empty() || ec != std::errc() ||
      end != timestamp_header.data() + timestamp_header.size()) {
    return MakeError(ErrorCode::kPermissionDenied, "the timestamp header is not Unix seconds");
  }
  const std::int64_t age = now / 1000 - ts;
  if (age > tolerance_seconds || age < -tolerance_seconds) {
    return MakeError(ErrorCode::kPermissionDenied,
                     "the timestamp is too far from now (a replay or a wrong clock)");
  }
  const std::string expected = Sign(secret, ts, body);
  if (signature_header.size() != expected.size() ||
      CRYPTO_memcmp(signature_header.data(), expected.data(), expected.size()) != 0) {
    return MakeError(ErrorCode::kPermissionDenied, "the signature does not match");
  }
  return {};
}

std::string NewSecret() { return "whsec_" + RandomToken() + RandomToken(); }

Verdict Classify(const HttpAnswer& answer, TimestampMs now) {
  Verdict v = ClassifyStatus(answer.status);
  if (v.outcome == Outcome::kRetry) {
    if (auto ra = answer.Header("Retry-After")) v.retry_after_ms = ParseRetryAfter(*ra, now);
  }
  return v;
}

}  // namespace opensense::notify::webhook
