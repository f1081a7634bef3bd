// The dispatcher against local fake Postmark, Telegram and webhook servers (fake_providers.hpp)
// and a real store (every backend): the exact requests, retries with back-off, Retry-After and
// Telegram's retry_after honoured, permanent failures stopping, hangs bounded by the timeout,
// every attempt logged, operator messages on the operator channel only.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "notify/channels.hpp"
#include "notify/dispatcher.hpp"
#include "notify/fake_providers.hpp"
#include "notify/outbox_outbound.hpp"
#include "notify/transport.hpp"
#include "notify/webhook/webhook.hpp"
#include "store/test_util.hpp"

namespace opensense::notify {
namespace {

using nlohmann::json;
using store::Backend;
using fakes::FakeProvider;
using fakes::ScriptedAnswer;

constexpr TimestampMs kNow = 1768478400000;  // 2026-01-15T12:00:00Z

class RecordingOperatorAlerts final : public OperatorAlerts {
 public:
  void Raise(const OperatorAlert& a) override {
    std::lock_guard lock(mu);
    raised.push_back(a);
  }
  std::mutex mu;
  std::vector<OperatorAlert> raised;
};

class DispatcherTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<store::ScratchDir>("notify");
    store::StoreOptions o = GetParam().options(dir_->path());
    o.clock = &clock_;
    o.writer = false;
    auto s = store::OpenStore(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    org_ = store_->CreateOrganization({"Cafe", "UTC", Tier::kFree})->id;
    other_org_ = store_->CreateOrganization({"Other", "UTC", Tier::kFree})->id;
    postmark_ = FakeProvider::Start(fakes::PostmarkOk());
    telegram_ = FakeProvider::Start(fakes::TelegramOk());
    hooks_ = FakeProvider::Start(fakes::WebhookOk());
    ASSERT_TRUE(postmark_ && telegram_ && hooks_);
    transport_ = MakeCurlTransport();
    options_.postmark_base_url = postmark_->base_url();
    options_.postmark_token = "pm-test-token";
    options_.mail_from = "OpenSense <alerts@opensense.example>";
    options_.telegram_base_url = telegram_->base_url();
    options_.telegram_token = "123456:ABC-test";
    options_.url_policy.allow_http_loopback = true;
    options_.request_timeout = std::chrono::milliseconds(500);
    options_.jitter_seed = 7;
    options_.clock = &clock_;
    options_.metrics = &metrics_;
    options_.operator_alerts = &operator_alerts_;
  }
  void TearDown() override {
    dispatcher_.reset();
    if (store_) store_->Close();
  }
  Dispatcher& D() {
    if (!dispatcher_) dispatcher_ = std::make_unique<Dispatcher>(&store_->Notify(), transport_.get(), options_);
    return *dispatcher_;
  }
  store::NotificationChannel Channel(std::string kind, std::string target, OrgId org = 0) {
    store::NotificationChannel c;
    c.org = org != 0 ? org : org_;
    c.kind = kind;
    c.name = kind + " channel";
    c.target = std::move(target);
    if (c.kind == "webhook") c.secret = webhook::NewSecret();
    c.created_at = kNow;
    auto r = store_->Notify().CreateChannel(c);
    EXPECT_TRUE(r) << r.error().message;
    return *r;
  }
  // Queues one message through `channel`; the id of its (first) row.
  std::int64_t Queue(const store::NotificationChannel& channel, std::string key,
                     std::string subject = "Walk-in fridge: 8.4 °C > 5 °C",
                     std::string text = "Walk-in fridge at Kitchen has been above 5 °C since 11:40.") {
    ChannelMessage m;
    m.subject = std::move(subject);
    m.text_body = std::move(text);
    m.html_body = "<p>" + m.text_body + "</p>";
    m.key = std::move(key);
    std::int64_t first = 0;
    for (const auto& row : OutboxRowsFor(channel, m, clock_.NowMs())) {
      auto id = store_->Notify().Enqueue(row);
      EXPECT_TRUE(id && id->has_value());
      if (first == 0) first = **id;
    }
    return first;
  }
  store::OutboxMessage Message(std::int64_t id) { return *store_->Notify().GetMessage(id); }
  std::vector<store::NotificationAttempt> Attempts(std::int64_t id) {
    return *store_->Notify().AttemptsOf(id);
  }

