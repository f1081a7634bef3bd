// The dashboard's answers through the Router, as the server would route them: the page for
// client-side routes, immutable hashed assets, gzip, the CSP, and 404s that never become the page.
#include "web/dashboard.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>

namespace opensense::web {
namespace {

const std::vector<Asset>& FakeAssets() {
  static const std::vector<Asset> assets = {
      {"/index.html", "text/html; charset=utf-8", "<html>page</html>", "GZ-PAGE"},
      {"/assets/main-ABC123.js", "text/javascript; charset=utf-8", "console.log(1)", "GZ-JS"},
      {"/assets/main-ABC123.css", "text/css; charset=utf-8", "body{}", ""},
  };
  return assets;
}

http::Router RouterWithApi() {
  http::Router router;
  router.Add("GET", "/api/v1/devices", [](http::Request&) { return http::Response::Json(200, "[]"); });
  router.Add("POST", "/api/v1/ingest", [](http::Request&) { return http::Response::Json(200, "{}"); });
  Dashboard::Install(router, FakeAssets());
  return router;
}

struct Answer {
  http::Response res;
  std::string route;
  std::string Header(std::string_view name) const {
    for (const auto& [k, v] : res.headers) {
      if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
          })) {
        return v;
      }
    }
    return {};
  }
};

Answer Get(const http::Router& router, const std::string& target,
           std::vector<std::pair<std::string, std::string>> headers = {}, const std::string& method = "GET") {
  auto req = http::Request::FromTarget(method, target);
  EXPECT_TRUE(req.has_value());
  req->headers = std::move(headers);
  Answer a;
  a.res = router.Handle(*req, &a.route);
  return a;
}

TEST(Dashboard, ClientRoutesGetThePageWithoutCaching) {
  auto router = RouterWithApi();
  for (const char* path : {"/", "/alerts/12", "/devices/3?range=7d", "/settings", "/index.html"}) {
    Answer a = Get(router, path);
    EXPECT_EQ(a.res.status, 200) << path;
    EXPECT_EQ(a.res.body, "<html>page</html>") << path;
    EXPECT_EQ(a.Header("Content-Type"), "text/html; charset=utf-8");
    EXPECT_EQ(a.Header("Cache-Control"), "no-cache");
    EXPECT_EQ(a.route, "/{dashboard}");
  }
}

TEST(Dashboard, PageRevalidatesWithItsEtag) {
  auto router = RouterWithApi();
  Answer first = Get(router, "/");
  const std::string etag = first.Header("ETag");
  ASSERT_FALSE(etag.empty());
  Answer again = Get(router, "/overview", {{"If-None-Match", etag}});
  EXPECT_EQ(again.res.status, 304);
  EXPECT_TRUE(again.res.body.empty());
  EXPECT_EQ(Get(router, "/", {{"If-None-Match", "\"other\""}}).res.status, 200);
}

