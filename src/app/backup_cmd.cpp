#include "app/backup_cmd.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/time_zone.hpp"

namespace opensense::app {

namespace {

using nlohmann::json;

std::vector<std::string> SplitRecipients(const std::string& list) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const std::size_t comma = std::min(list.find(',', pos), list.size());
    std::string item = list.substr(pos, comma - pos);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
    pos = comma + 1;
  }
  return out;
}

std::string HumanBytes(std::int64_t b) {
  if (b >= 1 << 30) return fmt::format("{:.1f} GiB", static_cast<double>(b) / (1 << 30));
  if (b >= 1 << 20) return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
  if (b >= 1 << 10) return fmt::format("{:.1f} KiB", static_cast<double>(b) / (1 << 10));
  return fmt::format("{} B", b);
}

std::string HumanAge(TimestampMs ms) {
  if (ms < kMsPerHour) return fmt::format("{}m", ms / kMsPerMinute);
  if (ms < 2 * kMsPerDay) return fmt::format("{}h", ms / kMsPerHour);
  return fmt::format("{}d", ms / kMsPerDay);
}

json VerificationJson(const std::optional<backup::Verification>& v) {
  if (!v) return nullptr;
  return {{"status", v->status == backup::DrillStatus::kPassed ? "passed" : "failed"},
          {"at", FormatRfc3339(v->at)},
          {"source", v->source},
          {"message", v->message}};
}

json ManifestJson(const backup::Manifest& m) {
  return {{"name", m.name},
          {"file", m.file},
          {"created_at", FormatRfc3339(m.created_at)},
          {"store_kind", backup::StoreKindName(m.store_kind)},
          {"method", backup::BackupMethodName(m.method)},
          {"schema_version", m.schema_version},
          {"readings", m.readings},
          {"newest_reading", m.newest_reading ? json(FormatRfc3339(*m.newest_reading)) : json(nullptr)},
          {"tables", m.tables},
          {"encrypted_bytes", m.encrypted_bytes},
          {"duration_ms", m.duration_ms},
          {"sha256", m.sha256},
          {"verification", VerificationJson(m.verification)}};
}

int Failed(const std::string& what, const Error& e) {
  fmt::print(stderr, "opensense: backup {}: {}\n", what, e.message);
  return e.code == ErrorCode::kInvalidArgument ? 2 : 1;
}

}  // namespace

BackupCommands AddBackupCommand(CLI::App& app, BackupFlags* f) {
  BackupCommands c;
  c.root = app.add_subcommand("backup", "Encrypted backups, restore drills and restores");
  c.root->require_subcommand(1);
  c.run = c.root->add_subcommand(
      "run", "Take a consistent hot snapshot, encrypt it with age to the configured recipients, "
             "copy it off-site when this week has no copy yet, and prune by the schedule");
  c.run->add_flag("--no-prune", f->no_prune, "Do not prune old backups afterwards");
  c.verify = c.root->add_subcommand(
      "verify", "Restore drill: decrypt, restore into a scratch store, check integrity, row counts "
                "and rollups, drop the scratch store");
  c.verify->add_option("BACKUP", f->which, "Backup name or file (default: the newest)");
  c.verify->add_option("--identity", f->identity, "age identity file (default: backup_identity_file)")
      ->type_name("FILE");
  c.verify->add_flag("--offsite", f->offsite,
                     "Fetch the newest off-site copy back from the target and drill that one");
  c.restore = c.root->add_subcommand("restore", "Restore a backup into a fresh store");
  c.restore->add_option("BACKUP", f->which, "Backup name or file (see `opensense backup list`)")->required();
  c.restore->add_option("--identity", f->identity, "age identity file (default: backup_identity_file)")
      ->type_name("FILE");
  c.restore->add_option("--to", f->to, "Target: a data directory, sqlite:///path/opensense.db or postgres://HOST:PORT/DB; "
                                  "for a physical PostgreSQL backup an empty PostgreSQL data directory")
      ->required();
  c.restore->add_flag("--force", f->force, "Replace a target that already holds data");
  c.list = c.root->add_subcommand("list", "Every backup with its class, age, size and drill status");
  for (auto* cmd : c.all()) cmd->add_flag("--json", f->json, "Print machine-readable JSON");
  return c;
}

std::vector<std::string> BackupSettingNames() {
  std::vector<std::string> names = {"data_dir", "store", "log_level"};
  for (const auto& s : Settings()) {
    if (s.name.rfind("backup_", 0) == 0) names.push_back(s.name);
  }
  return names;
}

