// Backups that are proven: `CreateBackup` takes a consistent hot snapshot of the store (SQLite:
// VACUUM INTO a 0700 temporary directory on the data volume, compacted, fsynced, encrypted, the
// plaintext deleted; PostgreSQL: pg_dump -Fc of an exported snapshot streamed into age, or with
// PgBackupMethod::kPhysical pg_basebackup of the whole cluster streamed into age, pg_physical.hpp),
// encrypted with `age` to public recipients only, so the private key is never needed on the
// host; `VerifyBackup` is a restore drill into a scratch store; `RestoreBackup` restores into a
// fresh store; the off-site functions copy weekly backups to a directory or through the
// operator's command, fetch them back for drills and prune them.
//
// Files in the backup directory: `<name>.sqlite.age`, `<name>.pgdump.age` or
// `<name>.pgbase.tar.zst.age`, the encrypted snapshot, and `<name>.manifest.json` (manifest.hpp). `offsite/<name>.manifest.json` records
// each copy at the off-site target (the index the off-site drill and pruning work from).
//
// Threads: every function may run on any thread; two functions must not write the same backup
// directory at once (the scheduler runs them one after another).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backup/manifest.hpp"
#include "backup/schedule.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "store/store.hpp"

namespace opensense::backup {

// How a PostgreSQL store is backed up (a SQLite store is always copied as a compacted file).
//  - kLogical: `pg_dump -Fc` of the store's database. Restoring re-inserts every row and rebuilds
//    the indexes (minutes per 10 million readings); it can move the database to another server
//    or version. Needs nothing beyond the store's own login.
//  - kPhysical: `pg_basebackup` of the whole cluster (files + the WAL to make them consistent).
//    Restoring unpacks files into an empty data directory; the server replays the WAL on start.
//    Needs a role with the REPLICATION attribute and a pg_hba.conf `replication` line; the drill
//    needs the server programs (postgresql-15) on the drilling host.
enum class PgBackupMethod { kLogical, kPhysical };

struct BackupOptions {
  // The store to back up (and, for PostgreSQL drills, the server the scratch database is made
  // on). The password comes from OPENSENSE_STORE_PASSWORD, as for the store itself.
  std::string store_url;
  // Encrypted backups and their manifests. Must not be inside the data directory
  // (CheckBackupDirPlacement).
  std::string backup_dir;
  // age recipients (age1..., ssh-ed25519 ...) and/or a recipients file (`age -R`). At least one.
  std::vector<std::string> recipients;
  std::string recipients_file;
  // Where plaintext snapshots and scratch stores live while they exist, each in a fresh 0700
  // directory: the data volume. Empty: the directory of the SQLite store, else the system's
  // temporary directory.
  std::string work_dir;
  // The off-site target: a directory (a mounted storage box) ...
  std::string offsite_dir;
  // ... or shell commands, with {file} (a local path) and {name} (the file name at the target)
  // replaced by shell-quoted values: push `rclone copyto {file} box:opensense/{name}`, fetch
  // `rclone copyto box:opensense/{name} {file}`, delete (optional)
  // `rclone deletefile box:opensense/{name}`.
  std::string offsite_command;
  std::string offsite_fetch_command;
  std::string offsite_delete_command;
  PgBackupMethod pg_method = PgBackupMethod::kLogical;
  // PostgreSQL's programs for physical backups (pg_basebackup, pg_verifybackup, pg_ctl, postgres).
  // Empty: Debian's /usr/lib/postgresql/15/bin.
  std::string pg_bin_dir;
  RetentionSchedule schedule;
  const Clock* clock = nullptr;  // nullptr: the system clock
  // Progress lines for the CLI and the log ("snapshot taken: 10,000,000 readings"); may be empty.
  std::function<void(const std::string&)> progress;
};

// kInvalidArgument when the backup directory is the data directory, inside it, or holds it, or
// is the directory of the SQLite store: a backup must survive the loss of the data volume.
Status CheckBackupDirPlacement(const std::string& backup_dir, const std::string& data_dir,
                               const std::string& store_url);

// Takes, encrypts and records one backup. Nothing is left behind on failure (no plaintext, no
// partial file, no manifest).
Result<Manifest> CreateBackup(const BackupOptions& options);

// A backup given on the command line: a name in the backup directory, a path to its encrypted
// file or its manifest, or "" for the newest one in the backup directory.
struct BackupRef {
  std::string dir;
  Manifest manifest;
  std::string FilePath() const { return dir + "/" + manifest.file; }
  std::string ManifestPath() const { return dir + "/" + ManifestFileName(manifest.name); }
};
Result<BackupRef> FindBackup(const BackupOptions& options, const std::string& which);

struct VerifyReport {
  Manifest manifest;
  std::vector<std::string> checks;  // what passed, one line each
};

// The restore drill: checks the SHA-256 against the manifest, decrypts with `identity_file`,
// restores into a scratch store (a temp SQLite file; a scratch PostgreSQL database on the
// server of options.store_url; for a physical backup a scratch data directory checked with
// pg_verifybackup and a private server started on it, connected to as the manifest's role with
// OPENSENSE_STORE_PASSWORD), runs PRAGMA integrity_check / pg_restore's status, compares the
// schema version and every table's row count with the manifest (a physical copy: between the
// counts taken before and after it), re-derives the rollups of a sample of devices from raw
// readings and compares them with the restored ones, then drops the scratch store. The outcome is written into the manifest (`verification`). An error message
// says what failed and what to do.
Result<VerifyReport> VerifyBackup(const BackupOptions& options, const BackupRef& backup,
                                  const std::string& identity_file, const std::string& source = "local");

struct RestoreReport {
  Manifest manifest;
  std::string target;  // the store URL restored into
  std::map<std::string, std::int64_t> tables;
  std::int64_t readings = 0;
  std::string next_step;  // what the operator does next, in words
};

// Restores into `to`: a directory (its opensense.db), sqlite:///path, or postgres://host/db (of
// the backup's kind). Refuses a target that holds data unless `force`. A physical backup goes
// into `to` as a PostgreSQL data directory, which must be empty or absent (`force` does not
// apply), is checked with pg_verifybackup and handed to the `postgres` user when run as root;
// the operator then starts PostgreSQL on it.
Result<RestoreReport> RestoreBackup(const BackupOptions& options, const BackupRef& backup,
                                    const std::string& identity_file, const std::string& to, bool force);

struct ListedBackup {
  std::string name;
  std::optional<Manifest> manifest;  // none when it could not be read
  std::string problem;               // why not
  BackupClass backup_class = BackupClass::kHourly;
  bool offsite = false;  // a copy is recorded at the off-site target
};
// Every backup in the backup directory, oldest first.
Result<std::vector<ListedBackup>> ListBackups(const BackupOptions& options);

// Applies the schedule's retention to the backup directory; returns every decision.
Result<std::vector<PruneDecision>> PruneBackups(const BackupOptions& options);

// Off-site: whether a target is configured; the newest copy recorded; copying one backup (file
// then manifest, each written under a temporary name and renamed for a directory target);
// fetching the newest copy back and drilling it; pruning the copies.
bool OffsiteConfigured(const BackupOptions& options);
Result<std::vector<Manifest>> ListOffsiteCopies(const BackupOptions& options);
Status CopyOffsite(const BackupOptions& options, const BackupRef& backup);
Result<VerifyReport> DrillOffsite(const BackupOptions& options, const std::string& identity_file);
Result<std::vector<PruneDecision>> PruneOffsite(const BackupOptions& options);

// An order-independent fingerprint of a store's content through the Store interface (every
// organisation, device, series and raw reading), equal for equal data whatever the backend.
struct ContentDigest {
  std::int64_t organizations = 0;
  std::int64_t devices = 0;
  std::int64_t series = 0;
  std::int64_t readings = 0;
  std::string sha256;
  bool operator==(const ContentDigest&) const = default;
};
Result<ContentDigest> DigestStore(store::Store& store);

}  // namespace opensense::backup
