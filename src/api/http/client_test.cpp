// The blocking client against the real server.
#include "api/http/client.hpp"

#include <gtest/gtest.h>

#include "api/http/server.hpp"
#include "api/http/test_util.hpp"

namespace opensense::http {
namespace {

using namespace std::chrono_literals;
using testing::Gate;
using testing::Since;
using testing::StartServer;
using testing::TestOptions;

TEST(ClientTest, BadAddressIsInvalidArgument) {
  for (const char* address : {"localhost", "127.0.0.1:", "127.0.0.1:http", "[::1]80"}) {
    auto res = Fetch(address, "GET", "/");
    ASSERT_FALSE(res.has_value()) << address;
    EXPECT_EQ(res.error().code, ErrorCode::kInvalidArgument) << address;
  }
}

TEST(ClientTest, RefusedConnectionNamesTheAddress) {
  std::string address;
  {
    auto server = StartServer(Router());
    ASSERT_NE(server, nullptr);
    address = server->address();
  }  // now nothing listens there
  auto res = Fetch(address, "GET", "/", {}, {}, 2s);
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(res.error().message.find(address), std::string::npos) << res.error().message;
}

TEST(ClientTest, TimeoutBoundsTheWholeExchange) {
  Gate release;
  Router router;
  router.Add("GET", "/slow", [&](Request&) {
    release.Wait();
    return Response::Text(200, "late");
  });
  auto server = StartServer(std::move(router));
  ASSERT_NE(server, nullptr);
  auto start = testing::SteadyClock::now();
  auto res = Fetch(server->address(), "GET", "/slow", {}, {}, 200ms);
  EXPECT_LT(Since(start), 2s);
  release.Open();
  ASSERT_FALSE(res.has_value());
  EXPECT_EQ(res.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(res.error().message.find("timed out"), std::string::npos) << res.error().message;
}

TEST(ClientTest, KeepAliveClientReconnectsAfterTheServerCloses) {
  Router router;
  router.Add("GET", "/bye",
             [](Request&) { return Response::Text(200, "bye").SetHeader("Connection", "close"); });
  router.Add("GET", "/hello", [](Request&) { return Response::Text(200, "hello"); });
  ServerOptions options = TestOptions();
  options.idle_timeout = 100ms;
  auto server = StartServer(std::move(router), options);
  ASSERT_NE(server, nullptr);
  KeepAliveClient client(server->address());
  ASSERT_TRUE(client.Send("GET", "/hello").has_value());
  ASSERT_TRUE(client.Send("GET", "/bye").has_value());
  auto after_close = client.Send("GET", "/hello");
  ASSERT_TRUE(after_close.has_value()) << after_close.error().ToString();
  EXPECT_EQ(client.connections_opened(), 2);
  // The server closes the idle connection; the client notices before its next request.
  std::this_thread::sleep_for(400ms);  // the test is about the idle timeout passing
  auto after_idle = client.Send("GET", "/hello");
  ASSERT_TRUE(after_idle.has_value()) << after_idle.error().ToString();
  EXPECT_EQ(after_idle->body, "hello");
  EXPECT_EQ(client.connections_opened(), 3);
}

TEST(ClientTest, HeadRequestReadsNoBody) {
  Router router;
  router.Add("GET", "/hello", [](Request&) { return Response::Text(200, "hello"); });
  auto server = StartServer(std::move(router));
  ASSERT_NE(server, nullptr);
  KeepAliveClient client(server->address());
  auto head = client.Send("HEAD", "/hello");
  ASSERT_TRUE(head.has_value()) << head.error().ToString();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  EXPECT_EQ(head->Header("Content-Length"), "5");
  auto get = client.Send("GET", "/hello");
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->body, "hello");
  EXPECT_EQ(client.connections_opened(), 1);
}

}  // namespace
}  // namespace opensense::http
