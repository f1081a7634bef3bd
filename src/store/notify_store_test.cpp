// NotifyStore conformance: channels scoped to their organisation, the outbox's idempotency key,
// claiming (a claimed row is not claimed again until its lease ends), attempts and pruning.
// Runs against every backend (SQLite; PostgreSQL under the CTest fixture).
#include <gtest/gtest.h>

#include "store/notify_store.hpp"
#include "store/store.hpp"
#include "store/test_util.hpp"

namespace opensense::store {
namespace {

constexpr TimestampMs kNow = 1768478400000;  // 2026-01-15T12:00:00Z

class NotifyStoreTest : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<ScratchDir>("notify-store");
    StoreOptions o = GetParam().options(dir_->path());
    o.clock = &clock_;
    o.writer = false;
    auto s = OpenStore(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    org_a_ = store_->CreateOrganization({"A", "UTC", Tier::kFree})->id;
    org_b_ = store_->CreateOrganization({"B", "UTC", Tier::kFree})->id;
  }
  void TearDown() override {
    if (store_) store_->Close();
  }
  NotifyStore& N() { return store_->Notify(); }
  OutboxMessage Msg(std::string key, std::optional<OrgId> org, TimestampMs due) {
    OutboxMessage m;
    m.org = org;
    m.channel_kind = "email";
    m.recipient = "ops@example.com";
    m.subject = "Fridge 1 is too warm";
    m.text_body = "8.2 °C since 10:02";
    m.idempotency_key = std::move(key);
    m.created_at = kNow;
    m.next_attempt_at = due;
    return m;
  }

