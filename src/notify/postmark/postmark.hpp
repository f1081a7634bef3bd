// Postmark (https://postmarkapp.com): `POST {base}/email` with the server token in
// X-Postmark-Server-Token and a JSON body (From, To, Subject, TextBody, HtmlBody, MessageStream),
// and the verdict on its answer. Pure: no I/O (the dispatcher sends).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "notify/delivery.hpp"

namespace opensense::notify::postmark {

struct Email {
  std::string from;            // "OpenSense <alerts@example.com>" (a Postmark sender signature)
  std::string to;
  std::string subject;
  std::string text_body;
  std::string html_body;       // "" : not sent
  std::string message_stream;  // "outbound": the default transactional stream
  std::string idempotency_key; // sent as Metadata.idempotency_key (Postmark has no idempotency header)
};

HttpRequest BuildRequest(std::string_view base_url, std::string_view server_token, const Email& email);

// Postmark's answer body: {"ErrorCode": n, "Message": "...", "MessageID": "..."}.
struct Answer {
  std::int64_t error_code = 0;
  std::string message;
  std::string message_id;
};
// kInvalidArgument unless the body is a JSON object with an integer ErrorCode (Message and
// MessageID optional strings). Bodies over kMaxAnswerBytes are refused unparsed.
Result<Answer> ParseAnswer(std::string_view body);

// 200 with ErrorCode 0: sent. 422: permanent (ErrorCode 406 = inactive recipient: don't retry),
// except ErrorCode 429 (rate limited) which retries. 401: permanent (the token is wrong).
// 408/429/5xx retry, honouring Retry-After. Other statuses permanent.
Verdict Classify(const HttpAnswer& answer, TimestampMs now);

}  // namespace opensense::notify::postmark
