#include "notify/delivery.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <ctime>

namespace opensense::notify {

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

constexpr TimestampMs kMaxRetryAfterMs = 24 * kMsPerHour;

}  // namespace

std::optional<std::string_view> HttpAnswer::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

Verdict ClassifyStatus(int status) {
  if (status >= 200 && status < 300) return {Outcome::kSent, std::nullopt, "HTTP " + std::to_string(status)};
  if (status == 408 || status == 425 || status == 429 || (status >= 500 && status < 600)) {
    return {Outcome::kRetry, std::nullopt, "HTTP " + std::to_string(status)};
  }
  return {Outcome::kPermanent, std::nullopt, "HTTP " + std::to_string(status)};
}

std::optional<TimestampMs> ParseRetryAfter(std::string_view value, TimestampMs now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty() || value.size() > 64) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) return kMaxRetryAfterMs;
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    if (seconds > kMaxRetryAfterMs / 1000) return kMaxRetryAfterMs;
    return seconds * 1000;
  }
  // IMF-fixdate only (the obsolete RFC 850 and asctime forms are not sent by the providers).
  std::string text(value);
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const std::time_t at = ::timegm(&tm);
  if (at == static_cast<std::time_t>(-1)) return std::nullopt;
  const TimestampMs delay = static_cast<TimestampMs>(at) * 1000 - now;
  return std::clamp<TimestampMs>(delay, 0, kMaxRetryAfterMs);
}

std::string JsonString(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string RandomToken() {
  unsigned char bytes[12];
  if (RAND_bytes(bytes, sizeof bytes) != 1) std::abort();  // no CSPRNG: nothing is safe
  return Hex(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

}  // namespace opensense::notify
