// systemd's notification protocol (sd_notify(3)) by hand, without libsystemd: datagrams such as
// "READY=1", "WATCHDOG=1", "STOPPING=1" sent to the unix socket named by $NOTIFY_SOCKET (a path,
// or an abstract name written with a leading '@'). With no $NOTIFY_SOCKET every call is a no-op,
// so `opensense serve` outside systemd behaves as before.
//
// Threads: Notify() may be called from any thread (one datagram per call, no shared state).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace opensense::app {

struct NotifyAddress {
  sockaddr_un addr{};
  socklen_t length = 0;
};

// "$NOTIFY_SOCKET" -> the address to send to. "/run/systemd/notify" or "@name" (abstract).
// kInvalidArgument for an empty value, another form (vsock is not supported) or a name too long.
Result<NotifyAddress> ParseNotifySocket(std::string_view value);

// How often to send WATCHDOG=1: half of $WATCHDOG_USEC, when it is set and $WATCHDOG_PID (if
// set) is `self`; nullopt when the watchdog is off for this process. Values as text (nullptr: unset).
std::optional<std::chrono::microseconds> WatchdogPingInterval(const char* watchdog_usec,
                                                              const char* watchdog_pid, pid_t self);

// Sends `state` to $NOTIFY_SOCKET. OK (and nothing sent) when $NOTIFY_SOCKET is unset.
Status Notify(std::string_view state);

}  // namespace opensense::app
