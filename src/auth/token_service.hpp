// Minting, verifying, rotating and revoking bearer tokens.
//
// Verification is what ingest pays per request, and bcrypt costs ~50 ms at cost 10, so verified
// tokens are cached: the entry is keyed by the token id and holds an HMAC-SHA256 of the whole
// token under a per-process random key, compared in constant time; entries live a short TTL and
// are dropped at once when this process rotates or revokes the token. last_used_at is written at
// most once per interval per token.
//
// Threads: every method may be called from any thread.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "core/clock.hpp"
#include "store/store.hpp"

namespace opensense::auth {

struct TokenServiceOptions {
  int bcrypt_cost = 10;                        // $2b$ cost; >= 10 in production (tests use 4)
  std::size_t cache_capacity = 100'000;        // verified tokens kept in memory
  TimestampMs cache_ttl_ms = 30 * kMsPerSecond;  // a token revoked by another process stops within this
  TimestampMs last_used_interval_ms = kMsPerMinute;
};

// Who a verified token speaks for.
struct Principal {
  TokenKind kind = TokenKind::kDevice;
  std::int64_t token_id = 0;
  OrgId org = 0;
  std::optional<DeviceId> device;
  std::optional<SiteId> site;
  std::optional<UserId> user;
  Role role = Role::kViewer;
  // Users only, filled by the API's authentication: the session the request came with (none for
  // an API token) and the member's address.
  std::optional<std::int64_t> session;
  std::string email;
  std::string Describe() const;  // "device:12", "gateway:3", "user:7" for logs
};

// A freshly minted token: the only moment its text exists outside the client.
struct IssuedToken {
  std::string token;
  TokenRecord record;
};

// HMAC-SHA-256 under one fixed key, with the key's inner and outer pads hashed once: the token
// cache computes one per request, and OpenSSL's one-shot HMAC() costs more than the hashing.
// Thread-safe.
class KeyedMac {
 public:
  explicit KeyedMac(std::span<const unsigned char> key);
  ~KeyedMac();
  KeyedMac(const KeyedMac&) = delete;
  KeyedMac& operator=(const KeyedMac&) = delete;
  std::array<unsigned char, 32> operator()(std::string_view data) const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

class TokenService {
 public:
  TokenService(store::Store* store, const Clock* clock, TokenServiceOptions options = {});
  ~TokenService();

  Result<IssuedToken> IssueDeviceToken(OrgId org, DeviceId device);
  Result<IssuedToken> IssueGatewayToken(OrgId org, SiteId site);
  Result<IssuedToken> IssueUserToken(OrgId org, UserId user, Role role, std::string label);
  // A new device token; the device's current tokens stop working now, or after `grace_ms`.
  Result<IssuedToken> RotateDeviceToken(OrgId org, DeviceId device, TimestampMs grace_ms);
  Result<IssuedToken> RotateGatewayToken(OrgId org, SiteId site, TimestampMs grace_ms);
  // Stops a token (any kind) of the organisation now.
  Status Revoke(OrgId org, std::int64_t token_id);
  // Stops every token of a device now (decommissioning).
  Status RevokeDeviceTokens(OrgId org, DeviceId device);

  // kPermissionDenied (never a detail that helps an attacker) unless `presented` is a live token.
  Result<Principal> Verify(std::string_view presented);

  // For tests and /metrics.
  std::size_t cache_size() const;
  std::uint64_t bcrypt_verifications() const;

 private:
  struct CacheEntry {
    std::array<unsigned char, 32> mac;
    Principal principal;
    TimestampMs verified_at;
    std::optional<TimestampMs> expires_at;
  };
  Result<IssuedToken> Issue(TokenRecord record);
  Status ExpireMatching(OrgId org, TimestampMs at,
                        const std::function<bool(const TokenRecord&)>& match);
  std::array<unsigned char, 32> Mac(std::string_view token) const;
  void MaybeTouch(std::int64_t token_id, TimestampMs now);

  store::Store* store_;
  const Clock* clock_;
  TokenServiceOptions options_;
  std::unique_ptr<KeyedMac> mac_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, CacheEntry> cache_;  // by token id
  std::unordered_map<std::int64_t, TimestampMs> touched_;
  std::uint64_t bcrypt_verifications_ = 0;
};

// bcrypt ($2b$) of a secret shorter than 72 bytes; exposed for tests.
Result<std::string> BcryptHash(std::string_view secret, int cost);
bool BcryptVerify(std::string_view secret, const std::string& hash);

}  // namespace opensense::auth
