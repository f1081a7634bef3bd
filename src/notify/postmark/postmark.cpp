#include "notify/postmark/postmark.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace opensense::notify::postmark {

using nlohmann::json;

HttpRequest BuildRequest(std::string_view base_url, std::string_view server_token, const Email& email) {
  json body = {{"From", email.from},         {"To", email.to},
               {"Subject", email.subject},   {"TextBody", email.text_body},
               {"MessageStream", email.message_stream}};
  if (!email.html_body.empty()) body["HtmlBody"] = email.html_body;
  if (!email.idempotency_key.empty()) body["Metadata"] = {{"idempotency_key", email.idempotency_key}};
  std::string base(base_url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  HttpRequest r;
  r.url = base + "/email";
  r.headers = {{"Accept", "application/json"},
               {"Content-Type", "application/json"},
               {"X-Postmark-Server-Token", std::string(server_token)}};
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Result<Answer> ParseAnswer(std::string_view body) {
  if (body.size() > kMaxAnswerBytes) {
    return MakeError(ErrorCode::kInvalidArgument, "Postmark answer too large");
  }
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return MakeError(ErrorCode::kInvalidArgument, "Postmark answer is not a JSON object");
  auto code = j.find("ErrorCode");
  if (code == j.end() || !code->is_number_integer()) {
    return MakeError(ErrorCode::kInvalidArgument, "Postmark answer has no integer ErrorCode");
  }
  Answer a;
  a.error_code = code->get<std::int64_t>();
  if (auto m = j.find("Message"); m != j.end() && m->is_string()) a.message = m->get<std::string>();
  if (auto m = j.find("MessageID"); m != j.end() && m->is_string()) a.message_id = m->get<std::string>();
  return a;
}

Verdict Classify(const HttpAnswer& answer, TimestampMs now) {
  auto parsed = ParseAnswer(answer.body);
  const std::string said =
      parsed ? fmt::format("Postmark ErrorCode {}: {}", parsed->error_code, parsed->message.substr(0, 200))
             : std::string("no Postmark error body");
  if (answer.status == 200) {
    if (parsed && parsed->error_code != 0) {
      return {Outcome::kPermanent, std::nullopt, fmt::format("HTTP 200 but {}", said)};
    }
    return {Outcome::kSent, std::nullopt,
            parsed ? fmt::format("HTTP 200, MessageID {}", parsed->message_id.substr(0, 100))
                   : std::string("HTTP 200")};
  }
  if (answer.status == 422) {
    if (parsed && parsed->error_code == 429) {
      return {Outcome::kRetry, std::nullopt, fmt::format("HTTP 422, rate limited ({})", said)};
    }
    if (parsed && parsed->error_code == 406) {
      return {Outcome::kPermanent, std::nullopt,
              fmt::format("HTTP 422, inactive recipient (bounced or marked spam; reactivate it in "
                          "Postmark): {}", said)};
    }
    return {Outcome::kPermanent, std::nullopt, fmt::format("HTTP 422, {}", said)};
  }
  if (answer.status == 401) {
    return {Outcome::kPermanent, std::nullopt,
            "HTTP 401: Postmark refused the server token; check OPENSENSE_POSTMARK_TOKEN"};
  }
  Verdict v = ClassifyStatus(answer.status);
  if (parsed) v.detail += ", " + said;
  if (v.outcome == Outcome::kRetry) {
    if (auto ra = answer.Header("Retry-After")) v.retry_after_ms = ParseRetryAfter(*ra, now);
  }
  return v;
}

}  // namespace opensense::notify::postmark