  std::unique_ptr<store::ScratchDir> dir_;
  ManualClock clock_{kNow};
  std::unique_ptr<store::Store> store_;
  OrgId org_ = 0;
  OrgId other_org_ = 0;
  std::unique_ptr<FakeProvider> postmark_, telegram_, hooks_;
  std::unique_ptr<HttpTransport> transport_;
  MetricsRegistry metrics_;
  RecordingOperatorAlerts operator_alerts_;
  DispatcherOptions options_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_P(DispatcherTest, PostmarkGetsTheExactRequestAndTheAttemptIsLogged) {
  auto ch = Channel("email", "chef@cafe.example, owner@cafe.example");
  const auto id = Queue(ch, "alert-event:1:channel:1");
  EXPECT_EQ(D().RunOnce(), 2);

  auto reqs = postmark_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  const auto& r = reqs[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/email");
  EXPECT_EQ(r.Header("X-Postmark-Server-Token"), "pm-test-token");
  EXPECT_EQ(r.Header("Accept"), "application/json");
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  json body = json::parse(r.body);
  EXPECT_EQ(body["From"], "OpenSense <alerts@opensense.example>");
  EXPECT_EQ(body["To"], "chef@cafe.example");
  EXPECT_EQ(body["Subject"], "Walk-in fridge: 8.4 °C > 5 °C");
  EXPECT_EQ(body["TextBody"], "Walk-in fridge at Kitchen has been above 5 °C since 11:40.");
  EXPECT_EQ(body["HtmlBody"], "<p>Walk-in fridge at Kitchen has been above 5 °C since 11:40.</p>");
  EXPECT_EQ(body["MessageStream"], "outbound");
  EXPECT_EQ(body["Metadata"]["idempotency_key"], "alert-event:1:channel:1:chef@cafe.example");
  EXPECT_EQ(json::parse(reqs[1].body)["To"], "owner@cafe.example");

  auto m = Message(id);
  EXPECT_EQ(m.state, "sent");
  EXPECT_EQ(m.done_at, kNow);
  auto a = Attempts(id);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, "sent");
  EXPECT_EQ(a[0].provider_code, 200);
  EXPECT_EQ(a[0].recipient, "chef@cafe.example");
  EXPECT_EQ(a[0].channel_kind, "email");
  EXPECT_EQ(a[0].org, org_);
  // Nothing is sent twice.
  EXPECT_EQ(D().RunOnce(), 0);
  clock_.Advance(kMsPerDay);
  EXPECT_EQ(D().RunOnce(), 0);
  EXPECT_EQ(postmark_->requests().size(), 2u);
  EXPECT_NE(metrics_.RenderPrometheus().find("opensense_notifications_sent_total{kind=\"email\"} 2"),
            std::string::npos);
}

TEST_P(DispatcherTest, A500IsRetriedWithGrowingJitteredBackoffUntilItSucceeds) {
  postmark_->Push({500, {}, R"({"ErrorCode":500,"Message":"boom"})"});
  postmark_->Push({503, {}, ""});
  const auto id = Queue(Channel("email", "chef@cafe.example"), "k1");
  EXPECT_EQ(D().RunOnce(), 1);
  auto m = Message(id);
  EXPECT_EQ(m.state, "pending");
  EXPECT_EQ(m.attempts, 1);
  EXPECT_GE(m.next_attempt_at, kNow + options_.initial_backoff_ms / 2);
  EXPECT_LE(m.next_attempt_at, kNow + options_.initial_backoff_ms);
  EXPECT_NE(m.last_error.find("HTTP 500"), std::string::npos);
  // Not before its time.
  clock_.Set(m.next_attempt_at - 1);
  EXPECT_EQ(D().RunOnce(), 0);
  clock_.Set(m.next_attempt_at);
  const TimestampMs second_at = clock_.NowMs();
  EXPECT_EQ(D().RunOnce(), 1);
  m = Message(id);
  EXPECT_EQ(m.state, "pending");
  EXPECT_GE(m.next_attempt_at, second_at + options_.initial_backoff_ms);  // doubled: [1x, 2x]
  EXPECT_LE(m.next_attempt_at, second_at + 2 * options_.initial_backoff_ms);
  clock_.Set(m.next_attempt_at);
  EXPECT_EQ(D().RunOnce(), 1);
  EXPECT_EQ(Message(id).state, "sent");
  auto a = Attempts(id);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].status, "retry");
  EXPECT_EQ(a[0].provider_code, 500);
  EXPECT_EQ(a[1].status, "retry");
  EXPECT_EQ(a[1].provider_code, 503);
  EXPECT_EQ(a[2].status, "sent");
  EXPECT_EQ(postmark_->requests().size(), 3u);
  // The same idempotency key on every try.
  for (const auto& r : postmark_->requests()) {
    EXPECT_EQ(json::parse(r.body)["Metadata"]["idempotency_key"], "k1:chef@cafe.example");
  }
  EXPECT_NE(metrics_.RenderPrometheus().find("opensense_notifications_retried_total{kind=\"email\"} 2"),
            std::string::npos);
}

