// The notification routes without a socket: channel CRUD with validation, the webhook secret
// shown once, "send test message" through the outbox, the notifications view, and another
// organisation getting 404 and changing nothing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/api.hpp"
#include "store/test_util.hpp"

namespace opensense::api {
namespace {

using nlohmann::json;

constexpr TimestampMs kNow = 1768478400000;

class ChannelRoutes : public testing::Test {
 protected:
  void SetUp() override {
    auto o = store::Backends()[0].options(dir_.path());
    o.clock = &clock_;
    store_ = std::move(*store::OpenStore(o));
    auth::TokenServiceOptions to;
    to.bcrypt_cost = 4;
    tokens_ = std::make_unique<auth::TokenService>(store_.get(), &clock_, to);
    ApiOptions options;
    options.webhook_allow_http_loopback = false;
    options.notification_queued = [this] { ++wakes_; };
    api_ = std::make_unique<Api>(store_.get(), tokens_.get(), &metrics_, &clock_, options);
    router_ = api_->BuildRouter();
    org_ = store_->CreateOrganization({"A", "UTC", Tier::kFree})->id;
    other_ = store_->CreateOrganization({"B", "UTC", Tier::kFree})->id;
  }
  void TearDown() override { store_->Close(); }
  std::string TokenFor(OrgId org, Role role) {
    auto u = store_->CreateUser(org, std::string(RoleName(role)) + "-" + std::to_string(org) + "@example.com", role);
    return tokens_->IssueUserToken(org, u->id, role, "")->token;
  }
  http::Response Call(std::string method, std::string target, const std::string& token, std::string body = "") {
    auto req = http::Request::FromTarget(std::move(method), std::move(target), std::move(body));
    EXPECT_TRUE(req);
    req->headers.emplace_back("Authorization", "Bearer " + token);
    req->headers.emplace_back("Content-Type", "application/json");
    return router_.Handle(*req);
  }

