// A small asynchronous HTTP/1.1 server that the API handlers are written against.
//
// Handlers see only the value types below (Request, Response, Router), never the library
// underneath (Boost.Beast on Asio, hidden in server.cpp), so this header stays cheap to include
// and the transport can be swapped.
//
// Threads: connections are asynchronous operations on an io_context run by
// `ServerOptions::io_threads` threads; they only parse, route and write. Handlers (and stream
// producers) run on a separate pool of `worker_threads` threads, so a handler may block for a
// few milliseconds (the store's writer) without stalling any connection. Handlers run
// concurrently and must be thread-safe; the Router is immutable once the server has started.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace opensense::http {

// One HTTP request, as a handler sees it. Filled by the server; handlers may modify it.
struct Request {
  std::string method;  // "GET", "POST", ... as sent (case-sensitive, RFC 9110)
  std::string target;  // the request target as sent: "/api/v1/devices/7/series?from=1"
  // The path part of the target, still percent-encoded: "/api/v1/devices/7/series".
  std::string path;
  std::multimap<std::string, std::string> query;  // decoded query parameters ('+' is a space)
  std::map<std::string, std::string> params;      // decoded route parameters, filled by the Router
  std::vector<std::pair<std::string, std::string>> headers;  // in the order received
  std::string body;
  std::string remote_address;  // the peer, "127.0.0.1:51234" (the TLS proxy, behind Caddy)
  // This request's id (16 hex digits), assigned by the server: the answer's X-Request-Id, the
  // `request_id` of log lines written while it is handled (CurrentRequestId) and of its row in
  // the API request log.
  std::string id;

  // The first header with this name (names compare case-insensitively).
  std::optional<std::string_view> Header(std::string_view name) const;
  // The first value of a query parameter.
  std::optional<std::string> Query(std::string_view key) const;

  // A request built as the server builds it: path and decoded query taken from `target`
  // (origin form, "/a/b?x=1"). For handler unit tests that call Router::Handle without a socket.
  // kInvalidArgument for a target that is not origin form or has malformed percent-encoding.
  static Result<Request> FromTarget(std::string method, std::string target, std::string body = {});
};

// A fresh request id (16 lowercase hex digits, random; for correlation, not a secret).
std::string NewRequestId();
// The id of the request the calling thread is handling, "" outside a handler (for log lines).
const std::string& CurrentRequestId();
// Sets the calling thread's current request id for its lifetime (the server does this around
// handlers and the completion observer).
class ScopedRequestId {
 public:
  explicit ScopedRequestId(const std::string& id);
  ~ScopedRequestId();
  ScopedRequestId(const ScopedRequestId&) = delete;
  ScopedRequestId& operator=(const ScopedRequestId&) = delete;

 private:
  std::string previous_;
};

// The answer to a Request. Either `body` or `stream` carries the payload.
struct Response {
  int status = 200;  // 200..599
  // Extra headers. The server sets Content-Length / Transfer-Encoding and Connection itself and
  // ignores those names here, except that "Connection: close" closes the connection afterwards.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, the body is streamed with chunked transfer encoding (CSV exports, live updates):
  // the server calls `stream` repeatedly, each call on a worker thread, until it returns false.
  // Each call appends the next piece to `chunk` (which arrives empty) and returns whether more
  // follows. A call that returns true with nothing in `chunk` means "nothing yet": the server
  // waits ServerOptions::stream_poll_interval without holding a worker thread, then calls again,
  // so a live-update stream must not block waiting for data. A producer that throws ends the
  // response abruptly (the client sees a truncated chunked body). The function is destroyed, on
  // an io thread (so destroying it must be cheap), when the stream ends, the client disconnects,
  // or the server shuts down.
  std::function<bool(std::string& chunk)> stream;
  // Optional, with `stream`, for live streams (Server-Sent Events): the producer is woken rather
  // than polled. When the stream starts, the server calls this once (on an io thread) with a
  // `wake` function; `wake` is thread-safe, cheap, never blocks, and may be called at any time,
  // also after the stream has ended (then it does nothing). After a "nothing yet" the server
  // calls the producer again as soon as `wake` is called, or after `stream_idle_poll` at the
  // latest (the producer's chance to send a heartbeat). An idle stream then costs neither a
  // worker thread nor any polling.
  std::function<void(std::function<void()> wake)> stream_wakeup;
  // With `stream_wakeup`: the longest wait after a "nothing yet" (0: the server's
  // stream_poll_interval).
  std::chrono::milliseconds stream_idle_poll{0};

  Response& SetHeader(std::string name, std::string value);

  static Response Json(int status, std::string body);
  static Response Text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");
  // The project's JSON error shape: {"error": {"code": "...", "message": "..."}}.
  static Response Error(int status, std::string_view code, std::string_view message);
};

using Handler = std::function<Response(Request&)>;

// The outcome of matching a request against the routes.
struct RouteMatch {
  const Handler* handler = nullptr;  // null unless status == 200
  std::string route;                 // the matched pattern (for logs and metrics); "" on 404
  int status = 200;                  // 200, 404 (no pattern matches), 405, 400 (bad encoding)
  std::string allow;                 // for 405: the methods the path accepts, "GET, HEAD, POST"
};

