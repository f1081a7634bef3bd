#include "mqtt_plugin/hook_client.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

namespace opensense::mqtt {

namespace {

using Clock = std::chrono::steady_clock;

tl::unexpected<Error> Unavailable(std::string what) {
  return MakeError(ErrorCode::kUnavailable, "OpenSense hook: " + what);
}
tl::unexpected<Error> Malformed(std::string what) {
  return MakeError(ErrorCode::kInvalidArgument, "OpenSense hook answer: " + what);
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 60'000));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<HookTarget> ParseHookUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     "plugin_opt_url must be http://HOST:PORT (e.g. http://127.0.0.1:8080), got '" +
                         std::string(url.substr(0, 200)) + "'");
  };
  if (url.substr(0, kScheme.size()) != kScheme) return bad();
  std::string_view rest = url.substr(kScheme.size());
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  HookTarget t;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos || close + 1 >= authority.size() || authority[close + 1] != ':') return bad();
    t.host = std::string(authority.substr(1, close - 1));
    t.port = std::string(authority.substr(close + 2));
  } else {
    auto colon = authority.rfind(':');
    if (colon == std::string_view::npos) return bad();
    t.host = std::string(authority.substr(0, colon));
    t.port = std::string(authority.substr(colon + 1));
  }
  int port = 0;
  auto [p, ec] = std::from_chars(t.port.data(), t.port.data() + t.port.size(), port);
  if (t.host.empty() || ec != std::errc() || p != t.port.data() + t.port.size() || port <= 0 || port > 65535) {
    return bad();
  }
  t.path_prefix = std::string(path);
  return t;
}

Result<HttpReply> ParseHttpResponse(std::string_view bytes, std::size_t max_body) {
  auto end = bytes.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (bytes.size() > 64 * 1024) return Malformed("header too large");
    return MakeError(ErrorCode::kUnavailable, "incomplete");
  }
  std::string_view head = bytes.substr(0, end);
  std::string_view rest = bytes.substr(end + 4);
  auto line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ' ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return Malformed("bad status line");
  }
  HttpReply reply;
  auto [p, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, reply.status);
  if (ec != std::errc() || p != status_line.data() + 12 || reply.status < 100 || reply.status > 599) {
    return Malformed("bad status code");
  }
  std::optional<std::size_t> length;
  std::string_view headers = line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!headers.empty()) {
    auto next = headers.find("\r\n");
    std::string_view h = headers.substr(0, next);
    headers = next == std::string_view::npos ? std::string_view() : headers.substr(next + 2);
    auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return Malformed("bad header line");
    std::string_view name = h.substr(0, colon);
    std::string_view value = Trim(h.substr(colon + 1));
    if (IEquals(name, "Transfer-Encoding")) return Malformed("chunked answers are not supported");
    if (IEquals(name, "Content-Length")) {
      std::size_t n = 0;
      auto [q, e2] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (e2 != std::errc() || q != value.data() + value.size()) return Malformed("bad Content-Length");
      if (length && *length != n) return Malformed("conflicting Content-Length");
      length = n;
    }
  }
  if (!length) length = 0;  // our server always sends one; no body otherwise
  if (*length > max_body) return Malformed("body too large");
  if (rest.size() < *length) return MakeError(ErrorCode::kUnavailable, "incomplete");
  reply.body = std::string(rest.substr(0, *length));
  return reply;
}

HookClient::HookClient(HookTarget target, std::string secret, std::chrono::milliseconds timeout)
    : target_(std::move(target)), secret_(std::move(secret)), timeout_(timeout) {}

Result<HttpReply> HookClient::Post(std::string_view path, std::string_view json_body) const {
  return Exchange("POST", path, json_body);
}

Result<HttpReply> HookClient::Get(std::string_view path) const { return Exchange("GET", path, {}); }

Result<HttpReply> HookClient::Exchange(std::string_view method, std::string_view path,
                                       std::string_view body) const {
  const auto deadline = Clock::now() + timeout_;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(target_.host.c_str(), target_.port.c_str(), &hints, &found) != 0 || found == nullptr) {
    return Unavailable("cannot resolve " + target_.host);
  }
  Fd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  int rc = fd.get() < 0 ? -1 : ::connect(fd.get(), found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (fd.get() < 0) return Unavailable("socket failed");
  if (rc != 0 && errno != EINPROGRESS) return Unavailable(std::string("connect: ") + std::strerror(errno));
  pollfd pfd{fd.get(), POLLOUT, 0};
  if (rc != 0) {
    if (::poll(&pfd, 1, MsLeft(deadline)) <= 0) return Unavailable("connect timed out");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Unavailable(std::string("connect: ") + std::strerror(err));
  }
  std::string request;
  request.reserve(256 + body.size() + secret_.size());
  request.append(method).append(" ").append(target_.path_prefix).append(path).append(" HTTP/1.1\r\nHost: ");
  request.append(target_.host).append(":").append(target_.port).append("\r\n");
  request.append(kHookSecretHeader).append(": ").append(secret_).append("\r\n");
  if (method == "POST") {
    request.append("Content-Type: application/json\r\nContent-Length: ")
        .append(std::to_string(body.size()))
        .append("\r\n");
  }
  request.append("Connection: close\r\n\r\n").append(body);
  std::size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Unavailable("send failed");
    pfd = {fd.get(), POLLOUT, 0};
    if (::poll(&pfd, 1, MsLeft(deadline)) <= 0) return Unavailable("send timed out");
  }
  std::string in;
  char buf[8192];
  while (true) {
    auto parsed = ParseHttpResponse(in);
    if (parsed) return parsed;
    if (parsed.error().code != ErrorCode::kUnavailable) return tl::unexpected(parsed.error());
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return Unavailable("connection closed before the answer was complete");
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Unavailable("recv failed");
    pfd = {fd.get(), POLLIN, 0};
    if (::poll(&pfd, 1, MsLeft(deadline)) <= 0) return Unavailable("no answer within the timeout");
  }
}

}  // namespace opensense::mqtt
