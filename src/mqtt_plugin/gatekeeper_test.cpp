#include "mqtt_plugin/gatekeeper.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace opensense::mqtt {
namespace {

const std::string kDeviceToken = "osd_AAAAAAAAAAAA_secret1";
const std::string kOtherToken = "osd_BBBBBBBBBBBB_secret2";

// OpenSense as the plugin sees it: a table of good credentials, counting the questions.
struct FakeOpenSense {
  std::map<std::pair<std::string, std::string>, AuthAnswer> good;
  int asked = 0;
  bool reachable = true;
  Gatekeeper::AskFn Fn() {
    return [this](std::string_view u, std::string_view p, std::string_view) -> Result<AuthAnswer> {
      ++asked;
      if (!reachable) return MakeError(ErrorCode::kUnavailable, "down");
      auto it = good.find({std::string(u), std::string(p)});
      if (it == good.end()) return AuthAnswer{};
      return it->second;
    };
  }
};

class GatekeeperTest : public testing::Test {
 protected:
  GatekeeperTest() : gate_(Options(), fake_.Fn()) {
    fake_.good[{"17", kDeviceToken}] = AuthAnswer{true, DeviceRules(17), std::nullopt};
    fake_.good[{"18", kOtherToken}] = AuthAnswer{true, DeviceRules(18), std::nullopt};
    fake_.good[{"opensense", "service-pw"}] = AuthAnswer{true, ServiceRules(), std::nullopt};
    fake_.good[{"site:3", "osg_CCCCCCCCCCCC_gw"}] = AuthAnswer{true, GatewayRules({17}), std::nullopt};
  }
  static GatekeeperOptions Options() {
    GatekeeperOptions o;
    o.allow_ttl_ms = 30'000;
    o.deny_ttl_ms = 5'000;
    o.revoked_keep_ms = 120'000;
    return o;
  }
  const int a_ = 0, b_ = 0;  // stand-ins for broker connections
  FakeOpenSense fake_;
  Gatekeeper gate_;
};

TEST_F(GatekeeperTest, AllowedLoginGetsItsRulesAndIsRemembered) {
  EXPECT_TRUE(gate_.Authenticate(&a_, "c1", "17", kDeviceToken, 1000));
  EXPECT_TRUE(gate_.Check("c1", "17", AclRequest::kPublish, "devices/17/readings"));
  EXPECT_FALSE(gate_.Check("c1", "17", AclRequest::kPublish, "devices/18/readings"));
  EXPECT_TRUE(gate_.Authenticate(&b_, "c2", "17", kDeviceToken, 2000));
  EXPECT_EQ(fake_.asked, 1);
  EXPECT_EQ(gate_.stats().cache_hits, 1u);
  // After the TTL OpenSense is asked again.
  EXPECT_TRUE(gate_.Authenticate(&b_, "c2", "17", kDeviceToken, 1000 + 30'000));
  EXPECT_EQ(fake_.asked, 2);
}

TEST_F(GatekeeperTest, CacheIsKeyedByUsernameAndWholePassword) {
  EXPECT_TRUE(gate_.Authenticate(&a_, "c1", "17", kDeviceToken, 1000));
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", kDeviceToken + "x", 1001));
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", kDeviceToken.substr(0, kDeviceToken.size() - 1), 1002));
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "18", kDeviceToken, 1003));
  EXPECT_EQ(fake_.asked, 4);
}

TEST_F(GatekeeperTest, RefusalsAreRememberedBriefly) {
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", "osd_AAAAAAAAAAAA_wrong", 1000));
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", "osd_AAAAAAAAAAAA_wrong", 2000));
  EXPECT_EQ(fake_.asked, 1);
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", "osd_AAAAAAAAAAAA_wrong", 6000));
  EXPECT_EQ(fake_.asked, 2);
  EXPECT_FALSE(gate_.Check("c1", "17", AclRequest::kPublish, "devices/17/readings"));
}

TEST_F(GatekeeperTest, UnreachableOpenSenseRefusesAndIsNotRemembered) {
  fake_.reachable = false;
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", kDeviceToken, 1000));
  EXPECT_EQ(gate_.stats().ask_failures, 1u);
  fake_.reachable = true;
  EXPECT_TRUE(gate_.Authenticate(&a_, "c1", "17", kDeviceToken, 1001));
}

TEST_F(GatekeeperTest, EmptyOrHugeCredentialsAreRefusedWithoutAsking) {
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "", kDeviceToken, 1));
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", "", 1));
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", std::string(100000, 'u'), kDeviceToken, 1));
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", std::string(100000, 'p'), 1));
  EXPECT_EQ(fake_.asked, 0);
}

TEST_F(GatekeeperTest, ExpiredAnswerIsARefusal) {
  fake_.good[{"17", kDeviceToken}].expire_at = 1;  // 1970
  EXPECT_FALSE(gate_.Authenticate(&a_, "c1", "17", kDeviceToken, 1'000'000));
}

TEST_F(GatekeeperTest, UnknownClientsMayDoNothing) {
  EXPECT_FALSE(gate_.Check("nobody", "17", AclRequest::kPublish, "devices/17/readings"));
  EXPECT_FALSE(gate_.Check("nobody", "17", AclRequest::kRead, "devices/17/readings"));
}

