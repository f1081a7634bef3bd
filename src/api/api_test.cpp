// Routing-level tests of the API without a socket, and the check that docs/api.md lists exactly
// the routes that exist.
#include "api/api.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "store/test_util.hpp"

namespace opensense::api {
namespace {

constexpr TimestampMs kNow = 1768478400000;

class ApiUnit : public testing::Test {
 protected:
  void SetUp() override {
    auto o = store::Backends()[0].options(dir_.path());
    o.clock = &clock_;
    store_ = std::move(*store::OpenStore(o));
    auth::TokenServiceOptions to;
    to.bcrypt_cost = 4;
    tokens_ = std::make_unique<auth::TokenService>(store_.get(), &clock_, to);
    api_ = std::make_unique<Api>(store_.get(), tokens_.get(), &metrics_, &clock_);
    router_ = api_->BuildRouter();
    org_ = store_->CreateOrganization({"A", "UTC", Tier::kFree})->id;
  }
  std::string TokenFor(Role role) {
    auto u = store_->CreateUser(org_, std::string(RoleName(role)) + "@example.com", role);
    return tokens_->IssueUserToken(org_, u->id, role, "")->token;
  }
  http::Response Call(std::string method, std::string target, const std::string& token, std::string body = "") {
    auto req = http::Request::FromTarget(std::move(method), std::move(target), std::move(body));
    EXPECT_TRUE(req);
    if (!token.empty()) req->headers.emplace_back("Authorization", "Bearer " + token);
    req->headers.emplace_back("Content-Type", "application/json");
    return router_.Handle(*req);
  }
  store::ScratchDir dir_{"api"};
  ManualClock clock_{kNow};
  MetricsRegistry metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::TokenService> tokens_;
  std::unique_ptr<Api> api_;
  http::Router router_;
  OrgId org_ = 0;
};

TEST_F(ApiUnit, RolesGateWrites) {
  std::string viewer = TokenFor(Role::kViewer), admin = TokenFor(Role::kAdmin);
  EXPECT_EQ(Call("GET", "/api/v1/devices", viewer).status, 200);
  EXPECT_EQ(Call("POST", "/api/v1/devices", viewer, R"({"name":"x"})").status, 403);
  auto created = Call("POST", "/api/v1/devices", admin, R"({"name":"x"})");
  EXPECT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(Call("GET", "/api/v1/tokens", viewer).status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/tokens", admin).status, 200);
  auto tokens = Call("GET", "/api/v1/tokens", admin);
  EXPECT_EQ(tokens.body.find("$2b$"), std::string::npos) << "hashes must never leave the server";
}

TEST_F(ApiUnit, BadBodiesAreClearErrors) {
  std::string admin = TokenFor(Role::kAdmin);
  EXPECT_EQ(Call("POST", "/api/v1/devices", admin, "not json").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/devices", admin, "[1,2]").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/devices", admin, R"({"name": 5})").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/devices", admin, R"({"site": "x", "name": "a"})").status, 400);
  EXPECT_EQ(Call("PATCH", "/api/v1/devices/abc", admin, "{}").status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/devices/1/series", admin).status, 404);
}

TEST_F(ApiUnit, RequestsAreLoggedWithRouteTemplateAndPrincipal) {
  std::string viewer = TokenFor(Role::kViewer);
  auto req = http::Request::FromTarget("GET", "/api/v1/devices/77");
  req->headers.emplace_back("Authorization", "Bearer " + viewer);
  std::string route;
  auto resp = router_.Handle(*req, &route);
  api_->OnComplete(*req, route, resp.status, std::chrono::microseconds(1500));
  ASSERT_TRUE(store_->Compact());
  auto dry = store_->RunRetention(true);
  ASSERT_TRUE(dry);
  EXPECT_NE(metrics_.RenderPrometheus().find("route=\"/api/v1/devices/{id}\""), std::string::npos);
}

TEST_F(ApiUnit, DocsListExactlyTheRoutes) {
  std::ifstream in(std::string(OPENSENSE_SOURCE_DIR) + "/docs/api.md");
  ASSERT_TRUE(in) << "docs/api.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::set<std::string> documented;
  std::regex row(R"(\| (GET|POST|PATCH|DELETE|PUT) \| (/[^ |]*) \|)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), row); it != std::sregex_iterator(); ++it) {
    documented.insert((*it)[1].str() + " " + (*it)[2].str());
  }
  std::set<std::string> served;
  for (const auto& r : api_->routes()) served.insert(r.method + " " + r.pattern);
  EXPECT_EQ(documented, served);
}

}  // namespace
}  // namespace opensense::api
