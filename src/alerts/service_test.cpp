// The alert service against the real store (every backend): readings committed by the writer
// raise alerts with their events and outbox rows in one transaction; rule state survives a
// restart (a pending delay goes on, a firing alert does not fire again); acknowledge/resolve;
// a queue overflow falls back to the stored readings; organisations stay apart.
#include "alerts/service.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "store/test_util.hpp"

namespace opensense::alerts {
namespace {

constexpr TimestampMs kStart = 1767571200000;  // 2026-01-05T00:00:00Z

class AlertServiceTest : public testing::TestWithParam<store::Backend> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<store::ScratchDir>("alert-service");
    options_ = GetParam().options(dir_->path());
    options_.clock = &clock_;
    Open();
    org_ = store_->CreateOrganization({"A", "UTC", Tier::kTeam})->id;
    other_ = store_->CreateOrganization({"B", "UTC", Tier::kTeam})->id;
    site_ = store_->CreateSite(org_, "Kitchen")->id;
    dev_ = store_->CreateDevice({org_, "Walk-in", site_, std::nullopt})->id;
    other_dev_ = store_->CreateDevice({other_, "Theirs", std::nullopt, std::nullopt})->id;
    StartService();
  }
  void TearDown() override {
    if (service_) service_->Stop();
  }
  void Open() {
    auto s = store::OpenStore(options_);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }
  void StartService(std::size_t max_queue = 1'000'000) {
    AlertServiceOptions o;
    o.clock = &clock_;
    o.evaluator_thread = false;
    o.public_url = "https://opensense.example.com";
    o.max_queued_readings = max_queue;
    service_ = std::make_unique<AlertService>(store_.get(), o);
    ASSERT_TRUE(service_->Start());
  }
  void Restart() {
    service_->Stop();
    service_.reset();
    store_->Close();
    store_.reset();
    Open();
    StartService();
  }
  // Minutely readings [from, to] minutes after kStart, each committed as it "arrives".
  void Feed(OrgId org, DeviceId dev, int from, int to, double value) {
    for (int m = from; m <= to; ++m) {
      clock_.Set(kStart + m * kMsPerMinute);
      auto r = store_->Ingest(org, {{dev, "temperature", "Cel", kStart + m * kMsPerMinute, value}}).get();
      ASSERT_TRUE(r);
      ASSERT_EQ(r->accepted, 1u);
      service_->Drain();
    }
  }
  // A notification channel of `org`; its id.
  std::int64_t Channel(OrgId org, const std::string& kind, const std::string& target) {
    store::NotificationChannel c;
    c.org = org;
    c.kind = kind;
    c.name = kind;
    c.target = target;
    auto created = store_->Notify().CreateChannel(c);
    EXPECT_TRUE(created) << created.error().message;
    return created ? created->id : 0;
  }
  std::vector<store::AlertRecord> Alerts(OrgId org, std::optional<std::string> state = {}) {
    store::AlertFilter f;
    f.state = state;
    return *store_->Alerts().ListAlerts(org, f);
  }
  std::unique_ptr<store::ScratchDir> dir_;
  store::StoreOptions options_;
  ManualClock clock_{kStart};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<AlertService> service_;
  OrgId org_ = 0, other_ = 0;
  SiteId site_ = 0;
  DeviceId dev_ = 0, other_dev_ = 0;
};

TEST_P(AlertServiceTest, CommittedReadingsRaiseAnAlertWithEventAndMessage) {
  const std::int64_t telegram = Channel(org_, "telegram", "-100");
  auto rule = service_->CreateRule(org_, R"({"name": "Walk-in too warm", "site": )" + std::to_string(site_) +
                                             R"(, "above": 8, "delay_minutes": 10, "severity": "critical",
                                             "notify": [{"email": "chef@example.com"}, {"channel": )" +
                                             std::to_string(telegram) + R"(, "kind": "telegram", "to": "-100"}]})");
  ASSERT_TRUE(rule) << rule.error().message;
  Feed(org_, dev_, 0, 4, 4.0);
  Feed(org_, dev_, 5, 20, 9.5);
  auto open = Alerts(org_, "firing");
  ASSERT_EQ(open.size(), 1u);
  const auto& a = open[0];
  EXPECT_EQ(a.severity, "critical");
  EXPECT_EQ(a.started_at, kStart + 5 * kMsPerMinute);
  EXPECT_EQ(a.fired_at, kStart + 15 * kMsPerMinute);
  EXPECT_FALSE(a.late);
  auto events = *store_->Alerts().ListEvents(org_, a.id);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, "fired");
  // The message says what, where, how bad, since when, and links to the alert.
  auto msg = ComposeMessage("fired", a, "Walk-in", "Kitchen", rule->rule, TimeZone::Utc(),
                            "https://opensense.example.com/alerts/" + std::to_string(a.id));
  EXPECT_NE(msg.subject.find("[CRITICAL] Walk-in (Kitchen): Walk-in too warm"), std::string::npos) << msg.subject;
  EXPECT_NE(msg.text.find("temperature 9.5 °C, above 8 °C"), std::string::npos) << msg.text;
  EXPECT_NE(msg.text.find("Since: 2026-01-05 00:05"), std::string::npos) << msg.text;
  EXPECT_NE(msg.text.find("https://opensense.example.com/alerts/"), std::string::npos);

  Feed(org_, dev_, 21, 22, 4.0);
  auto resolved = Alerts(org_, "resolved");
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0].resolved_by, "auto");
  EXPECT_FALSE(resolved[0].acknowledged_at) << "resolved without acknowledgement stays marked so";
  EXPECT_EQ(resolved[0].out_of_range_ms, 16 * kMsPerMinute);
  EXPECT_EQ(store_->Alerts().ListEvents(org_, a.id)->size(), 2u);
  // The other organisation sees nothing.
  EXPECT_TRUE(Alerts(other_).empty());
  EXPECT_EQ(store_->Alerts().GetAlert(other_, a.id).error().code, ErrorCode::kNotFound);
}