TEST_F(GatekeeperTest, RestoredServiceSessionStillReceivesReadings) {
  // After a broker restart the subscriber's persistent session exists before it reconnects.
  EXPECT_TRUE(gate_.Check("opensense-ingest", "opensense", AclRequest::kRead, "devices/17/readings"));
  EXPECT_FALSE(gate_.Check("opensense-ingest", "opensense", AclRequest::kRead, "other/topic"));
  EXPECT_FALSE(gate_.Check("opensense-ingest", "opensense", AclRequest::kPublish, "devices/17/readings"));
  EXPECT_FALSE(gate_.Check("opensense-ingest", "opensense", AclRequest::kSubscribe, "#"));
}

TEST_F(GatekeeperTest, CleanDisconnectForgetsPersistentKeeps) {
  ASSERT_TRUE(gate_.Authenticate(&a_, "dev", "17", kDeviceToken, 1000));
  ASSERT_TRUE(gate_.Authenticate(&b_, "sub", "opensense", "service-pw", 1000));
  gate_.Disconnected(&a_, "dev", /*persistent=*/false);
  gate_.Disconnected(&b_, "sub", /*persistent=*/true);
  EXPECT_FALSE(gate_.Check("dev", "17", AclRequest::kPublish, "devices/17/readings"));
  EXPECT_TRUE(gate_.Check("sub", "opensense", AclRequest::kRead, "devices/17/readings"));
}

TEST_F(GatekeeperTest, TakeoverIsNotUndoneByTheOldConnectionsDisconnect) {
  ASSERT_TRUE(gate_.Authenticate(&a_, "dev", "17", kDeviceToken, 1000));
  ASSERT_TRUE(gate_.Authenticate(&b_, "dev", "17", kDeviceToken, 1001));  // same client id
  gate_.Disconnected(&a_, "dev", false);                                    // the old one goes
  EXPECT_TRUE(gate_.Check("dev", "17", AclRequest::kPublish, "devices/17/readings"));
}

TEST_F(GatekeeperTest, RevokeKicksItsClientsAndRefusesTheTokenLocally) {
  ASSERT_TRUE(gate_.Authenticate(&a_, "dev17", "17", kDeviceToken, 1000));
  ASSERT_TRUE(gate_.Authenticate(&b_, "dev18", "18", kOtherToken, 1000));
  auto kick = gate_.Revoke({"AAAAAAAAAAAA"}, 2000);
  EXPECT_EQ(kick, std::vector<std::string>{"dev17"});
  EXPECT_FALSE(gate_.Check("dev17", "17", AclRequest::kPublish, "devices/17/readings"));
  EXPECT_TRUE(gate_.Check("dev18", "18", AclRequest::kPublish, "devices/18/readings"));
  // Even if OpenSense (another process's stale cache) still said yes:
  const int asked = fake_.asked;
  EXPECT_FALSE(gate_.Authenticate(&a_, "dev17", "17", kDeviceToken, 3000));
  EXPECT_EQ(fake_.asked, asked);
  // Long after, OpenSense decides again.
  EXPECT_TRUE(gate_.Authenticate(&a_, "dev17", "17", kDeviceToken, 2000 + 120'000));
  EXPECT_TRUE(gate_.Revoke({}, 5000).empty());
}

TEST_F(GatekeeperTest, ANewDeviceInTheSiteReconnectsItsGatewaysOnce) {
  ASSERT_TRUE(gate_.Authenticate(&a_, "gw", "site:3", "osg_CCCCCCCCCCCC_gw", 1000));
  ASSERT_TRUE(gate_.Authenticate(&b_, "dev17", "17", kDeviceToken, 1000));
  EXPECT_FALSE(gate_.Check("gw", "site:3", AclRequest::kPublish, "devices/19/readings"));
  EXPECT_TRUE(gate_.SitesChanged({{4, 1500}}).empty());  // another site
  EXPECT_EQ(gate_.SitesChanged({{3, 1500}}), std::vector<std::string>{"gw"});
  EXPECT_TRUE(gate_.Check("dev17", "17", AclRequest::kPublish, "devices/17/readings"));
  // OpenSense now lists the new device; the cached login must not hide it.
  fake_.good[{"site:3", "osg_CCCCCCCCCCCC_gw"}] = AuthAnswer{true, GatewayRules({17, 19}), std::nullopt};
  const int asked = fake_.asked;
  ASSERT_TRUE(gate_.Authenticate(&a_, "gw", "site:3", "osg_CCCCCCCCCCCC_gw", 2000));
  EXPECT_EQ(fake_.asked, asked + 1);
  EXPECT_TRUE(gate_.Check("gw", "site:3", AclRequest::kPublish, "devices/19/readings"));
  // The feed repeats the same change (its windows overlap): no second disconnect.
  EXPECT_TRUE(gate_.SitesChanged({{3, 1500}}).empty());
  EXPECT_EQ(gate_.SitesChanged({{3, 2500}}), std::vector<std::string>{"gw"});
}

TEST_F(GatekeeperTest, CacheStaysBounded) {
  GatekeeperOptions o = Options();
  o.max_cached = 100;
  int asked = 0;
  Gatekeeper g(o, [&](std::string_view, std::string_view, std::string_view) -> Result<AuthAnswer> {
    ++asked;
    return AuthAnswer{};
  });
  for (int i = 0; i < 1000; ++i) g.Authenticate(&a_, "c", "u" + std::to_string(i), "p", 1000 + i);
  EXPECT_LE(g.cached(), 100u);
  EXPECT_EQ(asked, 1000);
}

}  // namespace
}  // namespace opensense::mqtt
