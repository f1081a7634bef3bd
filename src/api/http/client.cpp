// The blocking client: Beast's asynchronous operations on a private io_context, run to
// completion on the calling thread, so that one deadline bounds connect, write and read.
#include "api/http/client.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <optional>

#include "api/http/wire.hpp"

namespace opensense::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

Result<std::vector<tcp::endpoint>> Resolve(net::io_context& ioc, const std::string& host_port) {
  auto bad = [&](std::string why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("invalid address '{}': {}", host_port, why));
  };
  std::string host, port;
  auto split = wire::SplitHostPort(host_port);
  if (!split) return bad(split.error().message);
  host = std::move(split->first);
  port = std::move(split->second);
  if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos) {
    return bad("expected HOST:PORT");
  }
  beast::error_code ec;
  auto results = tcp::resolver(ioc).resolve(host, port, tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot resolve '{}': {}", host_port, ec.message()));
  }
  std::vector<tcp::endpoint> endpoints;
  for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  return endpoints;
}

// Runs one asynchronous operation on `ioc` to completion and returns its error code.
template <typename Start>
beast::error_code RunOp(net::io_context& ioc, Start start) {
  beast::error_code result = net::error::would_block;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

// A connection and what it needs; reused by KeepAliveClient.
struct Connection {
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void Reset() {
    if (stream) {
      beast::error_code ignored;
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->close();
    }
    stream.reset();
    buffer.consume(buffer.size());
  }

  // True when the server has closed the connection (or sent something unasked).
  bool PeerClosed() {
    if (!stream || !stream->socket().is_open()) return true;
    char c;
    ssize_t n = ::recv(stream->socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK;
    return true;
  }
};

Error NetworkError(const std::string& host_port, const char* step, beast::error_code ec,
                   std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) {
    return Error{ErrorCode::kUnavailable,
                 fmt::format("{} {} timed out after {} ms", step, host_port, timeout.count())};
  }
  return Error{ErrorCode::kUnavailable,
               fmt::format("{} {} failed: {}", step, host_port, ec.message())};
}

Status Connect(Connection& conn, const std::string& host_port, Clock::time_point deadline,
               std::chrono::milliseconds timeout) {
  OS_ASSIGN_OR_RETURN(auto endpoints, Resolve(conn.ioc, host_port));
  conn.stream.emplace(conn.ioc);
  conn.stream->expires_at(deadline);
  beast::error_code ec = RunOp(conn.ioc, [&](auto handler) {
    conn.stream->async_connect(
        endpoints, [handler](beast::error_code ec, const tcp::endpoint&) { handler(ec); });
  });
  if (ec) {
    conn.Reset();
    return tl::unexpected(NetworkError(host_port, "connecting to", ec, timeout));
  }
  beast::error_code ignored;
  conn.stream->socket().set_option(tcp::no_delay(true), ignored);
  return Ok();
}

bool HasHeader(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (wire::EqualsIgnoreCase(key, name)) return true;
  }
  return false;
}

// One request and its response on a connected `conn`. Sets *keep_alive to whether the
// connection may be reused.
Result<ClientResponse> Exchange(Connection& conn, const std::string& host_port, std::string method,
                                std::string target, Headers headers, std::string body,
                                Clock::time_point deadline, std::chrono::milliseconds timeout,
                                bool close, bool* keep_alive) {
  *keep_alive = false;
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  if (!HasHeader(headers, "Host")) req.set(bhttp::field::host, host_port);
  if (close && !HasHeader(headers, "Connection")) req.set(bhttp::field::connection, "close");
  bool framed = HasHeader(headers, "Content-Length") || HasHeader(headers, "Transfer-Encoding");
  for (auto& [name, value] : headers) {
    if (!wire::IsValidHeaderName(name) || !wire::IsValidHeaderValue(value)) {
      return MakeError(ErrorCode::kInvalidArgument, "invalid request header '" + name + "'");
    }
    req.insert(name, value);
  }
  if (!framed && (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")) {
    req.content_length(body.size());
  }
  req.body() = std::move(body);

  conn.stream->expires_at(deadline);
  beast::error_code ec =
      RunOp(conn.ioc, [&](auto handler) { bhttp::async_write(*conn.stream, req, handler); });
  if (ec) return tl::unexpected(NetworkError(host_port, "sending to", ec, timeout));

  std::optional<bhttp::response_parser<bhttp::string_body>> parser;
  auto read = [&] {
    parser.emplace();
    parser->header_limit(64 << 10);
    parser->body_limit(std::uint64_t{1} << 32);
    if (method == "HEAD") parser->skip(true);
    conn.stream->expires_at(deadline);
    return RunOp(conn.ioc, [&](auto handler) {
      bhttp::async_read(*conn.stream, conn.buffer, *parser, handler);
    });
  };
  ec = read();
  while (!ec && parser->get().result_int() / 100 == 1) ec = read();  // skip 100 Continue
  if (ec) return tl::unexpected(NetworkError(host_port, "reading the answer from", ec, timeout));

  auto msg = parser->release();
  ClientResponse res;
  res.status = static_cast<int>(msg.result_int());
  for (const auto& field : msg) {
    res.headers.emplace_back(std::string(SV(field.name_string())), std::string(SV(field.value())));
  }
  res.body = std::move(msg.body());
  *keep_alive = msg.keep_alive();
  return res;
}

}  // namespace

std::optional<std::string_view> ClientResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (wire::EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

Result<ClientResponse> Fetch(const std::string& host_port, std::string method, std::string target,
                             Headers headers, std::string body, std::chrono::milliseconds timeout) {
  try {
    Connection conn;
    auto deadline = Clock::now() + timeout;
    OS_RETURN_IF_ERROR(Connect(conn, host_port, deadline, timeout));
    bool keep_alive = false;
    auto res = Exchange(conn, host_port, std::move(method), std::move(target), std::move(headers),
                        std::move(body), deadline, timeout, /*close=*/true, &keep_alive);
    conn.Reset();
    return res;
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInternal, fmt::format("request to {}: {}", host_port, e.what()));
  }
}

struct KeepAliveClient::Impl {
  std::string host_port;
  Connection conn;
  int connections_opened = 0;
};

KeepAliveClient::KeepAliveClient(std::string host_port) : impl_(std::make_unique<Impl>()) {
  impl_->host_port = std::move(host_port);
}

KeepAliveClient::~KeepAliveClient() { impl_->conn.Reset(); }

Result<ClientResponse> KeepAliveClient::Send(std::string method, std::string target,
                                             Headers headers, std::string body,
                                             std::chrono::milliseconds timeout) {
  try {
    Connection& conn = impl_->conn;
    auto deadline = Clock::now() + timeout;
    if (conn.stream && conn.PeerClosed()) conn.Reset();
    if (!conn.stream) {
      OS_RETURN_IF_ERROR(Connect(conn, impl_->host_port, deadline, timeout));
      ++impl_->connections_opened;
    }
    bool keep_alive = false;
    auto res =
        Exchange(conn, impl_->host_port, std::move(method), std::move(target), std::move(headers),
                 std::move(body), deadline, timeout, /*close=*/false, &keep_alive);
    if (!res || !keep_alive) conn.Reset();
    return res;
  } catch (const std::exception& e) {
    impl_->conn.Reset();
    return MakeError(ErrorCode::kInternal,
                     fmt::format("request to {}: {}", impl_->host_port, e.what()));
  }
}

int KeepAliveClient::connections_opened() const { return impl_->connections_opened; }

}  // namespace opensense::http
