// The commit listener slot of a writer (private to the store module): who gets each commit's
// readings (Store::SetCommitListener), and how a writer groups them per organisation.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "store/store.hpp"

namespace opensense::store {

class CommitListenerSlot {
 public:
  void Set(CommitListener listener) {
    std::lock_guard lock(mu_);
    fn_ = listener ? std::make_shared<CommitListener>(std::move(listener)) : nullptr;
    active_ = fn_ != nullptr;
  }
  // Cheap: the writer asks before it collects anything.
  bool active() const { return active_.load(std::memory_order_relaxed); }

  // refs: (job, reading) of every committed reading, in order. `job_org(j)` and
  // `reading(j, i)` read the writer's group.
  template <typename OrgOf, typename ReadingOf>
  void Deliver(const std::vector<std::pair<std::size_t, std::size_t>>& refs, OrgOf job_org,
               ReadingOf reading) {
    if (refs.empty()) return;
    std::shared_ptr<CommitListener> fn;
    {
      std::lock_guard lock(mu_);
      fn = fn_;
    }
    if (!fn) return;
    std::vector<CommittedReadings> out;
    for (const auto& [j, i] : refs) {
      const OrgId org = job_org(j);
      if (out.empty() || out.back().org != org) out.push_back(CommittedReadings{org, {}});
      out.back().readings.push_back(reading(j, i));
    }
    (*fn)(std::move(out));
  }

 private:
  std::mutex mu_;
  std::shared_ptr<CommitListener> fn_;
  std::atomic<bool> active_{false};
};

}  // namespace opensense::store
