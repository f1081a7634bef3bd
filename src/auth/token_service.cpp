#include "auth/token_service.hpp"

#include <crypt.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/random.h>

#include <cstdio>
#include <cstring>
#include <functional>

#include "auth/token_format.hpp"

namespace opensense::auth {

namespace {

tl::unexpected<Error> Refused() {
  return MakeError(ErrorCode::kPermissionDenied, "the token is not valid");
}

bool Live(const std::optional<TimestampMs>& expires_at, TimestampMs now) {
  return !expires_at || now < *expires_at;
}

}  // namespace

std::string Principal::Describe() const {
  switch (kind) {
    case TokenKind::kDevice: return fmt::format("device:{}", device.value_or(0));
    case TokenKind::kGateway: return fmt::format("gateway:{}", site.value_or(0));
    case TokenKind::kUser: return fmt::format("user:{}", user.value_or(0));
  }
  return "unknown";
}

Result<std::string> BcryptHash(std::string_view secret, int cost) {
  if (secret.size() >= 72) {
    return MakeError(ErrorCode::kInvalidArgument, "bcrypt secrets must be shorter than 72 bytes");
  }
  unsigned char random[16];
  if (::getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random)) {
    return MakeError(ErrorCode::kInternal, "getrandom failed");
  }
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), reinterpret_cast<const char*>(random),
                       sizeof random, setting, sizeof setting) == nullptr) {
    return MakeError(ErrorCode::kInternal, fmt::format("bcrypt: cannot make a salt (cost {})", cost));
  }
  auto data = std::make_unique<crypt_data>();
  std::string s(secret);
  const char* hash = crypt_r(s.c_str(), setting, data.get());
  if (hash == nullptr || hash[0] == '*') return MakeError(ErrorCode::kInternal, "bcrypt failed");
  return std::string(hash);
}

bool BcryptVerify(std::string_view secret, const std::string& hash) {
  if (secret.size() >= 72 || hash.rfind("$2b$", 0) != 0) return false;
  auto data = std::make_unique<crypt_data>();
  std::string s(secret);
  const char* computed = crypt_r(s.c_str(), hash.c_str(), data.get());
  if (computed == nullptr || computed[0] == '*') return false;
  std::size_t n = std::strlen(computed);
  return n == hash.size() && CRYPTO_memcmp(computed, hash.data(), n) == 0;
}

struct KeyedMac::State {
  EVP_MD_CTX* inner = nullptr;  // SHA-256 that has absorbed key ^ ipad
  EVP_MD_CTX* outer = nullptr;  // SHA-256 that has absorbed key ^ opad
  ~State() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
  }
};

namespace {
[[noreturn]] void CryptoFailure(const char* what) {
  std::fprintf(stderr, "opensense: %s failed (OpenSSL); cannot compute token MACs\n", what);
  std::abort();
}
constexpr std::size_t kShaBlock = 64;
}  // namespace