TEST_P(DispatcherTest, A429RetryAfterIsHonouredExactly) {
  postmark_->Push({429, {{"Retry-After", "120"}}, ""});
  const auto id = Queue(Channel("email", "chef@cafe.example"), "k1");
  EXPECT_EQ(D().RunOnce(), 1);
  auto m = Message(id);
  EXPECT_EQ(m.state, "pending");
  EXPECT_EQ(m.next_attempt_at, kNow + 120'000);
  EXPECT_EQ(Attempts(id)[0].provider_code, 429);
  clock_.Set(kNow + 119'999);
  EXPECT_EQ(D().RunOnce(), 0);
  clock_.Set(kNow + 120'000);
  EXPECT_EQ(D().RunOnce(), 1);
  EXPECT_EQ(Message(id).state, "sent");
}

TEST_P(DispatcherTest, Postmark422InactiveRecipientStopsAndTellsTheOperator) {
  postmark_->SetDefault({422, {}, R"({"ErrorCode":406,"Message":"You tried to send to a recipient that has been marked as inactive."})"});
  const auto id = Queue(Channel("email", "gone@cafe.example"), "k1");
  EXPECT_EQ(D().RunOnce(), 1);
  auto m = Message(id);
  EXPECT_EQ(m.state, "failed");
  EXPECT_NE(m.last_error.find("inactive recipient"), std::string::npos) << m.last_error;
  EXPECT_NE(m.last_error.find("ErrorCode 406"), std::string::npos);
  clock_.Advance(kMsPerDay);
  EXPECT_EQ(D().RunOnce(), 0);
  EXPECT_EQ(postmark_->requests().size(), 1u);
  auto a = Attempts(id);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, "failed");
  EXPECT_EQ(a[0].provider_code, 422);
  ASSERT_EQ(operator_alerts_.raised.size(), 1u);
  EXPECT_EQ(operator_alerts_.raised[0].kind, "notification_failed");
  EXPECT_NE(operator_alerts_.raised[0].body.find("inactive recipient"), std::string::npos);
}

TEST_P(DispatcherTest, OtherClientErrorsArePermanentAnd408IsRetried) {
  postmark_->Push({408, {}, ""});
  postmark_->Push({400, {}, "not json"});
  const auto id = Queue(Channel("email", "chef@cafe.example"), "k1");
  D().RunOnce();
  EXPECT_EQ(Message(id).state, "pending");
  clock_.Advance(kMsPerHour);
  D().RunOnce();
  EXPECT_EQ(Message(id).state, "failed");
  EXPECT_EQ(Attempts(id).size(), 2u);
}

TEST_P(DispatcherTest, TelegramGetsTheExactRequestAndItsRetryAfterIsHonoured) {
  telegram_->Push({429, {}, R"({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}})"});
  const auto id = Queue(Channel("telegram", "-1001234567890"), "k1", "Fridge <2> & freezer",
                        "Temperature > 5 °C");
  EXPECT_EQ(D().RunOnce(), 1);
  EXPECT_EQ(Message(id).next_attempt_at, kNow + 7000);
  clock_.Set(kNow + 7000);
  EXPECT_EQ(D().RunOnce(), 1);
  EXPECT_EQ(Message(id).state, "sent");

  auto reqs = telegram_->requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].path, "/bot123456:ABC-test/sendMessage");
  EXPECT_EQ(reqs[0].Header("Content-Type"), "application/json");
  json body = json::parse(reqs[0].body);
  EXPECT_EQ(body["chat_id"], "-1001234567890");
  EXPECT_EQ(body["parse_mode"], "HTML");
  EXPECT_EQ(body["text"], "<b>Fridge &lt;2&gt; &amp; freezer</b>\n\nTemperature &gt; 5 °C");
  auto a = Attempts(id);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].status, "retry");
  EXPECT_EQ(a[0].provider_code, 429);
  EXPECT_NE(a[0].detail.find("retry_after 7"), std::string::npos);
  // The bot token never reaches the attempt log.
  for (const auto& x : a) EXPECT_EQ(x.detail.find("ABC-test"), std::string::npos);
}

