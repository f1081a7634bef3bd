#include "mqtt_plugin/hook_client.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace opensense::mqtt {
namespace {

TEST(ParseHookUrl, AcceptsHttpHostPort) {
  auto t = ParseHookUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, "8080");
  EXPECT_EQ(t->path_prefix, "");
  auto v6 = ParseHookUrl("http://[::1]:9000/prefix/");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->path_prefix, "/prefix");
  for (const char* bad : {"", "127.0.0.1:8080", "https://a:1", "http://a", "http://:80", "http://a:0",
                          "http://a:65536", "http://a:80x", "http://[::1:80"}) {
    EXPECT_FALSE(ParseHookUrl(bad)) << bad;
  }
}

TEST(ParseHttpResponse, CompleteIncompleteAndMalformed) {
  auto ok = ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\n{}");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "{}");
  auto empty = ParseHttpResponse("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 204);
  for (const char* partial : {"", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}"}) {
    auto r = ParseHttpResponse(partial);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kUnavailable) << partial;
  }
  for (const char* bad : {"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                          "HTTP/1.1 099 OK\r\n\r\n"}) {
    auto r = ParseHttpResponse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ParseHttpResponse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 5));
  EXPECT_EQ(ParseHttpResponse(std::string(70000, 'x')).error().code, ErrorCode::kInvalidArgument);
}

// A one-connection server on 127.0.0.1 that answers with `answer` after `delay`.
class OneShotServer {
 public:
  OneShotServer(std::string answer, std::chrono::milliseconds delay) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, answer, delay] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[4096];
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n > 0) request_.assign(buf, static_cast<std::size_t>(n));
      std::this_thread::sleep_for(delay);
      (void)::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~OneShotServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  HookTarget Target() const { return {"127.0.0.1", std::to_string(port_), ""}; }
  std::string request_;

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(HookClient, SendsTheSecretAndReadsTheAnswer) {
  std::string request;
  {
    OneShotServer s("HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"result\":\"deny\"}",
                    std::chrono::milliseconds(0));
    HookClient c(s.Target(), "s3cret", std::chrono::milliseconds(2000));
    auto r = c.Post("/internal/mqtt/auth", R"({"username":"a"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, R"({"result":"deny"})");
  }
}

TEST(HookClient, GivesUpAfterTheTimeout) {
  OneShotServer s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", std::chrono::milliseconds(1500));
  HookClient c(s.Target(), "s", std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  auto r = c.Get("/internal/mqtt/revoked");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_LT(took, std::chrono::milliseconds(1000));
}

TEST(HookClient, RefusedConnectionIsUnavailable) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  ::close(fd);  // nobody listens there now
  HookClient c({"127.0.0.1", std::to_string(port), ""}, "s", std::chrono::milliseconds(500));
  auto r = c.Get("/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace opensense::mqtt
