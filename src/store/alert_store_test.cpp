// AlertStore on every backend: rules and states scoped to their organisation, alert + event +
// outbox rows in one transaction (all or nothing), events append-only; and the writer's commit
// listener gets exactly the readings a commit stored.
#include "store/alert_store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>

#include "store/store.hpp"
#include "store/test_util.hpp"

namespace opensense::store {
namespace {

constexpr TimestampMs kNow = 1768478400000;

class AlertStoreTest : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<ScratchDir>("alert-store");
    StoreOptions o = GetParam().options(dir_->path());
    o.clock = &clock_;
    auto s = OpenStore(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    a_ = store_->CreateOrganization({"A", "UTC", Tier::kTeam})->id;
    b_ = store_->CreateOrganization({"B", "UTC", Tier::kTeam})->id;
    dev_ = store_->CreateDevice({a_, "fridge", std::nullopt, std::nullopt})->id;
  }
  AlertRecord Alert(OrgId org, std::int64_t rule) {
    AlertRecord a;
    a.org = org;
    a.rule_id = rule;
    a.rule_name = "warm";
    a.device = dev_;
    a.kind = "threshold";
    a.metric = "temperature";
    a.severity = "critical";
    a.state = "firing";
    a.started_at = kNow - 60'000;
    a.fired_at = kNow;
    a.raised_at = kNow;
    a.trigger_value = 9.5;
    a.peak_value = 9.5;
    a.peak_at = kNow;
    return a;
  }
  std::unique_ptr<ScratchDir> dir_;
  ManualClock clock_{kNow};
  std::unique_ptr<Store> store_;
  OrgId a_ = 0, b_ = 0;
  DeviceId dev_ = 0;
};

TEST_P(AlertStoreTest, RulesAreScopedToTheirOrganisation) {
  AlertStore& s = store_->Alerts();
  auto rule = s.CreateRule(a_, "warm", R"({"name":"warm","above":8})", kNow);
  ASSERT_TRUE(rule) << rule.error().message;
  EXPECT_EQ(s.ListRules(a_)->size(), 1u);
  EXPECT_TRUE(s.ListRules(b_)->empty());
  EXPECT_EQ(s.GetRule(b_, rule->id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(s.UpdateRule(b_, rule->id, "x", "{}", kNow).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(s.DeleteRule(b_, rule->id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(s.GetRule(a_, rule->id)->definition, R"({"name":"warm","above":8})");
  auto updated = s.UpdateRule(a_, rule->id, "warmer", R"({"name":"warmer","above":9})", kNow + 1);
  ASSERT_TRUE(updated);
  EXPECT_EQ(updated->name, "warmer");
  EXPECT_EQ(updated->updated_at, kNow + 1);
  EXPECT_EQ(*s.OrganizationsWithRules(), std::vector<OrgId>{a_});
  EXPECT_EQ(s.CreateRule(999999, "x", "{}", kNow).error().code, ErrorCode::kNotFound);
  // A rule state of another organisation's rule is not written.
  ASSERT_TRUE(s.Transact(b_, [&](AlertTxn& t) { return t.PutRuleState({rule->id, dev_, "{\"phase\":\"firing\"}", kNow}); }));
  EXPECT_TRUE(s.ListRuleStates(b_)->empty());
  EXPECT_TRUE(s.ListRuleStates(a_)->empty());
  ASSERT_TRUE(s.Transact(a_, [&](AlertTxn& t) { return t.PutRuleState({rule->id, dev_, "{\"phase\":\"pending\"}", kNow}); }));
  ASSERT_TRUE(s.Transact(a_, [&](AlertTxn& t) { return t.PutRuleState({rule->id, dev_, "{\"phase\":\"firing\"}", kNow}); }));
  auto states = s.ListRuleStates(a_);
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ(states->front().state, "{\"phase\":\"firing\"}");
  ASSERT_TRUE(s.DeleteRule(a_, rule->id));
  EXPECT_TRUE(s.ListRuleStates(a_)->empty());
  EXPECT_TRUE(s.ListRules(a_)->empty());
}

TEST_P(AlertStoreTest, AlertEventAndOutboxCommitTogetherOrNotAtAll) {
  AlertStore& s = store_->Alerts();
  auto rule = s.CreateRule(a_, "warm", "{}", kNow);
  std::int64_t alert_id = 0;
  auto st = s.Transact(a_, [&](AlertTxn& t) -> Status {
    OS_ASSIGN_OR_RETURN(alert_id, t.InsertAlert(Alert(a_, rule->id)));
    AlertEventRecord e{0, a_, alert_id, dev_, "fired", kNow, "engine", "", "{}"};
    OS_ASSIGN_OR_RETURN(auto event_id, t.AppendEvent(e));
    OutboxMessage m;
    m.org = a_;
    m.channel_kind = "email";
    m.recipient = "chef@example.com";
    m.subject = "warm";
    m.idempotency_key = "alert-event:" + std::to_string(event_id) + ":channel:none:chef@example.com";
    m.alert_id = alert_id;
    m.event_id = event_id;
    m.created_at = m.next_attempt_at = kNow;
    OS_RETURN_IF_ERROR(t.InsertOutbox(m));
    return t.InsertOutbox(m);  // the same key twice: a no-op
  });
  ASSERT_TRUE(st) << st.error().message;
  auto alert = s.GetAlert(a_, alert_id);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->peak_value, 9.5);
  EXPECT_EQ(s.GetAlert(b_, alert_id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(s.ListEvents(a_, alert_id)->size(), 1u);
  EXPECT_TRUE(s.ListEvents(b_, alert_id)->empty());

  // A failure half-way rolls everything back.
  auto failed = s.Transact(a_, [&](AlertTxn& t) -> Status {
    OS_RETURN_IF_ERROR(t.InsertAlert(Alert(a_, rule->id)));
    return MakeError(ErrorCode::kInternal, "boom");
  });
  EXPECT_FALSE(failed);
  EXPECT_EQ(s.ListAlerts(a_, {})->size(), 1u);
  // Writes for another organisation inside a transaction are refused.
  EXPECT_FALSE(s.Transact(a_, [&](AlertTxn& t) { return t.InsertAlert(Alert(b_, rule->id)).map([](auto) {}); }));
  EXPECT_FALSE(s.Transact(b_, [&](AlertTxn& t) {
    auto a = Alert(b_, rule->id);
    a.id = alert_id;
    return t.UpdateAlert(a);
  }));
  EXPECT_EQ(s.GetAlert(a_, alert_id)->org, a_);

  // Filters.
  AlertFilter f;
  f.state = "open";
  EXPECT_EQ(s.ListAlerts(a_, f)->size(), 1u);
  f.state = "resolved";
  EXPECT_TRUE(s.ListAlerts(a_, f)->empty());
  f = {};
  f.device = dev_ + 1;
  EXPECT_TRUE(s.ListAlerts(a_, f)->empty());
  f = {};
  f.from = kNow + 1;
  EXPECT_TRUE(s.ListAlerts(a_, f)->empty());
}

TEST_P(AlertStoreTest, CommitListenerGetsExactlyTheStoredReadings) {
  std::mutex mu;
  std::vector<CommittedReadings> got;
  store_->AddCommitListener([&](std::vector<CommittedReadings>&& batches) {
    std::lock_guard lock(mu);
    for (auto& b : batches) got.push_back(std::move(b));
  });
  std::vector<Reading> batch = {{dev_, "temperature", "Cel", kNow - 2000, 4.5},
                                {dev_, "temperature", "Cel", kNow - 1000, 5.5},
                                {dev_ + 1000, "temperature", "Cel", kNow, 1},   // unknown device
                                {dev_, "temperature", "Cel", kNow - 2000, 4.5}};  // duplicate
  auto r = store_->Ingest(a_, batch).get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->accepted, 2u);
  auto again = store_->Ingest(a_, {batch[0]}).get();  // only a duplicate: nothing to hand over
  ASSERT_TRUE(again);
  store_->Close();
  std::lock_guard lock(mu);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].org, a_);
  ASSERT_EQ(got[0].readings.size(), 2u);
  EXPECT_EQ(got[0].readings[0].ts, kNow - 2000);
  EXPECT_EQ(got[0].readings[1].value, 5.5);
}

TEST_P(AlertStoreTest, CommitListenerFilterSkipsUnwantedOrganisations) {
  const DeviceId dev_b = store_->CreateDevice({b_, "freezer", std::nullopt, std::nullopt})->id;
  std::mutex mu;
  std::vector<CommittedReadings> got;
  std::vector<OrgId> asked;
  store_->AddCommitListener(
      [&](std::vector<CommittedReadings>&& batches) {
        std::lock_guard lock(mu);
        for (auto& b : batches) got.push_back(std::move(b));
      },
      [&](OrgId org) {
        std::lock_guard lock(mu);
        asked.push_back(org);
        return org == b_;
      });
  auto ra = store_->Ingest(a_, {{dev_, "temperature", "Cel", kNow - 1000, 4.5}});
  auto rb = store_->Ingest(b_, {{dev_b, "temperature", "Cel", kNow - 1000, -18.5},
                                {dev_b, "temperature", "Cel", kNow, -18.0}});
  ASSERT_TRUE(ra.get());
  ASSERT_TRUE(rb.get());
  store_->Close();
  std::lock_guard lock(mu);
  EXPECT_NE(std::find(asked.begin(), asked.end(), a_), asked.end());  // asked, refused
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].org, b_);
  ASSERT_EQ(got[0].readings.size(), 2u);
  EXPECT_EQ(got[0].readings[1].value, -18.0);
}

// Two listeners (the alert evaluator and the dashboard's live updates) each get every commit of
// the organisations they want; a removed one gets nothing more.
TEST_P(AlertStoreTest, SeveralCommitListenersEachGetTheirOrganisations) {
  const DeviceId dev_b = store_->CreateDevice({b_, "freezer", std::nullopt, std::nullopt})->id;
  std::mutex mu;
  std::vector<CommittedReadings> all, only_b, removed;
  auto id_all = store_->AddCommitListener([&](std::vector<CommittedReadings>&& batches) {
    std::lock_guard lock(mu);
    for (auto& b : batches) all.push_back(std::move(b));
  });
  store_->AddCommitListener(
      [&](std::vector<CommittedReadings>&& batches) {
        std::lock_guard lock(mu);
        for (auto& b : batches) only_b.push_back(std::move(b));
      },
      [&](OrgId org) { return org == b_; });
  auto id_removed = store_->AddCommitListener([&](std::vector<CommittedReadings>&& batches) {
    std::lock_guard lock(mu);
    for (auto& b : batches) removed.push_back(std::move(b));
  });
  EXPECT_NE(id_all, id_removed);
  store_->RemoveCommitListener(id_removed);
  ASSERT_TRUE(store_->Ingest(a_, {{dev_, "temperature", "Cel", kNow - 1000, 4.5}}).get());
  ASSERT_TRUE(store_->Ingest(b_, {{dev_b, "temperature", "Cel", kNow - 1000, -18.5}}).get());
  store_->Close();
  std::lock_guard lock(mu);
  std::size_t readings_all = 0;
  for (const auto& b : all) readings_all += b.readings.size();
  EXPECT_EQ(readings_all, 2u);
  ASSERT_EQ(only_b.size(), 1u);
  EXPECT_EQ(only_b[0].org, b_);
  EXPECT_EQ(only_b[0].readings[0].value, -18.5);
  EXPECT_TRUE(removed.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, AlertStoreTest, testing::ValuesIn(Backends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace opensense::store
