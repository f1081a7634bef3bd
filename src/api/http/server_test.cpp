// The server over real sockets on 127.0.0.1, port 0. Timeouts are short; a test waits on a
// signal (a Gate, a closed connection, a response) rather than a sleep, except where the test is
// about time (slowloris, idle timeout), and then bounds are generous for a loaded machine.
#include "api/http/server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "api/http/client.hpp"
#include "api/http/test_util.hpp"

namespace opensense::http {
namespace {

using namespace std::chrono_literals;
using testing::BodyOf;
using testing::Gate;
using testing::RawConnection;
using testing::Since;
using testing::StartServer;
using testing::StatusOf;
using testing::TestOptions;
using SteadyClock = std::chrono::steady_clock;

Router EchoRouter() {
  Router router;
  router.Add("GET", "/hello", [](Request&) { return Response::Text(200, "hello"); });
  router.Add("GET", "/api/v1/devices/{id}/series", [](Request& req) {
    return Response::Json(200, "{\"id\":\"" + req.params.at("id") + "\",\"from\":\"" +
                                   req.Query("from").value_or("") + "\"}");
  });
  router.Add("POST", "/echo", [](Request& req) {
    return Response::Text(200, req.body, std::string(req.Header("content-type").value_or("")));
  });
  router.Add("GET", "/peer", [](Request& req) { return Response::Text(200, req.remote_address); });
  router.Add("GET", "/query", [](Request& req) {
    std::string out;
    for (const auto& [key, value] : req.query) out += key + "=" + value + ";";
    return Response::Text(200, out);
  });
  return router;
}

std::string Get(const Server& server, const std::string& target, int* status = nullptr) {
  auto res = Fetch(server.address(), "GET", target, {}, {}, 5s);
  EXPECT_TRUE(res.has_value()) << res.error().ToString();
  if (!res) return {};
  if (status != nullptr) *status = res->status;
  return res->body;
}

TEST(ServerTest, PortZeroReportsTheBoundPort) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->port(), 0);
  EXPECT_EQ(server->address(), "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(Get(*server, "/hello"), "hello");
}

TEST(ServerTest, ListensOnIpv6Loopback) {
  ServerOptions options = TestOptions();
  options.listen = "[::1]:0";
  auto server = Server::Start(options, EchoRouter());
  if (!server && server.error().code == ErrorCode::kUnavailable) {
    GTEST_SKIP() << "no IPv6 loopback here: " << server.error().message;
  }
  ASSERT_TRUE(server.has_value()) << server.error().ToString();
  EXPECT_EQ((*server)->address(), "[::1]:" + std::to_string((*server)->port()));
  auto res = Fetch((*server)->address(), "GET", "/peer");
  ASSERT_TRUE(res.has_value()) << res.error().ToString();
  EXPECT_EQ(res->body.rfind("[::1]:", 0), 0u) << res->body;
}

TEST(ServerTest, BusyPortFailsAndNamesTheAddress) {
  auto first = StartServer(EchoRouter());
  ASSERT_NE(first, nullptr);
  ServerOptions options = TestOptions();
  options.listen = first->address();
  auto second = Server::Start(options, EchoRouter());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(second.error().message.find(first->address()), std::string::npos)
      << second.error().message;
}

TEST(ServerTest, BadOptionsAreRefused) {
  for (const char* listen : {"8080", "127.0.0.1:", "127.0.0.1:99999", ":8080", "[::1]8080"}) {
    ServerOptions options = TestOptions();
    options.listen = listen;
    auto server = Server::Start(options, Router());
    ASSERT_FALSE(server.has_value()) << listen;
    EXPECT_EQ(server.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(server.error().message.find(listen), std::string::npos) << server.error().message;
  }
  ServerOptions options = TestOptions();
  options.worker_threads = 0;
  EXPECT_FALSE(Server::Start(options, Router()).has_value());
}

TEST(ServerTest, RoutesWithParamsQuery404And405) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  int status = 0;
  EXPECT_EQ(Get(*server, "/api/v1/devices/d-7/series?from=2024-01-01T00%3A00Z", &status),
            R"({"id":"d-7","from":"2024-01-01T00:00Z"})");
  EXPECT_EQ(status, 200);

  auto missing = Fetch(server->address(), "GET", "/nope");
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->Header("content-type"), "application/json");
  EXPECT_NE(missing->body.find(R"({"error":{"code":"not_found")"), std::string::npos);

