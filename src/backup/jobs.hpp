// The scheduled side of backups, run by the scheduler role (`opensense serve`): the hourly
// backup job (backup, weekly off-site copy, pruning), the missed-backup watch, and the restore
// drills (daily on the newest local backup, weekly on the newest off-site copy fetched back).
// Every outcome goes to the log and /metrics; a failure or a missed backup raises an operator
// alert.
//
// Threads: the scheduler thread calls the jobs one at a time; nothing here is shared with
// other threads except the metrics registry (thread-safe) and the alerts sink.
#pragma once

#include <optional>
#include <string>

#include "backup/backup.hpp"
#include "core/metrics.hpp"
#include "core/outbound.hpp"

namespace opensense::backup {

struct BackupJobOptions {
  BackupOptions backup;
  // The age identity for restore drills; empty: no drills (the usual case on the backup host,
  // which never holds the private key; run them on the machine that does).
  std::string identity_file;
  TimestampMs drill_interval_ms = kMsPerDay;
  TimestampMs offsite_drill_interval_ms = 7 * kMsPerDay;
};

class BackupJobs {
 public:
  // `alerts` and `metrics` are not owned and must outlive this; `metrics` may be null.
  BackupJobs(BackupJobOptions options, OperatorAlerts* alerts, MetricsRegistry* metrics,
             TimestampMs started_at);

  // One backup, its off-site copy when this week has none yet, then pruning (local and
  // off-site). Returns the first failure (already alerted and counted).
  Status RunBackupJob(TimestampMs now);
  // Raises `backup_missed` when the newest backup is older than two intervals.
  void CheckMissed(TimestampMs now);
  // The drill of the newest local backup; and, when the newest off-site copy has not been
  // drilled for `offsite_drill_interval_ms`, the drill of that copy fetched back.
  Status RunDrillJob(TimestampMs now);

 private:
  void Alert(const std::string& kind, OperatorSeverity severity, const std::string& subject,
             const std::string& body, const std::string& dedup_key);
  void CountFailure(const std::string& stage);
  void Gauge(const std::string& name, const std::string& help, const Labels& labels, double v);

  BackupJobOptions options_;
  OperatorAlerts* alerts_;
  MetricsRegistry* metrics_;
  TimestampMs started_at_;
  bool missed_raised_ = false;
};

}  // namespace opensense::backup
