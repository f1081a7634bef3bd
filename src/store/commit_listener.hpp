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
  void Set(CommitListener listener, CommitFilter wants = {}) {
    std::lock_guard lock(mu_);
    fn_ = listener ? std::make_shared<Entry>(Entry{std::move(listener), std::move(wants)}) : nullptr;
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
    std::shared_ptr<Entry> fn;
    {
      std::lock_guard lock(mu_);
      fn = fn_;
    }
    if (!fn) return;
    std::vector<CommittedReadings> out;
    bool first = true;
    OrgId last_org = 0;
    bool wanted = false;
    for (const auto& [j, i] : refs) {
      const OrgId org = job_org(j);
      if (first || org != last_org) {
        first = false;
        last_org = org;
        wanted = !fn->wants || fn->wants(org);
        if (wanted) out.push_back(CommittedReadings{org, {}});
      }
      if (wanted) out.back().readings.push_back(reading(j, i));
    }
    if (!out.empty()) fn->listener(std::move(out));
  }

 private:
  struct Entry {
    CommitListener listener;
    CommitFilter wants;
  };
  std::mutex mu_;
  std::shared_ptr<Entry> fn_;
  std::atomic<bool> active_{false};
};

}  // namespace opensense::store
