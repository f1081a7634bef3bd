#include "backup/backup.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <csignal>
#include <cmath>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "backup/pg_physical.hpp"
#include "backup/subprocess.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace opensense::backup {

namespace fs = std::filesystem;
using store::postgres::Conn;
using store::postgres::P;
using store::postgres::PgResult;
using store::sqlite::Db;

namespace {

constexpr std::string_view kSqliteSuffix = ".sqlite.age";
constexpr std::string_view kPgSuffix = ".pgdump.age";
constexpr std::string_view kPgBaseSuffix = ".pgbase.tar.zst.age";
constexpr std::string_view kOffsiteIndex = "offsite";
constexpr const char* kOpenSenseVersion = "0.1.0";

TimestampMs Now(const BackupOptions& o) {
  static const SystemClock system_clock;
  return (o.clock != nullptr ? o.clock : &system_clock)->NowMs();
}

void Progress(const BackupOptions& o, const std::string& line) {
  if (o.progress) o.progress(line);
}

tl::unexpected<Error> Fail(ErrorCode code, std::string message) { return MakeError(code, std::move(message)); }

std::string ErrnoText() { return std::strerror(errno); }

// A fresh 0700 directory (mkdtemp) removed with everything in it when this goes out of scope:
// plaintext snapshots and scratch stores live only here.
class TempDir {
 public:
  static Result<TempDir> Create(const std::string& parent, const std::string& tag) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    std::string templ = (fs::path(parent) / (".opensense-" + tag + "-XXXXXX")).string();
    if (::mkdtemp(templ.data()) == nullptr) {
      return Fail(ErrorCode::kUnavailable,
                  fmt::format("cannot create a private temporary directory in {}: {}", parent, ErrnoText()));
    }
    return TempDir(templ);
  }
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir(const TempDir&) = delete;
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

// Runs `fn` when it goes out of scope (cleanup on every path).
template <typename F>
class Defer {
 public:
  explicit Defer(F f) : f_(std::move(f)) {}
  ~Defer() { f_(); }
  Defer(const Defer&) = delete;

 private:
  F f_;
};

Status FsyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Fail(ErrorCode::kUnavailable, fmt::format("cannot open {}: {}", path, ErrnoText()));
  const int rc = ::fsync(fd);
  const std::string err = rc != 0 ? ErrnoText() : "";
  ::close(fd);
  if (rc != 0) return Fail(ErrorCode::kUnavailable, fmt::format("fsync {}: {}", path, err));
  return Ok();
}

std::string ParentOf(const std::string& path) {
  std::string p = fs::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

Result<std::string> ReadSmallFile(const std::string& path, std::size_t max) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(ErrorCode::kNotFound, fmt::format("cannot read {}: {}", path, ErrnoText()));
  std::string out(max + 1, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

// Written under a temporary name, fsynced, renamed over `path`, directory fsynced.
Status WriteFileAtomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    out.flush();
    if (!out) return Fail(ErrorCode::kUnavailable, fmt::format("cannot write {}", tmp));
  }
  OS_RETURN_IF_ERROR(FsyncPath(tmp, false));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Fail(ErrorCode::kUnavailable, fmt::format("cannot rename {}: {}", tmp, ErrnoText()));
  }
  return FsyncPath(ParentOf(path), true);
}

// SHA-256 (lowercase hex) and size of a file, read in 1 MiB blocks.
Result<std::pair<std::string, std::int64_t>> Sha256File(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(ErrorCode::kNotFound, fmt::format("cannot read {}: {}", path, ErrnoText()));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  std::int64_t size = 0;
  ssize_t n = 0;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
    EVP_DigestUpdate(ctx, buf.data(), static_cast<std::size_t>(n));
    size += n;
  }
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  if (n < 0) return Fail(ErrorCode::kUnavailable, fmt::format("reading {} failed", path));
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return std::make_pair(hex, size);
}

Status CopyFileDurably(const std::string& from, const std::string& to) {
  const std::string tmp = to + ".partial";
  std::error_code ec;
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) return Fail(ErrorCode::kUnavailable, fmt::format("cannot copy {} to {}: {}", from, tmp, ec.message()));
  OS_RETURN_IF_ERROR(FsyncPath(tmp, false));
  fs::rename(tmp, to, ec);
  if (ec) return Fail(ErrorCode::kUnavailable, fmt::format("cannot rename {}: {}", tmp, ec.message()));
  return FsyncPath(ParentOf(to), true);
}

std::optional<std::string> SqlitePathOf(const std::string& url) {
  constexpr std::string_view kScheme = "sqlite://";
  if (url.rfind(kScheme, 0) != 0) return std::nullopt;
  return url.substr(kScheme.size());
}
bool IsPostgresUrl(const std::string& url) {
  return url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
}

std::string WorkDir(const BackupOptions& o) {
  if (!o.work_dir.empty()) return o.work_dir;
  if (auto p = SqlitePathOf(o.store_url)) return ParentOf(fs::absolute(*p).string());
  return fs::temp_directory_path().string();
}

std::string CompactTime(TimestampMs t) {
  const std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// The recipients as given plus those in the recipients file (public keys only, for the manifest).
Result<std::vector<std::string>> AllRecipients(const BackupOptions& o) {
  std::vector<std::string> out = o.recipients;
  if (!o.recipients_file.empty()) {
    OS_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(o.recipients_file, 1 << 20));
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      line.erase(0, line.find_first_not_of(" \t\r"));
      line.erase(line.find_last_not_of(" \t\r") + 1);
      if (!line.empty() && line.front() != '#') out.push_back(line);
    }
  }
  if (out.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "no backup recipient: set backup_recipients (age1...) or backup_recipients_file; "
                "create a key pair with `age-keygen -o backup-key.txt` on the machine that keeps "
                "the private key, and configure only the printed public key here");
  }
  for (const auto& r : out) {
    if (r.rfind("AGE-SECRET-KEY-", 0) == 0) {
      return Fail(ErrorCode::kInvalidArgument,
                  "a backup recipient is a private key (AGE-SECRET-KEY-...): configure only the "
                  "public key (age1...), keep the private key off this host and replace this one");
    }
  }
  return out;
}

Command AgeEncrypt(const BackupOptions& o, const std::string& out_path) {
  Command c{{"age", "--encrypt"}, {}};
  for (const auto& r : o.recipients) c.argv.insert(c.argv.end(), {"-r", r});
  if (!o.recipients_file.empty()) c.argv.insert(c.argv.end(), {"-R", o.recipients_file});
  c.argv.insert(c.argv.end(), {"-o", out_path});
  return c;
}

Command AgeDecrypt(const std::string& identity, const std::string& in_path, const std::string& out_path) {
  Command c{{"age", "--decrypt", "-i", identity}, {}};
  if (!out_path.empty()) c.argv.insert(c.argv.end(), {"-o", out_path});
  c.argv.push_back(in_path);
  return c;
}

// age's failure, in words an operator can act on.
Error DecryptError(const Manifest& m, const std::string& identity, const Error& e) {
  if (e.message.find("no identity matched") != std::string::npos) {
    std::string recipients;
    for (const auto& r : m.recipients) recipients += (recipients.empty() ? "" : ", ") + r;
    return Error{ErrorCode::kPermissionDenied,
                 fmt::format("backup {}: the identity {} is not one this backup was encrypted to "
                             "(wrong key). Use the private key of one of: {}",
                             m.name, identity, recipients.empty() ? "(none recorded)" : recipients)};
  }
  return Error{ErrorCode::kFailedPrecondition,
               fmt::format("backup {}: decryption failed: {}", m.name, e.message)};
}

