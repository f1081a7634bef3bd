// Answers of GET /api/v1/devices/{id}/series kept in memory (setting chart_cache_mb), each with
// the store's SeriesDataVersion of its device read before the answer was computed: a repeated
// request is served from here while that number stands (store/store.hpp says when it moves).
// Least recently used answers go first when the byte budget is full. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/types.hpp"

namespace opensense::api {

class ChartCache {
 public:
  // max_bytes 0: nothing is kept. One answer may take at most an eighth of the budget.
  explicit ChartCache(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // Everything that selects an answer; the organisation is part of it, so one organisation's
  // answer is never found by another's request.
  static std::string KeyOf(OrgId org, DeviceId device, std::string_view metric, TimestampMs from, TimestampMs to,
                           Resolution resolution);

  // The answer kept under `key` if it was computed at `version`; an older one is dropped.
  std::shared_ptr<const std::string> Find(const std::string& key, std::uint64_t version);
  void Put(const std::string& key, std::uint64_t version, std::shared_ptr<const std::string> body);

  std::size_t bytes() const;
  std::size_t entries() const;

 private:
  struct Entry {
    std::string key;
    std::uint64_t version;
    std::shared_ptr<const std::string> body;
  };
  void EraseLocked(std::list<Entry>::iterator it);

  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;  // views into lru_ keys
  std::size_t bytes_ = 0;
};

}  // namespace opensense::api
