#include "app/systemd_notify.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace opensense::app {

Result<NotifyAddress> ParseNotifySocket(std::string_view value) {
  NotifyAddress out;
  out.addr.sun_family = AF_UNIX;
  if (value.empty() || (value.front() != '/' && value.front() != '@')) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "NOTIFY_SOCKET is neither a socket path (/...) nor an abstract name (@...)");
  }
  if (value.size() >= sizeof(out.addr.sun_path)) {
    return MakeError(ErrorCode::kInvalidArgument, "NOTIFY_SOCKET is longer than a socket address");
  }
  std::memcpy(out.addr.sun_path, value.data(), value.size());
  if (value.front() == '@') out.addr.sun_path[0] = '\0';  // abstract: no terminating NUL counted
  out.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() +
                                      (value.front() == '/' ? 1 : 0));
  return out;
}

std::optional<std::chrono::microseconds> WatchdogPingInterval(const char* watchdog_usec,
                                                              const char* watchdog_pid, pid_t self) {
  auto number = [](const char* text) -> std::optional<long long> {
    if (text == nullptr || *text == '\0') return std::nullopt;
    long long v = 0;
    const char* end = text + std::strlen(text);
    const auto [p, ec] = std::from_chars(text, end, v);
    if (ec != std::errc() || p != end || v <= 0) return std::nullopt;
    return v;
  };
  const auto usec = number(watchdog_usec);
  if (!usec) return std::nullopt;
  if (watchdog_pid != nullptr && *watchdog_pid != '\0') {
    const auto pid = number(watchdog_pid);
    if (!pid || *pid != static_cast<long long>(self)) return std::nullopt;
  }
  return std::chrono::microseconds(*usec / 2);
}

Status Notify(std::string_view state) {
  const char* socket_name = std::getenv("NOTIFY_SOCKET");
  if (socket_name == nullptr) return Ok();
  OS_ASSIGN_OR_RETURN(NotifyAddress address, ParseNotifySocket(socket_name));
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("sd_notify: socket: {}", std::strerror(errno)));
  }
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&address.addr), address.length);
  const int err = errno;
  ::close(fd);
  if (sent < 0) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("sd_notify: cannot send to NOTIFY_SOCKET {}: {}", socket_name,
                                 std::strerror(err)));
  }
  return Ok();
}

}  // namespace opensense::app