TEST_P(DispatcherTest, TelegramBotBlockedIsPermanent) {
  telegram_->Push({403, {}, R"({"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"})"});
  const auto id = Queue(Channel("telegram", "12345"), "k1");
  D().RunOnce();
  auto m = Message(id);
  EXPECT_EQ(m.state, "failed");
  EXPECT_NE(m.last_error.find("bot was blocked"), std::string::npos);
}

TEST_P(DispatcherTest, AHangingProviderIsCutByTheTimeoutAndOthersAreStillDelivered) {
  postmark_->Push({200, {}, fakes::PostmarkOk().body, /*hang=*/true});
  const auto slow = Queue(Channel("email", "chef@cafe.example"), "k1");
  const auto fast = Queue(Channel("telegram", "12345"), "k2");
  EXPECT_EQ(D().RunOnce(), 2);
  auto m = Message(slow);
  EXPECT_EQ(m.state, "pending");
  auto a = Attempts(slow);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].status, "retry");
  EXPECT_FALSE(a[0].provider_code.has_value());
  EXPECT_NE(a[0].detail.find("no answer"), std::string::npos) << a[0].detail;
  EXPECT_EQ(Message(fast).state, "sent");
  postmark_->Release();
}

TEST_P(DispatcherTest, AnUnreachableProviderIsRetried) {
  options_.postmark_base_url = "http://127.0.0.1:1";
  const auto id = Queue(Channel("email", "chef@cafe.example"), "k1");
  D().RunOnce();
  EXPECT_EQ(Message(id).state, "pending");
  EXPECT_EQ(Attempts(id)[0].status, "retry");
}

TEST_P(DispatcherTest, TooManyAttemptsGiveUp) {
  options_.max_attempts = 2;
  postmark_->SetDefault({500, {}, ""});
  const auto id = Queue(Channel("email", "chef@cafe.example"), "k1");
  D().RunOnce();
  clock_.Advance(kMsPerHour);
  D().RunOnce();
  auto m = Message(id);
  EXPECT_EQ(m.state, "failed");
  EXPECT_NE(m.last_error.find("gave up after 2 attempts"), std::string::npos) << m.last_error;
  clock_.Advance(kMsPerDay);
  EXPECT_EQ(D().RunOnce(), 0);
  EXPECT_EQ(postmark_->requests().size(), 2u);
}

TEST_P(DispatcherTest, WebhooksAreSignedAndAReplayIsDetectable) {
  auto ch = Channel("webhook", hooks_->base_url() + "/hook/opensense");
  const auto id = Queue(ch, "alert-event:9:channel:3");
  EXPECT_EQ(D().RunOnce(), 1);
  EXPECT_EQ(Message(id).state, "sent");
  auto reqs = hooks_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  const auto& r = reqs[0];
  EXPECT_EQ(r.path, "/hook/opensense");
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.Header("Idempotency-Key"), "alert-event:9:channel:3");
  ASSERT_TRUE(r.Header("X-OpenSense-Timestamp"));
  ASSERT_TRUE(r.Header("X-OpenSense-Signature"));
  EXPECT_EQ(*r.Header("X-OpenSense-Timestamp"), std::to_string(kNow / 1000));
  json body = json::parse(r.body);
  EXPECT_EQ(body["subject"], "Walk-in fridge: 8.4 °C > 5 °C");
  EXPECT_EQ(body["idempotency_key"], "alert-event:9:channel:3");

  const std::string ts = *r.Header("X-OpenSense-Timestamp");
  const std::string sig = *r.Header("X-OpenSense-Signature");
  // A receiver with the channel's secret verifies it ...
  EXPECT_TRUE(webhook::Verify(ch.secret, ts, sig, r.body, kNow + 2000));
  // ... and detects a replay minutes later, a changed body, a changed timestamp, a wrong secret.
  auto late = webhook::Verify(ch.secret, ts, sig, r.body, kNow + 6 * kMsPerMinute);
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().message.find("replay"), std::string::npos);
  EXPECT_FALSE(webhook::Verify(ch.secret, ts, sig, r.body + " ", kNow));
  EXPECT_FALSE(webhook::Verify(ch.secret, std::to_string(kNow / 1000 + 1), sig, r.body, kNow));
  EXPECT_FALSE(webhook::Verify("whsec_other", ts, sig, r.body, kNow));
}

