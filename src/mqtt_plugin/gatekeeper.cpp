#include "mqtt_plugin/gatekeeper.hpp"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

namespace opensense::mqtt {

namespace {
constexpr std::size_t kMaxCredentialBytes = 512;
}

std::size_t Gatekeeper::KeyHash::operator()(const Key& k) const {
  std::size_t h = 0;
  std::memcpy(&h, k.data(), sizeof h);  // the key is an HMAC: its bytes are already uniform
  return h;
}

Gatekeeper::Gatekeeper(GatekeeperOptions options, AskFn ask)
    : options_(std::move(options)), ask_(std::move(ask)), service_rules_(ServiceRules()) {
  if (::getrandom(hmac_key_.data(), hmac_key_.size(), 0) != static_cast<ssize_t>(hmac_key_.size())) {
    std::fputs("opensense plugin: getrandom failed\n", stderr);
    std::abort();
  }
}

Gatekeeper::Key Gatekeeper::KeyOf(std::string_view username, std::string_view password) const {
  Key out{};
  unsigned int len = 0;
  std::string message;
  message.reserve(username.size() + 1 + password.size());
  message.append(username).push_back('\0');
  message.append(password);
  HMAC(EVP_sha256(), hmac_key_.data(), static_cast<int>(hmac_key_.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(), &len);
  OPENSSL_cleanse(message.data(), message.size());
  return out;
}

void Gatekeeper::Install(const void* client, std::string_view client_id, const Remembered& login) {
  Client& c = clients_[std::string(client_id)];
  c.connection = client;
  c.token_id = login.token_id;
  c.site = login.site;
  c.rules = login.rules;
}

void Gatekeeper::Trim(std::int64_t now_ms) {
  for (auto it = revoked_.begin(); it != revoked_.end();) {
    it = now_ms - it->second >= options_.revoked_keep_ms ? revoked_.erase(it) : std::next(it);
  }
  if (cache_.size() < options_.max_cached) return;
  for (auto it = cache_.begin(); it != cache_.end();) {
    const auto ttl = it->second.allow ? options_.allow_ttl_ms : options_.deny_ttl_ms;
    it = now_ms - it->second.at_ms >= ttl ? cache_.erase(it) : std::next(it);
  }
  if (cache_.size() < options_.max_cached) return;
  // All fresh: drop the older half.
  std::vector<std::int64_t> ages;
  ages.reserve(cache_.size());
  for (const auto& [k, v] : cache_) ages.push_back(v.at_ms);
  std::nth_element(ages.begin(), ages.begin() + static_cast<std::ptrdiff_t>(ages.size() / 2), ages.end());
  const std::int64_t median = ages[ages.size() / 2];
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = it->second.at_ms <= median ? cache_.erase(it) : std::next(it);
  }
}

bool Gatekeeper::Authenticate(const void* client, std::string_view client_id, std::string_view username,
                              std::string_view password, std::int64_t now_ms) {
  if (username.empty() || password.empty() || username.size() > kMaxCredentialBytes ||
      password.size() > kMaxCredentialBytes) {
    return false;
  }
  std::string token_id(TokenIdOf(password));
  if (!token_id.empty()) {
    auto r = revoked_.find(token_id);
    if (r != revoked_.end() && now_ms - r->second < options_.revoked_keep_ms) return false;
  }
  const Key key = KeyOf(username, password);
  if (auto it = cache_.find(key); it != cache_.end()) {
    const Remembered& m = it->second;
    const auto ttl = m.allow ? options_.allow_ttl_ms : options_.deny_ttl_ms;
    if (now_ms >= m.at_ms && now_ms - m.at_ms < ttl) {
      ++stats_.cache_hits;
      if (m.allow) Install(client, client_id, m);
      return m.allow;
    }
    cache_.erase(it);
  }
  ++stats_.asks;
  auto answer = ask_(username, password, client_id);
  if (!answer) {
    ++stats_.ask_failures;
    return false;
  }
  bool allow = answer->allow;
  if (allow && answer->expire_at && *answer->expire_at * 1000 <= now_ms) allow = false;
  Trim(now_ms);
  Remembered m{allow, now_ms, token_id, GatewaySiteOf(username),
               allow ? std::move(answer->acl) : std::vector<AclRule>{}};
  if (allow) Install(client, client_id, m);
  cache_[key] = std::move(m);
  return allow;
}

bool Gatekeeper::Check(std::string_view client_id, std::string_view username, AclRequest request,
                       std::string_view topic) const {
  auto it = clients_.find(client_id);
  if (it != clients_.end()) return Allowed(it->second.rules, request, topic);
  // A session restored from the persistence file, before its owner reconnected.
  if (request == AclRequest::kRead && !username.empty() && username == options_.service_username) {
    return Allowed(service_rules_, request, topic);
  }
  return false;
}

void Gatekeeper::Disconnected(const void* client, std::string_view client_id, bool persistent) {
  if (persistent) return;
  auto it = clients_.find(client_id);
  if (it != clients_.end() && it->second.connection == client) clients_.erase(it);
}

std::vector<std::string> Gatekeeper::Revoke(const std::vector<std::string>& token_ids, std::int64_t now_ms) {
  std::vector<std::string> kick;
  if (token_ids.empty()) return kick;
  std::unordered_set<std::string> ids(token_ids.begin(), token_ids.end());
  for (const auto& id : ids) revoked_[id] = now_ms;
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = ids.count(it->second.token_id) != 0 ? cache_.erase(it) : std::next(it);
  }
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (!it->second.token_id.empty() && ids.count(it->second.token_id) != 0) {
      kick.push_back(it->first);
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
  stats_.kicked += kick.size();
  Trim(now_ms);
  return kick;
}

std::vector<std::string> Gatekeeper::SitesChanged(const std::vector<SiteChange>& changes) {
  std::vector<std::string> kick;
  std::unordered_set<std::int64_t> sites;
  for (const auto& c : changes) {
    auto [it, fresh] = site_changes_.emplace(c.site_id, c.changed_at_ms);
    if (!fresh && it->second >= c.changed_at_ms) continue;
    it->second = c.changed_at_ms;
    sites.insert(c.site_id);
  }
  if (sites.empty()) return kick;
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = it->second.site && sites.count(*it->second.site) != 0 ? cache_.erase(it) : std::next(it);
  }
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second.site && sites.count(*it->second.site) != 0) {
      kick.push_back(it->first);
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
  stats_.kicked += kick.size();
  return kick;
}

}  // namespace opensense::mqtt
