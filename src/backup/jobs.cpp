#include "backup/jobs.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace opensense::backup {

namespace {
double Seconds(TimestampMs ms) { return static_cast<double>(ms) / 1000.0; }
}  // namespace

BackupJobs::BackupJobs(BackupJobOptions options, OperatorAlerts* alerts, MetricsRegistry* metrics,
                       TimestampMs started_at)
    : options_(std::move(options)), alerts_(alerts), metrics_(metrics), started_at_(started_at) {
  if (!options_.backup.progress) {
    options_.backup.progress = [](const std::string& line) { spdlog::info("backup: {}", line); };
  }
}

void BackupJobs::Alert(const std::string& kind, OperatorSeverity severity, const std::string& subject,
                       const std::string& body, const std::string& dedup_key) {
  spdlog::error("backup: {}: {}", subject, body);
  if (alerts_ != nullptr) alerts_->Raise(OperatorAlert{kind, severity, subject, body, dedup_key});
}

void BackupJobs::CountFailure(const std::string& stage) {
  if (metrics_ == nullptr) return;
  metrics_->GetCounter("opensense_backup_failures_total",
                       "Backup, off-site copy, pruning and restore drill failures, by stage.",
                       {{"stage", stage}})
      .Inc();
}

void BackupJobs::Gauge(const std::string& name, const std::string& help, const Labels& labels, double v) {
  if (metrics_ != nullptr) metrics_->GetGauge(name, help, labels).Set(v);
}

Status BackupJobs::RunBackupJob(TimestampMs now) {
  const BackupOptions& o = options_.backup;
  auto made = CreateBackup(o);
  if (!made) {
    CountFailure("backup");
    Alert("backup_failed", OperatorSeverity::kCritical, "backup failed",
          fmt::format("The scheduled backup of {} failed: {}\nThe previous backups are untouched. "
                      "Fix the cause and run `opensense backup run` to check.",
                      o.store_url, made.error().message),
          "backup_failed");
    return tl::unexpected(made.error());
  }
  missed_raised_ = false;
  // The class of the new backup among those kept.
  BackupClass cls = BackupClass::kHourly;
  if (auto list = ListBackups(o)) {
    for (const auto& b : *list) {
      if (b.name == made->name) cls = b.backup_class;
    }
  }
  const Labels labels = {{"class", std::string(BackupClassName(cls))}};
  Gauge("opensense_backup_last_success_timestamp_seconds", "When the newest backup of each class was written (Unix time).",
        labels, Seconds(made->created_at));
  Gauge("opensense_backup_last_size_bytes", "Encrypted size of the newest backup of each class.", labels,
        static_cast<double>(made->encrypted_bytes));
  Gauge("opensense_backup_last_duration_seconds", "Snapshot and encryption time of the newest backup of each class.",
        labels, Seconds(made->duration_ms));
  Gauge("opensense_backup_last_readings", "Readings in the newest backup.", {}, static_cast<double>(made->readings));

  Status first_failure = Ok();
  if (OffsiteConfigured(o)) {
    auto copies = ListOffsiteCopies(o);
    std::optional<TimestampMs> newest_copy;
    if (copies && !copies->empty()) newest_copy = copies->back().created_at;
    if (OffsiteCopyDue(newest_copy, made->created_at)) {
      Status st = CopyOffsite(o, BackupRef{o.backup_dir, *made});
      if (!st) {
        CountFailure("offsite");
        Alert("backup_failed", OperatorSeverity::kCritical, "off-site copy failed",
              fmt::format("Backup {} was written locally but could not be copied off-site: {}\n"
                          "The copy is retried with the next backup.",
                          made->name, st.error().message),
              "backup_failed:offsite");
        first_failure = st;
      } else {
        Gauge("opensense_backup_last_success_timestamp_seconds",
              "When the newest backup of each class was written (Unix time).", {{"class", "offsite"}},
              Seconds(made->created_at));
        Gauge("opensense_backup_last_size_bytes", "Encrypted size of the newest backup of each class.",
              {{"class", "offsite"}}, static_cast<double>(made->encrypted_bytes));
      }
    }
    if (auto pruned = PruneOffsite(o); !pruned) {
      CountFailure("prune");
      spdlog::warn("backup: pruning the off-site copies failed: {}", pruned.error().message);
    }
  }
  if (auto pruned = PruneBackups(o); !pruned) {
    CountFailure("prune");
    spdlog::warn("backup: pruning failed: {}", pruned.error().message);
  }
  (void)now;
  return first_failure;
}

