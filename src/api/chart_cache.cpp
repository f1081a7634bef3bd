#include "api/chart_cache.hpp"

#include <fmt/core.h>

namespace opensense::api {

namespace {
// What an entry costs beyond its body and key (list node, map slot, control block).
constexpr std::size_t kEntryOverhead = 160;

std::size_t CostOf(const std::string& key, const std::string& body) { return key.size() + body.size() + kEntryOverhead; }
}  // namespace

std::string ChartCache::KeyOf(OrgId org, DeviceId device, std::string_view metric, TimestampMs from, TimestampMs to,
                              Resolution resolution) {
  // Numbers first, the metric (any bytes) last: no two queries share a key.
  return fmt::format("{}/{}/{}/{}/{}/{}", org, device, static_cast<int>(resolution), from, to, metric);
}

std::shared_ptr<const std::string> ChartCache::Find(const std::string& key, std::uint64_t version) {
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  if (it->second->version != version) {
    EraseLocked(it->second);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->body;
}

void ChartCache::Put(const std::string& key, std::uint64_t version, std::shared_ptr<const std::string> body) {
  if (!body) return;
  const std::size_t cost = CostOf(key, *body);
  if (cost > max_bytes_ / 8) return;
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    // Another request computed it meanwhile: keep the answer of the newer version.
    if (it->second->version > version) return;
    EraseLocked(it->second);
  }
  while (!lru_.empty() && bytes_ + cost > max_bytes_) EraseLocked(std::prev(lru_.end()));
  lru_.push_front(Entry{key, version, std::move(body)});
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += cost;
}

void ChartCache::EraseLocked(std::list<Entry>::iterator it) {
  bytes_ -= CostOf(it->key, *it->body);
  index_.erase(it->key);
  lru_.erase(it);
}

std::size_t ChartCache::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

std::size_t ChartCache::entries() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

}  // namespace opensense::api
