// Router and the Request/Response value types: pure logic, no sockets.
#include <gtest/gtest.h>

#include <stdexcept>

#include "api/http/server.hpp"
#include "api/http/wire.hpp"

namespace opensense::http {
namespace {

Handler Named(std::string name) {
  return [name](Request& req) {
    std::string body = name;
    for (const auto& [key, value] : req.params) body += " " + key + "=" + value;
    return Response::Text(200, body);
  };
}

Request Make(std::string method, std::string target) {
  auto req = Request::FromTarget(std::move(method), std::move(target));
  EXPECT_TRUE(req.has_value());
  return req ? std::move(*req) : Request{};
}

TEST(RouterTest, MatchesLiteralAndParameterSegments) {
  Router router;
  router.Add("GET", "/api/v1/devices/{id}/series", Named("series"));
  router.Add("GET", "/api/v1/devices", Named("list"));
  Request req = Make("GET", "/api/v1/devices/d%2F7/series?from=1");
  RouteMatch match = router.Match(req);
  ASSERT_EQ(match.status, 200);
  ASSERT_NE(match.handler, nullptr);
  EXPECT_EQ(match.route, "/api/v1/devices/{id}/series");
  EXPECT_EQ(req.params.at("id"), "d/7");  // decoded after splitting: %2F stays in its segment
  Request list = Make("GET", "/api/v1/devices");
  EXPECT_EQ(router.Handle(list).body, "list");
}

TEST(RouterTest, LiteralSegmentBeatsParameter) {
  Router router;
  router.Add("GET", "/devices/{id}", Named("one"));
  router.Add("GET", "/devices/new", Named("new"));
  router.Add("GET", "/{section}/{id}", Named("generic"));
  Request a = Make("GET", "/devices/new");
  EXPECT_EQ(router.Handle(a).body, "new");
  Request b = Make("GET", "/devices/7");
  EXPECT_EQ(router.Handle(b).body, "one id=7");
  Request c = Make("GET", "/sites/3");
  EXPECT_EQ(router.Handle(c).body, "generic id=3 section=sites");
}

TEST(RouterTest, ParameterNeverMatchesAnEmptySegmentOrExtraSegments) {
  Router router;
  router.Add("GET", "/devices/{id}", Named("one"));
  for (const char* target : {"/devices/", "/devices", "/devices/7/x", "/devices//"}) {
    Request req = Make("GET", target);
    EXPECT_EQ(router.Match(req).status, 404) << target;
  }
}

TEST(RouterTest, UnknownPathIs404JsonError) {
  Router router;
  router.Add("GET", "/a", Named("a"));
  Request req = Make("GET", "/b");
  std::string route = "unset";
  Response res = router.Handle(req, &route);
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(route, "");
  EXPECT_EQ(res.body, R"({"error":{"code":"not_found","message":"no such resource: /b"}})");
  ASSERT_FALSE(res.headers.empty());
  EXPECT_EQ(res.headers[0].second, "application/json");
}

TEST(RouterTest, OtherMethodIs405WithAllow) {
  Router router;
  router.Add("GET", "/devices/{id}", Named("get"));
  router.Add("DELETE", "/devices/{id}", Named("delete"));
  router.Add("POST", "/devices", Named("create"));
  Request req = Make("PUT", "/devices/7");
  RouteMatch match = router.Match(req);
  EXPECT_EQ(match.status, 405);
  EXPECT_EQ(match.allow, "DELETE, GET, HEAD");
  EXPECT_EQ(match.handler, nullptr);
  Response res = router.Handle(req);
  EXPECT_EQ(res.status, 405);
  bool has_allow = false;
  for (const auto& [name, value] : res.headers) {
    if (name == "Allow") has_allow = value == "DELETE, GET, HEAD";
  }
  EXPECT_TRUE(has_allow);
  EXPECT_NE(res.body.find("method_not_allowed"), std::string::npos);
}

TEST(RouterTest, HeadFallsBackToGetUnlessAHeadRouteExists) {
  Router router;
  router.Add("GET", "/a", Named("get a"));
  router.Add("GET", "/b", Named("get b"));
  router.Add("HEAD", "/b", Named("head b"));
  Request a = Make("HEAD", "/a");
  EXPECT_EQ(router.Handle(a).body, "get a");
  Request b = Make("HEAD", "/b");
  EXPECT_EQ(router.Handle(b).body, "head b");
}

TEST(RouterTest, MalformedPathEncodingIs400) {
  Router router;
  router.Add("GET", "/devices/{id}", Named("one"));
  Request req;
  req.method = "GET";
  req.path = "/devices/%zz";
  EXPECT_EQ(router.Handle(req).status, 400);
}

TEST(RouterTest, HandlerThatThrowsIsAnswered500) {
  Router router;
  router.Add("GET", "/std", [](Request&) -> Response { throw std::runtime_error("boom"); });
  router.Add("GET", "/int", [](Request&) -> Response { throw 42; });
  for (const char* target : {"/std", "/int"}) {
    Request req = Make("GET", target);
    Response res = router.Handle(req);
    EXPECT_EQ(res.status, 500);
    EXPECT_NE(res.body.find("\"code\":\"internal\""), std::string::npos);
    EXPECT_EQ(res.body.find("boom"), std::string::npos);  // internals stay in the log
  }
}

TEST(RouterDeathTest, DuplicateOrMalformedRoutesAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Router router;
        router.Add("GET", "/a/{id}", Named("x"));
        router.Add("GET", "/a/{id}", Named("y"));
      },
      "route added twice");
  EXPECT_DEATH({ Router().Add("GET", "a", Named("x")); }, "must start with '/'");
  EXPECT_DEATH({ Router().Add("GET", "/a/x{id}", Named("x")); }, "whole segment");
  EXPECT_DEATH({ Router().Add("GET", "/{id}/{id}", Named("x")); }, "used twice");
}