void BackupJobs::CheckMissed(TimestampMs now) {
  std::optional<TimestampMs> newest;
  if (auto list = ListBackups(options_.backup)) {
    for (const auto& b : *list) {
      if (b.manifest && (!newest || b.manifest->created_at > *newest)) newest = b.manifest->created_at;
    }
  }
  if (!BackupOverdue(newest, started_at_, now, options_.backup.schedule.interval_ms)) {
    missed_raised_ = false;
    return;
  }
  if (missed_raised_) return;
  missed_raised_ = true;
  CountFailure("missed");
  Alert("backup_missed", OperatorSeverity::kCritical, "backup missed",
        newest ? fmt::format("The newest backup in {} is {} minutes old; one is taken every {} minutes. "
                             "Check the log for backup errors and run `opensense backup run`.",
                             options_.backup.backup_dir, (now - *newest) / kMsPerMinute,
                             options_.backup.schedule.interval_ms / kMsPerMinute)
               : fmt::format("There is no backup in {} yet, {} minutes after the schedule started. "
                             "Check the log and run `opensense backup run`.",
                             options_.backup.backup_dir, (now - started_at_) / kMsPerMinute),
        "backup_missed");
}

Status BackupJobs::RunDrillJob(TimestampMs now) {
  if (options_.identity_file.empty()) return Ok();
  const BackupOptions& o = options_.backup;
  Status first_failure = Ok();
  auto newest = FindBackup(o, "");
  Result<VerifyReport> local = newest ? VerifyBackup(o, *newest, options_.identity_file, "local")
                                      : Result<VerifyReport>(tl::unexpected(newest.error()));
  if (local) {
    Gauge("opensense_backup_drill_last_success_timestamp_seconds",
          "When a restore drill last passed, by source (Unix time).", {{"source", "local"}}, Seconds(now));
    spdlog::info("backup: restore drill of {} passed", local->manifest.name);
  } else {
    CountFailure("drill_local");
    Alert("restore_drill_failed", OperatorSeverity::kCritical, "restore drill failed",
          fmt::format("The restore drill of the newest backup failed: {}", local.error().message),
          "restore_drill_failed:local");
    first_failure = tl::unexpected(local.error());
  }
  if (OffsiteConfigured(o)) {
    auto copies = ListOffsiteCopies(o);
    bool due = true;
    if (copies && !copies->empty()) {
      const auto& v = copies->back().verification;
      due = !v || now - v->at >= options_.offsite_drill_interval_ms;
    }
    if (due) {
      auto offsite = DrillOffsite(o, options_.identity_file);
      if (offsite) {
        Gauge("opensense_backup_drill_last_success_timestamp_seconds",
              "When a restore drill last passed, by source (Unix time).", {{"source", "offsite"}}, Seconds(now));
        spdlog::info("backup: off-site restore drill of {} passed", offsite->manifest.name);
      } else {
        CountFailure("drill_offsite");
        Alert("restore_drill_failed", OperatorSeverity::kCritical, "off-site restore drill failed",
              fmt::format("The restore drill of the newest off-site copy, fetched back from the "
                          "target, failed: {}\nThe off-site copy cannot be relied on: check the "
                          "target, then run `opensense backup verify --offsite`.",
                          offsite.error().message),
              "restore_drill_failed:offsite");
        if (first_failure) first_failure = tl::unexpected(offsite.error());
      }
    }
  }
  return first_failure;
}

}  // namespace opensense::backup
