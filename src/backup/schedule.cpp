#include "backup/schedule.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace opensense::backup {

namespace {

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::string Days(TimestampMs ms) { return fmt::format("{} days", ms / kMsPerDay); }

// Index of the newest record, and of the newest verified one (or -1).
std::pair<int, int> Newest(const std::vector<BackupRecord>& records) {
  int newest = -1, newest_verified = -1;
  for (int i = 0; i < static_cast<int>(records.size()); ++i) {
    const auto& r = records[static_cast<std::size_t>(i)];
    if (newest < 0 || r.created_at > records[static_cast<std::size_t>(newest)].created_at) newest = i;
    if (r.verified && (newest_verified < 0 ||
                       r.created_at > records[static_cast<std::size_t>(newest_verified)].created_at)) {
      newest_verified = i;
    }
  }
  return {newest, newest_verified};
}

}  // namespace

std::string_view BackupClassName(BackupClass c) {
  switch (c) {
    case BackupClass::kHourly: return "hourly";
    case BackupClass::kDaily: return "daily";
    case BackupClass::kWeekly: return "weekly";
  }
  return "hourly";
}

std::int64_t IsoWeekIndex(TimestampMs t) {
  // 1970-01-01 was a Thursday: day 4 is the first Monday.
  return FloorDiv(FloorDiv(t, kMsPerDay) + 3, 7);
}

std::vector<BackupClass> ClassifyBackups(const std::vector<BackupRecord>& records) {
  // The earliest backup of each day and of each week (ties: the first listed).
  std::map<std::int64_t, std::size_t> first_of_day, first_of_week;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const TimestampMs t = records[i].created_at;
    auto take = [&](std::map<std::int64_t, std::size_t>& m, std::int64_t key) {
      auto [it, inserted] = m.emplace(key, i);
      if (!inserted && t < records[it->second].created_at) it->second = i;
    };
    take(first_of_day, FloorDiv(t, kMsPerDay));
    take(first_of_week, IsoWeekIndex(t));
  }
  std::vector<BackupClass> out(records.size(), BackupClass::kHourly);
  for (const auto& [day, i] : first_of_day) out[i] = BackupClass::kDaily;
  for (const auto& [week, i] : first_of_week) out[i] = BackupClass::kWeekly;
  return out;
}

std::vector<PruneDecision> PlanPrune(const std::vector<BackupRecord>& records, TimestampMs now,
                                     const RetentionSchedule& schedule) {
  const auto classes = ClassifyBackups(records);
  const auto [newest, newest_verified] = Newest(records);
  std::vector<PruneDecision> out;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const TimestampMs age = now - r.created_at;
    PruneDecision d{r.name, true, ""};
    const std::string_view cls = BackupClassName(classes[i]);
    if (static_cast<int>(i) == newest_verified) {
      d.reason = "newest verified backup";
    } else if (static_cast<int>(i) == newest) {
      d.reason = "newest backup";
    } else if (age < schedule.hourly_keep_ms) {
      d.reason = fmt::format("{}, younger than {}", cls, Days(schedule.hourly_keep_ms));
    } else if (classes[i] != BackupClass::kHourly && age < schedule.daily_keep_ms) {
      d.reason = fmt::format("{}, younger than {}", cls, Days(schedule.daily_keep_ms));
    } else {
      d.keep = false;
      d.reason = fmt::format("{}, expired", cls);
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<PruneDecision> PlanOffsitePrune(const std::vector<BackupRecord>& copies, TimestampMs now,
                                            const RetentionSchedule& schedule) {
  const auto [newest, newest_verified] = Newest(copies);
  std::vector<PruneDecision> out;
  for (std::size_t i = 0; i < copies.size(); ++i) {
    const auto& r = copies[i];
    PruneDecision d{r.name, true, ""};
    if (static_cast<int>(i) == newest_verified) {
      d.reason = "newest verified off-site copy";
    } else if (static_cast<int>(i) == newest) {
      d.reason = "newest off-site copy";
    } else if (now - r.created_at < schedule.offsite_keep_ms) {
      d.reason = fmt::format("weekly off-site copy, younger than {} weeks",
                             schedule.offsite_keep_ms / (7 * kMsPerDay));
    } else {
      d.keep = false;
      d.reason = "weekly off-site copy, expired";
    }
    out.push_back(std::move(d));
  }
  return out;
}

bool OffsiteCopyDue(std::optional<TimestampMs> newest_copy, TimestampMs candidate) {
  return !newest_copy || IsoWeekIndex(*newest_copy) < IsoWeekIndex(candidate);
}

bool BackupOverdue(std::optional<TimestampMs> newest_backup, TimestampMs schedule_started,
                   TimestampMs now, TimestampMs interval_ms) {
  const TimestampMs since = newest_backup ? *newest_backup : schedule_started;
  return now - since > 2 * interval_ms;
}

}  // namespace opensense::backup
