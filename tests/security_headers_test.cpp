// The security headers on every response of the real binary: a table of routes and outcomes
// (handlers' 2xx/4xx/5xx, the router's 404/405, the server's own 413 and 400).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/http/client.hpp"
#include "opensense_process.hpp"

namespace {

using opensense::testing::OpenSenseProcess;

TEST(SecurityHeaders, OnEveryResponseOverATableOfRoutes) {
  OpenSenseProcess os;
  const nlohmann::json org = os.Cli({"org", "create", "--name", "Headers", "--owner-email", "o@x"});
  ASSERT_TRUE(org.contains("token")) << org;
  ASSERT_TRUE(os.Start({"--roles", "api"})) << os.Log();
  const std::string owner = "Bearer " + org["token"].get<std::string>();
  struct Case {
    std::string method, target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"GET", "/healthz", {}, "", 200},
      {"GET", "/readyz", {}, "", 200},
      {"GET", "/metrics", {}, "", 200},
      {"GET", "/api/v1/devices", {{"Authorization", owner}}, "", 200},
      {"GET", "/api/v1/devices", {}, "", 401},
      {"GET", "/api/v1/devices/424242", {{"Authorization", owner}}, "", 404},
      {"GET", "/api/v1/devices/424242/series.csv", {{"Authorization", owner}}, "", 404},
      {"POST", "/api/v1/sites", {{"Authorization", owner}, {"Content-Type", "application/json"}}, "{bad", 400},
      {"POST", "/api/v1/ingest", {{"Content-Type", "application/json"}}, "{}", 401},
      {"GET", "/internal/mqtt/revoked?since=0", {}, "", 503},
      {"GET", "/api/v1/no/such/route", {}, "", 404},
      // Refused from the header alone (the body is never read).
      {"POST", "/api/v1/ingest", {{"Authorization", "Bearer osd_1_x"}, {"Content-Length", "16777217"}}, "", 413},
  };
  std::set<std::string> request_ids;
  for (const auto& c : cases) {
    auto r = opensense::http::Fetch(os.address(), c.method, c.target, c.headers, c.body);
    ASSERT_TRUE(r) << c.method << " " << c.target << ": " << r.error().message;
    EXPECT_EQ(r->status, c.status) << c.method << " " << c.target << " " << r->body;
    const std::map<std::string, std::string> expected = {
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"X-Frame-Options", "DENY"},
        {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
        {"Cache-Control", "no-store"}};
    // Every answer names its request (the request log and JSON log lines carry the same id).
    const std::string id(r->Header("X-Request-Id").value_or(""));
    EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{16}"))) << c.method << " " << c.target << " " << id;
    EXPECT_TRUE(request_ids.insert(id).second) << "request id repeated: " << id;
    for (const auto& [name, value] : expected) {
      EXPECT_EQ(r->Header(name).value_or("<missing>"), value) << c.method << " " << c.target << " " << name;
      int count = 0;
      for (const auto& [n, v] : r->headers) count += n == name;
      EXPECT_EQ(count, 1) << c.method << " " << c.target << " " << name;
    }
  }
}

}  // namespace