KeyedMac::KeyedMac(std::span<const unsigned char> key) : s_(std::make_unique<State>()) {
  if (key.size() > kShaBlock) CryptoFailure("a key longer than the block");
  std::array<unsigned char, kShaBlock> ipad{}, opad{};
  for (std::size_t i = 0; i < kShaBlock; ++i) {
    const unsigned char k = i < key.size() ? key[i] : 0;
    ipad[i] = k ^ 0x36;
    opad[i] = k ^ 0x5c;
  }
  s_->inner = EVP_MD_CTX_new();
  s_->outer = EVP_MD_CTX_new();
  if (s_->inner == nullptr || s_->outer == nullptr ||
      EVP_DigestInit_ex(s_->inner, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(s_->inner, ipad.data(), ipad.size()) != 1 ||
      EVP_DigestInit_ex(s_->outer, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(s_->outer, opad.data(), opad.size()) != 1) {
    CryptoFailure("SHA-256 set-up");
  }
  OPENSSL_cleanse(ipad.data(), ipad.size());
  OPENSSL_cleanse(opad.data(), opad.size());
}

KeyedMac::~KeyedMac() = default;

std::array<unsigned char, 32> KeyedMac::operator()(std::string_view data) const {
  struct Scratch {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Scratch() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Scratch scratch;
  std::array<unsigned char, 32> inner_digest{}, out{};
  unsigned int len = 0;
  if (scratch.ctx == nullptr || EVP_MD_CTX_copy_ex(scratch.ctx, s_->inner) != 1 ||
      EVP_DigestUpdate(scratch.ctx, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(scratch.ctx, inner_digest.data(), &len) != 1 ||
      EVP_MD_CTX_copy_ex(scratch.ctx, s_->outer) != 1 ||
      EVP_DigestUpdate(scratch.ctx, inner_digest.data(), inner_digest.size()) != 1 ||
      EVP_DigestFinal_ex(scratch.ctx, out.data(), &len) != 1) {
    CryptoFailure("HMAC-SHA-256");
  }
  return out;
}

TokenService::TokenService(store::Store* store, const Clock* clock, TokenServiceOptions options)
    : store_(store), clock_(clock), options_(options) {
  std::array<unsigned char, 32> key{};
  if (::getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(key.size())) {
    std::fputs("opensense: getrandom failed; cannot key the token cache\n", stderr);
    std::abort();
  }
  mac_ = std::make_unique<KeyedMac>(key);
  OPENSSL_cleanse(key.data(), key.size());
}

TokenService::~TokenService() = default;

std::array<unsigned char, 32> TokenService::Mac(std::string_view token) const { return (*mac_)(token); }

Result<IssuedToken> TokenService::Issue(TokenRecord record) {
  TokenParts parts{record.kind, RandomBase62(kTokenIdLength), RandomBase62(kSecretLength)};
  OS_ASSIGN_OR_RETURN(record.secret_hash, BcryptHash(parts.secret, options_.bcrypt_cost));
  record.public_id = parts.token_id;
  OS_ASSIGN_OR_RETURN(TokenRecord stored, store_->CreateToken(record));
  return IssuedToken{FormatToken(parts), std::move(stored)};
}

Result<IssuedToken> TokenService::IssueDeviceToken(OrgId org, DeviceId device) {
  OS_ASSIGN_OR_RETURN(Device d, store_->GetDevice(org, device));
  if (d.decommissioned) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("device {} is decommissioned; it gets no new token", device));
  }
  TokenRecord r;
  r.kind = TokenKind::kDevice;
  r.org_id = org;
  r.device = device;
  return Issue(std::move(r));
}

Result<IssuedToken> TokenService::IssueGatewayToken(OrgId org, SiteId site) {
  TokenRecord r;
  r.kind = TokenKind::kGateway;
  r.org_id = org;
  r.site = site;
  return Issue(std::move(r));
}

Result<IssuedToken> TokenService::IssueUserToken(OrgId org, UserId user, Role role, std::string label) {
  TokenRecord r;
  r.kind = TokenKind::kUser;
  r.org_id = org;
  r.user = user;
  r.role = role;
  r.label = std::move(label);
  return Issue(std::move(r));
}

Status TokenService::ExpireMatching(OrgId org, TimestampMs at,
                                    const std::function<bool(const TokenRecord&)>& match) {
  OS_ASSIGN_OR_RETURN(auto tokens, store_->ListTokens(org));
  const TimestampMs now = clock_->NowMs();
  for (const auto& t : tokens) {
    if (!Live(t.expires_at, now) || !match(t)) continue;
    OS_RETURN_IF_ERROR(store_->ExpireToken(org, t.id, at));
    std::lock_guard lock(mu_);
    cache_.erase(t.public_id);
  }
  return Ok();
}

Result<IssuedToken> TokenService::RotateDeviceToken(OrgId org, DeviceId device, TimestampMs grace_ms) {
  OS_RETURN_IF_ERROR(store_->GetDevice(org, device));
  if (grace_ms < 0 || grace_ms > 30 * kMsPerDay) {
    return MakeError(ErrorCode::kInvalidArgument, "the grace period is 0 to 30 days");
  }
  OS_RETURN_IF_ERROR(ExpireMatching(org, clock_->NowMs() + grace_ms, [&](const TokenRecord& t) {
    return t.kind == TokenKind::kDevice && t.device == device;
  }));
  return IssueDeviceToken(org, device);
}

Result<IssuedToken> TokenService::RotateGatewayToken(OrgId org, SiteId site, TimestampMs grace_ms) {
  OS_RETURN_IF_ERROR(store_->GetSite(org, site));
  if (grace_ms < 0 || grace_ms > 30 * kMsPerDay) {
    return MakeError(ErrorCode::kInvalidArgument, "the grace period is 0 to 30 days");
  }
  OS_RETURN_IF_ERROR(ExpireMatching(org, clock_->NowMs() + grace_ms, [&](const TokenRecord& t) {
    return t.kind == TokenKind::kGateway && t.site == site;
  }));
  return IssueGatewayToken(org, site);
}

Status TokenService::Revoke(OrgId org, std::int64_t token_id) {
  bool found = false;
  OS_RETURN_IF_ERROR(ExpireMatching(org, clock_->NowMs(), [&](const TokenRecord& t) {
    if (t.id != token_id) return false;
    found = true;
    return true;
  }));
  if (!found) return MakeError(ErrorCode::kNotFound, fmt::format("no active token {}", token_id));
  return Ok();
}

Status TokenService::RevokeDeviceTokens(OrgId org, DeviceId device) {
  return ExpireMatching(org, clock_->NowMs(), [&](const TokenRecord& t) {
    return t.kind == TokenKind::kDevice && t.device == device;
  });
}

void TokenService::MaybeTouch(std::int64_t token_id, TimestampMs now) {
  {
    std::lock_guard lock(mu_);
    auto it = touched_.find(token_id);
    if (it != touched_.end() && now - it->second < options_.last_used_interval_ms) return;
    touched_[token_id] = now;
  }
  (void)store_->TouchTokens({{token_id, now}});  // best effort: a missed touch is harmless
}

Result<Principal> TokenService::Verify(std::string_view presented) {
  OS_ASSIGN_OR_RETURN(TokenParts parts, ParseToken(presented));
  const TimestampMs now = clock_->NowMs();
  const auto mac = Mac(presented);
  // The store and bcrypt are called without holding the lock.
  std::optional<Principal> hit;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(parts.token_id);
    if (it != cache_.end()) {
      const CacheEntry& e = it->second;
      bool fresh = now >= e.verified_at && now - e.verified_at < options_.cache_ttl_ms;
      if (fresh && CRYPTO_memcmp(e.mac.data(), mac.data(), mac.size()) == 0) {
        if (!Live(e.expires_at, now)) return Refused();
        hit = e.principal;
      }
    }
  }
  if (hit) {
    MaybeTouch(hit->token_id, now);
    return *hit;
  }
  auto record = store_->FindToken(parts.token_id);
  if (!record) {
    if (record.error().code == ErrorCode::kNotFound) return Refused();
    return tl::unexpected(record.error());
  }
  if (record->kind != parts.kind || !Live(record->expires_at, now)) return Refused();
  {
    std::lock_guard lock(mu_);
    ++bcrypt_verifications_;
  }
  if (!BcryptVerify(parts.secret, record->secret_hash)) return Refused();
  Principal p;
  p.kind = record->kind;
  p.token_id = record->id;
  p.org = record->org_id;
  p.device = record->device;
  p.site = record->site;
  p.user = record->user;
  p.role = record->role;
  {
    std::lock_guard lock(mu_);
    if (cache_.size() >= options_.cache_capacity) {
      // Drop stale entries first; if all are fresh, drop an arbitrary one.
      for (auto it = cache_.begin(); it != cache_.end();) {
        it = now - it->second.verified_at >= options_.cache_ttl_ms ? cache_.erase(it) : std::next(it);
      }
      if (cache_.size() >= options_.cache_capacity) cache_.erase(cache_.begin());
    }
    cache_[parts.token_id] = CacheEntry{mac, p, now, record->expires_at};
  }
  MaybeTouch(p.token_id, now);
  return p;
}

std::size_t TokenService::cache_size() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

std::uint64_t TokenService::bcrypt_verifications() const {
  std::lock_guard lock(mu_);
  return bcrypt_verifications_;
}

}  // namespace opensense::auth
