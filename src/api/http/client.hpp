// A tiny blocking HTTP/1.1 client (plain TCP, no TLS) for tests and tools: integration tests
// and `opensense simulate` talk to a server with it. Not for production outbound calls to
// third parties (no TLS, no redirects, no proxy).
//
// Threads: Fetch may be called from any thread. A KeepAliveClient is used by one thread at a
// time.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace opensense::http {

struct ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // in the order received
  std::string body;  // decoded (chunked transfer encoding removed)

  // The first header with this name (names compare case-insensitively).
  std::optional<std::string_view> Header(std::string_view name) const;
};

// One request on a new connection ("Connection: close" unless `headers` say otherwise).
// `host_port` is "127.0.0.1:8080" or "[::1]:8080"; a Host header is added unless given, and a
// Content-Length whenever there is a body. `timeout` bounds the whole exchange.
// kInvalidArgument for a bad host_port; kUnavailable when the server cannot be reached, the
// exchange times out or the connection breaks (the message names the address).
Result<ClientResponse> Fetch(const std::string& host_port, std::string method, std::string target,
                             std::vector<std::pair<std::string, std::string>> headers = {},
                             std::string body = {},
                             std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Sends many requests over one connection. Connects lazily, and reconnects before a request when
// the server has closed the previous connection (Connection: close, idle timeout). A request that
// fails is never retried (it may not be idempotent); the next one reconnects.
class KeepAliveClient {
 public:
  explicit KeepAliveClient(std::string host_port);
  ~KeepAliveClient();
  KeepAliveClient(const KeepAliveClient&) = delete;
  KeepAliveClient& operator=(const KeepAliveClient&) = delete;

  // Same contract as Fetch, on the kept connection.
  Result<ClientResponse> Send(std::string method, std::string target,
                              std::vector<std::pair<std::string, std::string>> headers = {},
                              std::string body = {},
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // How many connections this client has opened so far.
  int connections_opened() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace opensense::http
