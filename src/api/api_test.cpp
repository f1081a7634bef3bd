// Routing-level tests of the API without a socket, and the check that docs/api.md lists exactly
// the routes that exist.
#include "api/api.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

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

// The chart cache: a repeated chart request is answered from memory, and never with an answer
// that an acknowledged write, a time zone change or another organisation's request would make
// wrong.
TEST_F(ApiUnit, ChartAnswersAreCachedUntilTheDevicesDataChanges) {
  std::string admin = TokenFor(Role::kAdmin);
  auto id = [&](const std::string& name) {
    auto r = Call("POST", "/api/v1/devices", admin, R"({"name":")" + name + R"("})");
    EXPECT_EQ(r.status, 201) << r.body;
    return nlohmann::json::parse(r.body).at("id").get<DeviceId>();
  };
  const DeviceId a = id("a"), b = id("b");
  auto ingest = [&](DeviceId d, TimestampMs ts, double v) {
    auto r = store_->Ingest(org_, {Reading{d, "temperature", "", ts, v}}).get();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->accepted, 1u);
  };
  ingest(a, kNow - 30 * kMsPerHour, 3.5);
  ingest(a, kNow - 2 * kMsPerHour, 4.5);
  ingest(b, kNow - 2 * kMsPerHour, 9);
  const std::string daily = fmt::format("/api/v1/devices/{}/series?metric=temperature&resolution=1d&from={}&to={}", a,
                                        kNow - 3 * kMsPerDay, kNow + kMsPerDay);
  auto hits = [&] { return metrics_.GetCounter("opensense_api_chart_cache_hits_total", "").Value(); };
  auto misses = [&] { return metrics_.GetCounter("opensense_api_chart_cache_misses_total", "").Value(); };
  auto count = [](const http::Response& r) {
    std::int64_t n = 0;
    const auto j = nlohmann::json::parse(r.body);
    for (const auto& p : j.at("points")) n += p.at("count").get<std::int64_t>();
    return n;
  };

  auto first = Call("GET", daily, admin);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(count(first), 2) << first.body;
  EXPECT_EQ(misses(), 1u);
  EXPECT_EQ(hits(), 0u);
  auto again = Call("GET", daily, admin);
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(hits(), 1u);

  // Another device's readings leave a's answer cached.
  ingest(b, kNow - kMsPerHour, 10);
  EXPECT_EQ(Call("GET", daily, admin).body, first.body);
  EXPECT_EQ(hits(), 2u);

  // An acknowledged reading of a is in the very next answer.
  ingest(a, kNow - kMsPerHour, 6);
  auto fresh = Call("GET", daily, admin);
  EXPECT_EQ(count(fresh), 3);
  EXPECT_EQ(misses(), 2u);
  // Compaction moves the readings into chunks and rollups: same answer, computed again.
  ASSERT_TRUE(store_->Compact());
  auto compacted = Call("GET", daily, admin);
  EXPECT_EQ(compacted.body, fresh.body);
  EXPECT_EQ(misses(), 3u);

  // Local days follow the organisation's new time zone at once.
  ASSERT_TRUE(store_->SetOrganizationTimeZone(org_, "Pacific/Auckland"));
  auto moved = Call("GET", daily, admin);
  ASSERT_EQ(moved.status, 200);
  EXPECT_NE(moved.body, fresh.body);
  EXPECT_EQ(count(moved), 3);
  EXPECT_EQ(misses(), 4u);

  // Another organisation asking for the same target gets no answer, cached or not.
  OrgId other = store_->CreateOrganization({"B", "UTC", Tier::kFree})->id;
  auto u = store_->CreateUser(other, "owner@b.example", Role::kOwner);
  std::string other_token = tokens_->IssueUserToken(other, u->id, Role::kOwner, "")->token;
  EXPECT_EQ(Call("GET", daily, other_token).status, 404);

  // Without 'to' (it defaults to now) the answer is computed and not kept.
  const auto before_hits = hits(), before_misses = misses();
  auto open_ended = fmt::format("/api/v1/devices/{}/series?metric=temperature&resolution=1h&from={}", a, kNow - kMsPerDay);
  EXPECT_EQ(Call("GET", open_ended, admin).status, 200);
  EXPECT_EQ(Call("GET", open_ended, admin).status, 200);
  EXPECT_EQ(hits(), before_hits);
  EXPECT_EQ(misses(), before_misses);
}

TEST_F(ApiUnit, LatestOfEveryDeviceListsQuietDevicesAndEscapesNames) {
  std::string viewer = TokenFor(Role::kViewer);
  DeviceId busy = store_->CreateDevice({org_, "Fridge \"A\"\\1", {}, {}, {}})->id;
  DeviceId quiet = store_->CreateDevice({org_, "quiet", {}, {}, {}})->id;
  ASSERT_TRUE(store_->Ingest(org_, {Reading{busy, "temperature", "", kNow - 2000, 3.25},
                                    Reading{busy, "humidity", "", kNow - 1000, 61}}).get());
  auto r = Call("GET", "/api/v1/latest", viewer);
  ASSERT_EQ(r.status, 200);
  auto j = nlohmann::json::parse(r.body);
  ASSERT_EQ(j.at("devices").size(), 2u);
  for (const auto& d : j.at("devices")) {
    if (d.at("device") == busy) {
      EXPECT_EQ(d.at("name"), "Fridge \"A\"\\1");
      EXPECT_EQ(d.at("last_seen"), kNow - 1000);
      ASSERT_EQ(d.at("metrics").size(), 2u);
      EXPECT_EQ(d.at("metrics")[0].at("metric"), "humidity");
      EXPECT_EQ(d.at("metrics")[1].at("v"), 3.25);
      EXPECT_EQ(d.at("metrics")[1].at("unit"), "Cel");
      EXPECT_EQ(d.at("metrics")[1].at("t"), kNow - 2000);
    } else {
      EXPECT_EQ(d.at("device"), quiet);
      EXPECT_TRUE(d.at("metrics").empty());
      EXPECT_TRUE(d.at("last_seen").is_null());
    }
  }
}

TEST_F(ApiUnit, ChartCacheOfZeroBytesComputesEveryAnswer) {
  ApiOptions o;
  o.chart_cache_bytes = 0;
  Api api(store_.get(), tokens_.get(), &metrics_, &clock_, o);
  http::Router router = api.BuildRouter();
  std::string admin = TokenFor(Role::kAdmin);
  DeviceId d = store_->CreateDevice({org_, "d", {}, {}, {}})->id;
  ASSERT_TRUE(store_->Ingest(org_, {Reading{d, "temperature", "", kNow - kMsPerHour, 1}}).get());
  const std::string target = fmt::format("/api/v1/devices/{}/series?metric=temperature&resolution=1h&from={}&to={}", d,
                                         kNow - kMsPerDay, kNow);
  for (int i = 0; i < 2; ++i) {
    auto req = http::Request::FromTarget("GET", target);
    req->headers.emplace_back("Authorization", "Bearer " + admin);
    EXPECT_EQ(router.Handle(*req).status, 200);
  }
  EXPECT_EQ(metrics_.GetCounter("opensense_api_chart_cache_hits_total", "").Value(), 0u);
  EXPECT_EQ(metrics_.GetCounter("opensense_api_chart_cache_misses_total", "").Value(), 0u);
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
