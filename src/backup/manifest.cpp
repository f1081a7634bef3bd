#include "backup/manifest.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace opensense::backup {

namespace {

using nlohmann::json;

constexpr std::string_view kFormat = "opensense-backup";
constexpr int kMaxDepth = 8;
constexpr std::size_t kMaxTables = 256;
constexpr std::size_t kMaxRecipients = 64;
constexpr std::size_t kMaxText = 4096;

tl::unexpected<Error> Bad(std::string what) {
  return MakeError(ErrorCode::kInvalidArgument, "manifest: " + std::move(what));
}

// Deeper nesting than any manifest needs is refused before the JSON parser sees it.
bool NestingWithin(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

bool IsHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsTableName(std::string_view s) {
  return !s.empty() && s.size() <= 63 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Printable ASCII only: recipients and messages are shown on terminals.
bool IsPrintable(std::string_view s, std::size_t max) {
  return s.size() <= max &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

Result<std::string> Text(const json& j, const char* key, std::size_t max = kMaxText) {
  auto it = j.find(key);
  if (it == j.end()) return Bad(fmt::format("'{}' is missing", key));
  if (!it->is_string()) return Bad(fmt::format("'{}' is not a string", key));
  const auto& s = it->get_ref<const std::string&>();
  if (!IsPrintable(s, max)) {
    return Bad(fmt::format("'{}' is longer than {} characters or not printable ASCII", key, max));
  }
  return s;
}

Result<std::int64_t> Int(const json& j, const char* key, std::int64_t min) {
  auto it = j.find(key);
  if (it == j.end()) return Bad(fmt::format("'{}' is missing", key));
  if (!it->is_number_integer()) return Bad(fmt::format("'{}' is not an integer", key));
  if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    return Bad(fmt::format("'{}' is out of range", key));
  }
  const auto v = it->get<std::int64_t>();
  if (v < min) return Bad(fmt::format("'{}' is {} (at least {} expected)", key, v, min));
  return v;
}

// A table -> rows object.
Result<std::map<std::string, std::int64_t>> TableCounts(const json& j, const char* key) {
  auto tables = j.find(key);
  if (tables == j.end() || !tables->is_object()) return Bad(fmt::format("'{}' is missing or not an object", key));
  if (tables->size() > kMaxTables) return Bad(fmt::format("more than {} tables", kMaxTables));
  std::map<std::string, std::int64_t> out;
  for (const auto& [name, rows] : tables->items()) {
    if (!IsTableName(name)) return Bad("a table name is not 1-63 of a-z 0-9 _");
    if (!rows.is_number_integer() || rows.get<std::int64_t>() < 0 ||
        (rows.is_number_unsigned() && rows.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))) {
      return Bad(fmt::format("rows of table '{}' are not a count", name));
    }
    out[name] = rows.get<std::int64_t>();
  }
  return out;
}

Result<Verification> ParseVerification(const json& j) {
  if (!j.is_object()) return Bad("'verification' is not an object");
  Verification v;
  OS_ASSIGN_OR_RETURN(std::string status, Text(j, "status", 16));
  if (status == "passed") v.status = DrillStatus::kPassed;
  else if (status == "failed") v.status = DrillStatus::kFailed;
  else return Bad("'verification.status' is neither passed nor failed");
  OS_ASSIGN_OR_RETURN(v.at, Int(j, "at_ms", 0));
  OS_ASSIGN_OR_RETURN(v.source, Text(j, "source", 16));
  if (v.source != "local" && v.source != "offsite") {
    return Bad("'verification.source' is neither local nor offsite");
  }
  OS_ASSIGN_OR_RETURN(v.message, Text(j, "message"));
  return v;
}

}  // namespace

std::string_view StoreKindName(StoreKind kind) {
  return kind == StoreKind::kSqlite ? "sqlite" : "postgres";
}

std::string_view BackupMethodName(BackupMethod method) {
  switch (method) {
    case BackupMethod::kSqliteFile: return "sqlite_file";
    case BackupMethod::kPgDump: return "pg_dump";
    case BackupMethod::kPgBaseBackup: return "pg_basebackup";
  }
  return "?";
}

std::string ManifestFileName(std::string_view backup_name) {
  return fmt::format("{}.manifest.json", backup_name);
}

bool IsValidBackupName(std::string_view name) {
  return !name.empty() && name.size() <= 128 && name.front() != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
         });
}

std::string SerializeManifest(const Manifest& m) {
  json tables = json::object();
  for (const auto& [name, rows] : m.tables) tables[name] = rows;
  json j = {{"format", kFormat},
            {"format_version", Manifest::kFormatVersion},
            {"name", m.name},
            {"file", m.file},
            {"created_at_ms", m.created_at},
            {"store_kind", StoreKindName(m.store_kind)},
            {"method", BackupMethodName(m.method)},
            {"schema_version", m.schema_version},
            {"tables", tables},
            {"readings", m.readings},
            {"newest_reading_ms", m.newest_reading ? json(*m.newest_reading) : json(nullptr)},
            {"sha256", m.sha256},
            {"encrypted_bytes", m.encrypted_bytes},
            {"plain_bytes", m.plain_bytes},
            {"duration_ms", m.duration_ms},
            {"recipients", m.recipients},
            {"opensense_version", m.opensense_version}};
  if (m.method == BackupMethod::kPgBaseBackup) {
    json at_end = json::object();
    for (const auto& [name, rows] : m.tables_at_end) at_end[name] = rows;
    j["database"] = m.database;
    j["role"] = m.role;
    j["tables_at_end"] = at_end;
  }
  if (m.verification) {
    const auto& v = *m.verification;
    j["verification"] = {{"status", v.status == DrillStatus::kPassed ? "passed" : "failed"},
                         {"at_ms", v.at},
                         {"source", v.source},
                         {"message", v.message}};
  } else {
    j["verification"] = nullptr;
  }
  return j.dump(2) + "\n";
}