Status RunCommands(const std::vector<Command>& commands, const std::string& stdout_path = "") {
  OS_ASSIGN_OR_RETURN(auto outcomes, RunPipeline(commands, stdout_path));
  return PipelineStatus(commands, outcomes);
}

Status CheckIdentityReadable(const std::string& identity) {
  if (identity.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "no identity: pass --identity FILE (the age private key, kept off the backup "
                "host) or set backup_identity_file");
  }
  if (::access(identity.c_str(), R_OK) != 0) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("cannot read the identity file {}: {}", identity, ErrnoText()));
  }
  return Ok();
}

// ---- row counts -------------------------------------------------------------------------------

struct Counts {
  int schema_version = 0;
  std::map<std::string, std::int64_t> tables;
  std::int64_t readings = 0;
  std::optional<TimestampMs> newest;
};

Result<std::int64_t> SqliteScalar(Db* db, const std::string& sql, bool* is_null = nullptr) {
  OS_ASSIGN_OR_RETURN(store::sqlite::Stmt s, db->PrepareOnce(sql));
  OS_ASSIGN_OR_RETURN(bool row, s.Step());
  if (is_null) *is_null = !row || s.IsNull(0);
  return row && !s.IsNull(0) ? s.Int(0) : 0;
}

Result<Counts> SqliteCounts(Db* db) {
  Counts c;
  OS_ASSIGN_OR_RETURN(std::int64_t v, SqliteScalar(db, "PRAGMA user_version"));
  c.schema_version = static_cast<int>(v);
  std::vector<std::string> names;
  {
    OS_ASSIGN_OR_RETURN(store::sqlite::Stmt s, db->PrepareOnce(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"));
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      names.push_back(s.Text(0));
    }
  }
  for (const auto& n : names) {
    OS_ASSIGN_OR_RETURN(c.tables[n], SqliteScalar(db, fmt::format("SELECT count(*) FROM \"{}\"", n)));
  }
  if (c.tables.count("chunks") != 0) {
    OS_ASSIGN_OR_RETURN(c.readings, SqliteScalar(db, "SELECT coalesce(sum(count), 0) FROM chunks"));
    bool null = true;
    OS_ASSIGN_OR_RETURN(std::int64_t newest, SqliteScalar(db, "SELECT max(end_ts) FROM chunks", &null));
    if (!null) c.newest = newest;
  }
  return c;
}

Result<std::int64_t> PgScalar(Conn* conn, const std::string& sql, bool* is_null = nullptr) {
  OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(sql));
  const bool null = r.Rows() == 0 || r.IsNull(0, 0);
  if (is_null) *is_null = null;
  return null ? 0 : r.Int(0, 0);
}

Result<Counts> PgCounts(Conn* conn) {
  Counts c;
  OS_ASSIGN_OR_RETURN(std::int64_t v, PgScalar(conn, "SELECT max(version) FROM opensense_schema"));
  c.schema_version = static_cast<int>(v);
  OS_ASSIGN_OR_RETURN(PgResult names, conn->Exec(
      "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"));
  for (int i = 0; i < names.Rows(); ++i) {
    const std::string n(names.Text(i, 0));
    OS_ASSIGN_OR_RETURN(c.tables[n], PgScalar(conn, fmt::format("SELECT count(*) FROM \"{}\"", n)));
  }
  if (c.tables.count("readings") != 0) {
    c.readings = c.tables["readings"];
    bool null = true;
    OS_ASSIGN_OR_RETURN(std::int64_t newest, PgScalar(conn, "SELECT max(ts) FROM readings", &null));
    if (!null) c.newest = newest;
  }
  return c;
}

// Every table's rows against the manifest: the first differences, named.
Status CompareCounts(const Manifest& m, const Counts& c, std::vector<std::string>* checks) {
  if (c.schema_version != m.schema_version) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("backup {}: the restored store is at schema version {}, the manifest "
                            "says {}",
                            m.name, c.schema_version, m.schema_version));
  }
  // A physical copy is consistent as of its end: each table lies between the counts taken
  // before it began and after it ended.
  const bool physical = m.method == BackupMethod::kPgBaseBackup;
  std::string diffs;
  std::set<std::string> names;
  for (const auto& [n, rows] : m.tables) names.insert(n);
  for (const auto& [n, rows] : m.tables_at_end) names.insert(n);
  for (const auto& [n, rows] : c.tables) names.insert(n);
  auto rows_in = [](const std::map<std::string, std::int64_t>& t, const std::string& n) {
    auto it = t.find(n);
    return it == t.end() ? std::optional<std::int64_t>() : it->second;
  };
  for (const auto& n : names) {
    const auto before = rows_in(m.tables, n);
    const auto after = physical ? rows_in(m.tables_at_end, n) : before;
    const auto got = rows_in(c.tables, n);
    if (got && (before || after)) {
      const std::int64_t a = before ? *before : *after, b = after ? *after : *before;
      if (*got >= std::min(a, b) && *got <= std::max(a, b)) continue;
    }
    auto text = [](std::optional<std::int64_t> v) { return v ? std::to_string(*v) : std::string("absent"); };
    const std::string want = before == after ? text(before) : fmt::format("{} before the copy and {} after it", text(before), text(after));
    diffs += fmt::format("{}{}: {} in the manifest, {} restored", diffs.empty() ? "" : "; ", n, want, text(got));
  }
  if (!physical && c.readings != m.readings) {
    diffs += fmt::format("{}readings: {} in the manifest, {} restored", diffs.empty() ? "" : "; ", m.readings, c.readings);
  }
  if (!diffs.empty()) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("backup {}: row counts differ from the manifest ({})", m.name, diffs));
  }
  if (checks) {
    checks->push_back(fmt::format("schema version {} as recorded", c.schema_version));
    checks->push_back(fmt::format("row counts of {} tables {} the manifest ({} readings)", c.tables.size(),
                                  physical ? "lie between the counts before and after the copy in" : "equal",
                                  c.readings));
  }
  return Ok();
}

Status CheckSchemaKnown(const Manifest& m) {
  if (m.store_kind == StoreKind::kSqlite && m.schema_version > store::LatestSchemaVersion()) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("backup {} is at schema version {}, newer than this opensense knows ({}): "
                            "restore it with the newer opensense binary that made it",
                            m.name, m.schema_version, store::LatestSchemaVersion()));
  }
  return Ok();
}

// PRAGMA integrity_check, schema and counts of a restored SQLite file.
Status CheckSqliteFile(const std::string& path, const Manifest& m, std::vector<std::string>* checks) {
  OS_ASSIGN_OR_RETURN(auto db, Db::Open(path, false, 5000));
  {
    OS_ASSIGN_OR_RETURN(store::sqlite::Stmt s, db->PrepareOnce("PRAGMA integrity_check"));
    std::string problems;
    while (true) {
      auto row = s.Step();
      if (!row) {
        return Fail(ErrorCode::kFailedPrecondition,
                    fmt::format("backup {}: the restored file is not a usable SQLite database: {}",
                                m.name, row.error().message));
      }
      if (!*row) break;
      const std::string line = s.Text(0);
      if (line != "ok") problems += (problems.empty() ? "" : "; ") + line;
    }
    if (!problems.empty()) {
      return Fail(ErrorCode::kFailedPrecondition,
                  fmt::format("backup {}: PRAGMA integrity_check failed: {}", m.name, problems.substr(0, 500)));
    }
    if (checks) checks->push_back("PRAGMA integrity_check: ok");
  }
  OS_ASSIGN_OR_RETURN(Counts c, SqliteCounts(db.get()));
  return CompareCounts(m, c, checks);
}