Result<backup::BackupOptions> BackupOptionsFor(const Config& cfg, const Clock* clock) {
  OS_RETURN_IF_ERROR(backup::CheckBackupDirPlacement(cfg.backup_dir, cfg.data_dir, cfg.StoreUrl()));
  if (!cfg.backup_offsite_dir.empty() && !cfg.backup_offsite_command.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "backup_offsite_dir and backup_offsite_command are both set: choose one off-site target");
  }
  if (!cfg.backup_offsite_dir.empty() && !cfg.backup_dir.empty()) {
    if (auto st = backup::CheckBackupDirPlacement(cfg.backup_offsite_dir, cfg.data_dir, cfg.StoreUrl()); !st) {
      return MakeError(ErrorCode::kInvalidArgument, "backup_offsite_dir: " + st.error().message);
    }
  }
  backup::BackupOptions o;
  o.store_url = cfg.StoreUrl();
  o.backup_dir = cfg.backup_dir;
  o.recipients = SplitRecipients(cfg.backup_recipients);
  o.recipients_file = cfg.backup_recipients_file;
  o.pg_method = cfg.backup_method == "physical" ? backup::PgBackupMethod::kPhysical : backup::PgBackupMethod::kLogical;
  o.offsite_dir = cfg.backup_offsite_dir;
  o.offsite_command = cfg.backup_offsite_command;
  o.offsite_fetch_command = cfg.backup_offsite_fetch_command;
  o.offsite_delete_command = cfg.backup_offsite_delete_command;
  o.schedule.hourly_keep_ms = cfg.backup_hourly_keep_days * kMsPerDay;
  o.schedule.daily_keep_ms = cfg.backup_daily_keep_days * kMsPerDay;
  o.schedule.offsite_keep_ms = cfg.backup_offsite_keep_weeks * 7 * kMsPerDay;
  o.clock = clock;
  return o;
}

Result<std::unique_ptr<backup::BackupJobs>> ScheduleBackups(const Config& cfg, ops::Scheduler* scheduler,
                                                            OperatorAlerts* alerts, MetricsRegistry* metrics,
                                                            const Clock* clock) {
  OS_ASSIGN_OR_RETURN(backup::BackupOptions o, BackupOptionsFor(cfg, clock));
  if (scheduler == nullptr || cfg.backup_dir.empty() || cfg.backup_schedule == "off") {
    return std::unique_ptr<backup::BackupJobs>();
  }
  backup::BackupJobOptions jo;
  jo.backup = o;
  jo.identity_file = cfg.backup_identity_file;
  const TimestampMs interval = o.schedule.interval_ms;
  auto jobs = std::make_unique<backup::BackupJobs>(jo, alerts, metrics, clock->NowMs());
  backup::BackupJobs* j = jobs.get();
  scheduler->AddJob("backup", interval, [j](TimestampMs now) { (void)j->RunBackupJob(now); });
  scheduler->AddJob("backup-missed", 10 * kMsPerMinute, [j](TimestampMs now) { j->CheckMissed(now); });
  if (!jo.identity_file.empty()) {
    scheduler->AddJob("backup-drill", jo.drill_interval_ms, [j](TimestampMs now) { (void)j->RunDrillJob(now); });
  }
  spdlog::info("backups: hourly into {} (hourly kept {} days, daily {} days{}){}", o.backup_dir,
               cfg.backup_hourly_keep_days, cfg.backup_daily_keep_days,
               backup::OffsiteConfigured(o) ? fmt::format(", weekly off-site kept {} weeks", cfg.backup_offsite_keep_weeks) : "",
               jo.identity_file.empty() ? "; no restore drills here (no backup_identity_file)"
                                        : "; restore drills daily, off-site weekly");
  return jobs;
}