  store::ScratchDir dir_{"channels-api"};
  ManualClock clock_{kNow};
  MetricsRegistry metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::TokenService> tokens_;
  std::unique_ptr<Api> api_;
  http::Router router_;
  OrgId org_ = 0;
  OrgId other_ = 0;
  int wakes_ = 0;
};

TEST_F(ChannelRoutes, CreateListPatchDeleteWithTheSecretShownOnce) {
  const std::string admin = TokenFor(org_, Role::kAdmin);
  auto created = Call("POST", "/api/v1/channels", admin,
                      R"({"kind":"webhook","name":"Ops hook","target":"https://hooks.example.com/os"})");
  ASSERT_EQ(created.status, 201) << created.body;
  json c = json::parse(created.body);
  EXPECT_EQ(c["kind"], "webhook");
  EXPECT_EQ(c["enabled"], true);
  const std::string secret = c["secret"];
  EXPECT_EQ(secret.rfind("whsec_", 0), 0u);
  const std::int64_t id = c["id"];

  auto one = Call("GET", "/api/v1/channels/" + std::to_string(id), admin);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.body.find(secret), std::string::npos) << "the secret is shown once";
  auto list = Call("GET", "/api/v1/channels", admin);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(json::parse(list.body).size(), 1u);
  EXPECT_EQ(list.body.find(secret), std::string::npos);

  auto patched = Call("PATCH", "/api/v1/channels/" + std::to_string(id), admin, R"({"name":"Renamed","enabled":false})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(json::parse(patched.body)["name"], "Renamed");
  EXPECT_EQ(json::parse(patched.body)["enabled"], false);
  EXPECT_EQ(Call("PATCH", "/api/v1/channels/" + std::to_string(id), admin, R"({"kind":"email"})").status, 400);
  EXPECT_EQ(Call("PATCH", "/api/v1/channels/" + std::to_string(id), admin,
                 R"({"target":"http://hooks.example.com/x"})").status, 400);

  EXPECT_EQ(Call("DELETE", "/api/v1/channels/" + std::to_string(id), admin).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/channels/" + std::to_string(id), admin).status, 404);
}

TEST_F(ChannelRoutes, BadChannelsAreClearErrorsAndNothingIsStored) {
  const std::string admin = TokenFor(org_, Role::kAdmin);
  for (const char* body : {
           R"({"kind":"email","name":"x","target":"not-an-address"})",
           R"({"kind":"email","name":"x","target":"a@b.co\r\nBcc: evil@x.org"})",
           R"({"kind":"webhook","name":"x","target":"http://hooks.example.com/x"})",
           R"({"kind":"webhook","name":"x","target":"http://127.0.0.1:9/x"})",
           R"({"kind":"telegram","name":"x","target":"12ab"})",
           R"({"kind":"sms","name":"x","target":"123"})",
           R"({"kind":"email","name":"","target":"a@b.co"})",
           R"({"kind":"email","target":"a@b.co"})",
           R"({"kind":"email","name":"x","target":"a@b.co","secret":"mine"})",
           R"({"kind":"email","name":5,"target":"a@b.co"})",
           R"({"kind":"email","name":"x","target":"a@b.co","enabled":"yes"})",
           "[]", "not json"}) {
    auto r = Call("POST", "/api/v1/channels", admin, body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
  }
  EXPECT_TRUE(store_->Notify().ListChannels(org_)->empty());
  auto r = Call("POST", "/api/v1/channels", admin, R"({"kind":"telegram","name":"x","target":"12ab"})");
  EXPECT_NE(r.body.find("chat id"), std::string::npos) << r.body;
}

TEST_F(ChannelRoutes, RolesGateTheRoutes) {
  const std::string viewer = TokenFor(org_, Role::kViewer);
  EXPECT_EQ(Call("GET", "/api/v1/channels", viewer).status, 403);
  EXPECT_EQ(Call("POST", "/api/v1/channels", viewer, R"({"kind":"email","name":"x","target":"a@b.co"})").status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/notifications", viewer).status, 200);
}

TEST_F(ChannelRoutes, ATestMessageGoesThroughTheOutboxAndShowsInNotifications) {
  const std::string admin = TokenFor(org_, Role::kAdmin);
  auto c = json::parse(Call("POST", "/api/v1/channels", admin,
                            R"({"kind":"email","name":"Kitchen","target":"a@cafe.example, b@cafe.example"})").body);
  const std::int64_t id = c["id"];
  auto t = Call("POST", "/api/v1/channels/" + std::to_string(id) + "/test", admin);
  ASSERT_EQ(t.status, 202) << t.body;
  EXPECT_EQ(json::parse(t.body)["queued"].size(), 2u);
  EXPECT_EQ(wakes_, 1);
  auto n = Call("GET", "/api/v1/notifications?limit=10", admin);
  ASSERT_EQ(n.status, 200);
  json j = json::parse(n.body);
  ASSERT_EQ(j["messages"].size(), 2u);
  EXPECT_EQ(j["messages"][0]["state"], "pending");
  EXPECT_EQ(j["messages"][0]["channel_id"], id);
  EXPECT_NE(j["messages"][0]["subject"].get<std::string>().find("test message"), std::string::npos);
  EXPECT_TRUE(j["attempts"].empty());
  EXPECT_EQ(Call("GET", "/api/v1/notifications?limit=0", admin).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/notifications?limit=abc", admin).status, 400);
  // A second test is a new message (not deduplicated away).
  EXPECT_EQ(json::parse(Call("POST", "/api/v1/channels/" + std::to_string(id) + "/test", admin).body)["queued"].size(), 2u);
}

TEST_F(ChannelRoutes, AnotherOrganisationGets404AndChangesNothing) {
  const std::string admin = TokenFor(org_, Role::kAdmin);
  const std::string intruder = TokenFor(other_, Role::kOwner);
  auto c = json::parse(Call("POST", "/api/v1/channels", admin,
                            R"({"kind":"telegram","name":"Group","target":"-1001234567890"})").body);
  const std::int64_t id = c["id"];
  ASSERT_EQ(Call("POST", "/api/v1/channels/" + std::to_string(id) + "/test", admin).status, 202);

  const std::string path = "/api/v1/channels/" + std::to_string(id);
  EXPECT_EQ(Call("GET", path, intruder).status, 404);
  EXPECT_EQ(Call("PATCH", path, intruder, R"({"target":"666","enabled":false})").status, 404);
  EXPECT_EQ(Call("DELETE", path, intruder).status, 404);
  EXPECT_EQ(Call("POST", path + "/test", intruder).status, 404);
  auto list = Call("GET", "/api/v1/channels", intruder);
  EXPECT_EQ(json::parse(list.body).size(), 0u);
  auto n = json::parse(Call("GET", "/api/v1/notifications", intruder).body);
  EXPECT_TRUE(n["messages"].empty());

  auto still = store_->Notify().GetChannel(org_, id);
  ASSERT_TRUE(still);
  EXPECT_EQ(still->target, "-1001234567890");
  EXPECT_TRUE(still->enabled);
  EXPECT_EQ(store_->Notify().RecentMessages(org_, 10)->size(), 1u);
}

}  // namespace
}  // namespace opensense::api