TEST_P(AlertServiceTest, RestartKeepsPendingDelayAndDoesNotRefire) {
  ASSERT_TRUE(service_->CreateRule(org_, R"({"name": "warm", "above": 8, "delay_minutes": 10})"));
  Feed(org_, dev_, 0, 6, 9.0);  // pending since minute 0
  Restart();
  Feed(org_, dev_, 7, 10, 9.0);  // the delay started before the restart runs out at minute 10
  auto open = Alerts(org_, "firing");
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].fired_at, kStart + 10 * kMsPerMinute);
  Restart();
  Feed(org_, dev_, 11, 30, 9.5);
  EXPECT_EQ(Alerts(org_).size(), 1u) << "a firing alert must not fire again after a restart";
  EXPECT_EQ(Alerts(org_, "firing")[0].peak_value, 9.5);
}

TEST_P(AlertServiceTest, AcknowledgeNeedsTheNoteTheRuleRequiresAndResolveIsRecorded) {
  ASSERT_TRUE(service_->CreateRule(org_, R"({"name": "warm", "above": 8, "require_note": true,
      "escalation": [{"after_minutes": 30, "notify": [{"email": "owner@example.com"}]}]})"));
  Feed(org_, dev_, 0, 1, 9.0);
  auto open = Alerts(org_, "firing");
  ASSERT_EQ(open.size(), 1u);
  const AlertId id = open[0].id;
  EXPECT_EQ(service_->Acknowledge(org_, id, "user:1", " ").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_->Acknowledge(other_, id, "user:9", "x").error().code, ErrorCode::kNotFound);
  auto acked = service_->Acknowledge(org_, id, "user:1", "moved stock to the spare fridge");
  ASSERT_TRUE(acked) << acked.error().message;
  EXPECT_EQ(acked->state, "acknowledged");
  EXPECT_EQ(service_->Acknowledge(org_, id, "user:2", "again").error().code, ErrorCode::kConflict);
  // Acknowledged: no escalation.
  service_->Tick(kStart + 45 * kMsPerMinute);
  EXPECT_EQ(store_->Alerts().GetAlert(org_, id)->escalation_level, 0);
  EXPECT_EQ(service_->Resolve(org_, id, "user:1", "").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_->Resolve(other_, id, "user:9", "mine").error().code, ErrorCode::kNotFound);
  auto resolved = service_->Resolve(org_, id, "user:1", "compressor replaced");
  ASSERT_TRUE(resolved);
  EXPECT_EQ(resolved->resolved_by, "user:1");
  auto events = *store_->Alerts().ListEvents(org_, id);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1].kind, "acknowledged");
  EXPECT_EQ(events[1].note, "moved stock to the spare fridge");
  EXPECT_EQ(events[2].kind, "resolved");
  EXPECT_EQ(service_->Resolve(org_, id, "user:1", "twice").error().code, ErrorCode::kFailedPrecondition);
}

TEST_P(AlertServiceTest, EscalatesUnacknowledgedAndDetectsOffline) {
  ASSERT_TRUE(service_->CreateRule(org_, R"({"name": "warm", "above": 8,
      "escalation": [{"after_minutes": 30, "notify": [{"email": "owner@example.com"}]}]})"));
  ASSERT_TRUE(service_->CreateRule(org_, R"({"name": "silent", "kind": "offline", "offline_after_minutes": 20})"));
  Feed(org_, dev_, 0, 0, 9.0);
  for (int m = 1; m <= 40; ++m) service_->Tick(kStart + m * kMsPerMinute);
  auto alerts = Alerts(org_, "firing");
  ASSERT_EQ(alerts.size(), 2u);
  for (const auto& a : alerts) {
    if (a.kind == "threshold") {
      EXPECT_EQ(a.escalation_level, 1);
    } else {
      EXPECT_EQ(a.fired_at, kStart + 20 * kMsPerMinute);
    }
  }
  // A device never seen is not offline.
  store_->CreateDevice({org_, "New", std::nullopt, std::nullopt});
  service_->Tick(kStart + 41 * kMsPerMinute);
  EXPECT_EQ(Alerts(org_, "firing").size(), 2u);
}