int RunBackupCommand(const BackupCommands& cmds, const BackupFlags& f, const Config& cfg) {
  SystemClock clock;
  auto options = BackupOptionsFor(cfg, &clock);
  if (!options) {
    fmt::print(stderr, "opensense: {}\n", options.error().message);
    return 2;
  }
  backup::BackupOptions& o = *options;
  if (o.backup_dir.empty() && !(*cmds.restore && f.which.find('/') != std::string::npos) &&
      !(*cmds.verify && f.which.find('/') != std::string::npos)) {
    fmt::print(stderr, "opensense: backup: no backup directory: set backup_dir (--backup-dir DIR, "
                       "OPENSENSE_BACKUP_DIR or opensense.toml)\n");
    return 2;
  }
  // Progress on stderr for people; --json keeps both streams to the answer and its errors.
  if (!f.json) o.progress = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  // The scratch and snapshot stores log at info level on stdout: keep --json output parseable.
  if (f.json) spdlog::set_level(spdlog::level::warn);
  const std::string identity = f.identity.empty() ? cfg.backup_identity_file : f.identity;

  if (*cmds.run) {
    auto made = backup::CreateBackup(o);
    if (!made) return Failed("run", made.error());
    bool offsite = false;
    int status = 0;
    if (backup::OffsiteConfigured(o)) {
      auto copies = backup::ListOffsiteCopies(o);
      std::optional<TimestampMs> newest;
      if (copies && !copies->empty()) newest = copies->back().created_at;
      if (backup::OffsiteCopyDue(newest, made->created_at)) {
        if (auto st = backup::CopyOffsite(o, backup::BackupRef{o.backup_dir, *made}); !st) {
          status = Failed("run: off-site copy", st.error());
        } else {
          offsite = true;
        }
      }
    }
    int pruned = 0;
    if (!f.no_prune) {
      if (auto decisions = backup::PruneBackups(o)) {
        for (const auto& d : *decisions) pruned += d.keep ? 0 : 1;
      }
      if (backup::OffsiteConfigured(o)) (void)backup::PruneOffsite(o);
    }
    std::string cls = "hourly";
    if (auto list = backup::ListBackups(o)) {
      for (const auto& b : *list) {
        if (b.name == made->name) cls = std::string(backup::BackupClassName(b.backup_class));
      }
    }
    if (f.json) {
      json j = ManifestJson(*made);
      j["class"] = cls;
      j["offsite_copy"] = offsite;
      j["pruned"] = pruned;
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("backup {} ({}): {} readings, {} encrypted, {} ms{}; {} pruned\n", made->name, cls,
                 made->readings, HumanBytes(made->encrypted_bytes), made->duration_ms,
                 offsite ? "; copied off-site" : "", pruned);
    }
    return status;
  }
  if (*cmds.list) {
    auto list = backup::ListBackups(o);
    if (!list) return Failed("list", list.error());
    const TimestampMs now = clock.NowMs();
    if (f.json) {
      json arr = json::array();
      for (const auto& b : *list) {
        json j = b.manifest ? ManifestJson(*b.manifest) : json{{"name", b.name}};
        j["class"] = backup::BackupClassName(b.backup_class);
        j["offsite"] = b.offsite;
        if (!b.problem.empty()) j["problem"] = b.problem;
        arr.push_back(j);
      }
      fmt::print("{}\n", arr.dump(2));
      return 0;
    }
    if (list->empty()) {
      fmt::print("no backups in {}: run `opensense backup run`\n", o.backup_dir);
      return 0;
    }
    fmt::print("{:<34} {:<7} {:>6} {:>10} {:>12} {:<8} {:<20} {}\n", "NAME", "CLASS", "AGE", "SIZE",
               "READINGS", "OFF-SITE", "VERIFIED", "");
    for (const auto& b : *list) {
      if (!b.manifest) {
        fmt::print("{:<34} DAMAGED: {}\n", b.name, b.problem);
        continue;
      }
      const auto& m = *b.manifest;
      std::string verified = "never";
      if (m.verification) {
        verified = fmt::format("{} {} ago", m.verification->status == backup::DrillStatus::kPassed ? "passed" : "FAILED",
                               HumanAge(now - m.verification->at));
      }
      fmt::print("{:<34} {:<7} {:>6} {:>10} {:>12} {:<8} {:<20}\n", m.name, backup::BackupClassName(b.backup_class),
                 HumanAge(now - m.created_at), HumanBytes(m.encrypted_bytes), m.readings, b.offsite ? "yes" : "-",
                 verified);
    }
    return 0;
  }
  if (*cmds.verify) {
    Result<backup::VerifyReport> report = [&]() -> Result<backup::VerifyReport> {
      if (f.offsite) return backup::DrillOffsite(o, identity);
      OS_ASSIGN_OR_RETURN(backup::BackupRef ref, backup::FindBackup(o, f.which));
      return backup::VerifyBackup(o, ref, identity, "local");
    }();
    if (!report) {
      fmt::print(stderr, "opensense: backup verify: FAILED: {}\n", report.error().message);
      return report.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
    }
    if (f.json) {
      json j = ManifestJson(report->manifest);
      j["checks"] = report->checks;
      j["passed"] = true;
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("backup {} verified{}:\n", report->manifest.name, f.offsite ? " (off-site copy)" : "");
      for (const auto& c : report->checks) fmt::print("  ok  {}\n", c);
    }
    return 0;
  }
  if (*cmds.restore) {
    auto ref = backup::FindBackup(o, f.which);
    if (!ref) return Failed("restore", ref.error());
    auto report = backup::RestoreBackup(o, *ref, identity, f.to, f.force);
    if (!report) return Failed("restore", report.error());
    if (f.json) {
      json j = ManifestJson(report->manifest);
      j["target"] = report->target;
      j["restored_tables"] = report->tables;
      j["restored_readings"] = report->readings;
      j["next_step"] = report->next_step;
      fmt::print("{}\n", j.dump(2));
    } else {
      const auto& m = report->manifest;
      fmt::print("restored backup {} (taken {}, schema {}) into {}\n", m.name, FormatRfc3339(m.created_at),
                 m.schema_version, report->target);
      fmt::print("  {} readings, newest {}\n", report->readings,
                 m.newest_reading ? FormatRfc3339(*m.newest_reading) : std::string("none"));
      for (const auto& [table, rows] : report->tables) fmt::print("  {:<22} {:>12} rows\n", table, rows);
      fmt::print("{}\n", report->next_step);
    }
    return 0;
  }
  return 2;
}

}  // namespace opensense::app