TEST(RequestTest, QueryIsDecoded) {
  Request req = Make("GET", "/s?a=1&b=x+y&b=%2Fz%20&c&&=v&d=");
  EXPECT_EQ(req.path, "/s");
  EXPECT_EQ(req.Query("a"), "1");
  EXPECT_EQ(req.Query("c"), "");
  EXPECT_EQ(req.Query("d"), "");
  EXPECT_EQ(req.Query(""), "v");
  EXPECT_EQ(req.Query("missing"), std::nullopt);
  auto [begin, end] = req.query.equal_range("b");
  std::vector<std::string> bs;
  for (auto it = begin; it != end; ++it) bs.push_back(it->second);
  EXPECT_EQ(bs, (std::vector<std::string>{"x y", "/z "}));
}

TEST(RequestTest, MalformedTargetsAreRefused) {
  for (const char* target : {"/s?a=%", "/s?a=%4", "/s?a=%zz", "/s?a=%00", "s", "", "*"}) {
    EXPECT_FALSE(Request::FromTarget("GET", target).has_value()) << target;
  }
}

TEST(RequestTest, HeaderLookupIgnoresCase) {
  Request req;
  req.headers = {{"Content-Type", "text/csv"}, {"X-Twice", "1"}, {"x-twice", "2"}};
  EXPECT_EQ(req.Header("content-type"), "text/csv");
  EXPECT_EQ(req.Header("X-TWICE"), "1");
  EXPECT_EQ(req.Header("Accept"), std::nullopt);
}

TEST(ResponseTest, ErrorBodyIsEscapedJson) {
  Response res = Response::Error(400, "invalid_argument", "bad \"x\"\n\\ \x01");
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(res.body, R"({"error":{"code":"invalid_argument","message":"bad \"x\"\n\\ \u0001"}})");
  Response text = Response::Text(201, "ok");
  EXPECT_EQ(text.headers[0].second, "text/plain; charset=utf-8");
  text.SetHeader("content-type", "text/csv");
  EXPECT_EQ(text.headers.size(), 1u);
  EXPECT_EQ(text.headers[0].second, "text/csv");
}

TEST(RouterTest, FallbackAnswersUnmatchedPathsOnly) {
  Router router;
  router.Add("GET", "/api/v1/devices", [](Request&) { return Response::Text(200, "devices"); });
  router.SetFallback("/*", [](Request& req) { return Response::Text(200, "page " + req.path); });
  auto get = [&](const std::string& method, const std::string& target, std::string* route) {
    auto req = Request::FromTarget(method, target);
    EXPECT_TRUE(req.has_value());
    return router.Handle(*req, route);
  };
  std::string route;
  EXPECT_EQ(get("GET", "/api/v1/devices", &route).body, "devices");
  EXPECT_EQ(route, "/api/v1/devices");
  Response page = get("GET", "/devices/7", &route);
  EXPECT_EQ(page.body, "page /devices/7");
  EXPECT_EQ(route, "/*");
  // A path that exists with another method is still 405, not the fallback.
  Response wrong = get("POST", "/api/v1/devices", &route);
  EXPECT_EQ(wrong.status, 405);
}

TEST(WireTest, AbsoluteFormTargetsBecomeOriginForm) {
  EXPECT_EQ(wire::OriginForm("http://h:80/a/b?x=1"), "/a/b?x=1");
  EXPECT_EQ(wire::OriginForm("http://h"), "/");
  EXPECT_EQ(wire::OriginForm("http://h?x"), "/?x");
  EXPECT_EQ(wire::OriginForm("/plain?x=http://y"), "/plain?x=http://y");
  EXPECT_EQ(wire::OriginForm("://x"), "://x");
}

}  // namespace
}  // namespace opensense::http