  std::unique_ptr<ScratchDir> dir_;
  ManualClock clock_{kNow};
  std::unique_ptr<Store> store_;
  OrgId org_a_ = 0;
  OrgId org_b_ = 0;
};

TEST_P(NotifyStoreTest, ChannelsAreScopedToTheirOrganisation) {
  NotificationChannel c;
  c.org = org_a_;
  c.kind = "webhook";
  c.name = "ops hook";
  c.target = "https://hooks.example.com/x";
  c.secret = "s3cret";
  c.created_at = kNow;
  auto created = N().CreateChannel(c);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_GT(created->id, 0);

  auto got = N().GetChannel(org_a_, created->id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->target, c.target);
  EXPECT_EQ(got->secret, "s3cret");
  EXPECT_TRUE(got->enabled);

  // Another organisation sees nothing and changes nothing.
  EXPECT_EQ(N().GetChannel(org_b_, created->id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(N().UpdateChannel(org_b_, created->id, {std::string("x"), {}, false}).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(N().DeleteChannel(org_b_, created->id).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(N().ListChannels(org_b_)->empty());
  got = N().GetChannel(org_a_, created->id);
  EXPECT_EQ(got->name, "ops hook");
  EXPECT_TRUE(got->enabled);

  auto updated = N().UpdateChannel(org_a_, created->id, {std::string("renamed"), {}, false});
  ASSERT_TRUE(updated) << updated.error().message;
  EXPECT_EQ(updated->name, "renamed");
  EXPECT_EQ(updated->target, c.target);
  EXPECT_FALSE(updated->enabled);
  ASSERT_EQ(N().ListChannels(org_a_)->size(), 1u);

  EXPECT_TRUE(N().DeleteChannel(org_a_, created->id));
  EXPECT_EQ(N().GetChannel(org_a_, created->id).error().code, ErrorCode::kNotFound);

  c.org = 987654;
  EXPECT_EQ(N().CreateChannel(c).error().code, ErrorCode::kNotFound);
}

TEST_P(NotifyStoreTest, TheIdempotencyKeyMakesASecondInsertANoOp) {
  auto first = N().Enqueue(Msg("alert-event:1:channel:1:ops@example.com", org_a_, kNow));
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(first->has_value());
  auto second = N().Enqueue(Msg("alert-event:1:channel:1:ops@example.com", org_a_, kNow));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(second->has_value());
  EXPECT_EQ(N().Depth()->pending, 1);
}

TEST_P(NotifyStoreTest, AClaimedMessageIsNotClaimedAgainUntilItsLeaseEnds) {
  auto id = **N().Enqueue(Msg("k1", org_a_, kNow));
  ASSERT_TRUE(N().Enqueue(Msg("k2", std::nullopt, kNow + 60'000)));  // not due yet

  auto claimed = N().ClaimDue(kNow, 10, kNow + 30'000);
  ASSERT_TRUE(claimed) << claimed.error().message;
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].id, id);
  EXPECT_EQ((*claimed)[0].attempts, 1);
  EXPECT_EQ((*claimed)[0].org, org_a_);
  EXPECT_EQ((*claimed)[0].subject, "Fridge 1 is too warm");
  // Still leased: nothing due.
  EXPECT_TRUE(N().ClaimDue(kNow + 29'999, 10, kNow + 90'000)->empty());
  // The lease ended (the process died mid-send): the message is claimed again.
  auto again = N().ClaimDue(kNow + 30'000, 10, kNow + 120'000);
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].id, id);
  EXPECT_EQ((*again)[0].attempts, 2);
}

TEST_P(NotifyStoreTest, AttemptsAreRecordedWithTheStateAndPruned) {
  auto id = **N().Enqueue(Msg("k1", org_a_, kNow));
  auto other = **N().Enqueue(Msg("k-b", org_b_, kNow));
  ASSERT_EQ(N().ClaimDue(kNow, 10, kNow + 30'000)->size(), 2u);

  NotificationAttempt a;
  a.outbox_id = id;
  a.org = org_a_;
  a.at = kNow;
  a.channel_kind = "email";
  a.recipient = "ops@example.com";
  a.status = "retry";
  a.provider_code = 500;
  a.latency_ms = 12;
  a.detail = "HTTP 500";
  ASSERT_TRUE(N().RecordAttempt(a, {"pending", kNow + 60'000, "HTTP 500", std::nullopt}));
  a.at = kNow + 60'000;
  a.status = "sent";
  a.provider_code = 200;
  ASSERT_TRUE(N().RecordAttempt(a, {"sent", kNow + 60'000, "", kNow + 60'000}));
  NotificationAttempt b = a;
  b.outbox_id = other;
  b.org = org_b_;
  b.at = kNow;
  b.status = "failed";
  b.provider_code = std::nullopt;
  ASSERT_TRUE(N().RecordAttempt(b, {"failed", kNow, "no answer", kNow}));

  auto m = N().GetMessage(id);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->state, "sent");
  EXPECT_EQ(m->done_at, kNow + 60'000);
  auto attempts = N().AttemptsOf(id);
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].status, "retry");
  EXPECT_EQ((*attempts)[0].provider_code, 500);
  EXPECT_EQ((*attempts)[1].status, "sent");
  EXPECT_EQ(N().GetMessage(other)->last_error, "no answer");
  EXPECT_FALSE((*N().AttemptsOf(other))[0].provider_code.has_value());

  // The dashboard's view is the caller's organisation only.
  auto recent = N().RecentMessages(org_a_, 10);
  ASSERT_EQ(recent->size(), 1u);
  EXPECT_EQ((*recent)[0].id, id);
  auto recent_attempts = N().RecentAttempts(org_a_, 10);
  ASSERT_EQ(recent_attempts->size(), 2u);
  EXPECT_EQ((*recent_attempts)[0].status, "sent");  // newest first
  EXPECT_EQ(N().Depth()->pending, 0);

  auto pending = **N().Enqueue(Msg("k-pending", org_a_, kNow + 3'600'000));
  EXPECT_EQ(*N().PruneAttempts(kNow + 1), 2);
  EXPECT_EQ(N().AttemptsOf(id)->size(), 1u);
  // Finished messages go with their last attempt (the notification log's retention); a message
  // with a newer attempt, and a pending one, stay.
  EXPECT_FALSE(N().GetMessage(other));
  EXPECT_TRUE(N().GetMessage(id));
  EXPECT_EQ(*N().PruneAttempts(kNow + 60'001), 1);
  EXPECT_FALSE(N().GetMessage(id));
  EXPECT_EQ(N().GetMessage(pending)->state, "pending");
  EXPECT_EQ(*N().PruneAttempts(kNow + 10 * 3'600'000), 0);
  EXPECT_TRUE(N().GetMessage(pending));
}

TEST_P(NotifyStoreTest, DepthCountsPendingMessagesAndTheOldest) {
  EXPECT_EQ(N().Depth()->pending, 0);
  EXPECT_FALSE(N().Depth()->oldest_pending_created_at.has_value());
  auto m = Msg("k1", std::nullopt, kNow);
  m.created_at = kNow - 5000;
  ASSERT_TRUE(N().Enqueue(m));
  ASSERT_TRUE(N().Enqueue(Msg("k2", org_a_, kNow)));
  auto d = N().Depth();
  EXPECT_EQ(d->pending, 2);
  EXPECT_EQ(d->oldest_pending_created_at, kNow - 5000);
}

INSTANTIATE_TEST_SUITE_P(Backends, NotifyStoreTest, testing::ValuesIn(Backends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace opensense::store
