// The plugin's decisions, apart from the broker: who may connect (asking OpenSense, remembering
// answers for a short time), what each connected client may do (answered from memory), and which
// clients to disconnect when their token stops working.
//
// Threads: NOT thread-safe. The plugin calls it from the broker's thread only (auth, ACL,
// disconnect and tick events all run there); the revocation poller hands its findings over
// through a queue that the tick drains.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "mqtt_plugin/acl.hpp"

namespace opensense::mqtt {

struct GatekeeperOptions {
  // How long an allowed (username, password) is remembered. A token revoked in OpenSense is
  // refused after at most this long even if the revocation poller is down. Default 30 s.
  std::int64_t allow_ttl_ms = 30'000;
  // How long a refused (username, password) is remembered, so a client retrying a bad token in a
  // loop costs OpenSense (and bcrypt) at most one check per this. Default 5 s.
  std::int64_t deny_ttl_ms = 5'000;
  // Token ids reported revoked are refused locally this long, longer than OpenSense's own
  // verification cache (30 s), so a revocation made by another OpenSense process cannot be
  // undone by a stale cache there. Default 120 s.
  std::int64_t revoked_keep_ms = 120'000;
  // Remembered answers at most; the oldest half is dropped beyond it. Default 100,000.
  std::size_t max_cached = 100'000;
  // The OpenSense subscriber's MQTT username. A persistent session of that user restored from
  // the broker's persistence file (before it reconnects) may still receive devices/+/readings,
  // so nothing published while it is away is dropped.
  std::string service_username = "opensense";
};

struct GatekeeperStats {
  std::uint64_t cache_hits = 0;
  std::uint64_t asks = 0;          // calls to OpenSense
  std::uint64_t ask_failures = 0;  // OpenSense unreachable or answering nonsense
  std::uint64_t kicked = 0;
};

class Gatekeeper {
 public:
  // Asks OpenSense's /internal/mqtt/auth; an error means "could not ask" (the login is refused
  // and nothing is remembered).
  using AskFn = std::function<Result<AuthAnswer>(std::string_view username, std::string_view password,
                                                 std::string_view client_id)>;

  Gatekeeper(GatekeeperOptions options, AskFn ask);

  // A CONNECT with username and password. `client` identifies the connection (the broker's
  // client pointer): a later connection with the same client id replaces this one.
  bool Authenticate(const void* client, std::string_view client_id, std::string_view username,
                    std::string_view password, std::int64_t now_ms);

  // Publish, subscribe or delivery, from memory only; deny when unknown.
  bool Check(std::string_view client_id, std::string_view username, AclRequest request,
             std::string_view topic) const;

  // The connection is gone. A persistent session keeps its rules (messages are still queued for
  // it under them); a clean one forgets them.
  void Disconnected(const void* client, std::string_view client_id, bool persistent);

  // These token ids stopped working: forget what was remembered for them and return the client
  // ids connected with them (to be kicked by the caller).
  std::vector<std::string> Revoke(const std::vector<std::string>& token_ids, std::int64_t now_ms);

  // These sites got new devices: forget the remembered logins of their gateways and return the
  // gateways' client ids (to be kicked: they log in again and get a list with the new devices).
  // A change already acted on (same site, same or older time) is ignored, so the feed's overlap
  // does not disconnect a gateway twice.
  std::vector<std::string> SitesChanged(const std::vector<SiteChange>& changes);

  const GatekeeperStats& stats() const { return stats_; }
  std::size_t cached() const { return cache_.size(); }
  std::size_t clients() const { return clients_.size(); }

 private:
  using Key = std::array<unsigned char, 32>;
  struct KeyHash {
    std::size_t operator()(const Key& k) const;
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Remembered {
    bool allow = false;
    std::int64_t at_ms = 0;
    std::string token_id;
    std::optional<std::int64_t> site;  // a gateway's
    std::vector<AclRule> rules;
  };
  struct Client {
    const void* connection = nullptr;
    std::string token_id;
    std::optional<std::int64_t> site;
    std::vector<AclRule> rules;
  };
  Key KeyOf(std::string_view username, std::string_view password) const;
  void Install(const void* client, std::string_view client_id, const Remembered& login);
  void Trim(std::int64_t now_ms);

  GatekeeperOptions options_;
  AskFn ask_;
  std::array<unsigned char, 32> hmac_key_;
  std::unordered_map<Key, Remembered, KeyHash> cache_;
  std::unordered_map<std::string, Client, StringHash, std::equal_to<>> clients_;  // by client id
  std::unordered_map<std::string, std::int64_t> revoked_;    // token id -> when reported
  std::unordered_map<std::int64_t, std::int64_t> site_changes_;  // site -> newest change acted on
  std::vector<AclRule> service_rules_;
  GatekeeperStats stats_;
};

}  // namespace opensense::mqtt
