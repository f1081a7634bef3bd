// store::PeopleStore on every backend (SQLite; PostgreSQL when the CTest fixture runs).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "people/login.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/test_util.hpp"

namespace opensense::store {
namespace {

constexpr TimestampMs kNow = 1768478400000;

class PeopleStoreTest : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    auto o = GetParam().options(dir_.path());
    url_ = o.url;
    o.clock = &clock_;
    auto s = OpenStore(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    a_ = store_->CreateOrganization({"A", "UTC", Tier::kTeam})->id;
    b_ = store_->CreateOrganization({"B", "UTC", Tier::kFree})->id;
  }
  PeopleStore& people() { return store_->People(); }
  ScratchDir dir_{"people-store"};
  ManualClock clock_{kNow};
  std::unique_ptr<Store> store_;
  std::string url_;
  OrgId a_ = 0, b_ = 0;
};

TEST_P(PeopleStoreTest, MagicLinkIsConsumedOnceBeforeExpiryAndOnlyForItsAddress) {
  MagicLinkRow link{0, people::Sha256Hex("t1"), "ann@example.com", "login", std::nullopt, "", "127.0.0.1",
                    kNow, kNow + 15 * kMsPerMinute, std::nullopt};
  ASSERT_TRUE(people().AddMagicLink(link));
  EXPECT_TRUE(*people().MagicLinkLive(link.token_hash, kNow));
  EXPECT_FALSE(people().ConsumeMagicLink(link.token_hash, "bob@example.com", kNow));
  auto used = people().ConsumeMagicLink(link.token_hash, "ann@example.com", kNow + 1);
  ASSERT_TRUE(used) << used.error().message;
  EXPECT_EQ(used->email, "ann@example.com");
  EXPECT_FALSE(people().ConsumeMagicLink(link.token_hash, "", kNow + 2)) << "single use";
  EXPECT_FALSE(*people().MagicLinkLive(link.token_hash, kNow + 2));

  MagicLinkRow late = link;
  late.token_hash = people::Sha256Hex("t2");
  ASSERT_TRUE(people().AddMagicLink(late));
  EXPECT_FALSE(people().ConsumeMagicLink(late.token_hash, "", kNow + 15 * kMsPerMinute)) << "expired";
  auto counts = people().CountMagicLinks("ann@example.com", "127.0.0.1", kNow);
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->first, 2);
  EXPECT_EQ(counts->second, 2);
}

TEST_P(PeopleStoreTest, SessionsEndOneByOneOrAllAtOnce) {
  SessionRow s{0, "h1", "ann@example.com", a_, "127.0.0.1", kNow, kNow, kNow + kMsPerDay, std::nullopt};
  auto one = people().CreateSession(s);
  s.id_hash = "h2";
  auto two = people().CreateSession(s);
  ASSERT_TRUE(one && two);
  ASSERT_TRUE(people().TouchSession(one->id, kNow + 5));
  EXPECT_EQ(people().FindSession("h1")->last_seen_at, kNow + 5);
  ASSERT_TRUE(people().EndSession(one->id, kNow + 6));
  EXPECT_FALSE(people().FindSession("h1"));
  EXPECT_EQ(*people().EndSessionsOf("ann@example.com", kNow + 7), 1);
  EXPECT_FALSE(people().FindSession("h2"));
}

TEST_P(PeopleStoreTest, MembersAreScopedAndComeBackAfterRemoval) {
  auto m = people().AddMember(a_, "ann@example.com", Role::kAdmin);
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_TRUE(people().AddMember(b_, "ann@example.com", Role::kViewer));
  EXPECT_EQ(people().AddMember(a_, "ann@example.com", Role::kViewer).error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(people().MembershipsOf("ann@example.com")->size(), 2u);
  EXPECT_FALSE(people().GetMember(b_, m->id)) << "another organisation's member";
  EXPECT_FALSE(people().SetMemberRole(b_, m->id, Role::kOwner));
  EXPECT_FALSE(people().RemoveMember(b_, m->id, kNow));
  ASSERT_TRUE(people().RemoveMember(a_, m->id, kNow));
  EXPECT_EQ(people().MembershipsOf("ann@example.com")->size(), 1u);
  EXPECT_TRUE(people().ListMembers(a_)->empty());
  auto back = people().AddMember(a_, "ann@example.com", Role::kMember);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, m->id);
  EXPECT_EQ(back->role, Role::kMember);
  EXPECT_FALSE(back->removed_at);
}

TEST_P(PeopleStoreTest, AuditTrailIsAppendOnlyScopedAndFilterable) {
  for (int i = 0; i < 3; ++i) {
    AuditEvent e{0, a_, kNow + i, "user:1 <ann@example.com>", "session", "127.0.0.1",
                 i == 2 ? "member.role" : "device.create", fmt::format("device:{}", i), "", "{\"n\":1}"};
    ASSERT_TRUE(people().AppendAudit(e));
  }
  ASSERT_TRUE(people().AppendAudit({0, b_, kNow, "x", "cli", "", "device.create", "device:9", "", ""}));
  AuditFilter f;
  f.org = a_;
  auto all = people().ListAudit(f);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_GT((*all)[0].id, (*all)[1].id) << "newest first";
  f.action_prefix = "device";
  EXPECT_EQ(people().ListAudit(f)->size(), 2u);
  f.action_prefix = "dev";
  EXPECT_EQ(people().ListAudit(f)->size(), 0u) << "a prefix is whole words";
  f.action_prefix.reset();
  f.from = kNow + 1;
  f.to = kNow + 2;
  EXPECT_EQ(people().ListAudit(f)->size(), 1u);
  // The database itself refuses edits.
  if (GetParam().name == "sqlite") {
    auto db = sqlite::Db::Open(dir_.path() + "/opensense.db", false, 1000);
    ASSERT_TRUE(db);
    EXPECT_FALSE((*db)->Exec("UPDATE audit_events SET actor='someone else'"));
    EXPECT_FALSE((*db)->Exec("DELETE FROM audit_events"));
  } else {
    auto info = postgres::ParseConnInfo(url_);
    ASSERT_TRUE(info);
    auto conn = postgres::Conn::Connect(*info);
    ASSERT_TRUE(conn);
    EXPECT_FALSE((*conn)->Exec("UPDATE audit_events SET actor='someone else'"));
    EXPECT_FALSE((*conn)->Exec("DELETE FROM audit_events"));
    EXPECT_FALSE((*conn)->Exec("TRUNCATE audit_events"));
  }
  EXPECT_EQ(people().ListAudit({a_})->size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Backends, PeopleStoreTest, testing::ValuesIn(Backends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace opensense::store