// Maps (method, path) to handlers. Patterns are literal segments and `{name}` segments, which
// match one non-empty path segment and land percent-decoded in Request::params:
// "/api/v1/devices/{id}/series". A literal segment wins over a parameter ("/devices/new" beats
// "/devices/{id}"). HEAD is answered by the GET handler (the server drops the body) unless a
// HEAD route exists.
//
// Threads: Add only before the server starts; Match and Handle from any thread afterwards.
class Router {
 public:
  // A malformed pattern or a duplicate (method, pattern) is a programming error and aborts.
  void Add(std::string method, std::string pattern, Handler handler);

  // Finds the handler for req.method and req.path and fills req.params.
  RouteMatch Match(Request& req) const;

  // Match, then call the handler. 404 and 405 (with Allow) come back as JSON errors; a handler
  // that throws is logged and answered 500. `route` (optional) receives RouteMatch::route.
  Response Handle(Request& req, std::string* route = nullptr) const;

  // Answers the requests whose path matches no route (instead of the 404 error): the
  // dashboard's files and client-side routes. `route` is what Handle reports as the matched
  // route for them (request log, metrics). The handler may answer 404 itself.
  void SetFallback(std::string route, Handler handler);

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // "{name}" for a parameter
    Handler handler;
  };
  std::vector<Route> routes_;
  std::string fallback_route_;
  Handler fallback_;
};

struct ServerOptions {
  // HOST:PORT to listen on ("[::1]:8080" for IPv6). Port 0 picks a free port (Server::port()).
  std::string listen = "127.0.0.1:8080";
  // Threads running the connections (parsing and writing only). One is plenty for hundreds of
  // connections; more only helps with many large bodies.
  int io_threads = 1;
  // Threads running handlers and stream producers.
  int worker_threads = 4;
  // Requests whose body is larger are answered 413 without reading the body; the connection is
  // then closed.
  std::size_t max_body_bytes = 16 << 20;
  // Request line plus header fields; larger is answered 431 and the connection closed.
  std::size_t max_header_bytes = 16 << 10;
  // Time allowed for a request's header to arrive, counted from the connection's accept (first
  // request) or from its first byte (later requests). A client that trickles its header is cut.
  std::chrono::milliseconds header_timeout{10000};
  // Time allowed for a request's body to arrive once the header is in.
  std::chrono::milliseconds body_timeout{30000};
  // A keep-alive connection with no request in progress is closed after this long.
  std::chrono::milliseconds idle_timeout{60000};
  // Time allowed to write a response, or one chunk of a streamed response, to the client.
  std::chrono::milliseconds write_timeout{30000};
  // Shutdown() waits this long for in-flight requests and streams, then closes what is left.
  std::chrono::milliseconds drain_timeout{10000};
  // How long a stream that produced nothing waits before its producer is called again.
  std::chrono::milliseconds stream_poll_interval{100};
  // Connections beyond this are answered 503 and closed.
  std::size_t max_connections = 1024;
  // Requests waiting for a worker beyond this are answered 503 (with Retry-After).
  std::size_t max_queued_requests = 4096;
  // Called once per answered request (including 400/404/413/431/503 from the server itself)
  // after the response has been written or has failed, on an io thread: it must be cheap and
  // must not block (queue the log line). `route` is the matched pattern, "" when none matched;
  // for a request that could not be parsed the Request holds what was read of it.
  std::function<void(const Request&, const std::string& route, int status,
                     std::chrono::microseconds duration)>
      on_complete;
  // Called once with the bound address ("127.0.0.1:41234") after the socket is bound and before
  // any connection is accepted or any handler runs (port 0: learn the port, e.g. for links).
  std::function<void(const std::string& address)> on_listening;
  // Added to every response (handlers', streams' and the server's own errors) unless the
  // response sets a header of that name itself: the security headers (api::SecurityHeaders()).
  std::vector<std::pair<std::string, std::string>> default_headers;
};

// A running server. Start binds and starts the threads; Shutdown (or the destructor) stops it.
//
// Threads: address(), port() and Shutdown() may be called from any thread, but not from a
// handler (Shutdown waits for handlers to finish).
class Server {
 public:
  // Binds and starts serving. kInvalidArgument for bad options, kUnavailable when the address
  // cannot be bound; the error names the address.
  static Result<std::unique_ptr<Server>> Start(ServerOptions options, Router router);

  ~Server();  // Shutdown()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound address, e.g. "127.0.0.1:41234" ("[::1]:41234" for IPv6).
  std::string address() const;
  std::uint16_t port() const;

  // Graceful stop: stops accepting, closes idle connections, lets in-flight requests and
  // streams finish for up to drain_timeout (their responses carry "Connection: close"), then
  // closes whatever is left and joins the threads. A handler that is running cannot be
  // interrupted, so this also waits for running handlers to return. Idempotent; blocks until
  // done.
  void Shutdown();

  struct Impl;  // opaque; defined in server.cpp

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace opensense::http
