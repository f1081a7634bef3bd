#include "people/login.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "auth/token_format.hpp"

namespace opensense::people {

std::string NewSecret() { return auth::RandomBase62(32); }

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

Result<std::string> NormaliseEmail(std::string_view email) {
  while (!email.empty() && std::isspace(static_cast<unsigned char>(email.front()))) email.remove_prefix(1);
  while (!email.empty() && std::isspace(static_cast<unsigned char>(email.back()))) email.remove_suffix(1);
  auto bad = [] { return MakeError(ErrorCode::kInvalidArgument, "give one e-mail address, like ann@example.com"); };
  if (email.size() < 3 || email.size() > 254) return bad();
  std::string out;
  out.reserve(email.size());
  for (char c : email) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == ',' || c == '<' || c == '>' || c == ';' || c == '"' ||
        c == '(' || c == ')' || c == '\\') {
      return bad();
    }
    out.push_back(static_cast<char>(std::tolower(u)));
  }
  auto at = out.find('@');
  if (at == std::string::npos || at == 0 || at + 1 >= out.size() || out.find('@', at + 1) != std::string::npos) {
    return bad();
  }
  return out;
}

std::string OriginOf(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "";
  auto host_end = url.find_first_of("/?#", scheme_end + 3);
  std::string out(url.substr(0, host_end));
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (out.size() <= scheme_end + 3) return "";
  return out;
}

bool SecureCookies(const LoginOptions& o) { return OriginOf(o.public_url).rfind("https://", 0) == 0; }

std::string SessionCookieName(const LoginOptions& o) {
  return SecureCookies(o) ? "__Host-opensense_session" : "opensense_session";
}

std::string SessionCookie(const LoginOptions& o, std::string_view secret) {
  return fmt::format("{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}", SessionCookieName(o), secret,
                     o.session_absolute_ms / kMsPerSecond, SecureCookies(o) ? "; Secure" : "");
}

std::string ClearedSessionCookie(const LoginOptions& o) {
  return fmt::format("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}", SessionCookieName(o),
                     SecureCookies(o) ? "; Secure" : "");
}

std::optional<std::string> SessionFromCookieHeader(const LoginOptions& o, std::string_view header) {
  const std::string name = SessionCookieName(o);
  while (!header.empty()) {
    auto semi = header.find(';');
    std::string_view part = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    auto eq = part.find('=');
    if (eq == std::string_view::npos || part.substr(0, eq) != name) continue;
    std::string_view value = part.substr(eq + 1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    if (value.empty() || value.size() > 128) return std::nullopt;
    // RFC 6265 cookie-octets only: no spaces, controls, quotes, commas, backslashes or bytes
    // above 0x7e. Our session ids are base62; anything else is not one of ours.
    for (unsigned char c : value) {
      if (c < 0x21 || c > 0x7e || c == '"' || c == ',' || c == '\\') return std::nullopt;
    }
    return std::string(value);
  }
  return std::nullopt;
}

std::string CsrfToken(std::string_view session_secret) {
  return Sha256Hex(fmt::format("opensense-csrf\n{}", session_secret));
}

bool SameOrigin(const LoginOptions& o, std::optional<std::string_view> origin,
                std::optional<std::string_view> referer) {
  const std::string expected = OriginOf(o.public_url);
  if (expected.empty()) return false;
  if (origin) return OriginOf(*origin) == expected && OriginOf(*origin).size() == origin->size();
  if (referer) return OriginOf(*referer) == expected;
  return false;
}

SessionState CheckSession(const LoginOptions& o, const store::SessionRow& s, TimestampMs now) {
  if (s.ended_at || now >= s.expires_at) return SessionState::kExpired;
  if (now - s.last_seen_at >= o.session_idle_ms) return SessionState::kIdle;
  return SessionState::kLive;
}

std::string MagicLinkUrl(const LoginOptions& o, std::string_view token) {
  std::string base = o.public_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return fmt::format("{}/auth/magic?token={}", base, token);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace opensense::people