  auto wrong = Fetch(server->address(), "DELETE", "/hello");
  ASSERT_TRUE(wrong.has_value());
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->Header("Allow"), "GET, HEAD");
  EXPECT_NE(wrong->body.find("method_not_allowed"), std::string::npos);
}

TEST(ServerTest, QueryIsDecodedAndBadEncodingIs400) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Get(*server, "/query?b=x+y&a=%2F%E2%82%AC&b=2&flag"), "a=/€;b=x y;b=2;flag=;");
  int status = 0;
  std::string body = Get(*server, "/query?a=%zz", &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(body.find("invalid_argument"), std::string::npos);
  EXPECT_EQ(Get(*server, "http://example.com/hello"), "hello");  // absolute form
}

TEST(ServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  KeepAliveClient client(server->address());
  std::set<std::string> peers;
  for (int i = 0; i < 100; ++i) {
    auto res = client.Send("GET", "/peer");
    ASSERT_TRUE(res.has_value()) << res.error().ToString();
    ASSERT_EQ(res->status, 200);
    EXPECT_EQ(res->Header("Connection"), std::nullopt);  // HTTP/1.1: keep-alive is the default
    peers.insert(res->body);
  }
  EXPECT_EQ(peers.size(), 1u);  // one client port: one connection
  EXPECT_EQ(client.connections_opened(), 1);
  auto posted = client.Send("POST", "/echo", {{"Content-Type", "text/csv"}}, "a,b\n1,2\n");
  ASSERT_TRUE(posted.has_value());
  EXPECT_EQ(posted->body, "a,b\n1,2\n");
  EXPECT_EQ(posted->Header("content-type"), "text/csv");
}

TEST(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(
      conn.Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string first = conn.ReadResponse(5s);
  std::string second = conn.ReadResponse(5s);
  std::string third = conn.ReadResponse(5s);
  EXPECT_EQ(BodyOf(first), "hello");
  EXPECT_EQ(BodyOf(second), "abc");
  EXPECT_EQ(StatusOf(third), 404);
}

TEST(ServerTest, ConnectionCloseIsHonoured) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::string all;
  EXPECT_TRUE(conn.WaitClosed(5s, &all));
  EXPECT_EQ(StatusOf(all), 200);
  EXPECT_NE(all.find("Connection: close\r\n"), std::string::npos) << all;
  EXPECT_EQ(BodyOf(all), "hello");
}

TEST(ServerTest, Http10ClosesUnlessKeepAliveIsAsked) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  RawConnection once(server->port());
  ASSERT_TRUE(once.Send("GET /hello HTTP/1.0\r\n\r\n"));
  std::string all;
  EXPECT_TRUE(once.WaitClosed(5s, &all));
  EXPECT_EQ(all.rfind("HTTP/1.0 200", 0), 0u) << all;

  RawConnection kept(server->port());
  ASSERT_TRUE(kept.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_EQ(BodyOf(kept.ReadResponse(5s)), "hello");
  ASSERT_TRUE(kept.Send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_EQ(BodyOf(kept.ReadResponse(5s)), "hello");
}

TEST(ServerTest, HeadAnswersHeadersOnly) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string head = conn.ReadResponse(5s, /*head=*/true);
  EXPECT_EQ(StatusOf(head), 200);
  EXPECT_NE(head.find("Content-Length: 5\r\n"), std::string::npos) << head;
  EXPECT_EQ(BodyOf(head), "");
  // The next answer on the same connection starts cleanly: no body was sent for HEAD.
  ASSERT_TRUE(conn.Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(BodyOf(conn.ReadResponse(5s)), "hello");
}

TEST(ServerTest, ExpectContinueGetsAnInterimAnswer) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  EXPECT_EQ(conn.ReadResponse(5s), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(conn.Send("12345"));
  EXPECT_EQ(BodyOf(conn.ReadResponse(5s)), "12345");
}

TEST(ServerTest, OversizedBodyIs413AndTheServerKeepsServing) {
  ServerOptions options = TestOptions();
  options.max_body_bytes = 1024;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  auto fits = Fetch(server->address(), "POST", "/echo", {}, std::string(1024, 'a'));
  ASSERT_TRUE(fits.has_value());
  EXPECT_EQ(fits->status, 200);

  auto big = Fetch(server->address(), "POST", "/echo", {}, std::string(1025, 'a'));
  ASSERT_TRUE(big.has_value()) << big.error().ToString();
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(big->Header("content-type"), "application/json");
  EXPECT_NE(big->body.find(R"("code":"payload_too_large")"), std::string::npos) << big->body;

  // A chunked body has no declared length: it is cut when it crosses the limit.
  RawConnection chunked(server->port());
  ASSERT_TRUE(
      chunked.Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "400\r\n" +
                   std::string(1024, 'b') + "\r\n10\r\n" + std::string(16, 'c') + "\r\n0\r\n\r\n"));
  EXPECT_EQ(StatusOf(chunked.ReadResponse(5s)), 413);
  EXPECT_TRUE(chunked.WaitClosed(5s));

  EXPECT_EQ(Get(*server, "/hello"), "hello");
}

