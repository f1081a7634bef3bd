// Test helpers: raw TCP connections (for what a well-behaved client never sends), a gate for
// handlers that must block until the test says so, and server start-up with test options.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "api/http/server.hpp"

namespace opensense::http::testing {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

inline std::chrono::milliseconds Since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
}

// A blocking TCP connection to 127.0.0.1 with timed reads.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      connect_errno_ = errno;
      ::close(fd_);
      fd_ = -1;
      return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{5, 0};  // a send never blocks a test for long
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  ~RawConnection() { Close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool ok() const { return fd_ >= 0; }
  int connect_errno() const { return connect_errno_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Sends all of `data`; false when the connection is gone or a send timed out.
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads one whole response (head, then a Content-Length or chunked body; a body without
  // either runs to the close). Returns what was read, complete or not, when `timeout` passes.
  // `head`: the request was HEAD, so a Content-Length announces no body.
  std::string ReadResponse(milliseconds timeout, bool head = false) {
    auto deadline = SteadyClock::now() + timeout;
    while (true) {
      std::size_t end = Complete(head);
      if (end != std::string::npos) {
        std::string out = pending_.substr(0, end);
        pending_.erase(0, end);
        return out;
      }
      if (!ReadSome(deadline)) break;
    }
    std::string out;
    out.swap(pending_);
    return out;
  }

  // Reads until the peer closes (or resets) the connection, at most `timeout`. Returns whether
  // it closed; `data` (optional) receives what was read.
  bool WaitClosed(milliseconds timeout, std::string* data = nullptr) {
    auto deadline = SteadyClock::now() + timeout;
    while (ReadSome(deadline)) {
    }
    if (data != nullptr) *data = pending_;
    pending_.clear();
    return eof_;
  }

  // True when the peer has already closed, without waiting.
  bool ClosedNow() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }

 private:
  // Reads what arrives before the deadline; false on close, error or timeout.
  bool ReadSome(SteadyClock::time_point deadline) {
    if (eof_ || fd_ < 0) return false;
    auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r <= 0) return false;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    pending_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  // The end of the first complete response in pending_, or npos.
  std::size_t Complete(bool head_request) const {
    std::size_t head_end = pending_.find("\r\n\r\n");
    if (head_end == std::string::npos) return std::string::npos;
    head_end += 4;
    std::string head = pending_.substr(0, head_end);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (head.rfind("http/1.1 1", 0) == 0) return head_end;  // 100 Continue
    if (head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
      std::size_t last = pending_.find("\r\n0\r\n\r\n", head_end - 2);
      return last == std::string::npos ? last : last + 7;
    }
    std::size_t cl = head.find("\r\ncontent-length:");
    if (cl == std::string::npos) return eof_ ? pending_.size() : std::string::npos;
    std::size_t length = std::stoul(head.substr(cl + 17));
    if (head_request) length = 0;
    if (pending_.size() < head_end + length) return std::string::npos;
    return head_end + length;
  }

  int fd_ = -1;
  int connect_errno_ = 0;
  bool eof_ = false;
  std::string pending_;
};

inline int StatusOf(const std::string& response) {
  if (response.size() < 12 || response.rfind("HTTP/1.", 0) != 0) return 0;
  return std::stoi(response.substr(9, 3));
}

inline std::string BodyOf(const std::string& response) {
  std::size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

// A one-shot signal: handlers wait on it, the test opens it.
class Gate {
 public:
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool Wait(milliseconds timeout = milliseconds(10000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Options for tests: port 0, short timeouts that still tolerate a loaded machine.
inline ServerOptions TestOptions() {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.io_threads = 1;
  options.worker_threads = 2;
  options.header_timeout = milliseconds(3000);
  options.body_timeout = milliseconds(3000);
  options.idle_timeout = milliseconds(3000);
  options.write_timeout = milliseconds(3000);
  options.drain_timeout = milliseconds(3000);
  options.stream_poll_interval = milliseconds(5);
  return options;
}

inline std::unique_ptr<Server> StartServer(Router router, ServerOptions options = TestOptions()) {
  auto server = Server::Start(std::move(options), std::move(router));
  EXPECT_TRUE(server.has_value()) << server.error().ToString();
  return server ? std::move(*server) : nullptr;
}

}  // namespace opensense::http::testing