// Rollups of a sample of devices re-derived from raw readings equal the restored ones: the last
// 8 days before the newest reading (raw data is kept at least that long), every level.
Status CheckRollupSample(store::Store& st, const Manifest& m, std::vector<std::string>* checks) {
  if (!m.newest_reading) {
    if (checks) checks->push_back("rollup sample: no readings, nothing to compare");
    return Ok();
  }
  std::vector<std::pair<OrgId, DeviceId>> devices;
  OS_ASSIGN_OR_RETURN(auto orgs, st.ListOrganizations());
  for (const auto& o : orgs) {
    OS_ASSIGN_OR_RETURN(auto list, st.ListDevices(o.id));
    for (const auto& d : list) devices.emplace_back(o.id, d.id);
  }
  constexpr std::size_t kSample = 4;
  std::vector<std::pair<OrgId, DeviceId>> sample;
  for (std::size_t i = 0; i < std::min(kSample, devices.size()); ++i) {
    sample.push_back(devices[i * devices.size() / std::min(kSample, devices.size())]);
  }
  const TimestampMs to = (*m.newest_reading / kMsPerDay + 2) * kMsPerDay;
  const TimestampMs from = to - 10 * kMsPerDay;
  int compared = 0;
  for (const auto& [org, device] : sample) {
    OS_ASSIGN_OR_RETURN(auto metrics, st.Latest(org, device));
    std::vector<std::pair<SeriesQuery, SeriesResult>> before;
    for (const auto& lv : metrics) {
      for (Resolution r : {Resolution::k5m, Resolution::k1h, Resolution::k1d}) {
        SeriesQuery q{org, device, lv.metric, from, to, r};
        OS_ASSIGN_OR_RETURN(SeriesResult res, st.QuerySeries(q));
        before.emplace_back(q, std::move(res));
      }
    }
    OS_RETURN_IF_ERROR(st.RebuildRollups(org, device, from, to));
    for (const auto& [q, old] : before) {
      OS_ASSIGN_OR_RETURN(SeriesResult now, st.QuerySeries(q));
      bool same = now.points.size() == old.points.size();
      for (std::size_t i = 0; same && i < now.points.size(); ++i) {
        const auto& a = old.points[i];
        const auto& b = now.points[i];
        // Means of values that are not short decimals are plain double sums, which depend on the
        // order of addition in the last bits (core/rollup.hpp): equal within 1e-9.
        same = a.t == b.t && a.count == b.count && a.min == b.min && a.max == b.max &&
               std::abs(a.v - b.v) <= 1e-9 * std::max(1.0, std::abs(a.v));
      }
      if (!same) {
        return Fail(ErrorCode::kFailedPrecondition,
                    fmt::format("backup {}: the {} rollups of device {} metric {} differ from "
                                "those re-derived from its raw readings",
                                m.name, ResolutionName(q.resolution), device, q.metric));
      }
      ++compared;
    }
  }
  if (checks) {
    checks->push_back(fmt::format("rollups of {} sampled device(s) re-derived from raw readings "
                                  "equal the stored ones ({} series-levels)",
                                  sample.size(), compared));
  }
  return Ok();
}

Status CheckRollupSampleAt(const std::string& url, const Manifest& m, std::vector<std::string>* checks) {
  store::StoreOptions so;
  so.url = url;
  so.writer = true;
  so.migrate = false;
  so.synchronous = store::Synchronous::kNormal;
  OS_ASSIGN_OR_RETURN(auto st, store::OpenStore(so));
  Status result = CheckRollupSample(*st, m, checks);
  st->Close();
  return result;
}

Status CheckFileAgainstManifest(const BackupRef& b) {
  const Manifest& m = b.manifest;
  auto sum = Sha256File(b.FilePath());
  if (!sum) {
    return Fail(ErrorCode::kNotFound,
                fmt::format("backup {}: its encrypted file {} is missing or unreadable", m.name, b.FilePath()));
  }
  if (sum->first != m.sha256 || sum->second != m.encrypted_bytes) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("backup {}: the encrypted file does not match its manifest (SHA-256 {} "
                            "and {} bytes, recorded {} and {} bytes): it was damaged or altered "
                            "after it was written. Do not restore from it; verify an older backup "
                            "(`opensense backup list`) or the off-site copy",
                            m.name, sum->first.substr(0, 16) + "...", sum->second,
                            m.sha256.substr(0, 16) + "...", m.encrypted_bytes));
  }
  return Ok();
}

std::string RandomSuffix() {
  std::random_device rd;
  return fmt::format("{:08x}", rd());
}

// A scratch PostgreSQL database on the server of `server_url`, dropped on destruction.
class ScratchDatabase {
 public:
  static Result<ScratchDatabase> Create(const std::string& server_url, TimestampMs now) {
    if (!IsPostgresUrl(server_url)) {
      return Fail(ErrorCode::kInvalidArgument,
                  "a PostgreSQL backup is restored into a scratch database: run with --store "
                  "postgres://HOST:PORT/DB naming a server where opensense may create databases");
    }
    const std::string name = fmt::format("opensense_drill_{}_{}", now / 1000, RandomSuffix());
    OS_ASSIGN_OR_RETURN(std::string url, store::postgres::CreateDatabase(server_url, name));
    return ScratchDatabase(server_url, name, url);
  }
  ScratchDatabase(ScratchDatabase&& o) noexcept
      : server_(std::move(o.server_)), name_(std::move(o.name_)), url_(std::move(o.url_)) {
    o.name_.clear();
  }
  ~ScratchDatabase() {
    if (name_.empty()) return;
    auto info = store::postgres::ParseConnInfo(server_);
    if (!info) return;
    auto conn = Conn::Connect(*info);
    if (conn) (void)(*conn)->Exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name_));
  }
  const std::string& url() const { return url_; }

 private:
  ScratchDatabase(std::string server, std::string name, std::string url)
      : server_(std::move(server)), name_(std::move(name)), url_(std::move(url)) {}
  std::string server_, name_, url_;
};

// age -d of the backup piped into `consumers`. A failure of age (other than being cut off by a
// consumer that failed first) is a decryption error; a consumer's is `what` failed.
Status DecryptInto(const BackupRef& b, const std::string& identity, const std::vector<Command>& consumers,
                   const std::string& what) {
  std::vector<Command> pipeline = {AgeDecrypt(identity, b.FilePath(), "")};
  pipeline.insert(pipeline.end(), consumers.begin(), consumers.end());
  OS_ASSIGN_OR_RETURN(auto outcomes, RunPipeline(pipeline));
  if (outcomes[0].exit_code != 0 && outcomes[0].exit_code != 128 + SIGPIPE) {
    Status st = PipelineStatus({pipeline[0]}, {outcomes[0]});
    return tl::unexpected(DecryptError(b.manifest, identity, st.error()));
  }
  if (Status st = PipelineStatus(pipeline, outcomes); !st) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("backup {}: {}: {}", b.manifest.name, what, st.error().message));
  }
  return Ok();
}

Result<Counts> PgCountsAt(const std::string& url) {
  OS_ASSIGN_OR_RETURN(auto info, store::postgres::ParseConnInfo(url));
  OS_ASSIGN_OR_RETURN(auto conn, Conn::Connect(info));
  return PgCounts(conn.get());
}

