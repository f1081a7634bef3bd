// The commit listeners of a writer (private to the store module): who gets each commit's
// readings (Store::AddCommitListener), and how a writer groups them per organisation.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "store/store.hpp"

namespace opensense::store {

// Several listeners (the alert evaluator, the dashboard's live updates). The writer reads a
// snapshot (copy on write), so adding or removing one never waits for a delivery.
class CommitListenerSlot {
 public:
  CommitListenerId Add(CommitListener listener, CommitFilter wants = {}) {
    std::lock_guard lock(mu_);
    const CommitListenerId id = ++last_id_;
    auto next = std::make_shared<Entries>(entries_ ? *entries_ : Entries{});
    next->push_back(std::make_shared<const Entry>(Entry{id, std::move(listener), std::move(wants)}));
    entries_ = std::move(next);
    active_ = true;
    return id;
  }
  void Remove(CommitListenerId id) {
    std::lock_guard lock(mu_);
    if (!entries_) return;
    auto next = std::make_shared<Entries>();
    for (const auto& e : *entries_) {
      if (e->id != id) next->push_back(e);
    }
    active_ = !next->empty();
    entries_ = std::move(next);
  }
  // Cheap: the writer asks before it collects anything.
  bool active() const { return active_.load(std::memory_order_relaxed); }

  // refs: (job, reading) of every committed reading, in order. `job_org(j)` and
  // `reading(j, i)` read the writer's group. Each listener gets the readings of the
  // organisations its filter wants, grouped per organisation in commit order.
  template <typename OrgOf, typename ReadingOf>
  void Deliver(const std::vector<std::pair<std::size_t, std::size_t>>& refs, OrgOf job_org,
               ReadingOf reading) {
    if (refs.empty()) return;
    std::shared_ptr<const Entries> entries;
    {
      std::lock_guard lock(mu_);
      entries = entries_;
    }
    if (!entries) return;
    for (const auto& fn : *entries) {
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
  }

 private:
  struct Entry {
    CommitListenerId id;
    CommitListener listener;
    CommitFilter wants;
  };
  using Entries = std::vector<std::shared_ptr<const Entry>>;
  std::mutex mu_;
  std::shared_ptr<const Entries> entries_;
  CommitListenerId last_id_ = 0;
  std::atomic<bool> active_{false};
};

}  // namespace opensense::store
