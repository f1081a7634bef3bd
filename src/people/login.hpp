// The rules of magic-link login and sessions (pure functions; no I/O): secrets and their
// hashes, address normalisation, cookies, session timeouts, the CSRF token and the Origin
// check. docs/security.md describes the whole flow.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/types.hpp"
#include "store/people_store.hpp"

namespace opensense::people {

struct LoginOptions {
  // The public address of the service (setting public_url): the host of every link, the
  // origin a cookie-authenticated write must come from, and https there means Secure cookies.
  std::string public_url = "http://127.0.0.1:8080";
  TimestampMs link_ttl_ms = 15 * kMsPerMinute;
  TimestampMs session_idle_ms = 12 * kMsPerHour;      // no request for this long: signed out
  TimestampMs session_absolute_ms = 7 * kMsPerDay;    // signed out this long after login
  TimestampMs session_touch_ms = kMsPerMinute;        // last_seen_at written at most this often
  // Magic links (login, invitation, sign-up) per address and per client address per window.
  int links_per_address = 5;
  int links_per_client = 20;
  TimestampMs link_rate_window_ms = 15 * kMsPerMinute;
  // Self-service sign-up (setting self_signup): anyone may create a free organisation.
  bool self_signup = false;
};

// 32 base62 characters from the operating system's CSPRNG (~190 bits).
std::string NewSecret();
// SHA-256 as 64 lower-case hex digits (what the store keeps of tokens and session ids).
std::string Sha256Hex(std::string_view data);

// Lower-cased and trimmed; kInvalidArgument unless it looks like one address (no spaces,
// control characters, commas or angle brackets; one '@' with text on both sides; <= 254).
Result<std::string> NormaliseEmail(std::string_view email);

// The scheme://host[:port] of public_url, lower case ("" if public_url is malformed).
std::string OriginOf(std::string_view url);
bool SecureCookies(const LoginOptions& o);  // public_url is https
std::string SessionCookieName(const LoginOptions& o);  // __Host-opensense_session / opensense_session
std::string SessionCookie(const LoginOptions& o, std::string_view secret);  // Set-Cookie value
std::string ClearedSessionCookie(const LoginOptions& o);
// The value of the session cookie in a Cookie header, or nullopt.
std::optional<std::string> SessionFromCookieHeader(const LoginOptions& o, std::string_view header);

// The CSRF token of a session: derived from its secret (SHA-256 over a label and the secret),
// so it needs no storage, changes with every login, and cannot be computed without the cookie.
std::string CsrfToken(std::string_view session_secret);
// Whether a cookie-authenticated write may proceed: Origin (or, without it, Referer) must be
// public_url's origin.
bool SameOrigin(const LoginOptions& o, std::optional<std::string_view> origin,
                std::optional<std::string_view> referer);

enum class SessionState { kLive, kIdle, kExpired };
SessionState CheckSession(const LoginOptions& o, const store::SessionRow& s, TimestampMs now);

// The link a magic-link mail carries: <public_url>/auth/magic?token=<token>.
std::string MagicLinkUrl(const LoginOptions& o, std::string_view token);

// Constant-time comparison of two strings of possibly different length.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace opensense::people