// age -d | pg_restore into `url`, then the counts there.
Result<Counts> RestorePg(const BackupRef& b, const std::string& identity, const std::string& url,
                         bool clean) {
  Command restore{{"pg_restore", "--single-transaction", "--no-owner", "--no-privileges"}, PgPasswordEnv()};
  if (clean) restore.argv.insert(restore.argv.end(), {"--clean", "--if-exists"});
  restore.argv.push_back("--dbname=" + url);
  OS_RETURN_IF_ERROR(DecryptInto(b, identity, {restore},
                                 "pg_restore failed (nothing was restored, it runs in one transaction)"));
  return PgCountsAt(url);
}

std::string PgBin(const BackupOptions& o) { return o.pg_bin_dir.empty() ? kDefaultPgBinDir : o.pg_bin_dir; }

// Every table counted in one snapshot.
Result<Counts> PgCountsInOneSnapshot(Conn* conn) {
  OS_RETURN_IF_ERROR(conn->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  auto counts = PgCounts(conn);
  conn->Rollback();
  return counts;
}

// A physical backup unpacked into `dir` and checked by pg_verifybackup.
Status UnpackBaseBackup(const BackupOptions& o, const BackupRef& b, const std::string& identity,
                        const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec) fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);  // plaintext inside
  if (ec) return Fail(ErrorCode::kUnavailable, fmt::format("cannot create {}: {}", dir, ec.message()));
  Progress(o, fmt::format("decrypting and unpacking {} into {}", b.manifest.file, dir));
  OS_RETURN_IF_ERROR(DecryptInto(b, identity, UnpackCommands(dir), "unpacking the base backup failed"));
  Progress(o, "checking every file and the WAL with pg_verifybackup");
  if (Status st = VerifyDataDirectory(PgBin(o), dir); !st) {
    return Fail(ErrorCode::kFailedPrecondition, fmt::format("backup {}: {}", b.manifest.name, st.error().message));
  }
  return Ok();
}

// The drill of a physical backup: unpack into a scratch directory, pg_verifybackup, start a
// private server (it replays the WAL), then the same checks as a logical restore.
Status DrillBaseBackup(const BackupOptions& o, const BackupRef& b, const std::string& identity,
                       std::vector<std::string>* checks) {
  const Manifest& m = b.manifest;
  OS_ASSIGN_OR_RETURN(TempDir scratch, TempDir::Create(WorkDir(o), "verify"));
  OS_ASSIGN_OR_RETURN(ServerUser user, ServerUserForThisProcess());
  OS_RETURN_IF_ERROR(HandTreeTo(scratch.path(), user));  // empty still: the server user's own
  const std::string data = scratch.path() + "/data";
  OS_RETURN_IF_ERROR(UnpackBaseBackup(o, b, identity, data));
  checks->push_back("decrypted and unpacked (age authenticates every chunk)");
  checks->push_back("pg_verifybackup: every file matches the backup's own manifest; its WAL is complete");
  Progress(o, "starting a scratch PostgreSQL on it (WAL replay)");
  OS_ASSIGN_OR_RETURN(LocalPostgres server, LocalPostgres::Start({data, scratch.path() + "/run", PgBin(o), {}}));
  checks->push_back(fmt::format("a scratch server replayed the WAL and accepted connections (127.0.0.1:{})", server.port()));
  const std::string url = server.Url(m.role, m.database);
  auto counts = PgCountsAt(url);
  if (!counts) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("backup {}: cannot read database {} of the restored cluster as role {} (the "
                            "password is the store's, from OPENSENSE_STORE_PASSWORD): {}",
                            m.name, m.database, m.role, counts.error().message));
  }
  OS_RETURN_IF_ERROR(CompareCounts(m, *counts, checks));
  Progress(o, "re-deriving the rollups of a sample of devices");
  OS_RETURN_IF_ERROR(CheckRollupSampleAt(url, m, checks));
  OS_RETURN_IF_ERROR(server.Stop());
  return Ok();
}

Result<VerifyReport> DoVerify(const BackupOptions& o, const BackupRef& b, const std::string& identity) {
  VerifyReport report{b.manifest, {}};
  const Manifest& m = b.manifest;
  OS_RETURN_IF_ERROR(CheckIdentityReadable(identity));
  OS_RETURN_IF_ERROR(CheckFileAgainstManifest(b));
  report.checks.push_back("SHA-256 of the encrypted file equals the manifest");
  OS_RETURN_IF_ERROR(CheckSchemaKnown(m));
  if (m.store_kind == StoreKind::kSqlite) {
    OS_ASSIGN_OR_RETURN(TempDir scratch, TempDir::Create(WorkDir(o), "verify"));
    const std::string db_path = scratch.path() + "/restore.db";
    Progress(o, fmt::format("decrypting {} into a scratch store", m.file));
    if (Status st = RunCommands({AgeDecrypt(identity, b.FilePath(), db_path)}); !st) {
      return tl::unexpected(DecryptError(m, identity, st.error()));
    }
    report.checks.push_back("decrypted with the identity (age authenticates every chunk)");
    OS_RETURN_IF_ERROR(CheckSqliteFile(db_path, m, &report.checks));
    Progress(o, "re-deriving the rollups of a sample of devices");
    OS_RETURN_IF_ERROR(CheckRollupSampleAt("sqlite://" + db_path, m, &report.checks));
  } else if (m.method == BackupMethod::kPgBaseBackup) {
    OS_RETURN_IF_ERROR(DrillBaseBackup(o, b, identity, &report.checks));
  } else {
    OS_ASSIGN_OR_RETURN(ScratchDatabase scratch, ScratchDatabase::Create(o.store_url, Now(o)));
    Progress(o, fmt::format("restoring {} into a scratch database", m.file));
    OS_ASSIGN_OR_RETURN(Counts c, RestorePg(b, identity, scratch.url(), false));
    report.checks.push_back("decrypted and restored by pg_restore (exit status 0)");
    OS_RETURN_IF_ERROR(CompareCounts(m, c, &report.checks));
    Progress(o, "re-deriving the rollups of a sample of devices");
    OS_RETURN_IF_ERROR(CheckRollupSampleAt(scratch.url(), m, &report.checks));
  }
  report.checks.push_back("scratch store dropped");
  return report;
}

Status RecordVerification(const std::string& manifest_path, const Verification& v) {
  OS_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(manifest_path, kMaxManifestBytes));
  OS_ASSIGN_OR_RETURN(Manifest m, ParseManifest(text));
  m.verification = v;
  return WriteFileAtomic(manifest_path, SerializeManifest(m));
}

Result<Manifest> ReadManifest(const std::string& path) {
  OS_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxManifestBytes));
  auto m = ParseManifest(text);
  if (!m) return Fail(ErrorCode::kInvalidArgument, fmt::format("{}: {}", path, m.error().message));
  return m;
}

std::string OffsiteIndexDir(const BackupOptions& o) { return o.backup_dir + "/" + std::string(kOffsiteIndex); }

std::string Substitute(std::string templ, const std::map<std::string, std::string>& values) {
  for (const auto& [key, value] : values) {
    const std::string token = "{" + key + "}";
    for (std::size_t pos = templ.find(token); pos != std::string::npos;
         pos = templ.find(token, pos + value.size() + 2)) {
      templ.replace(pos, token.size(), ShellQuote(value));
    }
  }
  return templ;
}

Status RunShell(const std::string& what, const std::string& command) {
  Status st = RunCommands({Command{{"/bin/sh", "-c", command}, {}}});
  if (!st) {
    return Fail(ErrorCode::kUnavailable, fmt::format("the off-site {} command failed: {}", what, st.error().message));
  }
  return Ok();
}