TEST(ServerTest, HugeDeclaredBodyIsRefusedWithoutReadingIt) {
  ServerOptions options = TestOptions();
  options.max_body_bytes = 1 << 20;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  auto start = SteadyClock::now();
  ASSERT_TRUE(conn.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n"));
  conn.Send(std::string(1 << 20, 'x'));  // part of the 100 MB; may fail once the server closes
  std::string answer = conn.ReadResponse(5s);
  EXPECT_EQ(StatusOf(answer), 413) << answer.substr(0, 200);
  EXPECT_NE(answer.find("Connection: close"), std::string::npos);
  EXPECT_TRUE(conn.WaitClosed(5s));
  EXPECT_LT(Since(start), 3s);
  EXPECT_EQ(Get(*server, "/hello"), "hello");
}

TEST(ServerTest, OversizedHeaderIs431) {
  ServerOptions options = TestOptions();
  options.max_header_bytes = 1024;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(
      conn.Send("GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'h') + "\r\n\r\n"));
  std::string answer = conn.ReadResponse(5s);
  EXPECT_EQ(StatusOf(answer), 431) << answer;
  EXPECT_NE(BodyOf(answer).find(R"("code":"header_too_large")"), std::string::npos);
  EXPECT_TRUE(conn.WaitClosed(5s));
  EXPECT_EQ(Get(*server, "/hello"), "hello");
}

TEST(ServerTest, MalformedRequestsAre400AndNeverCrashTheServer) {
  auto server = StartServer(EchoRouter());
  ASSERT_NE(server, nullptr);
  const std::vector<std::string> garbage = {
      "GARBAGE\r\n\r\n",
      "GET /hello\r\n\r\n",
      "GET /hello HTTP/1.1 extra\r\n\r\n",
      "GET  /hello HTTP/1.1\r\n\r\n",
      "GET /hello HTTP/1.1\r\nNo colon here\r\n\r\n",
      "GET /hello HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "GET /hello HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "G\x01T /hello HTTP/1.1\r\n\r\n",
      std::string("GET /he\0llo HTTP/1.1\r\n\r\n", 25),
      "GET /hello HTTP/2.0\r\n\r\n",
      "GET /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
  };
  for (const std::string& request : garbage) {
    RawConnection conn(server->port());
    ASSERT_TRUE(conn.ok());
    conn.Send(request);
    std::string answer;
    auto start = SteadyClock::now();
    EXPECT_TRUE(conn.WaitClosed(5s, &answer)) << request;
    EXPECT_LT(Since(start), 1s) << request;
    EXPECT_EQ(StatusOf(answer), 400) << request << " -> " << answer;
    EXPECT_NE(BodyOf(answer).find(R"({"error":{"code":"invalid_argument")"), std::string::npos);
  }
  // A well-framed request whose target is not a path is answered 400; the connection stays.
  RawConnection relative(server->port());
  ASSERT_TRUE(relative.Send("GET hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(StatusOf(relative.ReadResponse(5s)), 400);
  ASSERT_TRUE(relative.Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(BodyOf(relative.ReadResponse(5s)), "hello");
  EXPECT_EQ(Get(*server, "/hello"), "hello");
}

TEST(ServerTest, RandomBytesNeverCrashTheServer) {
  ServerOptions options = TestOptions();
  options.header_timeout = 200ms;
  options.body_timeout = 200ms;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  std::mt19937 rng(20240607);
  const std::vector<std::string> prefixes = {
      "", "GET / HTTP/1.1\r\n", "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n",
      "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"};
  for (int i = 0; i < 200; ++i) {
    std::string request = prefixes[i % prefixes.size()];
    std::size_t n = rng() % 300;
    for (std::size_t j = 0; j < n; ++j) {
      // Mostly printable, with CR/LF, ':' and raw bytes mixed in.
      std::uint32_t r = rng() % 100;
      request.push_back(r < 5    ? '\r'
                        : r < 10 ? '\n'
                        : r < 15 ? ':'
                        : r < 20 ? static_cast<char>(rng())
                                 : static_cast<char>(' ' + rng() % 95));
    }
    RawConnection conn(server->port());
    ASSERT_TRUE(conn.ok()) << i;
    conn.Send(request);
  }  // each closes at once, answered or not
  EXPECT_EQ(Get(*server, "/hello"), "hello");
}

TEST(ServerTest, SlowlorisIsCutAfterTheHeaderTimeoutWhileOthersAreServed) {
  ServerOptions options = TestOptions();
  options.header_timeout = 300ms;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  std::atomic<bool> cut{false};
  std::chrono::milliseconds cut_after{0};
  std::thread slow([&] {
    RawConnection conn(server->port());
    auto start = SteadyClock::now();
    std::string header = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    header += std::string(1000, 's');
    for (char c : header) {  // one byte every 20 ms: the whole header would need 20 s
      if (!conn.Send(std::string_view(&c, 1)) || conn.ClosedNow()) break;
      std::this_thread::sleep_for(20ms);
      if (Since(start) > 5s) break;
    }
    cut_after = Since(start);
    cut = conn.WaitClosed(1s) || conn.ClosedNow();
  });
  for (int i = 0; i < 5; ++i) {
    auto start = SteadyClock::now();
    EXPECT_EQ(Get(*server, "/hello"), "hello");
    EXPECT_LT(Since(start), 1s);
  }
  slow.join();
  EXPECT_TRUE(cut);
  EXPECT_GE(cut_after, 250ms);
  EXPECT_LT(cut_after, 3s);
}

TEST(ServerTest, ConnectionThatSendsNothingIsClosedAfterTheHeaderTimeout) {
  ServerOptions options = TestOptions();
  options.header_timeout = 200ms;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  auto start = SteadyClock::now();
  std::string data;
  EXPECT_TRUE(conn.WaitClosed(5s, &data));
  EXPECT_EQ(data, "");  // no answer to a client that never asked
  EXPECT_GE(Since(start), 150ms);
}

TEST(ServerTest, BodyTricklerIsCutAfterTheBodyTimeout) {
  ServerOptions options = TestOptions();
  options.body_timeout = 200ms;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123"));
  auto start = SteadyClock::now();
  std::string data;
  EXPECT_TRUE(conn.WaitClosed(5s, &data));
  EXPECT_EQ(data, "");
  EXPECT_GE(Since(start), 150ms);
  EXPECT_EQ(Get(*server, "/hello"), "hello");
}

TEST(ServerTest, ClientThatDoesNotReadIsCutAfterTheWriteTimeout) {
  Gate reported;
  std::atomic<int> status{0};
  ServerOptions options = TestOptions();
  options.write_timeout = 200ms;
  options.on_complete = [&](const Request&, const std::string&, int s, std::chrono::microseconds) {
    status = s;
    reported.Open();
  };
  Router router;
  router.Add("GET", "/big",
             [](Request&) { return Response::Text(200, std::string(64 << 20, 'b')); });
  auto server = StartServer(std::move(router), options);
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
  // Never read: the server's write stalls once the socket buffers are full.
  EXPECT_TRUE(reported.Wait(5s));
  EXPECT_EQ(status.load(), 200);
  std::string data;
  EXPECT_TRUE(conn.WaitClosed(5s, &data));
  EXPECT_LT(data.size(), std::size_t{64} << 20);  // truncated
}

TEST(ServerTest, ManyClientsOnSeveralIoThreads) {
  ServerOptions options = TestOptions();
  options.io_threads = 3;
  options.worker_threads = 4;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      KeepAliveClient client(server->address());
      for (int i = 0; i < 50; ++i) {
        std::string body = std::to_string(c) + ":" + std::to_string(i);
        auto res = client.Send("POST", "/echo", {}, body);
        if (res && res->status == 200 && res->body == body) ++ok;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 8 * 50);
}

TEST(ServerTest, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  ServerOptions options = TestOptions();
  options.idle_timeout = 200ms;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(BodyOf(conn.ReadResponse(5s)), "hello");
  auto idle_since = SteadyClock::now();
  EXPECT_TRUE(conn.WaitClosed(5s));
  EXPECT_GE(Since(idle_since), 150ms);
  EXPECT_LT(Since(idle_since), 3s);
}

// The reason for an asynchronous server: idle keep-alive connections cost no thread.
TEST(ServerTest, HundredsOfIdleKeepAliveConnectionsDoNotDelayOthers) {
  ServerOptions options = TestOptions();
  options.io_threads = 1;
  options.worker_threads = 2;
  options.idle_timeout = 30s;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(std::make_unique<RawConnection>(server->port()));
    ASSERT_TRUE(idle.back()->ok());
    ASSERT_TRUE(idle.back()->Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  for (auto& conn : idle) ASSERT_EQ(BodyOf(conn->ReadResponse(5s)), "hello");
  // Half of them also hold a request that is half sent.
  for (std::size_t i = 0; i < idle.size(); i += 2) idle[i]->Send("GET /hel");

  auto start = SteadyClock::now();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Get(*server, "/hello"), "hello");
  EXPECT_LT(Since(start), 2s);

  // All 200 are still open and usable.
  for (std::size_t i = 1; i < idle.size(); i += 2) {
    ASSERT_TRUE(idle[i]->Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  for (std::size_t i = 0; i < idle.size(); i += 2) {
    ASSERT_TRUE(idle[i]->Send("lo HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  for (auto& conn : idle) EXPECT_EQ(BodyOf(conn->ReadResponse(5s)), "hello");
}

TEST(ServerTest, ConnectionsBeyondTheLimitGet503) {
  ServerOptions options = TestOptions();
  options.max_connections = 2;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  RawConnection a(server->port()), b(server->port());
  for (RawConnection* conn : {&a, &b}) {
    ASSERT_TRUE(conn->Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_EQ(BodyOf(conn->ReadResponse(5s)), "hello");
  }
  RawConnection c(server->port());
  c.Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string answer;
  EXPECT_TRUE(c.WaitClosed(5s, &answer));
  EXPECT_EQ(StatusOf(answer), 503) << answer;
  EXPECT_NE(BodyOf(answer).find(R"("code":"unavailable")"), std::string::npos);
  a.Close();
  // Once a slot is free, new connections are served again (the server notices `a` closing).
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    auto res = Fetch(server->address(), "GET", "/hello", {}, {}, 5s);
    served = res && res->status == 200;
    if (!served) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(served);
}

TEST(ServerTest, RequestsBeyondTheQueueGet503) {
  ServerOptions options = TestOptions();
  options.worker_threads = 1;
  options.max_queued_requests = 1;
  Gate entered, release;
  Router router;
  router.Add("GET", "/slow", [&](Request&) {
    entered.Open();
    release.Wait();
    return Response::Text(200, "slow");
  });
  router.Add("GET", "/fast", [](Request&) { return Response::Text(200, "fast"); });
  auto server = StartServer(std::move(router), options);
  ASSERT_NE(server, nullptr);
  std::thread holder([&] { EXPECT_EQ(Get(*server, "/slow"), "slow"); });
  ASSERT_TRUE(entered.Wait());
  // The one worker is busy: of two more requests, one waits in the queue, the other is refused.
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) {
    clients.emplace_back([&] {
      auto res = Fetch(server->address(), "GET", "/fast", {}, {}, 5s);
      ASSERT_TRUE(res.has_value());
      if (res->status == 200) ++ok;
      if (res->status == 503) {
        ++refused;
        EXPECT_EQ(res->Header("Retry-After"), "1");
        release.Open();
      }
    });
  }
  for (auto& t : clients) t.join();
  holder.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(refused.load(), 1);
}

Router StreamRouter(std::atomic<int>* calls = nullptr) {
  Router router;
  router.Add("GET", "/csv", [](Request&) {
    Response res = Response::Text(200, "", "text/csv");
    auto row = std::make_shared<int>(0);
    res.stream = [row](std::string& chunk) {
      if (*row == 5) return false;
      chunk = "row," + std::to_string((*row)++) + "\n";
      return true;
    };
    return res;
  });
  router.Add("GET", "/later", [calls](Request&) {
    Response res = Response::Text(200, "");
    auto polls = std::make_shared<int>(0);
    res.stream = [polls, calls](std::string& chunk) {
      if (calls != nullptr) ++*calls;
      ++*polls;
      if (*polls < 4) return true;  // nothing yet
      chunk = "done";
      return false;
    };
    return res;
  });
  return router;
}

TEST(ServerTest, StreamedResponseUsesChunkedEncoding) {
  auto server = StartServer(StreamRouter());
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("GET /csv HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string raw = conn.ReadResponse(5s);
  EXPECT_NE(raw.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("Content-Length"), std::string::npos);
  EXPECT_NE(raw.find("\r\n\r\n6\r\nrow,0\n\r\n6\r\nrow,1\n\r\n"), std::string::npos) << raw;
  EXPECT_EQ(raw.substr(raw.size() - 5), "0\r\n\r\n");
  // The connection stays usable after a stream.
  ASSERT_TRUE(conn.Send("GET /csv HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_NE(conn.ReadResponse(5s).find("row,4\n"), std::string::npos);

  auto decoded = Fetch(server->address(), "GET", "/csv");
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->body, "row,0\nrow,1\nrow,2\nrow,3\nrow,4\n");
  EXPECT_EQ(decoded->Header("content-type"), "text/csv");
}

TEST(ServerTest, StreamWithNothingYetIsPolledWithoutHoldingAWorker) {
  ServerOptions options = TestOptions();
  options.worker_threads = 1;
  std::atomic<int> calls{0};
  auto server = StartServer(StreamRouter(&calls), options);
  ASSERT_NE(server, nullptr);
  auto res = Fetch(server->address(), "GET", "/later");
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->body, "done");
  EXPECT_EQ(calls.load(), 4);
}

// A live stream with a wake-up is neither polled nor holding a worker: with one worker and a
// poll interval of a minute, ten open streams leave the worker free for other requests, and each
// stream's next event leaves as soon as its producer is woken.
TEST(ServerTest, WokenStreamsNeedNoPollingAndNoWorker) {
  ServerOptions options = TestOptions();
  options.worker_threads = 1;
  options.stream_poll_interval = std::chrono::minutes(1);
  struct Feed {
    std::mutex mu;
    std::vector<std::string> pending;
    std::function<void()> wake;
  };
  auto feeds = std::make_shared<std::vector<std::shared_ptr<Feed>>>();
  std::mutex feeds_mu;
  std::atomic<int> producer_calls{0};
  Router router = EchoRouter();
  router.Add("GET", "/events", [&](Request&) {
    auto feed = std::make_shared<Feed>();
    {
      std::lock_guard lock(feeds_mu);
      feeds->push_back(feed);
    }
    Response res = Response::Text(200, "", "text/event-stream");
    res.stream = [feed, &producer_calls](std::string& chunk) {
      ++producer_calls;
      std::lock_guard lock(feed->mu);
      for (auto& p : feed->pending) chunk += p;
      feed->pending.clear();
      return true;
    };
    res.stream_wakeup = [feed](std::function<void()> wake) {
      std::lock_guard lock(feed->mu);
      feed->wake = std::move(wake);
    };
    res.stream_idle_poll = std::chrono::minutes(1);
    return res;
  });
  auto server = StartServer(std::move(router), options);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<RawConnection>> conns;
  for (int i = 0; i < 10; ++i) {
    conns.push_back(std::make_unique<RawConnection>(server->port()));
    ASSERT_TRUE(conns.back()->Send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  auto deadline = SteadyClock::now() + 5s;
  while (SteadyClock::now() < deadline) {
    {
      std::lock_guard lock(feeds_mu);
      bool all = feeds->size() == 10;
      for (auto& f : *feeds) {
        std::lock_guard flock(f->mu);
        all = all && f->wake != nullptr;
      }
      if (all) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  // The one worker still answers ordinary requests.
  EXPECT_EQ(Get(*server, "/hello"), "hello");
  std::this_thread::sleep_for(100ms);
  const int idle_calls = producer_calls.load();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(producer_calls.load(), idle_calls) << "an idle stream was polled";
  // Wake each stream: its event arrives at once (the poll interval is a minute).
  for (std::size_t i = 0; i < conns.size(); ++i) {
    std::shared_ptr<Feed> feed;
    {
      std::lock_guard lock(feeds_mu);
      feed = (*feeds)[i];
    }
    std::function<void()> wake;
    {
      std::lock_guard lock(feed->mu);
      feed->pending.push_back("data: " + std::to_string(i) + "\n\n");
      wake = feed->wake;
    }
    const auto start = SteadyClock::now();
    wake();
    std::string got;
    while (got.find("data: ") == std::string::npos && Since(start) < 5s) got += conns[i]->ReadResponse(50ms);
    EXPECT_NE(got.find("data: "), std::string::npos) << "stream " << i << " got: " << got;
    EXPECT_LT(Since(start), 5s);
  }
  // A wake after the client left does nothing harmful.
  conns.clear();
  std::lock_guard lock(feeds_mu);
  for (auto& f : *feeds) {
    std::lock_guard flock(f->mu);
    if (f->wake) f->wake();
  }
}

TEST(ServerTest, HttpOneZeroStreamEndsWithTheConnection) {
  auto server = StartServer(StreamRouter());
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("GET /csv HTTP/1.0\r\n\r\n"));
  std::string all;
  EXPECT_TRUE(conn.WaitClosed(5s, &all));
  EXPECT_EQ(all.find("chunked"), std::string::npos);
  EXPECT_EQ(BodyOf(all), "row,0\nrow,1\nrow,2\nrow,3\nrow,4\n");
}

// A live stream whose client has gone must not live on (nor hold its producer's resources).
TEST(ServerTest, StreamIsReleasedWhenTheClientDisconnects) {
  Gate released;
  Router router;
  router.Add("GET", "/live", [&](Request&) {
    Response res = Response::Text(200, "", "text/event-stream");
    // Signals when the server destroys the producer.
    std::shared_ptr<void> token(nullptr, [&](void*) { released.Open(); });
    auto sent = std::make_shared<bool>(false);
    res.stream = [token, sent](std::string& chunk) {
      if (!*sent) chunk = "data: hello\n\n";  // then nothing, forever
      *sent = true;
      return true;
    };
    return res;
  });
  auto server = StartServer(std::move(router));
  ASSERT_NE(server, nullptr);
  {
    RawConnection conn(server->port());
    ASSERT_TRUE(conn.Send("GET /live HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string first;
    auto deadline = SteadyClock::now() + 5s;
    while (first.find("data: hello") == std::string::npos && SteadyClock::now() < deadline) {
      first += conn.ReadResponse(100ms);
    }
    EXPECT_NE(first.find("data: hello"), std::string::npos);
  }  // the client goes away
  EXPECT_TRUE(released.Wait(5s));
}

TEST(ServerTest, StreamProducerThatThrowsTruncatesTheResponse) {
  Router router;
  router.Add("GET", "/bad", [](Request&) {
    Response res = Response::Text(200, "");
    auto n = std::make_shared<int>(0);
    res.stream = [n](std::string& chunk) -> bool {
      if ((*n)++ == 0) {
        chunk = "partial";
        return true;
      }
      throw std::runtime_error("disk gone");
    };
    return res;
  });
  router.Add("GET", "/hello", [](Request&) { return Response::Text(200, "hello"); });
  auto server = StartServer(std::move(router));
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("GET /bad HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string all;
  EXPECT_TRUE(conn.WaitClosed(5s, &all));
  EXPECT_NE(all.find("partial"), std::string::npos);
  EXPECT_EQ(all.find("0\r\n\r\n"), std::string::npos);  // no terminating chunk: truncated
  EXPECT_FALSE(Fetch(server->address(), "GET", "/bad").has_value());
  EXPECT_EQ(Get(*server, "/hello"), "hello");
}

TEST(ServerTest, HandlerExceptionIs500AndTheServerContinues) {
  Router router;
  router.Add("GET", "/throw", [](Request&) -> Response { throw std::runtime_error("boom"); });
  router.Add("GET", "/throw-int", [](Request&) -> Response { throw 7; });
  router.Add("GET", "/bad-header", [](Request&) {
    Response res = Response::Text(200, "x");
    res.headers.emplace_back("X-Injected", "a\r\nSet-Cookie: evil=1");
    return res;
  });
  router.Add("GET", "/bad-status", [](Request&) { return Response::Text(42, "x"); });
  router.Add("GET", "/hello", [](Request&) { return Response::Text(200, "hello"); });
  auto server = StartServer(std::move(router));
  ASSERT_NE(server, nullptr);
  KeepAliveClient client(server->address());
  for (const char* target : {"/throw", "/throw-int", "/bad-header", "/bad-status", "/hello"}) {
    auto res = client.Send("GET", target);
    ASSERT_TRUE(res.has_value()) << target << ": " << res.error().ToString();
    if (std::string(target) == "/hello") {
      EXPECT_EQ(res->status, 200);
    } else {
      EXPECT_EQ(res->status, 500) << target;
      EXPECT_EQ(res->Header("content-type"), "application/json");
      EXPECT_NE(res->body.find(R"({"error":{"code":"internal")"), std::string::npos);
      EXPECT_EQ(res->Header("Set-Cookie"), std::nullopt);
    }
  }
  EXPECT_EQ(client.connections_opened(), 1);  // a 500 keeps the connection
}

TEST(ServerTest, HandlerMayCloseTheConnection) {
  Router router;
  router.Add("GET", "/bye",
             [](Request&) { return Response::Text(200, "bye").SetHeader("Connection", "close"); });
  auto server = StartServer(std::move(router));
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("GET /bye HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string all;
  EXPECT_TRUE(conn.WaitClosed(5s, &all));
  EXPECT_NE(all.find("Connection: close"), std::string::npos);
}

TEST(ServerTest, ObserverSeesRouteStatusAndDuration) {
  struct Seen {
    std::string method, route;
    int status;
  };
  std::mutex mu;
  std::vector<Seen> seen;
  ServerOptions options = TestOptions();
  options.on_complete = [&](const Request& req, const std::string& route, int status,
                            std::chrono::microseconds duration) {
    EXPECT_GE(duration.count(), 0);
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back({req.method, route, status});
  };
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  Get(*server, "/api/v1/devices/9/series");
  Get(*server, "/nope");
  RawConnection bad(server->port());
  bad.Send("GARBAGE\r\n\r\n");
  EXPECT_TRUE(bad.WaitClosed(5s));
  server->Shutdown();  // the observer runs after the answer is written: wait for it
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].route, "/api/v1/devices/{id}/series");
  EXPECT_EQ(seen[0].status, 200);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[1].route, "");
  EXPECT_EQ(seen[1].status, 404);
  EXPECT_EQ(seen[2].status, 400);
}

TEST(ServerTest, GracefulShutdownFinishesInFlightRequestThenRefusesConnections) {
  Gate entered, release;
  Router router;
  router.Add("GET", "/slow", [&](Request&) {
    entered.Open();
    release.Wait();
    return Response::Text(200, "finished");
  });
  ServerOptions options = TestOptions();
  options.drain_timeout = 5s;
  auto server = StartServer(std::move(router), options);
  ASSERT_NE(server, nullptr);
  std::uint16_t port = server->port();
  Result<ClientResponse> slow = MakeError(ErrorCode::kInternal, "not run");
  std::thread client([&] { slow = Fetch(server->address(), "GET", "/slow", {}, {}, 10s); });
  ASSERT_TRUE(entered.Wait());
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    server->Shutdown();
    done = true;
  });
  // New connections are refused once the listener has closed.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    RawConnection probe(port);
    refused = !probe.ok() && probe.connect_errno() == ECONNREFUSED;
    if (!refused) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(refused);
  EXPECT_FALSE(done.load());  // still waiting for the in-flight request
  release.Open();
  client.join();
  stopper.join();
  ASSERT_TRUE(slow.has_value()) << slow.error().ToString();
  EXPECT_EQ(slow->status, 200);
  EXPECT_EQ(slow->body, "finished");
  EXPECT_EQ(slow->Header("Connection"), "close");
  RawConnection after(port);
  EXPECT_FALSE(after.ok());
  server->Shutdown();  // idempotent
}

TEST(ServerTest, ShutdownClosesIdleConnectionsAtOnce) {
  ServerOptions options = TestOptions();
  options.drain_timeout = 10s;
  options.idle_timeout = 30s;
  auto server = StartServer(EchoRouter(), options);
  ASSERT_NE(server, nullptr);
  RawConnection idle(server->port());
  ASSERT_TRUE(idle.Send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(BodyOf(idle.ReadResponse(5s)), "hello");
  RawConnection silent(server->port());  // connected, never sent a byte
  ASSERT_TRUE(silent.ok());
  auto start = SteadyClock::now();
  server->Shutdown();
  EXPECT_LT(Since(start), 2s);
  EXPECT_TRUE(idle.WaitClosed(1s));
  EXPECT_TRUE(silent.WaitClosed(1s));
}

TEST(ServerTest, ShutdownIsBoundedByTheDrainTimeout) {
  Gate streaming;
  Router router;
  router.Add("GET", "/forever", [&](Request&) {
    Response res = Response::Text(200, "");
    res.stream = [&](std::string& chunk) {
      streaming.Open();
      chunk = "tick\n";
      std::this_thread::sleep_for(5ms);
      return true;
    };
    return res;
  });
  ServerOptions options = TestOptions();
  options.drain_timeout = 300ms;
  auto server = StartServer(std::move(router), options);
  ASSERT_NE(server, nullptr);
  RawConnection conn(server->port());
  ASSERT_TRUE(conn.Send("GET /forever HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(streaming.Wait());
  auto start = SteadyClock::now();
  server->Shutdown();
  EXPECT_GE(Since(start), 250ms);
  EXPECT_LT(Since(start), 3s);
  EXPECT_TRUE(conn.WaitClosed(5s));
}

TEST(ServerTest, DestructorShutsDown) {
  std::uint16_t port = 0;
  {
    auto server = StartServer(EchoRouter());
    ASSERT_NE(server, nullptr);
    port = server->port();
    EXPECT_EQ(Get(*server, "/hello"), "hello");
  }
  RawConnection after(port);
  EXPECT_FALSE(after.ok());
}

}  // namespace
}  // namespace opensense::http
