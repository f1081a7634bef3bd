// The pure parts of notify: provider answer parsers (malformed and hostile input), verdicts,
// Retry-After, Telegram HTML escaping, webhook signatures, channel validation.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "notify/channels.hpp"
#include "notify/dispatcher.hpp"
#include "notify/postmark/postmark.hpp"
#include "notify/telegram/telegram.hpp"
#include "notify/webhook/webhook.hpp"

namespace opensense::notify {
namespace {

constexpr TimestampMs kNow = 1768478400000;  // 2026-01-15T12:00:00Z = Thu, 15 Jan 2026 12:00:00 GMT

HttpAnswer Answer(int status, std::string body, Headers headers = {}) {
  HttpAnswer a;
  a.status = status;
  a.body = std::move(body);
  a.headers = std::move(headers);
  return a;
}

std::vector<std::string> HostileBodies() {
  return {"",
          "null",
          "[]",
          "\"ErrorCode\"",
          "{",
          "{\"ErrorCode\":",
          "{\"ErrorCode\":\"406\"}",
          "{\"ErrorCode\":1e400}",
          "{\"ErrorCode\":99999999999999999999999}",
          "{\"ok\":\"true\"}",
          "{\"ok\":1}",
          "{\"ok\":false,\"parameters\":[1]}",
          "{\"ok\":false,\"parameters\":{\"retry_after\":\"5\"}}",
          "{\"ok\":false,\"parameters\":{\"retry_after\":-5}}",
          "{\"ok\":false,\"parameters\":{\"retry_after\":1e300}}",
          std::string(100000, '['),
          std::string(200 * 1024, ' ') + "{}",
          std::string("{\"ok\":true}\0garbage", 19),
          "\xff\xfe{\"ok\":true}",
          "{\"Message\":\"\xc3\x28\",\"ErrorCode\":1}"};
}

TEST(RetryAfter, SecondsAndHttpDates) {
  EXPECT_EQ(ParseRetryAfter("120", kNow), 120'000);
  EXPECT_EQ(ParseRetryAfter(" 0 ", kNow), 0);
  EXPECT_EQ(ParseRetryAfter("Thu, 15 Jan 2026 12:00:30 GMT", kNow), 30'000);
  EXPECT_EQ(ParseRetryAfter("Thu, 15 Jan 2026 11:00:00 GMT", kNow), 0);  // in the past: now
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", kNow), 24 * kMsPerHour);
  EXPECT_EQ(ParseRetryAfter("864000", kNow), 24 * kMsPerHour);
  for (const char* bad : {"", "-1", "1.5", "soon", "12 s", "Thu, 15 Jan 2026 12:00:30", "0x10",
                          "Thu, 15 Jan 2026 12:00:30 GMT trailing"}) {
    EXPECT_FALSE(ParseRetryAfter(bad, kNow).has_value()) << bad;
  }
  EXPECT_FALSE(ParseRetryAfter(std::string(10000, '9') + "x", kNow).has_value());
}

TEST(Postmark, RequestIsExact) {
  postmark::Email e{"OpenSense <a@b.example>", "c@d.example", "Subj", "Text", "<p>Html</p>", "outbound", "key-1"};
  auto r = postmark::BuildRequest("https://api.postmarkapp.com/", "tok", e);
  EXPECT_EQ(r.url, "https://api.postmarkapp.com/email");
  EXPECT_EQ(r.headers, (Headers{{"Accept", "application/json"},
                                {"Content-Type", "application/json"},
                                {"X-Postmark-Server-Token", "tok"}}));
  EXPECT_EQ(nlohmann::json::parse(r.body),
            nlohmann::json::parse(R"({"From":"OpenSense <a@b.example>","To":"c@d.example","Subject":"Subj",
              "TextBody":"Text","HtmlBody":"<p>Html</p>","MessageStream":"outbound",
              "Metadata":{"idempotency_key":"key-1"}})"));
}

TEST(Postmark, AnswersAreParsedAndClassified) {
  auto ok = postmark::ParseAnswer(R"({"To":"x","MessageID":"m-1","ErrorCode":0,"Message":"OK"})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->error_code, 0);
  EXPECT_EQ(ok->message_id, "m-1");
  EXPECT_EQ(postmark::Classify(Answer(200, R"({"ErrorCode":0,"Message":"OK","MessageID":"m"})"), kNow).outcome,
            Outcome::kSent);
  auto inactive = postmark::Classify(Answer(422, R"({"ErrorCode":406,"Message":"inactive"})"), kNow);
  EXPECT_EQ(inactive.outcome, Outcome::kPermanent);
  EXPECT_NE(inactive.detail.find("inactive recipient"), std::string::npos);
  EXPECT_EQ(postmark::Classify(Answer(422, R"({"ErrorCode":300,"Message":"Invalid"})"), kNow).outcome,
            Outcome::kPermanent);
  EXPECT_EQ(postmark::Classify(Answer(422, R"({"ErrorCode":429,"Message":"Rate"})"), kNow).outcome,
            Outcome::kRetry);
  EXPECT_EQ(postmark::Classify(Answer(401, ""), kNow).outcome, Outcome::kPermanent);
  auto busy = postmark::Classify(Answer(429, "", {{"retry-after", "30"}}), kNow);
  EXPECT_EQ(busy.outcome, Outcome::kRetry);
  EXPECT_EQ(busy.retry_after_ms, 30'000);
  EXPECT_EQ(postmark::Classify(Answer(500, "<html>"), kNow).outcome, Outcome::kRetry);
  EXPECT_EQ(postmark::Classify(Answer(404, ""), kNow).outcome, Outcome::kPermanent);
  EXPECT_EQ(postmark::Classify(Answer(200, R"({"ErrorCode":10,"Message":"Bad token"})"), kNow).outcome,
            Outcome::kPermanent);
}

TEST(Postmark, MalformedAndHostileAnswersAreRefusedNotCrashed) {
  for (const auto& body : HostileBodies()) {
    auto r = postmark::ParseAnswer(body);
    if (r) {
      EXPECT_EQ(body.rfind("{\"Message\"", 0), 0u) << body.substr(0, 40);
    }
    for (int status : {200, 401, 422, 429, 500}) {
      const Verdict v = postmark::Classify(Answer(status, body), kNow);
      EXPECT_LE(v.detail.size(), 2000u);
    }
  }
}

TEST(Telegram, RequestIsExactAndEscapedForHtml) {
  auto r = telegram::BuildRequest("https://api.telegram.org", "1:tok", "-100123", "A <b> & c",
                                  "x > y\n<script>");
  EXPECT_EQ(r.url, "https://api.telegram.org/bot1:tok/sendMessage");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["chat_id"], "-100123");
  EXPECT_EQ(j["parse_mode"], "HTML");
  EXPECT_EQ(j["text"], "<b>A &lt;b&gt; &amp; c</b>\n\nx &gt; y\n&lt;script&gt;");
  EXPECT_EQ(telegram::EscapeHtml("&amp;"), "&amp;amp;");
  // Invalid UTF-8 is replaced, never sent raw.
  EXPECT_EQ(telegram::EscapeHtml("a\xff" "b"), "a\xef\xbf\xbd" "b");
  // Long bodies are cut at a character boundary, under Telegram's limit.
  std::string longer;
  for (int i = 0; i < 3000; ++i) longer += "é";
  const std::string text = telegram::MessageText("s", longer);
  EXPECT_LT(text.size(), 4096u);
  EXPECT_TRUE(nlohmann::json::accept(nlohmann::json(text).dump()));
}

TEST(Telegram, AnswersAreParsedAndClassified) {
  auto a = telegram::ParseAnswer(R"({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}})");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->ok);
  EXPECT_EQ(a->error_code, 429);
  EXPECT_EQ(a->retry_after_seconds, 7);
  auto v = telegram::Classify(Answer(429, R"({"ok":false,"error_code":429,"description":"x","parameters":{"retry_after":7}})"), kNow);
  EXPECT_EQ(v.outcome, Outcome::kRetry);
  EXPECT_EQ(v.retry_after_ms, 7000);
  EXPECT_EQ(telegram::Classify(Answer(200, R"({"ok":true,"result":{}})"), kNow).outcome, Outcome::kSent);
  EXPECT_EQ(telegram::Classify(Answer(400, R"({"ok":false,"error_code":400,"description":"Bad Request: chat not found"})"), kNow).outcome,
            Outcome::kPermanent);
  EXPECT_EQ(telegram::Classify(Answer(502, "Bad Gateway"), kNow).outcome, Outcome::kRetry);
  EXPECT_EQ(telegram::Classify(Answer(200, "{\"ok\":false}"), kNow).outcome, Outcome::kRetry);
  EXPECT_EQ(telegram::ParseAnswer(R"({"ok":false,"parameters":{"retry_after":99999999}})")->retry_after_seconds,
            24 * 3600);
}

TEST(Telegram, MalformedAndHostileAnswersAreRefusedNotCrashed) {
  for (const auto& body : HostileBodies()) {
    auto r = telegram::ParseAnswer(body);
    if (r) {
      EXPECT_TRUE(!r->retry_after_seconds || *r->retry_after_seconds >= 0);
    }
    for (int status : {200, 400, 429, 500}) {
      const Verdict v = telegram::Classify(Answer(status, body), kNow);
      if (status == 200 && v.outcome == Outcome::kSent) {
        EXPECT_TRUE(r && r->ok);
      }
    }
  }
}

TEST(Telegram, ChatIds) {
  for (const char* ok : {"12345", "-1001234567890", "@opensense_alerts"}) EXPECT_TRUE(telegram::ValidChatId(ok)) << ok;
  for (const char* bad : {"", "-", "12a", "@ab", "@with space", "1 2", "@toolong_toolong_toolong_toolong_x",
                          "99999999999999999"}) {
    EXPECT_FALSE(telegram::ValidChatId(bad)) << bad;
  }
}

TEST(Webhook, SignatureMatchesAKnownVector) {
  // python3 -c "import hmac,hashlib;print(hmac.new(b'whsec_test',b'1768478400.{\"a\":1}',hashlib.sha256).hexdigest())"
  EXPECT_EQ(webhook::Sign("whsec_test", 1768478400, R"({"a":1})"),
            "v1=53a028fe64ed86c4035eb709737c4a41e94c1aa087b0ffb947b643e13aa89509");
  auto r = webhook::BuildRequest("https://h.example/x", "whsec_test", R"({"a":1})", "key-9", kNow);
  EXPECT_EQ(r.headers, (Headers{{"Content-Type", "application/json"},
                                {"X-OpenSense-Timestamp", "1768478400"},
                                {"X-OpenSense-Signature", "v1=53a028fe64ed86c4035eb709737c4a41e94c1aa087b0ffb947b643e13aa89509"},
                                {"Idempotency-Key", "key-9"}}));
}

TEST(Webhook, VerifyRefusesReplaysTamperingAndGarbage) {
  const std::string body = R"({"a":1})";
  const std::string sig = webhook::Sign("s", kNow / 1000, body);
  const std::string ts = std::to_string(kNow / 1000);
  EXPECT_TRUE(webhook::Verify("s", ts, sig, body, kNow));
  EXPECT_TRUE(webhook::Verify("s", ts, sig, body, kNow + 299'000));
  EXPECT_FALSE(webhook::Verify("s", ts, sig, body, kNow + 301'000));   // replayed later
  EXPECT_FALSE(webhook::Verify("s", ts, sig, body, kNow - 301'000));   // from the future
  EXPECT_FALSE(webhook::Verify("s", ts, sig, body + "x", kNow));
  EXPECT_FALSE(webhook::Verify("s", ts, sig.substr(0, sig.size() - 1), body, kNow));
  for (const char* bad_ts : {"", "abc", "1.5", "-", "99999999999999999999999", " 1768478400"}) {
    EXPECT_FALSE(webhook::Verify("s", bad_ts, sig, body, kNow)) << bad_ts;
  }
  EXPECT_FALSE(webhook::Verify("s", ts, "", body, kNow));
  EXPECT_FALSE(webhook::Verify("s", ts, std::string(10000, 'a'), body, kNow));
  const std::string secret = webhook::NewSecret();
  EXPECT_EQ(secret.rfind("whsec_", 0), 0u);
  EXPECT_EQ(secret.size(), 6u + 48u);
  EXPECT_NE(secret, webhook::NewSecret());
}

TEST(Webhook, Verdicts) {
  EXPECT_EQ(webhook::Classify(Answer(204, ""), kNow).outcome, Outcome::kSent);
  EXPECT_EQ(webhook::Classify(Answer(301, ""), kNow).outcome, Outcome::kPermanent);
  EXPECT_EQ(webhook::Classify(Answer(410, ""), kNow).outcome, Outcome::kPermanent);
  auto v = webhook::Classify(Answer(503, "", {{"Retry-After", "Thu, 15 Jan 2026 12:01:00 GMT"}}), kNow);
  EXPECT_EQ(v.outcome, Outcome::kRetry);
  EXPECT_EQ(v.retry_after_ms, 60'000);
  EXPECT_FALSE(webhook::Classify(Answer(503, "", {{"Retry-After", "garbage"}}), kNow).retry_after_ms);
}

TEST(Channels, EmailAddresses) {
  for (const char* ok : {"a@b.co", "chef.de-partie+alerts@cafe.example", "x@sub.domain.example"}) {
    EXPECT_TRUE(ValidEmail(ok)) << ok;
  }
  for (const char* bad : {"", "a", "@b.co", "a@", "a@b", "a@@b.co", "a b@c.co", "a@b.co\r\nBcc: x@y.z",
                          "Name <a@b.co>", "a@.co", "a@b.", "a,b@c.co"}) {
    EXPECT_FALSE(ValidEmail(bad)) << bad;
  }
  EXPECT_FALSE(ValidEmail(std::string(250, 'a') + "@b.co"));
  EXPECT_EQ(SplitAddresses(" a@b.co, ,c@d.co "), (std::vector<std::string>{"a@b.co", "c@d.co"}));
}

TEST(Channels, WebhookUrls) {
  UrlPolicy strict;
  UrlPolicy tests{true};
  EXPECT_TRUE(ValidateWebhookUrl("https://hooks.example.com/x?y=1", strict));
  EXPECT_FALSE(ValidateWebhookUrl("http://hooks.example.com/x", strict));
  EXPECT_FALSE(ValidateWebhookUrl("http://127.0.0.1:8080/x", strict));
  EXPECT_TRUE(ValidateWebhookUrl("http://127.0.0.1:8080/x", tests));
  EXPECT_TRUE(ValidateWebhookUrl("http://[::1]:8080/x", tests));
  EXPECT_FALSE(ValidateWebhookUrl("http://10.0.0.1/x", tests));
  EXPECT_FALSE(ValidateWebhookUrl("http://127.0.0.1.evil.example/x", tests));
  for (const char* bad : {"", "ftp://x.example/", "https://", "https:///x", "https://user:pw@x.example/",
                          "https://x.example/a b", "https://x.example/#frag", "javascript:alert(1)",
                          "https://x.example/\r\nHost: y"}) {
    EXPECT_FALSE(ValidateWebhookUrl(bad, tests)) << bad;
  }
  EXPECT_FALSE(ValidateWebhookUrl("https://x.example/" + std::string(3000, 'a'), strict));
}

TEST(Channels, ValidationNamesTheField) {
  UrlPolicy p;
  EXPECT_TRUE(ValidateChannel("email", "Kitchen", "a@b.co, c@d.co", p));
  EXPECT_TRUE(ValidateChannel("telegram", "Group", "-100123", p));
  EXPECT_TRUE(ValidateChannel("webhook", "PagerDuty", "https://events.example/x", p));
  auto e = ValidateChannel("sms", "x", "1", p);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(e.error().message.find("kind"), std::string::npos);
  EXPECT_NE(ValidateChannel("email", "x", "nope", p).error().message.find("target"), std::string::npos);
  EXPECT_NE(ValidateChannel("email", "", "a@b.co", p).error().message.find("name"), std::string::npos);
  EXPECT_NE(ValidateChannel("email", "a\nb", "a@b.co", p).error().message.find("name"), std::string::npos);
  std::string many;
  for (int i = 0; i < 21; ++i) many += "a" + std::to_string(i) + "@b.co,";
  EXPECT_FALSE(ValidateChannel("email", "x", many, p));
}

TEST(Channels, OutboxRowsOnePerRecipient) {
  store::NotificationChannel c;
  c.id = 3;
  c.org = 7;
  c.kind = "email";
  c.name = "Kitchen";
  c.target = "a@b.co, c@d.co";
  ChannelMessage m;
  m.subject = "S";
  m.text_body = "T";
  m.key = "alert-event:5:channel:3";
  auto rows = OutboxRowsFor(c, m, kNow);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].idempotency_key, "alert-event:5:channel:3:a@b.co");
  EXPECT_EQ(rows[1].recipient, "c@d.co");
  EXPECT_EQ(rows[0].org, 7);
  EXPECT_EQ(rows[0].channel, 3);
  EXPECT_EQ(rows[0].next_attempt_at, kNow);
  c.kind = "webhook";
  rows = OutboxRowsFor(c, m, kNow);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].recipient, "");
  EXPECT_EQ(nlohmann::json::parse(rows[0].payload_json)["idempotency_key"], "alert-event:5:channel:3");
}

TEST(CleanText, ReplacesInvalidUtf8AndControlsAndCutsOnABoundary) {
  EXPECT_EQ(CleanText("ok\nline", 100), "ok\nline");
  EXPECT_EQ(CleanText("a\x01" "b\x7f", 100), "a?b?");
  EXPECT_EQ(CleanText("\xc3\x28", 100), "?(");
  EXPECT_EQ(CleanText("\xed\xa0\x80", 100), "???");
  EXPECT_EQ(CleanText("\xf4\x90\x80\x80", 100), "????");
  EXPECT_EQ(CleanText("é", 1), "");
  EXPECT_EQ(CleanText("aé", 2), "a");
  EXPECT_EQ(CleanText("\xe2\x82", 10), "??");
}

}  // namespace
}  // namespace opensense::notify