Status PushOffsite(const BackupOptions& o, const std::string& local, const std::string& name) {
  if (!o.offsite_dir.empty()) {
    std::error_code ec;
    fs::create_directories(o.offsite_dir, ec);
    return CopyFileDurably(local, o.offsite_dir + "/" + name);
  }
  return RunShell("push", Substitute(o.offsite_command, {{"file", local}, {"name", name}}));
}

Status FetchOffsite(const BackupOptions& o, const std::string& name, const std::string& local) {
  if (!o.offsite_dir.empty()) {
    std::error_code ec;
    fs::copy_file(o.offsite_dir + "/" + name, local, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return Fail(ErrorCode::kNotFound,
                  fmt::format("cannot fetch {} from the off-site directory {}: {}", name, o.offsite_dir, ec.message()));
    }
    return Ok();
  }
  if (o.offsite_fetch_command.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                "the off-site drill needs backup_offsite_fetch_command (e.g. `rclone copyto "
                "box:opensense/{name} {file}`) to fetch the copy back");
  }
  return RunShell("fetch", Substitute(o.offsite_fetch_command, {{"file", local}, {"name", name}}));
}

}  // namespace

// ---- placement ---------------------------------------------------------------------------------

Status CheckBackupDirPlacement(const std::string& backup_dir, const std::string& data_dir,
                               const std::string& store_url) {
  if (backup_dir.empty()) return Ok();
  auto norm = [](const std::string& p) {
    std::error_code ec;
    fs::path abs = fs::weakly_canonical(fs::absolute(p), ec);
    if (ec) abs = fs::absolute(p).lexically_normal();
    std::string s = abs.string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  };
  auto within = [](const std::string& inner, const std::string& outer) {
    return inner == outer || (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 &&
                              (outer == "/" || inner[outer.size()] == '/'));
  };
  const std::string b = norm(backup_dir);
  std::vector<std::pair<std::string, std::string>> guarded;
  if (!data_dir.empty()) guarded.emplace_back(norm(data_dir), "the data directory");
  if (auto p = SqlitePathOf(store_url)) guarded.emplace_back(norm(ParentOf(*p)), "the store's directory");
  for (const auto& [dir, what] : guarded) {
    if (within(b, dir) || within(dir, b)) {
      return Fail(ErrorCode::kInvalidArgument,
                  fmt::format("backup_dir {} is inside or holds {} {}: a backup must survive the "
                              "loss of the data volume. Put backups on another disk or mount, "
                              "e.g. /var/backups/opensense",
                              b, what, dir));
    }
  }
  return Ok();
}

// ---- run -------------------------------------------------------------------------------------

Result<Manifest> CreateBackup(const BackupOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  OS_ASSIGN_OR_RETURN(std::vector<std::string> recipients, AllRecipients(o));
  if (o.backup_dir.empty()) {
    return Fail(ErrorCode::kInvalidArgument, "no backup directory: set backup_dir (--backup-dir DIR)");
  }
  std::error_code ec;
  fs::create_directories(o.backup_dir, ec);
  if (ec) return Fail(ErrorCode::kUnavailable, fmt::format("cannot create {}: {}", o.backup_dir, ec.message()));
  fs::permissions(o.backup_dir, fs::perms::owner_all, fs::perm_options::replace, ec);

  Manifest m;
  m.created_at = Now(o);
  m.recipients = recipients;
  m.opensense_version = kOpenSenseVersion;
  m.name = "opensense-" + CompactTime(m.created_at);
  for (int i = 2; fs::exists(o.backup_dir + "/" + ManifestFileName(m.name)); ++i) {
    m.name = fmt::format("opensense-{}-{}", CompactTime(m.created_at), i);
  }
  const auto sqlite_path = SqlitePathOf(o.store_url);
  m.store_kind = sqlite_path ? StoreKind::kSqlite : StoreKind::kPostgres;
  m.method = sqlite_path ? BackupMethod::kSqliteFile
             : o.pg_method == PgBackupMethod::kPhysical ? BackupMethod::kPgBaseBackup
                                                         : BackupMethod::kPgDump;
  m.file = m.name + std::string(m.method == BackupMethod::kSqliteFile ? kSqliteSuffix
                                : m.method == BackupMethod::kPgDump   ? kPgSuffix
                                                                      : kPgBaseSuffix);
  const std::string final_path = o.backup_dir + "/" + m.file;
  const std::string partial = final_path + ".partial";
  bool done = false;
  Defer cleanup([&] {
    if (!done) {
      std::error_code e;
      fs::remove(partial, e);
      fs::remove(final_path, e);
    }
  });

  Counts counts;
  if (sqlite_path) {
    OS_ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create(WorkDir(o), "backup"));
    const std::string snap = tmp.path() + "/snapshot.db";
    {
      OS_ASSIGN_OR_RETURN(auto db, Db::Open(*sqlite_path, false, 5000));
      std::string quoted;
      for (char c : snap) quoted += c == '\'' ? std::string("''") : std::string(1, c);
      Progress(o, "taking a consistent snapshot (VACUUM INTO) while ingest continues");
      OS_RETURN_IF_ERROR(db->Exec("VACUUM INTO '" + quoted + "'"));
    }
    {
      // The snapshot's own writer folds its logged readings into chunks, so it holds everything
      // compactly and its counts are exact.
      store::StoreOptions so;
      so.url = "sqlite://" + snap;
      so.migrate = false;
      so.synchronous = store::Synchronous::kNormal;
      OS_ASSIGN_OR_RETURN(auto st, store::OpenStore(so));
      Status compacted = st->Compact();
      st->Close();
      OS_RETURN_IF_ERROR(compacted);
    }
    {
      OS_ASSIGN_OR_RETURN(auto db, Db::Open(snap, false, 5000));
      OS_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=DELETE"));
      OS_ASSIGN_OR_RETURN(counts, SqliteCounts(db.get()));
    }
    OS_RETURN_IF_ERROR(FsyncPath(snap, false));
    OS_RETURN_IF_ERROR(FsyncPath(tmp.path(), true));
    m.plain_bytes = static_cast<std::int64_t>(fs::file_size(snap, ec));
    Progress(o, fmt::format("snapshot: {} readings, {} bytes; encrypting to {} recipient(s)", counts.readings,
                            m.plain_bytes, recipients.size()));
    Command encrypt = AgeEncrypt(o, partial);
    encrypt.argv.push_back(snap);
    OS_RETURN_IF_ERROR(RunCommands({encrypt}));
    // tmp (the plaintext) is removed here, at the end of this scope.
  } else if (m.method == BackupMethod::kPgBaseBackup) {
    OS_ASSIGN_OR_RETURN(auto info, store::postgres::ParseConnInfo(o.store_url));
    OS_ASSIGN_OR_RETURN(auto conn, Conn::Connect(info));
    OS_ASSIGN_OR_RETURN(PgResult who, conn->Exec("SELECT current_database(), current_user"));
    m.database = who.Text(0, 0);
    m.role = who.Text(0, 1);
    OS_ASSIGN_OR_RETURN(counts, PgCountsInOneSnapshot(conn.get()));
    // pg_basebackup --wal-method=fetch collects the copy's WAL at its end; under heavy ingest the
    // server may have recycled the first segments by then ("requested WAL segment ... has already
    // been removed"). A temporary slot reserved now keeps every segment from here on until this
    // connection closes (after the copy), and vanishes with it if this process dies.
    if (auto slot = conn->Exec("SELECT pg_create_physical_replication_slot('opensense_backup_' || "
                               "pg_backend_pid(), true, true)");
        !slot) {
      return tl::unexpected(ExplainBaseBackupFailure(o.store_url, slot.error()));
    }
    Progress(o, fmt::format("{} readings before the copy; pg_basebackup of the cluster streamed into age ({} "
                            "recipient(s))",
                            counts.readings, recipients.size()));
    const std::vector<Command> pipeline = {BaseBackupCommand(PgBin(o), o.store_url, m.name), AgeEncrypt(o, partial)};
    OS_ASSIGN_OR_RETURN(auto outcomes, RunPipeline(pipeline));
    if (outcomes[0].exit_code != 0) {
      return tl::unexpected(ExplainBaseBackupFailure(o.store_url, PipelineStatus({pipeline[0]}, {outcomes[0]}).error()));
    }
    OS_RETURN_IF_ERROR(PipelineStatus(pipeline, outcomes));
    OS_ASSIGN_OR_RETURN(Counts after, PgCountsInOneSnapshot(conn.get()));
    m.tables_at_end = after.tables;
  } else {
    OS_ASSIGN_OR_RETURN(auto info, store::postgres::ParseConnInfo(o.store_url));
    OS_ASSIGN_OR_RETURN(auto conn, Conn::Connect(info));
    OS_RETURN_IF_ERROR(conn->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    OS_ASSIGN_OR_RETURN(PgResult snap, conn->Exec("SELECT pg_export_snapshot()"));
    const std::string snapshot_id(snap.Text(0, 0));
    OS_ASSIGN_OR_RETURN(counts, PgCounts(conn.get()));
    Progress(o, fmt::format("snapshot: {} readings; pg_dump -Fc streamed into age ({} recipient(s))",
                            counts.readings, recipients.size()));
    Command dump{{"pg_dump", "--format=custom", "--snapshot=" + snapshot_id, "--dbname=" + o.store_url}, PgPasswordEnv()};
    Status st = RunCommands({dump, AgeEncrypt(o, partial)});
    conn->Rollback();
    OS_RETURN_IF_ERROR(st);
  }
  OS_RETURN_IF_ERROR(FsyncPath(partial, false));
  if (::rename(partial.c_str(), final_path.c_str()) != 0) {
    return Fail(ErrorCode::kUnavailable, fmt::format("cannot rename {}: {}", partial, ErrnoText()));
  }
  OS_RETURN_IF_ERROR(FsyncPath(o.backup_dir, true));
  OS_ASSIGN_OR_RETURN(auto sum, Sha256File(final_path));
  m.sha256 = sum.first;
  m.encrypted_bytes = sum.second;
  m.schema_version = counts.schema_version;
  m.tables = counts.tables;
  m.readings = counts.readings;
  m.newest_reading = counts.newest;
  m.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  OS_RETURN_IF_ERROR(WriteFileAtomic(o.backup_dir + "/" + ManifestFileName(m.name), SerializeManifest(m)));
  done = true;
  Progress(o, fmt::format("backup {} written: {} bytes encrypted in {} ms", m.name, m.encrypted_bytes, m.duration_ms));
  return m;
}

