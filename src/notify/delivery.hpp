// What every provider adapter (postmark/, telegram/, webhook/) shares: an outbound HTTP request
// and answer, the transport that carries them (libcurl in production, see transport.hpp), and
// the verdict on an answer: sent, retry (maybe after a time the provider asked for), or a
// permanent failure, with the reason to record.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "core/types.hpp"

namespace opensense::notify {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string url;  // absolute http(s) URL
  Headers headers;
  std::string body;
};

struct HttpAnswer {
  int status = 0;
  Headers headers;
  std::string body;  // at most kMaxAnswerBytes
  // The first header with this name (case-insensitive).
  std::optional<std::string_view> Header(std::string_view name) const;
};

// Answers longer than this are cut off (a provider's answer is a few hundred bytes).
inline constexpr std::size_t kMaxAnswerBytes = 64 * 1024;

// Sends one POST and waits at most `timeout` for the whole exchange.
// Threads: Post may be called from any thread.
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // kUnavailable when no answer came (refused, DNS, TLS, timeout); the message never contains
  // the URL's path (a Telegram URL holds the bot token).
  virtual Result<HttpAnswer> Post(const HttpRequest& request, std::chrono::milliseconds timeout) = 0;
};

enum class Outcome { kSent, kRetry, kPermanent };

struct Verdict {
  Outcome outcome = Outcome::kRetry;
  std::optional<TimestampMs> retry_after_ms;  // the provider asked to wait this long
  std::string detail;                         // for the attempt log; never a secret
};

// The verdict on a bare HTTP status: 2xx sent; 408, 425, 429 and 5xx retry; anything else
// (redirects included: they are not followed) permanent.
Verdict ClassifyStatus(int status);

// A Retry-After header value: delta-seconds or an IMF-fixdate ("Wed, 21 Oct 2026 07:28:00
// GMT"), as a delay from `now` in milliseconds, at most one day. nullopt when malformed.
std::optional<TimestampMs> ParseRetryAfter(std::string_view value, TimestampMs now);

// JSON string literal (with quotes) of `s`; invalid UTF-8 is replaced, never rejected.
std::string JsonString(std::string_view s);

// Lower-case hex of bytes.
std::string Hex(std::string_view bytes);

// 24 hex characters from the system CSPRNG (unique keys and nonces).
std::string RandomToken();

}  // namespace opensense::notify
