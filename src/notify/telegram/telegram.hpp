// Telegram Bot API: `POST {base}/bot<token>/sendMessage` with a JSON body (chat_id, text,
// parse_mode "HTML"), and the verdict on its answer ({"ok":true,...} or {"ok":false,
// "error_code":n,"description":"...","parameters":{"retry_after":s}}). Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "notify/delivery.hpp"

namespace opensense::notify::telegram {

// Messages longer than this (before escaping) are cut, with an ellipsis; Telegram allows 4096
// characters after entity parsing.
inline constexpr std::size_t kMaxTextBytes = 3500;

// Escapes text for parse_mode HTML: & < > become entities (all that mode requires), and
// invalid UTF-8 is replaced.
std::string EscapeHtml(std::string_view text);

// The message text: the subject in bold, a blank line, the body; escaped and bounded.
std::string MessageText(std::string_view subject, std::string_view body);

HttpRequest BuildRequest(std::string_view base_url, std::string_view bot_token,
                         std::string_view chat_id, std::string_view subject, std::string_view body);

struct Answer {
  bool ok = false;
  std::optional<std::int64_t> error_code;
  std::string description;
  std::optional<std::int64_t> retry_after_seconds;  // parameters.retry_after
};
// kInvalidArgument unless the body is a JSON object with a boolean "ok".
Result<Answer> ParseAnswer(std::string_view body);

// ok: sent. parameters.retry_after (or 429): retry after it. 5xx: retry. 400 (chat not found,
// bad request), 401 (token), 403 (bot blocked or kicked) and other 4xx: permanent.
Verdict Classify(const HttpAnswer& answer, TimestampMs now);

// A chat id: an integer (negative for groups, -100... for channels) or @channelusername.
bool ValidChatId(std::string_view chat_id);

}  // namespace opensense::notify::telegram
