#include "notify/telegram/telegram.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace opensense::notify::telegram {

using nlohmann::json;

namespace {

// The longest prefix of `s` of at most `max` bytes that does not cut a UTF-8 sequence.
std::string_view Utf8Prefix(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace

std::string EscapeHtml(std::string_view text) {
  // Through JSON's UTF-8 replacement first, so the result is valid UTF-8.
  const std::string clean = json::parse(JsonString(text)).get<std::string>();
  std::string out;
  out.reserve(clean.size() + 16);
  for (char c : clean) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string MessageText(std::string_view subject, std::string_view body) {
  std::string text = "<b>" + EscapeHtml(Utf8Prefix(subject, 300)) + "</b>";
  if (!body.empty()) {
    const std::string_view cut = Utf8Prefix(body, kMaxTextBytes);
    text += "\n\n" + EscapeHtml(cut);
    if (cut.size() < body.size()) text += "\n…";
  }
  return text;
}

HttpRequest BuildRequest(std::string_view base_url, std::string_view bot_token,
                         std::string_view chat_id, std::string_view subject, std::string_view body) {
  std::string base(base_url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  json j = {{"chat_id", std::string(chat_id)},
            {"text", MessageText(subject, body)},
            {"parse_mode", "HTML"},
            {"disable_web_page_preview", true}};
  HttpRequest r;
  r.url = fmt::format("{}/bot{}/sendMessage", base, bot_token);
  r.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Result<Answer> ParseAnswer(std::string_view body) {
  if (body.size() > kMaxAnswerBytes) return MakeError(ErrorCode::kInvalidArgument, "Telegram answer too large");
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return MakeError(ErrorCode::kInvalidArgument, "Telegram answer is not a JSON object");
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) {
    return MakeError(ErrorCode::kInvalidArgument, "Telegram answer has no boolean \"ok\"");
  }
  Answer a;
  a.ok = ok->get<bool>();
  if (auto e = j.find("error_code"); e != j.end() && e->is_number_integer()) a.error_code = e->get<std::int64_t>();
  if (auto d = j.find("description"); d != j.end() && d->is_string()) a.description = d->get<std::string>();
  if (auto p = j.find("parameters"); p != j.end() && p->is_object()) {
    if (auto r = p->find("retry_after"); r != p->end() && r->is_number_integer()) {
      const std::int64_t s = r->get<std::int64_t>();
      if (s >= 0) a.retry_after_seconds = std::min<std::int64_t>(s, 24 * 3600);
    }
  }
  return a;
}

Verdict Classify(const HttpAnswer& answer, TimestampMs now) {
  auto parsed = ParseAnswer(answer.body);
  if (answer.status == 200 && parsed && parsed->ok) return {Outcome::kSent, std::nullopt, "HTTP 200, ok"};
  std::string said = parsed ? fmt::format("Telegram: {}", parsed->description.substr(0, 200))
                            : std::string("no Telegram answer body");
  if (parsed && parsed->retry_after_seconds) {
    return {Outcome::kRetry, *parsed->retry_after_seconds * 1000,
            fmt::format("HTTP {}, retry_after {} s, {}", answer.status, *parsed->retry_after_seconds, said)};
  }
  if (answer.status == 200) {
    // 200 without ok:true is not a delivery; Telegram never does this, a proxy might.
    return {Outcome::kRetry, std::nullopt, fmt::format("HTTP 200 without ok:true, {}", said)};
  }
  Verdict v = ClassifyStatus(answer.status);
  v.detail += ", " + said;
  if (v.outcome == Outcome::kRetry) {
    if (auto ra = answer.Header("Retry-After")) v.retry_after_ms = ParseRetryAfter(*ra, now);
  }
  return v;
}

bool ValidChatId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  if (id.front() == '@') {
    // Public usernames: 5-32 of a-z A-Z 0-9 _.
    const std::string_view name = id.substr(1);
    return name.size() >= 5 && name.size() <= 32 &&
           std::all_of(name.begin(), name.end(), [](char c) {
             return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
           });
  }
  std::string_view digits = id;
  if (digits.front() == '-') digits.remove_prefix(1);
  return !digits.empty() && digits.size() <= 16 &&
         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace opensense::notify::telegram
