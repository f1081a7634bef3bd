// Which address a request came from, for the API request log: the TCP peer, or — only when the
// peer is one of the configured trusted proxies (setting `trusted_proxies`, e.g. Caddy on
// 127.0.0.1) — the address that proxy wrote into X-Forwarded-For. Pure; no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace opensense::api {

// The proxies whose X-Forwarded-For is believed, as IP addresses (IPv4 or IPv6).
class TrustedProxies {
 public:
  TrustedProxies() = default;
  // "127.0.0.1, ::1" -> the set; empty text: trust no one. kInvalidArgument names a bad entry.
  static Result<TrustedProxies> Parse(std::string_view comma_separated);
  // `host` ("127.0.0.1", "::1", "[::1]") is one of them.
  bool Contains(std::string_view host) const;
  bool empty() const { return addresses_.empty(); }

 private:
  std::vector<std::string> addresses_;  // canonical text (inet_ntop)
};

// The host part of a peer address: "127.0.0.1:5123" -> "127.0.0.1", "[::1]:5123" -> "::1".
std::string_view PeerHost(std::string_view peer);

// The client of a request: `peer` (kept as is, with its port) unless PeerHost(peer) is trusted
// and `forwarded_for` is present; then the right-most X-Forwarded-For entry that is not itself a
// trusted proxy (the one the nearest trusted proxy saw), when it is a valid IP address.
std::string ClientAddress(std::string_view peer, std::optional<std::string_view> forwarded_for,
                          const TrustedProxies& trusted);

}  // namespace opensense::api