TEST(Dashboard, HashedAssetsAreImmutable) {
  auto router = RouterWithApi();
  Answer js = Get(router, "/assets/main-ABC123.js");
  EXPECT_EQ(js.res.status, 200);
  EXPECT_EQ(js.res.body, "console.log(1)");
  EXPECT_EQ(js.Header("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.Header("Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(js.Header("Vary"), "Accept-Encoding");
  EXPECT_TRUE(js.Header("Content-Encoding").empty());
}

TEST(Dashboard, GzipWhenTheClientAcceptsIt) {
  auto router = RouterWithApi();
  Answer js = Get(router, "/assets/main-ABC123.js", {{"Accept-Encoding", "gzip, deflate, br"}});
  EXPECT_EQ(js.res.body, "GZ-JS");
  EXPECT_EQ(js.Header("Content-Encoding"), "gzip");
  Answer page = Get(router, "/", {{"accept-encoding", "br;q=1.0, gzip;q=0.8"}});
  EXPECT_EQ(page.res.body, "GZ-PAGE");
  // q=0 refuses gzip, and a file without a gzip copy is sent as it is.
  EXPECT_EQ(Get(router, "/assets/main-ABC123.js", {{"Accept-Encoding", "gzip;q=0, br"}}).res.body,
            "console.log(1)");
  Answer css = Get(router, "/assets/main-ABC123.css", {{"Accept-Encoding", "gzip"}});
  EXPECT_EQ(css.res.body, "body{}");
  EXPECT_TRUE(css.Header("Content-Encoding").empty());
}

TEST(Dashboard, AcceptEncodingParsing) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_TRUE(AcceptsGzip("deflate, x-gzip"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip; q=0.000, *"));
  EXPECT_FALSE(AcceptsGzip("*;q=0"));
  EXPECT_TRUE(AcceptsGzip("gzip;q=0.001"));
}

TEST(Dashboard, StrictContentSecurityPolicyOnEveryAnswer) {
  auto router = RouterWithApi();
  for (const char* path : {"/", "/assets/main-ABC123.js", "/alerts"}) {
    const std::string csp = Get(router, path).Header("Content-Security-Policy");
    EXPECT_EQ(csp, kContentSecurityPolicy) << path;
  }
  const std::string csp(kContentSecurityPolicy);
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
  EXPECT_NE(csp.find("style-src 'self'"), std::string::npos);
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_NE(csp.find("base-uri 'none'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe"), std::string::npos);
}

TEST(Dashboard, UnknownAssetsAndFilesAre404NotThePage) {
  auto router = RouterWithApi();
  for (const char* path : {"/assets/main-OLD999.js", "/assets/", "/favicon.ico", "/robots.txt", "/alerts/x.json"}) {
    Answer a = Get(router, path);
    EXPECT_EQ(a.res.status, 404) << path;
    EXPECT_EQ(a.res.body.find("page"), std::string::npos) << path;
  }
}

TEST(Dashboard, ApiPathsAreUnaffected) {
  auto router = RouterWithApi();
  EXPECT_EQ(Get(router, "/api/v1/devices").res.body, "[]");
  Answer unknown = Get(router, "/api/v1/nothing-here");
  EXPECT_EQ(unknown.res.status, 404);
  EXPECT_NE(unknown.res.body.find("\"not_found\""), std::string::npos);
  EXPECT_EQ(Get(router, "/api").res.status, 404);
  EXPECT_EQ(Get(router, "/internal/mqtt/x").res.status, 404);
  EXPECT_EQ(Get(router, "/api/v1/ingest").res.status, 405);  // a POST route stays 405 for GET
  EXPECT_EQ(Get(router, "/anything", {}, "POST").res.status, 404);
  EXPECT_EQ(Get(router, "/alerts", {}, "DELETE").res.status, 404);
}

// The embedded build: index.html names hashed files that exist, every JS/CSS file has a gzip copy.
TEST(Dashboard, EmbeddedBuildIsComplete) {
  const auto& assets = EmbeddedAssets();
  const Asset* index = nullptr;
  for (const auto& a : assets) {
    if (a.path == "/index.html") index = &a;
  }
  ASSERT_NE(index, nullptr);
  const std::string html(index->body);
  EXPECT_EQ(html.find("<script>"), std::string::npos) << "no inline script";
  EXPECT_EQ(html.find("<style"), std::string::npos) << "no inline style";
  EXPECT_EQ(html.find("style="), std::string::npos) << "no inline style";
  std::regex ref(R"re((?:src|href)="(/assets/[^"]+)")re");
  int refs = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), ref); it != std::sregex_iterator(); ++it) {
    const std::string path = (*it)[1];
    ++refs;
    EXPECT_TRUE(std::regex_match(path, std::regex(R"(/assets/[a-z]+-[A-Za-z0-9]{8,}\.(js|css|svg))"))) << path;
    bool found = false;
    for (const auto& a : assets) {
      if (a.path == path) {
        found = true;
        if (path.ends_with(".js") || path.ends_with(".css")) {
          EXPECT_FALSE(a.gzip.empty()) << path;
        }
      }
    }
    EXPECT_TRUE(found) << path << " is named by index.html but not embedded";
  }
  EXPECT_GE(refs, 3);  // script, stylesheet, icon
}

}  // namespace
}  // namespace opensense::web