// ---- find, verify, restore ---------------------------------------------------------------------

Result<BackupRef> FindBackup(const BackupOptions& o, const std::string& which) {
  BackupRef ref;
  std::string name;
  if (which.empty()) {
    OS_ASSIGN_OR_RETURN(auto list, ListBackups(o));
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      if (it->manifest) {
        ref.dir = o.backup_dir;
        ref.manifest = *it->manifest;
        return ref;
      }
    }
    return Fail(ErrorCode::kNotFound,
                fmt::format("no backup in {}: run `opensense backup run` first, or name one", o.backup_dir));
  }
  auto strip = [](std::string s, std::string_view suffix) {
    if (s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0) {
      s.resize(s.size() - suffix.size());
    }
    return s;
  };
  if (which.find('/') != std::string::npos) {
    ref.dir = ParentOf(which);
    name = fs::path(which).filename().string();
  } else {
    ref.dir = o.backup_dir;
    name = which;
  }
  name = strip(strip(strip(strip(name, ".manifest.json"), kSqliteSuffix), kPgSuffix), kPgBaseSuffix);
  if (!IsValidBackupName(name)) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("'{}' is not a backup name (see `opensense backup list`)", which));
  }
  const std::string manifest_path = ref.dir + "/" + ManifestFileName(name);
  if (!fs::exists(manifest_path)) {
    return Fail(ErrorCode::kNotFound,
                fmt::format("no manifest {}: a backup is checked against its manifest; copy it next "
                            "to the encrypted file (see `opensense backup list`)",
                            manifest_path));
  }
  OS_ASSIGN_OR_RETURN(ref.manifest, ReadManifest(manifest_path));
  if (ref.manifest.name != name) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{} names backup '{}', not '{}'", manifest_path, ref.manifest.name, name));
  }
  return ref;
}

Result<VerifyReport> VerifyBackup(const BackupOptions& o, const BackupRef& b, const std::string& identity,
                                  const std::string& source) {
  auto report = DoVerify(o, b, identity);
  Verification v;
  v.at = Now(o);
  v.source = source;
  if (report) {
    v.status = DrillStatus::kPassed;
    v.message = fmt::format("{} checks passed", report->checks.size());
  } else {
    v.status = DrillStatus::kFailed;
    v.message = report.error().message.substr(0, 1000);
  }
  // A read-only copy (a mounted off-site target) cannot record it; the outcome stands anyway.
  if (Status st = RecordVerification(b.ManifestPath(), v); !st) {
    Progress(o, fmt::format("note: the outcome was not recorded in the manifest: {}", st.error().message));
  }
  return report;
}

namespace {

// A physical backup into an empty data directory `to`, for the operator to start PostgreSQL on.
Result<RestoreReport> RestoreBaseBackup(const BackupOptions& o, const BackupRef& b, const std::string& identity,
                                        const std::string& to) {
  const Manifest& m = b.manifest;
  if (IsPostgresUrl(to) || SqlitePathOf(to)) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("backup {} is a physical copy of a whole PostgreSQL cluster (pg_basebackup): "
                            "restore it into an empty data directory, e.g. --to /var/lib/postgresql/15/main, "
                            "and start PostgreSQL on it. To move one database into a running server, use a "
                            "logical backup (backup_method = \"logical\")",
                            m.name));
  }
  std::error_code ec;
  if (fs::exists(to, ec) && !fs::is_empty(to, ec)) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("{} is not empty: a physical backup is restored into an empty data directory "
                            "(--force does not apply). Stop PostgreSQL, move the old directory aside "
                            "(mv {} {}.old) and restore again",
                            to, to, to));
  }
  const bool existed = fs::exists(to, ec);
  auto clear = [&] {
    std::error_code e;
    if (!existed) {
      fs::remove_all(to, e);
      return;
    }
    for (const auto& entry : fs::directory_iterator(to, e)) fs::remove_all(entry.path(), e);
  };
  if (Status st = UnpackBaseBackup(o, b, identity, to); !st) {
    clear();
    return tl::unexpected(st.error());
  }
  auto user = ServerUserForThisProcess();
  if (Status st = user ? HandTreeTo(to, *user) : Status(tl::unexpected(user.error())); !st) {
    clear();
    return tl::unexpected(st.error());
  }
  RestoreReport report;
  report.manifest = m;
  report.target = fs::absolute(to).lexically_normal().string();
  report.tables = m.tables;
  report.readings = m.readings;
  report.next_step = fmt::format(
      "files checked with pg_verifybackup; row counts are the manifest's (counted before the copy). "
      "Start PostgreSQL on {} as the postgres user (Debian: `systemctl start postgresql@15-main`; its "
      "configuration in /etc/postgresql/15/main is not in the backup; elsewhere `pg_ctl -D {} start`): "
      "it replays the WAL in the backup, then accepts connections. Then start `opensense serve`.",
      report.target, report.target);
  return report;
}

}  // namespace