namespace {

// Rate limits per route class come from the settings (docs/configuration.md): login links per
// address and per client, the user API per organisation, ingest per token. Each refusal is a
// 429 with Retry-After, and one class running out leaves the others serving.
TEST(RateLimits, EachRouteClassHasItsOwnConfigurableLimit) {
  OpenSenseProcess os;
  const nlohmann::json org = os.Cli({"org", "create", "--name", "Limits", "--owner-email", "o@x.example"});
  ASSERT_TRUE(org.contains("token")) << org;
  const nlohmann::json device = os.Cli({"device", "create", "--org", std::to_string(org["id"].get<int>()), "--name", "fridge"});
  ASSERT_TRUE(device.contains("token")) << device;
  ASSERT_TRUE(os.Start({"--roles", "api", "--login-links-per-address", "2", "--login-links-per-client", "3",
                        "--api-rate-per-org", "1", "--api-burst-per-org", "3", "--ingest-rate-per-token", "1",
                        "--ingest-burst-per-token", "2"}))
      << os.Log();
  auto post = [&](const std::string& target, const std::string& auth, const std::string& type, const std::string& body) {
    std::vector<std::pair<std::string, std::string>> h = {{"Content-Type", type}};
    if (!auth.empty()) h.emplace_back("Authorization", auth);
    auto r = opensense::http::Fetch(os.address(), "POST", target, h, body);
    EXPECT_TRUE(r) << target;
    return r ? *r : opensense::http::ClientResponse{};
  };
  auto link = [&](const std::string& email) {
    return post("/api/v1/auth/magic-link", "", "application/json", nlohmann::json({{"email", email}}).dump());
  };
  // Login: 2 per address, 3 per client address.
  EXPECT_EQ(link("a@x.example").status, 202);
  EXPECT_EQ(link("a@x.example").status, 202);
  auto per_address = link("a@x.example");
  EXPECT_EQ(per_address.status, 429) << per_address.body;
  EXPECT_TRUE(per_address.Header("Retry-After").has_value());
  EXPECT_EQ(link("b@x.example").status, 202);  // the third link of this client
  EXPECT_EQ(link("c@x.example").status, 429);  // the fourth: per client
  // User API: a burst of 3, then 1 per second (the organisation's tier alone would allow more).
  const std::string owner = "Bearer " + org["token"].get<std::string>();
  int ok = 0, refused = 0;
  for (int i = 0; i < 8; ++i) {
    auto r = opensense::http::Fetch(os.address(), "GET", "/api/v1/devices", {{"Authorization", owner}});
    ASSERT_TRUE(r);
    if (r->status == 200) ++ok;
    if (r->status == 429) {
      ++refused;
      EXPECT_TRUE(r->Header("Retry-After").has_value());
    }
  }
  EXPECT_GE(ok, 3);
  EXPECT_LE(ok, 4);  // 3 + at most one refill if the loop took over a second
  EXPECT_EQ(ok + refused, 8);
  // Ingest: its own class, per token: a burst of 2, untouched by the API's refusals above.
  const std::string dev = "Bearer " + device["token"].get<std::string>();
  int stored = 0, throttled = 0;
  for (int i = 0; i < 5; ++i) {
    auto r = post("/api/v1/ingest?precision=s", dev, "text/plain", fmt::format("r temperature=4.{} {}\n", i, 1794744000 + i));
    if (r.status == 200) ++stored;
    if (r.status == 429) ++throttled;
  }
  EXPECT_GE(stored, 2);
  EXPECT_LE(stored, 3);
  EXPECT_EQ(stored + throttled, 5);
}

// The dashboard (src/web) answers paths no API route matches: its page and files carry their own
// CSP (scripts and styles from this origin only) and the other security headers once each.
TEST(SecurityHeaders, DashboardPageAndAssets) {
  OpenSenseProcess os;
  ASSERT_TRUE(os.Start({"--roles", "api"})) << os.Log();
  auto page = opensense::http::Fetch(os.address(), "GET", "/alerts/7", {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->Header("Cache-Control").value_or(""), "no-cache");
  const std::string csp(page->Header("Content-Security-Policy").value_or(""));
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_EQ(page->Header("X-Frame-Options").value_or(""), "DENY");
  EXPECT_EQ(page->Header("X-Content-Type-Options").value_or(""), "nosniff");
  auto plain = opensense::http::Fetch(os.address(), "GET", "/");
  ASSERT_TRUE(plain);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(plain->body, m, std::regex(R"re(src="(/assets/main-[A-Z0-9]+\.js)")re"))) << plain->body;
  auto js = opensense::http::Fetch(os.address(), "GET", m[1].str(), {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->Header("Content-Encoding").value_or(""), "gzip");
  EXPECT_EQ(js->Header("Cache-Control").value_or(""), "public, max-age=31536000, immutable");
  auto missing = opensense::http::Fetch(os.address(), "GET", "/assets/main-NOPE.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

}  // namespace
