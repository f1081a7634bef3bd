// The manifest written next to each encrypted backup: what the backup holds (store kind, schema
// version, per-table row counts, the newest reading), a SHA-256 of the encrypted file, and the
// outcome of the last restore drill. Plain JSON, never secret (it names recipients, the public
// halves of the keys, only).
//
// A manifest is read from a backup directory that may be an off-site mount, so it is parsed as
// untrusted input: bounded size and nesting, every field typed and checked, file names that
// cannot leave the directory. Pure logic; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/types.hpp"

namespace opensense::backup {

enum class StoreKind { kSqlite, kPostgres };
std::string_view StoreKindName(StoreKind kind);

// How the snapshot was taken: a compacted SQLite file (VACUUM INTO), `pg_dump -Fc` of the
// store's database (logical), or `pg_basebackup` of the whole PostgreSQL cluster as a tar
// (physical: restored by unpacking, no re-insert).
enum class BackupMethod { kSqliteFile, kPgDump, kPgBaseBackup };
std::string_view BackupMethodName(BackupMethod method);  // "sqlite_file", "pg_dump", "pg_basebackup"

enum class DrillStatus { kPassed, kFailed };

// The outcome of the newest restore drill of this backup.
struct Verification {
  DrillStatus status = DrillStatus::kFailed;
  TimestampMs at = 0;
  std::string source;   // "local" (the backup directory) or "offsite" (fetched back)
  std::string message;  // what failed, or a one-line summary of what was checked
  bool operator==(const Verification&) const = default;
};

struct Manifest {
  static constexpr int kFormatVersion = 1;
  std::string name;            // "opensense-20261129T043500Z": the backup's id
  std::string file;            // the encrypted file, in the same directory: "<name>.sqlite.age"
  TimestampMs created_at = 0;  // when the snapshot was taken
  StoreKind store_kind = StoreKind::kSqlite;
  // "method"; absent in manifests written before physical backups: sqlite_file or pg_dump.
  BackupMethod method = BackupMethod::kSqliteFile;
  int schema_version = 0;
  std::map<std::string, std::int64_t> tables;  // table -> rows in the snapshot
  std::int64_t readings = 0;                   // readings in the snapshot
  std::optional<TimestampMs> newest_reading;   // none when the store held no reading
  std::string sha256;                          // of the encrypted file, 64 lowercase hex digits
  std::int64_t encrypted_bytes = 0;
  std::int64_t plain_bytes = 0;                // the snapshot before encryption
  std::int64_t duration_ms = 0;                // snapshot + encryption
  std::vector<std::string> recipients;         // age recipients (public keys) it is encrypted to
  std::string opensense_version;
  std::optional<Verification> verification;
  // pg_basebackup only. The store's database and role inside the copied cluster (the drill
  // connects as them), and every table's rows counted just after the copy ended: a physical copy
  // is consistent as of its end, not as of one MVCC snapshot, so `tables` (counted just before it
  // began) and these bound what a restore holds.
  std::string database;
  std::string role;
  std::map<std::string, std::int64_t> tables_at_end;
  bool operator==(const Manifest&) const = default;
};

// Manifests larger than this are refused unread.
inline constexpr std::size_t kMaxManifestBytes = 256 * 1024;

// "<name>.manifest.json"
std::string ManifestFileName(std::string_view backup_name);
// A backup name: 1-128 of A-Z a-z 0-9 . _ -, not starting with '.'.
bool IsValidBackupName(std::string_view name);

std::string SerializeManifest(const Manifest& m);
// kInvalidArgument with what is wrong ("manifest: 'sha256' is not 64 hex digits").
Result<Manifest> ParseManifest(std::string_view text);

}  // namespace opensense::backup
