// `opensense backup run|verify|restore|list` and the wiring of the scheduled backup jobs into
// `opensense serve` (src/backup does the work).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "app/config.hpp"
#include "backup/jobs.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/outbound.hpp"
#include "ops/scheduler.hpp"

namespace opensense::app {

struct BackupFlags {
  std::string which;     // BACKUP: a name, a path, or "" for the newest
  std::string identity;  // --identity FILE
  std::string to;        // restore --to URL|DIR
  bool force = false;
  bool offsite = false;  // verify --offsite
  bool no_prune = false;
  bool json = false;
};

struct BackupCommands {
  CLI::App* root = nullptr;
  CLI::App* run = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* restore = nullptr;
  CLI::App* list = nullptr;
  std::vector<CLI::App*> all() const { return {run, verify, restore, list}; }
};

// Adds `backup` and its subcommands to `app`.
BackupCommands AddBackupCommand(CLI::App& app, BackupFlags* flags);
// The settings the backup commands take as flags (besides --config and --secrets-file).
std::vector<std::string> BackupSettingNames();
// Runs the backup subcommand that was parsed. Exit status: 0 done, 1 failed, 2 usage/config.
int RunBackupCommand(const BackupCommands& cmds, const BackupFlags& flags, const Config& cfg);

// The backup options from the configuration, with the placement check (backup_dir must not be
// inside the data directory): kInvalidArgument at start-up.
Result<backup::BackupOptions> BackupOptionsFor(const Config& cfg, const Clock* clock);

// For `serve`: checks the backup configuration and, when `scheduler` is given, backup_dir is set
// and backup_schedule is hourly, adds the backup, missed-backup and drill jobs. The returned
// object (null when nothing is scheduled) must outlive the scheduler's thread.
Result<std::unique_ptr<backup::BackupJobs>> ScheduleBackups(const Config& cfg, ops::Scheduler* scheduler,
                                                            OperatorAlerts* alerts, MetricsRegistry* metrics,
                                                            const Clock* clock);

}  // namespace opensense::app