TEST_P(DispatcherTest, AWebhookRowWithoutPayloadGetsAJsonBody) {
  auto ch = Channel("webhook", hooks_->base_url() + "/hook");
  store::OutboxMessage m;
  m.org = org_;
  m.channel = ch.id;
  m.channel_kind = "webhook";
  m.subject = "Freezer: -12 °C > -18 °C";
  m.text_body = "since 10:02";
  m.idempotency_key = "alert-event:7:channel:1:";
  m.alert_id = 3;
  m.created_at = kNow;
  m.next_attempt_at = kNow;
  ASSERT_TRUE(store_->Notify().Enqueue(m));
  EXPECT_EQ(D().RunOnce(), 1);
  auto reqs = hooks_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  json body = json::parse(reqs[0].body);
  EXPECT_EQ(body["subject"], "Freezer: -12 °C > -18 °C");
  EXPECT_EQ(body["alert_id"], 3);
  EXPECT_TRUE(webhook::Verify(ch.secret, *reqs[0].Header("X-OpenSense-Timestamp"),
                              *reqs[0].Header("X-OpenSense-Signature"), reqs[0].body, kNow));
}

TEST_P(DispatcherTest, AWebhookRedirectIsNotFollowedAndIsPermanent) {
  hooks_->Push({302, {{"Location", "http://169.254.169.254/latest/meta-data"}}, ""});
  const auto id = Queue(Channel("webhook", hooks_->base_url() + "/hook"), "k1");
  D().RunOnce();
  EXPECT_EQ(Message(id).state, "failed");
  EXPECT_EQ(hooks_->requests().size(), 1u);
}

TEST_P(DispatcherTest, TheDevMailerLogsAndMarksSentWithoutAProvider) {
  options_.postmark_token.clear();
  const auto id = Queue(Channel("email", "chef@cafe.example"), "k1");
  EXPECT_EQ(D().RunOnce(), 1);
  EXPECT_EQ(Message(id).state, "sent");
  EXPECT_NE(Attempts(id)[0].detail.find("dev mailer"), std::string::npos);
  EXPECT_TRUE(postmark_->requests().empty());
}

TEST_P(DispatcherTest, ADeletedOrDisabledChannelCancelsItsMessages) {
  auto a = Channel("telegram", "12345");
  auto b = Channel("telegram", "67890");
  const auto ida = Queue(a, "k1");
  const auto idb = Queue(b, "k2");
  ASSERT_TRUE(store_->Notify().DeleteChannel(org_, a.id));
  ASSERT_TRUE(store_->Notify().UpdateChannel(org_, b.id, {std::nullopt, std::nullopt, false}));
  D().RunOnce();
  EXPECT_EQ(Message(ida).state, "cancelled");
  EXPECT_EQ(Message(ida).last_error, "the channel was deleted");
  EXPECT_EQ(Message(idb).state, "cancelled");
  EXPECT_TRUE(telegram_->requests().empty());
}