Result<Manifest> ParseManifest(std::string_view text) {
  if (text.size() > kMaxManifestBytes) {
    return Bad(fmt::format("{} bytes is larger than the {} a manifest may have", text.size(),
                           kMaxManifestBytes));
  }
  if (!NestingWithin(text, kMaxDepth)) return Bad("nested deeper than a manifest can be");
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("not valid JSON");
  if (!j.is_object()) return Bad("not a JSON object");
  OS_ASSIGN_OR_RETURN(std::string format, Text(j, "format", 64));
  if (format != kFormat) return Bad(fmt::format("'format' is not \"{}\"", kFormat));
  OS_ASSIGN_OR_RETURN(std::int64_t version, Int(j, "format_version", 1));
  if (version > Manifest::kFormatVersion) {
    return Bad(fmt::format("format version {} is newer than this OpenSense reads ({}): use a newer "
                           "opensense binary",
                           version, Manifest::kFormatVersion));
  }
  Manifest m;
  OS_ASSIGN_OR_RETURN(m.name, Text(j, "name", 128));
  if (!IsValidBackupName(m.name)) return Bad("'name' is not a backup name (A-Z a-z 0-9 . _ -)");
  OS_ASSIGN_OR_RETURN(m.file, Text(j, "file", 160));
  if (!IsValidBackupName(m.file) || m.file.rfind(m.name, 0) != 0) {
    return Bad("'file' must be a plain file name that starts with the backup's name");
  }
  OS_ASSIGN_OR_RETURN(m.created_at, Int(j, "created_at_ms", 0));
  OS_ASSIGN_OR_RETURN(std::string kind, Text(j, "store_kind", 16));
  if (kind == "sqlite") m.store_kind = StoreKind::kSqlite;
  else if (kind == "postgres") m.store_kind = StoreKind::kPostgres;
  else return Bad("'store_kind' is neither sqlite nor postgres");
  m.method = m.store_kind == StoreKind::kSqlite ? BackupMethod::kSqliteFile : BackupMethod::kPgDump;
  if (j.contains("method")) {
    OS_ASSIGN_OR_RETURN(std::string method, Text(j, "method", 32));
    const bool sqlite = m.store_kind == StoreKind::kSqlite;
    if (method == "sqlite_file" && sqlite) m.method = BackupMethod::kSqliteFile;
    else if (method == "pg_dump" && !sqlite) m.method = BackupMethod::kPgDump;
    else if (method == "pg_basebackup" && !sqlite) m.method = BackupMethod::kPgBaseBackup;
    else return Bad("'method' is not sqlite_file (sqlite), pg_dump or pg_basebackup (postgres)");
  }
  OS_ASSIGN_OR_RETURN(std::int64_t schema, Int(j, "schema_version", 1));
  if (schema > 1'000'000) return Bad("'schema_version' is out of range");
  m.schema_version = static_cast<int>(schema);
  OS_ASSIGN_OR_RETURN(m.tables, TableCounts(j, "tables"));
  OS_ASSIGN_OR_RETURN(m.readings, Int(j, "readings", 0));
  auto newest = j.find("newest_reading_ms");
  if (newest == j.end()) return Bad("'newest_reading_ms' is missing");
  if (!newest->is_null()) {
    OS_ASSIGN_OR_RETURN(TimestampMs t, Int(j, "newest_reading_ms", INT64_MIN));
    m.newest_reading = t;
  }
  OS_ASSIGN_OR_RETURN(m.sha256, Text(j, "sha256", 64));
  if (!IsHex64(m.sha256)) return Bad("'sha256' is not 64 lowercase hex digits");
  OS_ASSIGN_OR_RETURN(m.encrypted_bytes, Int(j, "encrypted_bytes", 0));
  OS_ASSIGN_OR_RETURN(m.plain_bytes, Int(j, "plain_bytes", 0));
  OS_ASSIGN_OR_RETURN(m.duration_ms, Int(j, "duration_ms", 0));
  auto recipients = j.find("recipients");
  if (recipients == j.end() || !recipients->is_array()) return Bad("'recipients' is missing or not a list");
  if (recipients->size() > kMaxRecipients) return Bad(fmt::format("more than {} recipients", kMaxRecipients));
  for (const auto& r : *recipients) {
    if (!r.is_string() || !IsPrintable(r.get_ref<const std::string&>(), 1024)) {
      return Bad("a recipient is not printable text of at most 1024 characters");
    }
    m.recipients.push_back(r.get<std::string>());
  }
  OS_ASSIGN_OR_RETURN(m.opensense_version, Text(j, "opensense_version", 64));
  if (m.method == BackupMethod::kPgBaseBackup) {
    OS_ASSIGN_OR_RETURN(m.database, Text(j, "database", 63));
    OS_ASSIGN_OR_RETURN(m.role, Text(j, "role", 63));
    if (m.database.empty() || m.role.empty()) return Bad("'database' or 'role' is empty");
    OS_ASSIGN_OR_RETURN(m.tables_at_end, TableCounts(j, "tables_at_end"));
  }
  auto verification = j.find("verification");
  if (verification != j.end() && !verification->is_null()) {
    OS_ASSIGN_OR_RETURN(Verification v, ParseVerification(*verification));
    m.verification = std::move(v);
  }
  return m;
}

}  // namespace opensense::backup
