// A small blocking HTTP/1.1 client for the Mosquitto plugin: one request per connection to
// OpenSense's /internal/mqtt/* hooks, with one deadline over connect, send and receive, so a slow
// or dead OpenSense holds the (single-threaded) broker for at most that long.
//
// Plain TCP only: the hooks are served on loopback (or a private network) next to the broker.
// Threads: a HookClient is immutable after construction; Exchange may run on any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace opensense::mqtt {

struct HttpReply {
  int status = 0;
  std::string body;
};

// "http://HOST:PORT" (an optional trailing path prefix is kept, e.g. "http://10.0.0.2:8080/os").
struct HookTarget {
  std::string host;  // a numeric address or a name (resolved per request: prefer an address)
  std::string port;
  std::string path_prefix;  // "" or "/os"
};
Result<HookTarget> ParseHookUrl(std::string_view url);

// Parses a complete HTTP/1.1 response (status line, headers, Content-Length body; chunked
// transfer encoding is refused). kUnavailable while more bytes are needed (and only then),
// kInvalidArgument for anything malformed or a body over `max_body`.
Result<HttpReply> ParseHttpResponse(std::string_view bytes, std::size_t max_body = 4 << 20);

class HookClient {
 public:
  HookClient(HookTarget target, std::string secret, std::chrono::milliseconds timeout);

  // POST (with a JSON body) or GET `path` (e.g. "/internal/mqtt/auth") with the secret header.
  // kUnavailable when OpenSense cannot be reached or does not answer within the timeout.
  Result<HttpReply> Post(std::string_view path, std::string_view json_body) const;
  Result<HttpReply> Get(std::string_view path) const;

 private:
  Result<HttpReply> Exchange(std::string_view method, std::string_view path, std::string_view body) const;
  HookTarget target_;
  std::string secret_;
  std::chrono::milliseconds timeout_;
};

// The header that carries the hook secret (OpenSense refuses hook calls without it).
inline constexpr std::string_view kHookSecretHeader = "X-OpenSense-Hook-Secret";

}  // namespace opensense::mqtt