TEST_P(DispatcherTest, OperatorAlertsGoToTheOperatorChannelOnlyOncePerDay) {
  // An organisation's channels exist but must not hear about operator matters.
  Channel("email", "chef@cafe.example");
  Channel("webhook", hooks_->base_url() + "/hook/org");
  options_.operator_channel = {"ops@host.example", "-100999", hooks_->base_url() + "/hook/operator",
                               "whsec_operator"};
  OutboxOperatorAlerts alerts(&store_->Notify(), options_.operator_channel, &clock_);
  OperatorAlert alert{"backup_failed", OperatorSeverity::kCritical, "Backup failed",
                      "age exited with status 1", "backup_failed:hourly"};
  alerts.Raise(alert);
  alerts.Raise(alert);  // the same alert again: one notification
  clock_.Advance(kMsPerHour);
  alerts.Raise(alert);
  EXPECT_EQ(D().RunOnce(), 3);

  auto mail = postmark_->requests();
  ASSERT_EQ(mail.size(), 1u);
  EXPECT_EQ(json::parse(mail[0].body)["To"], "ops@host.example");
  EXPECT_EQ(json::parse(mail[0].body)["Subject"], "[OpenSense critical] Backup failed");
  auto tg = telegram_->requests();
  ASSERT_EQ(tg.size(), 1u);
  EXPECT_EQ(json::parse(tg[0].body)["chat_id"], "-100999");
  auto hooks = hooks_->requests();
  ASSERT_EQ(hooks.size(), 1u);
  EXPECT_EQ(hooks[0].path, "/hook/operator");
  EXPECT_TRUE(webhook::Verify("whsec_operator", *hooks[0].Header("X-OpenSense-Timestamp"),
                              *hooks[0].Header("X-OpenSense-Signature"), hooks[0].body, clock_.NowMs()));
  EXPECT_EQ(json::parse(hooks[0].body)["alert_kind"], "backup_failed");
  // The organisation's outbox view holds none of it.
  EXPECT_TRUE(store_->Notify().RecentMessages(org_, 10)->empty());

  // A different error is news: it goes out at once; the next day the same one goes out again.
  alert.body = "disk full";
  alerts.Raise(alert);
  clock_.Advance(kMsPerDay);
  alert.body = "age exited with status 1";
  alerts.Raise(alert);
  D().RunOnce();
  EXPECT_EQ(postmark_->requests().size(), 3u);
}

TEST_P(DispatcherTest, AFailedOperatorMessageDoesNotRaiseAnotherOperatorAlert) {
  options_.operator_channel.email = "ops@host.example";
  postmark_->SetDefault({422, {}, R"({"ErrorCode":300,"Message":"Invalid email request"})"});
  OutboxOperatorAlerts alerts(&store_->Notify(), options_.operator_channel, &clock_);
  alerts.Raise({"disk_low", OperatorSeverity::kWarning, "Disk low", "5% free", "disk_low"});
  D().RunOnce();
  EXPECT_TRUE(operator_alerts_.raised.empty());
}

TEST_P(DispatcherTest, TheMailQueueGoesThroughTheOutbox) {
  OutboxMailQueue queue(&store_->Notify(), &clock_);
  EXPECT_TRUE(queue.Enqueue({org_, "magic_link", "chef@cafe.example", "Your sign-in link",
                             "https://opensense.example/login/abc", "", "magic:1"}));
  EXPECT_TRUE(queue.Enqueue({org_, "magic_link", "chef@cafe.example", "Your sign-in link",
                             "https://opensense.example/login/abc", "", "magic:1"}));  // same key
  auto bad = queue.Enqueue({org_, "magic_link", "not an address", "s", "t", "", ""});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(D().RunOnce(), 1);
  ASSERT_EQ(postmark_->requests().size(), 1u);
  EXPECT_EQ(json::parse(postmark_->requests()[0].body)["Subject"], "Your sign-in link");
}

TEST_P(DispatcherTest, AttemptsOlderThanNinetyDaysArePrunedAndGaugesShowTheOutbox) {
  postmark_->SetDefault({500, {}, ""});
  const auto id = Queue(Channel("email", "chef@cafe.example"), "k1");
  D().RunOnce();
  D().RefreshGauges();
  std::string text = metrics_.RenderPrometheus();
  EXPECT_NE(text.find("opensense_notification_outbox_pending 1"), std::string::npos) << text;
  clock_.Advance(90 * kMsPerDay + 1);
  D().RefreshGauges();
  text = metrics_.RenderPrometheus();
  EXPECT_NE(text.find("opensense_notification_outbox_oldest_pending_age_seconds 7776000"),
            std::string::npos) << text;
  ASSERT_TRUE(D().Prune());
  EXPECT_TRUE(Attempts(id).empty());
}

TEST_P(DispatcherTest, TheThreadDeliversWhatIsQueuedAndStops) {
  options_.clock = nullptr;  // the real clock: the thread waits for real
  options_.poll_ms = 50;
  const auto id = Queue(Channel("telegram", "12345"), "k1");
  D().Start();
  D().Wake();
  for (int i = 0; i < 400 && Message(id).state != "sent"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  D().Stop();
  EXPECT_EQ(Message(id).state, "sent");
}

INSTANTIATE_TEST_SUITE_P(Backends, DispatcherTest, ::testing::ValuesIn(store::Backends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace opensense::notify