TEST_P(AlertServiceTest, QueueOverflowFallsBackToStoredReadings) {
  service_->Stop();
  StartService(/*max_queue=*/2);
  ASSERT_TRUE(service_->CreateRule(org_, R"({"name": "warm", "above": 8, "delay_minutes": 5})"));
  std::vector<Reading> batch;
  for (int m = 0; m <= 10; ++m) batch.push_back({dev_, "temperature", "Cel", kStart + m * kMsPerMinute, 9.0});
  clock_.Set(kStart + 10 * kMsPerMinute);
  ASSERT_TRUE(store_->Ingest(org_, batch).get());  // 11 readings > 2: dropped from the queue
  service_->Drain();
  auto open = Alerts(org_, "firing");
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].fired_at, kStart + 5 * kMsPerMinute);
}

TEST_P(AlertServiceTest, RulesAreValidatedAndScoped) {
  EXPECT_EQ(service_->CreateRule(org_, R"({"name": "x"})").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_->CreateRule(org_, R"({"name": "x", "above": 8, "device": )" + std::to_string(other_dev_) + "}")
                .error().code,
            ErrorCode::kNotFound);
  auto rule = service_->CreateRule(org_, R"({"name": "x", "above": 8})");
  ASSERT_TRUE(rule);
  EXPECT_EQ(service_->GetRule(other_, rule->rule.id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(service_->UpdateRule(other_, rule->rule.id, R"({"above": 9})").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(service_->DeleteRule(other_, rule->rule.id).error().code, ErrorCode::kNotFound);
  auto patched = service_->UpdateRule(org_, rule->rule.id, R"({"above": 9, "severity": "critical"})");
  ASSERT_TRUE(patched) << patched.error().message;
  EXPECT_EQ(patched->rule.above, 9.0);
  EXPECT_EQ(service_->UpdateRule(org_, rule->rule.id, R"({"above": "hot"})").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_->GetRule(org_, rule->rule.id)->rule.above, 9.0);
  Feed(org_, dev_, 0, 0, 10.0);
  ASSERT_EQ(Alerts(org_, "firing").size(), 1u);
  ASSERT_TRUE(service_->DeleteRule(org_, rule->rule.id));
  EXPECT_EQ(Alerts(org_, "resolved").size(), 1u) << "a deleted rule's open alert is resolved, the record stays";
}

TEST_P(AlertServiceTest, RuleNamingAChannelTheOrganisationDoesNotHaveIsRefused) {
  const std::int64_t ours = Channel(org_, "email", "chef@example.com");
  const std::int64_t theirs = Channel(other_, "email", "them@example.com");
  auto notify = [](std::int64_t channel, const char* kind) {
    return fmt::format(R"({{"channel": {}, "kind": "{}", "to": "chef@example.com"}})", channel, kind);
  };
  // Create: a channel that does not exist, another organisation's, one of another kind; also in
  // an escalation step.
  for (const auto& [body, field] : std::vector<std::pair<std::string, std::string>>{
           {fmt::format(R"({{"name": "x", "above": 8, "notify": [{}]}})", notify(ours + theirs + 100, "email")),
            "notify[0].channel"},
           {fmt::format(R"({{"name": "x", "above": 8, "notify": [{}]}})", notify(theirs, "email")), "notify[0].channel"},
           {fmt::format(R"({{"name": "x", "above": 8, "notify": [{}]}})", notify(ours, "telegram")), "notify[0].kind"},
           {fmt::format(R"({{"name": "x", "above": 8, "escalation": [{{"after_minutes": 30, "notify": [{{"email": "a@b.c"}}, {}]}}]}})",
                        notify(theirs, "email")),
            "escalation[0].notify[1].channel"}}) {
    auto r = service_->CreateRule(org_, body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << body;
    EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
  }
  EXPECT_TRUE(service_->ListRules(org_)->empty()) << "nothing refused was stored";
  // The organisation's own channel is fine; an update naming another's is refused and changes
  // nothing.
  auto rule = service_->CreateRule(org_, fmt::format(R"({{"name": "x", "above": 8, "notify": [{}]}})", notify(ours, "email")));
  ASSERT_TRUE(rule) << rule.error().message;
  auto patched = service_->UpdateRule(org_, rule->rule.id,
                                      fmt::format(R"({{"above": 9, "notify": [{}]}})", notify(theirs, "email")));
  ASSERT_FALSE(patched);
  EXPECT_EQ(patched.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(patched.error().message.find("no notification channel " + std::to_string(theirs)), std::string::npos)
      << patched.error().message;
  EXPECT_EQ(service_->GetRule(org_, rule->rule.id)->rule.above, 8.0);
  EXPECT_EQ(service_->GetRule(org_, rule->rule.id)->rule.notify[0].channel, ours);
}

INSTANTIATE_TEST_SUITE_P(Backends, AlertServiceTest, testing::ValuesIn(store::Backends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace opensense::alerts