Result<RestoreReport> RestoreBackup(const BackupOptions& o, const BackupRef& b, const std::string& identity,
                                    const std::string& to, bool force) {
  const Manifest& m = b.manifest;
  OS_RETURN_IF_ERROR(CheckIdentityReadable(identity));
  OS_RETURN_IF_ERROR(CheckFileAgainstManifest(b));
  OS_RETURN_IF_ERROR(CheckSchemaKnown(m));
  RestoreReport report;
  report.manifest = m;
  if (m.store_kind == StoreKind::kSqlite) {
    if (IsPostgresUrl(to)) {
      return Fail(ErrorCode::kInvalidArgument,
                  fmt::format("backup {} is of a SQLite store: restore it into a directory or "
                              "sqlite:///path, then move it with `opensense store copy --from "
                              "sqlite:///path --to {}`",
                              m.name, to));
    }
    const std::string path = SqlitePathOf(to).value_or(to + "/opensense.db");
    const std::string dir = ParentOf(path);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Fail(ErrorCode::kUnavailable, fmt::format("cannot create {}: {}", dir, ec.message()));
    const bool occupied = (fs::exists(path) && fs::file_size(path, ec) > 0) || fs::exists(path + "-wal");
    if (occupied && !force) {
      return Fail(ErrorCode::kFailedPrecondition,
                  fmt::format("{} already holds a store: restore into an empty directory, or add "
                              "--force to replace it (stop `opensense serve` first)",
                              path));
    }
    // A running writer would keep its own view of the file: refuse while one holds the lock.
    const std::string lock_path = path + ".writer.lock";
    const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) return Fail(ErrorCode::kUnavailable, fmt::format("cannot open {}: {}", lock_path, ErrnoText()));
    Defer close_lock([&] { ::close(lock_fd); });
    if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      return Fail(ErrorCode::kFailedPrecondition,
                  fmt::format("a process (opensense serve?) holds the writer lock of {}: stop it "
                              "before restoring",
                              path));
    }
    OS_ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create(dir, "restore"));
    const std::string staged = tmp.path() + "/opensense.db";
    Progress(o, fmt::format("decrypting {}", m.file));
    if (Status st = RunCommands({AgeDecrypt(identity, b.FilePath(), staged)}); !st) {
      return tl::unexpected(DecryptError(m, identity, st.error()));
    }
    OS_RETURN_IF_ERROR(CheckSqliteFile(staged, m, nullptr));
    OS_RETURN_IF_ERROR(FsyncPath(staged, false));
    for (const char* suffix : {"-wal", "-shm"}) fs::remove(path + suffix, ec);
    if (::rename(staged.c_str(), path.c_str()) != 0) {
      return Fail(ErrorCode::kUnavailable, fmt::format("cannot move the restored store to {}: {}", path, ErrnoText()));
    }
    OS_RETURN_IF_ERROR(FsyncPath(dir, true));
    report.target = "sqlite://" + fs::absolute(path).lexically_normal().string();
    report.tables = m.tables;
    report.readings = m.readings;
    report.next_step = "row counts equal the manifest. Start `opensense serve` on it.";
    return report;
  }
  if (m.method == BackupMethod::kPgBaseBackup) return RestoreBaseBackup(o, b, identity, to);
  if (!IsPostgresUrl(to)) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("backup {} is a PostgreSQL dump: restore it with --to postgres://HOST:PORT/DB "
                            "(an empty database; the password from OPENSENSE_STORE_PASSWORD)",
                            m.name));
  }
  {
    OS_ASSIGN_OR_RETURN(auto info, store::postgres::ParseConnInfo(to));
    OS_ASSIGN_OR_RETURN(auto conn, Conn::Connect(info));
    OS_ASSIGN_OR_RETURN(std::int64_t tables, PgScalar(conn.get(),
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"));
    if (tables > 0 && !force) {
      return Fail(ErrorCode::kFailedPrecondition,
                  fmt::format("{} is not empty ({} tables): restore into an empty database, or add "
                              "--force to replace what is there (stop `opensense serve` first)",
                              to, tables));
    }
  }
  Progress(o, fmt::format("restoring {} with pg_restore", m.file));
  OS_ASSIGN_OR_RETURN(Counts c, RestorePg(b, identity, to, force));
  OS_RETURN_IF_ERROR(CompareCounts(m, c, nullptr));
  report.target = to;
  report.tables = c.tables;
  report.readings = c.readings;
  report.next_step = "row counts equal the manifest. Start `opensense serve` on it.";
  return report;
}

// ---- list and prune ----------------------------------------------------------------------------

Result<std::vector<ListedBackup>> ListBackups(const BackupOptions& o) {
  std::vector<ListedBackup> out;
  std::error_code ec;
  if (!fs::is_directory(o.backup_dir, ec)) return out;
  std::set<std::string> with_manifest;
  std::vector<std::string> encrypted;
  for (const auto& entry : fs::directory_iterator(o.backup_dir, ec)) {
    const std::string f = entry.path().filename().string();
    constexpr std::string_view kManifest = ".manifest.json";
    if (f.size() > kManifest.size() && f.compare(f.size() - kManifest.size(), kManifest.size(), kManifest) == 0) {
      ListedBackup b;
      b.name = f.substr(0, f.size() - kManifest.size());
      auto m = ReadManifest(entry.path().string());
      if (m) {
        b.manifest = *m;
        with_manifest.insert(m->file);
      } else {
        b.problem = m.error().message;
      }
      out.push_back(std::move(b));
    } else if (f.ends_with(kSqliteSuffix) || f.ends_with(kPgSuffix) || f.ends_with(kPgBaseSuffix)) {
      encrypted.push_back(f);
    }
  }
  for (const auto& f : encrypted) {
    if (with_manifest.count(f) == 0) {
      ListedBackup b;
      b.name = f;
      b.problem = "no manifest: it cannot be verified; delete it or restore its manifest";
      out.push_back(std::move(b));
    }
  }
  std::set<std::string> offsite;
  if (auto copies = ListOffsiteCopies(o)) {
    for (const auto& c : *copies) offsite.insert(c.name);
  }
  std::sort(out.begin(), out.end(), [](const ListedBackup& a, const ListedBackup& b) {
    const TimestampMs ta = a.manifest ? a.manifest->created_at : 0, tb = b.manifest ? b.manifest->created_at : 0;
    return ta != tb ? ta < tb : a.name < b.name;
  });
  std::vector<BackupRecord> records;
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].offsite = offsite.count(out[i].name) != 0;
    if (!out[i].manifest) continue;
    records.push_back({out[i].name, out[i].manifest->created_at, false});
    index.push_back(i);
  }
  const auto classes = ClassifyBackups(records);
  for (std::size_t k = 0; k < index.size(); ++k) out[index[k]].backup_class = classes[k];
  return out;
}

namespace {
std::vector<BackupRecord> RecordsOf(const std::vector<Manifest>& manifests) {
  std::vector<BackupRecord> out;
  for (const auto& m : manifests) {
    out.push_back({m.name, m.created_at,
                   m.verification && m.verification->status == DrillStatus::kPassed});
  }
  return out;
}
}  // namespace

