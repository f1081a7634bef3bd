#include "mqtt_plugin/acl.hpp"

#include <gtest/gtest.h>

#include <string>

namespace opensense::mqtt {
namespace {

struct MatchCase {
  const char* filter;
  const char* topic;
  bool match;
};

TEST(TopicMatches, FollowsMqttRules) {
  const MatchCase cases[] = {
      {"devices/17/readings", "devices/17/readings", true},
      {"devices/17/readings", "devices/170/readings", false},
      {"devices/17/readings", "devices/17/readings/x", false},
      {"devices/17/readings", "devices/17", false},
      {"devices/+/readings", "devices/17/readings", true},
      {"devices/+/readings", "devices//readings", true},
      {"devices/+/readings", "devices/17/other", false},
      {"devices/+/readings", "devices/17/readings/extra", false},
      // a subscription filter compared as a name: wildcards in it are literal
      {"devices/+/readings", "devices/+/readings", true},
      {"devices/+/readings", "#", false},
      {"devices/+/readings", "devices/#", false},
      {"devices/+/readings", "+/+/readings", false},
      {"devices/+/readings", "devices/+/#", false},
      {"#", "anything/at/all", true},
      {"#", "devices/+/readings", true},
      {"sport/#", "sport", true},
      {"sport/#", "sport/tennis/player", true},
      {"sport/#/x", "sport/a/x", false},  // '#' not last: invalid, matches nothing
      {"+", "a", true},
      {"+", "a/b", false},
      {"+/+", "/finance", true},
      {"#", "$SYS/broker/uptime", false},
      {"+/broker/uptime", "$SYS/broker/uptime", false},
      {"$SYS/#", "$SYS/broker/uptime", true},
      {"", "a", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(TopicMatches(c.filter, c.topic), c.match) << c.filter << " vs " << c.topic;
  }
}

TEST(StripSharePrefix, OnlyWellFormedShares) {
  EXPECT_EQ(StripSharePrefix("$share/opensense/devices/+/readings"), "devices/+/readings");
  EXPECT_EQ(StripSharePrefix("devices/+/readings"), "devices/+/readings");
  EXPECT_EQ(StripSharePrefix("$share//devices/+/readings"), "$share//devices/+/readings");
  EXPECT_EQ(StripSharePrefix("$share/+/devices/+/readings"), "$share/+/devices/+/readings");
  EXPECT_EQ(StripSharePrefix("$share/g"), "$share/g");
  EXPECT_EQ(StripSharePrefix("$share/g/"), "$share/g/");
}

TEST(Allowed, DeviceMayPublishToItsOwnTopicOnly) {
  auto rules = DeviceRules(17);
  EXPECT_TRUE(Allowed(rules, AclRequest::kPublish, "devices/17/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kPublish, "devices/18/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kPublish, "devices/17/readings/x"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kPublish, "devices/1/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kSubscribe, "devices/17/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kRead, "devices/17/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kSubscribe, "#"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kPublish, ""));
}

TEST(Allowed, GatewayMayPublishForItsSiteOnly) {
  auto rules = GatewayRules({3, 4});
  EXPECT_TRUE(Allowed(rules, AclRequest::kPublish, "devices/3/readings"));
  EXPECT_TRUE(Allowed(rules, AclRequest::kPublish, "devices/4/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kPublish, "devices/5/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kSubscribe, "devices/3/readings"));
  EXPECT_FALSE(Allowed(GatewayRules({}), AclRequest::kPublish, "devices/3/readings"));
}

TEST(Allowed, ServiceMaySubscribeToReadingsOnly) {
  auto rules = ServiceRules();
  EXPECT_TRUE(Allowed(rules, AclRequest::kSubscribe, "devices/+/readings"));
  EXPECT_TRUE(Allowed(rules, AclRequest::kSubscribe, "$share/opensense/devices/+/readings"));
  EXPECT_TRUE(Allowed(rules, AclRequest::kSubscribe, "$share/other-group/devices/+/readings"));
  EXPECT_TRUE(Allowed(rules, AclRequest::kRead, "devices/17/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kSubscribe, "#"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kSubscribe, "$share/g/#"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kSubscribe, "devices/#"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kSubscribe, "$SYS/#"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kSubscribe, "$share//devices/+/readings"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kRead, "devices/17/commands"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kPublish, "devices/17/readings"));
}

TEST(Allowed, FirstMatchingRuleWinsAndNoMatchDenies) {
  std::vector<AclRule> rules = {{AclPermission::kDeny, AclAction::kPublish, "a/b"},
                                {AclPermission::kAllow, AclAction::kAll, "a/#"}};
  EXPECT_FALSE(Allowed(rules, AclRequest::kPublish, "a/b"));
  EXPECT_TRUE(Allowed(rules, AclRequest::kPublish, "a/c"));
  EXPECT_TRUE(Allowed(rules, AclRequest::kSubscribe, "a/b"));
  EXPECT_FALSE(Allowed(rules, AclRequest::kPublish, "b"));
  EXPECT_FALSE(Allowed({}, AclRequest::kPublish, "a"));
}

TEST(AuthAnswer, RoundTripsInTheEmqxShape) {
  AuthAnswer a{true, DeviceRules(17), 1900000000};
  std::string text = FormatAuthAnswer(a);
  EXPECT_EQ(text,
            R"({"acl":[{"action":"publish","permission":"allow","topic":"devices/17/readings"},)"
            R"({"action":"all","permission":"deny","topic":"#"}],"expire_at":1900000000,)"
            R"("is_superuser":false,"result":"allow"})");
  auto back = ParseAuthAnswer(text);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->allow);
  EXPECT_EQ(back->acl, a.acl);
  EXPECT_EQ(back->expire_at, a.expire_at);
  EXPECT_EQ(FormatAuthAnswer({false, DeviceRules(1), std::nullopt}), R"({"is_superuser":false,"result":"deny"})");
}

TEST(AuthAnswer, ParsesWhatEmqxAccepts) {
  auto a = ParseAuthAnswer(R"({"result":"allow","is_superuser":false})");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->allow);
  EXPECT_TRUE(a->acl.empty());
  for (const char* deny : {R"({"result":"deny"})", R"({"result":"ignore"})", R"({})", R"({"result":1})",
                           R"({"result":"ALLOW"})"}) {
    auto d = ParseAuthAnswer(deny);
    ASSERT_TRUE(d) << deny;
    EXPECT_FALSE(d->allow) << deny;
  }
}

TEST(AuthAnswer, RefusesMalformedAndHostileInput) {
  const std::string cases[] = {
      "",
      "null",
      "[]",
      "{",
      R"({"result":"allow","is_superuser":true})",
      R"({"result":"allow","acl":{}})",
      R"({"result":"allow","acl":[1]})",
      R"({"result":"allow","acl":[{"permission":"allow","action":"publish"}]})",
      R"({"result":"allow","acl":[{"permission":"maybe","action":"publish","topic":"a"}]})",
      R"({"result":"allow","acl":[{"permission":"allow","action":"read","topic":"a"}]})",
      R"({"result":"allow","acl":[{"permission":"allow","action":"all","topic":""}]})",
      R"({"result":"allow","expire_at":"soon"})",
      "{\"result\":\"allow\xff\"}",
      std::string(1000, '['),
      std::string(100000, '[') + std::string(100000, ']'),
      std::string(5 << 20, ' '),
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(ParseAuthAnswer(c)) << c.substr(0, 80);
  }
  std::string many = R"({"result":"allow","acl":[)";
  for (int i = 0; i < 100'001; ++i) many += R"({"permission":"allow","action":"all","topic":"a"},)";
  many.back() = ']';
  many += "}";
  EXPECT_FALSE(ParseAuthAnswer(many));
}

TEST(RevokedAnswer, RoundTripsAndRefusesMalformed) {
  auto back = ParseRevokedAnswer(FormatRevokedAnswer({1700000000000, {"abc", "def"}, {{3, 1699999999000}}}));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->now_ms, 1700000000000);
  EXPECT_EQ(back->token_ids, (std::vector<std::string>{"abc", "def"}));
  EXPECT_EQ(back->sites, (std::vector<SiteChange>{{3, 1699999999000}}));
  auto old = ParseRevokedAnswer(R"({"now":1,"tokens":[]})");  // an OpenSense without "sites"
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->sites.empty());
  for (const char* bad : {R"({"now":1,"tokens":[],"sites":3})", R"({"now":1,"tokens":[],"sites":[3]})",
                          R"({"now":1,"tokens":[],"sites":[{"id":0,"changed_at":1}]})",
                          R"({"now":1,"tokens":[],"sites":[{"id":3}]})",
                          R"({"now":1,"tokens":[],"sites":[{"id":"3","changed_at":1}]})"}) {
    EXPECT_FALSE(ParseRevokedAnswer(bad)) << bad;
  }
  for (const char* bad : {"", "{}", R"({"now":1})", R"({"tokens":[]})", R"({"now":"1","tokens":[]})",
                          R"({"now":1,"tokens":[1]})", R"({"now":1,"tokens":[""]})",
                          R"({"now":1,"tokens":"abc"})"}) {
    EXPECT_FALSE(ParseRevokedAnswer(bad)) << bad;
  }
  EXPECT_FALSE(ParseRevokedAnswer(R"({"now":1,"tokens":[")" + std::string(65, 'a') + R"("]})"));
}

TEST(GatewaySiteOf, OnlyWellFormedSiteUsernames) {
  EXPECT_EQ(GatewaySiteOf("site:3"), 3);
  EXPECT_EQ(GatewaySiteOf("site:123456789"), 123456789);
  for (const char* bad : {"site:", "site:0", "site:03", "site:-3", "site:3a", "site: 3", "Site:3", "3",
                          "site:1234567890123456789"}) {
    EXPECT_EQ(GatewaySiteOf(bad), std::nullopt) << bad;
  }
}

TEST(TokenIdOf, DeviceAndGatewayTokensOnly) {
  EXPECT_EQ(TokenIdOf("osd_abcdefghijkl_secretsecret"), "abcdefghijkl");
  EXPECT_EQ(TokenIdOf("osg_abcdefghijkl_secretsecret"), "abcdefghijkl");
  EXPECT_EQ(TokenIdOf("osk_abcdefghijkl_secretsecret"), "");
  EXPECT_EQ(TokenIdOf("service-password"), "");
  EXPECT_EQ(TokenIdOf("osd__x"), "");
  EXPECT_EQ(TokenIdOf("osd_abc"), "");
  EXPECT_EQ(TokenIdOf(""), "");
}

}  // namespace
}  // namespace opensense::mqtt
