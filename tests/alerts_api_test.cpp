// The alert routes through the Api object with the real store and alert service: rules are
// validated with clear errors, readings raise alerts that can be listed, read with their
// events, acknowledged (with the note the rule requires) and resolved by an admin; another
// organisation gets 404 and changes nothing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "alerts/service.hpp"
#include "api/api.hpp"
#include "store/test_util.hpp"

namespace opensense {
namespace {

using json = nlohmann::json;
constexpr TimestampMs kNow = 1767571200000;

class AlertsApi : public testing::Test {
 protected:
  void SetUp() override {
    auto o = store::Backends()[0].options(dir_.path());
    o.clock = &clock_;
    store_ = std::move(*store::OpenStore(o));
    alerts::AlertServiceOptions ao;
    ao.clock = &clock_;
    ao.evaluator_thread = false;
    service_ = std::make_unique<alerts::AlertService>(store_.get(), ao);
    ASSERT_TRUE(service_->Start());
    auth::TokenServiceOptions to;
    to.bcrypt_cost = 4;
    tokens_ = std::make_unique<auth::TokenService>(store_.get(), &clock_, to);
    api::ApiOptions options;
    options.alerts = service_.get();
    api_ = std::make_unique<api::Api>(store_.get(), tokens_.get(), &metrics_, &clock_, options);
    router_ = api_->BuildRouter();
    org_ = store_->CreateOrganization({"A", "UTC", Tier::kTeam})->id;
    other_ = store_->CreateOrganization({"B", "UTC", Tier::kTeam})->id;
    dev_ = store_->CreateDevice({org_, "Walk-in", std::nullopt, std::nullopt})->id;
  }
  void TearDown() override { service_->Stop(); }
  std::string TokenFor(OrgId org, Role role) {
    auto u = store_->CreateUser(org, std::string(RoleName(role)) + std::to_string(org) + "@example.com", role);
    return tokens_->IssueUserToken(org, u->id, role, "")->token;
  }
  http::Response Call(std::string method, std::string target, const std::string& token, std::string body = "") {
    auto req = http::Request::FromTarget(std::move(method), std::move(target), std::move(body));
    EXPECT_TRUE(req);
    req->headers.emplace_back("Authorization", "Bearer " + token);
    req->headers.emplace_back("Content-Type", "application/json");
    return router_.Handle(*req);
  }
  void Warm(int from, int to, double value) {
    for (int m = from; m <= to; ++m) {
      clock_.Set(kNow + m * kMsPerMinute);
      ASSERT_TRUE(store_->Ingest(org_, {{dev_, "temperature", "Cel", kNow + m * kMsPerMinute, value}}).get());
      service_->Drain();
    }
  }
  store::ScratchDir dir_{"alerts-api"};
  ManualClock clock_{kNow};
  MetricsRegistry metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<alerts::AlertService> service_;
  std::unique_ptr<auth::TokenService> tokens_;
  std::unique_ptr<api::Api> api_;
  http::Router router_;
  OrgId org_ = 0, other_ = 0;
  DeviceId dev_ = 0;
};

TEST_F(AlertsApi, RuleLifecycleAndClearErrors) {
  const std::string admin = TokenFor(org_, Role::kAdmin), viewer = TokenFor(org_, Role::kViewer);
  EXPECT_EQ(Call("POST", "/api/v1/alert-rules", viewer, R"({"name":"x","above":8})").status, 403);
  auto bad = Call("POST", "/api/v1/alert-rules", admin, R"({"name":"x","above":"warm"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("above must be a number"), std::string::npos) << bad.body;
  EXPECT_EQ(Call("POST", "/api/v1/alert-rules", admin, "not json").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/alert-rules", admin, R"({"name":"x","above":8,"device":424242})").status, 404);
  auto created = Call("POST", "/api/v1/alert-rules", admin,
                      R"({"name":"Walk-in warm","above":8,"delay_minutes":5,"severity":"critical","require_note":true})");
  ASSERT_EQ(created.status, 201) << created.body;
  const auto id = json::parse(created.body)["id"].get<std::int64_t>();
  const std::string path = "/api/v1/alert-rules/" + std::to_string(id);
  auto list = json::parse(Call("GET", "/api/v1/alert-rules", viewer).body);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["severity"], "critical");
  auto patched = Call("PATCH", path, admin, R"({"above": 7.5})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(json::parse(patched.body)["above"], 7.5);
  EXPECT_EQ(Call("PATCH", path, admin, R"({"delay_minutes": -1})").status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/alert-rules/abc", viewer).status, 404);
  EXPECT_EQ(Call("DELETE", path, viewer).status, 403);
  EXPECT_EQ(Call("DELETE", path, admin).status, 200);
  EXPECT_EQ(Call("GET", path, viewer).status, 404);
}

TEST_F(AlertsApi, AlertsAreListedAcknowledgedAndResolved) {
  const std::string admin = TokenFor(org_, Role::kAdmin), member = TokenFor(org_, Role::kMember);
  ASSERT_EQ(Call("POST", "/api/v1/alert-rules", admin,
                 R"({"name":"Walk-in warm","above":8,"delay_minutes":5,"require_note":true})").status, 201);
  Warm(0, 10, 9.0);
  auto firing = json::parse(Call("GET", "/api/v1/alerts?state=firing", member).body);
  ASSERT_EQ(firing.size(), 1u);
  const auto id = firing[0]["id"].get<std::int64_t>();
  EXPECT_EQ(firing[0]["device"], dev_);
  EXPECT_EQ(firing[0]["fired_at"], "2026-01-05T00:05:00.000Z");
  EXPECT_EQ(json::parse(Call("GET", "/api/v1/alerts?state=resolved", member).body).size(), 0u);
  EXPECT_EQ(Call("GET", "/api/v1/alerts?state=bogus", member).status, 400);
  EXPECT_EQ(json::parse(Call("GET", "/api/v1/alerts?device=" + std::to_string(dev_ + 1), member).body).size(), 0u);
  EXPECT_EQ(json::parse(Call("GET", "/api/v1/alerts?from=2026-01-05T00:06:00Z", member).body).size(), 0u);
  const std::string one = "/api/v1/alerts/" + std::to_string(id);
  auto ack_no_note = Call("POST", one + "/ack", member, "{}");
  EXPECT_EQ(ack_no_note.status, 400);
  EXPECT_NE(ack_no_note.body.find("corrective-action note"), std::string::npos);
  EXPECT_EQ(Call("POST", one + "/ack", member, R"({"note": 5})").status, 400);
  auto ack = Call("POST", one + "/ack", member, R"({"note": "door was left open; closed it"})");
  ASSERT_EQ(ack.status, 200) << ack.body;
  EXPECT_EQ(json::parse(ack.body)["state"], "acknowledged");
  EXPECT_EQ(Call("POST", one + "/ack", member, R"({"note": "again"})").status, 409);
  EXPECT_EQ(Call("POST", one + "/resolve", member, R"({"note": "fixed"})").status, 403);
  EXPECT_EQ(Call("POST", one + "/resolve", admin, "{}").status, 400);
  auto resolved = Call("POST", one + "/resolve", admin, R"({"note": "fixed the seal"})");
  ASSERT_EQ(resolved.status, 200) << resolved.body;
  auto detail = json::parse(Call("GET", one, member).body);
  EXPECT_EQ(detail["state"], "resolved");
  EXPECT_FALSE(detail["unacknowledged"].get<bool>());
  ASSERT_EQ(detail["events"].size(), 3u);
  EXPECT_EQ(detail["events"][0]["kind"], "fired");
  EXPECT_EQ(detail["events"][1]["note"], "door was left open; closed it");
  EXPECT_EQ(detail["events"][2]["actor"].get<std::string>().rfind("user:", 0), 0u);
}

TEST_F(AlertsApi, AnotherOrganisationGets404AndChangesNothing) {
  const std::string admin = TokenFor(org_, Role::kAdmin);
  const std::string theirs = TokenFor(other_, Role::kOwner);
  auto created = Call("POST", "/api/v1/alert-rules", admin, R"({"name":"warm","above":8})");
  ASSERT_EQ(created.status, 201);
  const std::string rule = "/api/v1/alert-rules/" + std::to_string(json::parse(created.body)["id"].get<std::int64_t>());
  Warm(0, 1, 9.0);
  auto firing = json::parse(Call("GET", "/api/v1/alerts", admin).body);
  ASSERT_EQ(firing.size(), 1u);
  const std::string alert = "/api/v1/alerts/" + std::to_string(firing[0]["id"].get<std::int64_t>());

  EXPECT_EQ(json::parse(Call("GET", "/api/v1/alert-rules", theirs).body).size(), 0u);
  EXPECT_EQ(json::parse(Call("GET", "/api/v1/alerts", theirs).body).size(), 0u);
  EXPECT_EQ(Call("GET", rule, theirs).status, 404);
  EXPECT_EQ(Call("PATCH", rule, theirs, R"({"above": 50})").status, 404);
  EXPECT_EQ(Call("DELETE", rule, theirs).status, 404);
  EXPECT_EQ(Call("GET", alert, theirs).status, 404);
  EXPECT_EQ(Call("POST", alert + "/ack", theirs, R"({"note": "mine"})").status, 404);
  EXPECT_EQ(Call("POST", alert + "/resolve", theirs, R"({"note": "mine"})").status, 404);
  // Nothing changed.
  EXPECT_EQ(json::parse(Call("GET", rule, admin).body)["above"], 8);
  auto detail = json::parse(Call("GET", alert, admin).body);
  EXPECT_EQ(detail["state"], "firing");
  EXPECT_EQ(detail["events"].size(), 1u);
}

}  // namespace
}  // namespace opensense
