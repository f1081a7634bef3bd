#include "api/client_address.hpp"

#include <arpa/inet.h>

#include <algorithm>

#include <fmt/format.h>

namespace opensense::api {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Canonical text of an IP address, or nullopt.
std::optional<std::string> Canonical(std::string_view text) {
  text = Trim(text);
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string s(text);
  char out[INET6_ADDRSTRLEN];
  unsigned char buf[sizeof(in6_addr)];
  if (::inet_pton(AF_INET, s.c_str(), buf) == 1) return std::string(::inet_ntop(AF_INET, buf, out, sizeof out));
  if (::inet_pton(AF_INET6, s.c_str(), buf) == 1) return std::string(::inet_ntop(AF_INET6, buf, out, sizeof out));
  return std::nullopt;
}

}  // namespace

Result<TrustedProxies> TrustedProxies::Parse(std::string_view text) {
  TrustedProxies out;
  while (!Trim(text).empty()) {
    const std::size_t comma = std::min(text.find(','), text.size());
    const std::string_view item = Trim(text.substr(0, comma));
    auto address = Canonical(item);
    if (!address) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("'{}' is not an IP address (e.g. 127.0.0.1 or ::1)", item));
    }
    out.addresses_.push_back(*address);
    text.remove_prefix(std::min(comma + 1, text.size()));
  }
  return out;
}

bool TrustedProxies::Contains(std::string_view host) const {
  auto c = Canonical(host);
  return c && std::find(addresses_.begin(), addresses_.end(), *c) != addresses_.end();
}

std::string_view PeerHost(std::string_view peer) {
  if (!peer.empty() && peer.front() == '[') {
    const std::size_t close = peer.find(']');
    return close == std::string_view::npos ? peer : peer.substr(1, close - 1);
  }
  const std::size_t colon = peer.rfind(':');
  if (colon == std::string_view::npos || peer.find(':') != colon) return peer;  // bare IPv6
  return peer.substr(0, colon);
}

std::string ClientAddress(std::string_view peer, std::optional<std::string_view> forwarded_for,
                          const TrustedProxies& trusted) {
  if (!forwarded_for || trusted.empty() || !trusted.Contains(PeerHost(peer))) return std::string(peer);
  std::string_view list = *forwarded_for;
  while (!list.empty()) {
    const std::size_t comma = list.rfind(',');
    const std::string_view item = Trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(0, comma);
    auto address = Canonical(item);
    if (!address) return std::string(peer);  // garbage from the proxy: keep what we know
    if (!trusted.Contains(*address)) return *address;
  }
  return std::string(peer);
}

}  // namespace opensense::api
