// The backup schedule as pure functions of a list of backups and the time: which class each
// backup belongs to, which ones pruning keeps, when an off-site copy is due and when a backup
// is overdue. No I/O, no clock of its own (the caller passes `now`, from an injected Clock).
//
// Classes, over one stream of backups taken every hour (restic's keep-hourly/keep-daily idea,
// with the first backup of each period standing for it, so a class never changes once given):
//   weekly  the first backup of its ISO week (Monday 00:00 UTC); it is copied off-site;
//   daily   the first backup of its UTC day;
//   hourly  every other one.
// Pruning keeps, locally: every backup younger than `hourly_keep_ms` (7 days); daily and weekly
// ones younger than `daily_keep_ms` (30 days); always the newest backup and the newest one whose
// restore drill passed. Off-site: copies younger than `offsite_keep_ms` (12 weeks), the newest
// copy and the newest verified copy.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.hpp"

namespace opensense::backup {

enum class BackupClass { kHourly, kDaily, kWeekly };
std::string_view BackupClassName(BackupClass c);

struct RetentionSchedule {
  TimestampMs interval_ms = kMsPerHour;              // how often a backup is taken
  TimestampMs hourly_keep_ms = 7 * kMsPerDay;
  TimestampMs daily_keep_ms = 30 * kMsPerDay;
  TimestampMs offsite_keep_ms = 12 * 7 * kMsPerDay;
};

struct BackupRecord {
  std::string name;
  TimestampMs created_at = 0;
  bool verified = false;  // its newest restore drill passed
};

// The class of each record (same order as `records`, which need not be sorted).
std::vector<BackupClass> ClassifyBackups(const std::vector<BackupRecord>& records);

struct PruneDecision {
  std::string name;
  bool keep = false;
  std::string reason;  // "hourly, younger than 7 days", "newest verified backup", "expired daily", ...
};

// One decision per record, in the order of `records`.
std::vector<PruneDecision> PlanPrune(const std::vector<BackupRecord>& records, TimestampMs now,
                                     const RetentionSchedule& schedule);
// The same for the copies at the off-site target.
std::vector<PruneDecision> PlanOffsitePrune(const std::vector<BackupRecord>& copies, TimestampMs now,
                                            const RetentionSchedule& schedule);

// Monday-based week number since the epoch (UTC), for "the first backup of the week".
std::int64_t IsoWeekIndex(TimestampMs t);

// True when a backup taken at `candidate` should be copied off-site: there is no copy yet, or
// the newest copy is from an earlier ISO week.
bool OffsiteCopyDue(std::optional<TimestampMs> newest_copy, TimestampMs candidate);

// True when the newest backup is older than two intervals (or, with none at all, the schedule
// has been running for two intervals without one): a backup was missed.
bool BackupOverdue(std::optional<TimestampMs> newest_backup, TimestampMs schedule_started,
                   TimestampMs now, TimestampMs interval_ms);

}  // namespace opensense::backup