Result<std::vector<PruneDecision>> PruneBackups(const BackupOptions& o) {
  OS_ASSIGN_OR_RETURN(auto list, ListBackups(o));
  std::vector<Manifest> manifests;
  for (const auto& b : list) {
    if (b.manifest) manifests.push_back(*b.manifest);
  }
  auto decisions = PlanPrune(RecordsOf(manifests), Now(o), o.schedule);
  for (std::size_t i = 0; i < decisions.size(); ++i) {
    if (decisions[i].keep) continue;
    std::error_code ec;
    fs::remove(o.backup_dir + "/" + manifests[i].file, ec);
    fs::remove(o.backup_dir + "/" + ManifestFileName(manifests[i].name), ec);
    Progress(o, fmt::format("pruned {} ({})", manifests[i].name, decisions[i].reason));
  }
  return decisions;
}

// ---- off-site ----------------------------------------------------------------------------------

bool OffsiteConfigured(const BackupOptions& o) { return !o.offsite_dir.empty() || !o.offsite_command.empty(); }

Result<std::vector<Manifest>> ListOffsiteCopies(const BackupOptions& o) {
  std::vector<Manifest> out;
  std::error_code ec;
  const std::string dir = OffsiteIndexDir(o);
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.path().string().ends_with(".manifest.json")) continue;
    auto m = ReadManifest(entry.path().string());
    if (m) out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(), [](const Manifest& a, const Manifest& b) { return a.created_at < b.created_at; });
  return out;
}

Status CopyOffsite(const BackupOptions& o, const BackupRef& b) {
  if (!OffsiteConfigured(o)) {
    return Fail(ErrorCode::kInvalidArgument,
                "no off-site target: set backup_offsite_dir or backup_offsite_command");
  }
  OS_RETURN_IF_ERROR(CheckFileAgainstManifest(b));
  Manifest copy = b.manifest;
  copy.verification.reset();
  Progress(o, fmt::format("copying {} off-site", b.manifest.file));
  OS_RETURN_IF_ERROR(PushOffsite(o, b.FilePath(), b.manifest.file));
  // The manifest goes along (for a restore without this host); its drill outcome stays local.
  OS_ASSIGN_OR_RETURN(TempDir tmp, TempDir::Create(WorkDir(o), "offsite"));
  const std::string manifest_name = ManifestFileName(copy.name);
  OS_RETURN_IF_ERROR(WriteFileAtomic(tmp.path() + "/" + manifest_name, SerializeManifest(copy)));
  OS_RETURN_IF_ERROR(PushOffsite(o, tmp.path() + "/" + manifest_name, manifest_name));
  std::error_code ec;
  fs::create_directories(OffsiteIndexDir(o), ec);
  return WriteFileAtomic(OffsiteIndexDir(o) + "/" + manifest_name, SerializeManifest(copy));
}

Result<VerifyReport> DrillOffsite(const BackupOptions& o, const std::string& identity) {
  if (!OffsiteConfigured(o)) {
    return Fail(ErrorCode::kInvalidArgument,
                "no off-site target: set backup_offsite_dir or backup_offsite_command");
  }
  OS_ASSIGN_OR_RETURN(auto copies, ListOffsiteCopies(o));
  if (copies.empty()) {
    return Fail(ErrorCode::kNotFound,
                fmt::format("no off-site copy is recorded in {}: the weekly backup job makes one", OffsiteIndexDir(o)));
  }
  const Manifest& newest = copies.back();
  OS_ASSIGN_OR_RETURN(TempDir fetched, TempDir::Create(WorkDir(o), "offsite-drill"));
  Progress(o, fmt::format("fetching {} back from the off-site target", newest.file));
  BackupRef ref{fetched.path(), newest};
  Result<VerifyReport> report = [&]() -> Result<VerifyReport> {
    OS_RETURN_IF_ERROR(FetchOffsite(o, newest.file, ref.FilePath()));
    auto r = DoVerify(o, ref, identity);
    if (!r) return Fail(r.error().code, "off-site copy: " + r.error().message);
    return r;
  }();
  Verification v;
  v.at = Now(o);
  v.source = "offsite";
  v.status = report ? DrillStatus::kPassed : DrillStatus::kFailed;
  v.message = report ? fmt::format("{} checks passed", report->checks.size()) : report.error().message.substr(0, 1000);
  (void)RecordVerification(OffsiteIndexDir(o) + "/" + ManifestFileName(newest.name), v);
  return report;
}

Result<std::vector<PruneDecision>> PruneOffsite(const BackupOptions& o) {
  OS_ASSIGN_OR_RETURN(auto copies, ListOffsiteCopies(o));
  auto decisions = PlanOffsitePrune(RecordsOf(copies), Now(o), o.schedule);
  for (std::size_t i = 0; i < decisions.size(); ++i) {
    if (decisions[i].keep) continue;
    const Manifest& m = copies[i];
    const std::string manifest_name = ManifestFileName(m.name);
    if (!o.offsite_dir.empty()) {
      std::error_code ec;
      fs::remove(o.offsite_dir + "/" + m.file, ec);
      fs::remove(o.offsite_dir + "/" + manifest_name, ec);
    } else if (!o.offsite_delete_command.empty()) {
      OS_RETURN_IF_ERROR(RunShell("delete", Substitute(o.offsite_delete_command, {{"name", m.file}})));
      OS_RETURN_IF_ERROR(RunShell("delete", Substitute(o.offsite_delete_command, {{"name", manifest_name}})));
    } else {
      decisions[i].keep = true;
      decisions[i].reason += " (not deleted: no backup_offsite_delete_command; the target's own retention applies)";
      continue;
    }
    std::error_code ec;
    fs::remove(OffsiteIndexDir(o) + "/" + manifest_name, ec);
    Progress(o, fmt::format("pruned off-site copy {} ({})", m.name, decisions[i].reason));
  }
  return decisions;
}

// ---- content digest ----------------------------------------------------------------------------

Result<ContentDigest> DigestStore(store::Store& st) {
  ContentDigest d;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Defer free_ctx([&] { EVP_MD_CTX_free(ctx); });
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  auto feed = [&](const std::string& s) { EVP_DigestUpdate(ctx, s.data(), s.size()); };
  OS_ASSIGN_OR_RETURN(auto orgs, st.ListOrganizations());
  std::sort(orgs.begin(), orgs.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (const auto& org : orgs) {
    ++d.organizations;
    feed(fmt::format("org {} {} {}\n", org.id, org.name, org.time_zone));
    OS_ASSIGN_OR_RETURN(auto devices, st.ListDevices(org.id));
    std::sort(devices.begin(), devices.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    for (const auto& dev : devices) {
      ++d.devices;
      feed(fmt::format("device {} {} {} {}\n", dev.id, dev.name, dev.serial.value_or("-"), dev.decommissioned));
      OS_ASSIGN_OR_RETURN(auto metrics, st.Latest(org.id, dev.id));
      std::sort(metrics.begin(), metrics.end(), [](const auto& a, const auto& b) { return a.metric < b.metric; });
      for (const auto& lv : metrics) {
        ++d.series;
        // Raw readings of the whole series, in time order.
        SeriesQuery q{org.id, dev.id, lv.metric, 0, lv.ts + 1, Resolution::kRaw};
        OS_ASSIGN_OR_RETURN(SeriesResult r, st.QuerySeries(q));
        feed(fmt::format("series {} {} {}\n", lv.metric, lv.unit, r.points.size()));
        for (const auto& p : r.points) {
          const std::uint64_t bits = std::bit_cast<std::uint64_t>(p.v);
          EVP_DigestUpdate(ctx, &p.t, sizeof p.t);
          EVP_DigestUpdate(ctx, &bits, sizeof bits);
        }
        d.readings += static_cast<std::int64_t>(r.points.size());
      }
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  for (unsigned int i = 0; i < len; ++i) d.sha256 += fmt::format("{:02x}", md[i]);
  return d;
}

}  // namespace opensense::backup
