// Backup figures for docs/performance.md: backup (snapshot + age), verify (restore drill) and
// full restore time and size for a store of N readings (default 10 million: 1,000 devices x 2
// metrics, one reading a minute, values a random walk of 2 decimals), filled through the real
// writer; then the restore time extrapolated to a year of 1,000 devices (1.05 billion readings)
// against the 30-minute downtime budget. Prints the machine load (other builds share the cores).
//
//   build/release/bench/backup_bench [READINGS]                    SQLite
//   build/release/bench/backup_bench --postgres [--method logical|physical|both] [--url URL] [READINGS]
//
// --postgres starts a throwaway PostgreSQL 15 cluster with scripts/pg-fixture.sh (as pg_bench
// does) unless --url names a server (its admin URL; OPENSENSE_STORE_PASSWORD set), fills a fresh
// database, and runs each method on it: logical (pg_dump -Fc | age; drill = pg_restore into a
// scratch database; restore = pg_restore into an empty database) and physical (pg_basebackup |
// age; drill = unpack + pg_verifybackup + a scratch server; restore = unpack into an empty data
// directory, then the time for a server to replay the WAL and open on it).
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>

#include "backup/backup.hpp"
#include "backup/pg_physical.hpp"
#include "backup/subprocess.hpp"
#include "bench_common.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/postgres/pg_store.hpp"

using namespace opensense;
namespace fs = std::filesystem;

namespace {

// A year of 1,000 devices, 2 metrics a minute.
constexpr double kYear = 1000.0 * 2 * 525'600;

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return fmt::format("{} {} {} (1/5/15 min) on {} cores", a, b, c, std::thread::hardware_concurrency());
}

template <typename T>
T Must(Result<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().message));
  return std::move(*r);
}
void Must(Status s, std::string_view what) {
  if (!s) throw std::runtime_error(fmt::format("{}: {}", what, s.error().message));
}

std::int64_t TreeBytes(const std::string& dir) {
  std::int64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += static_cast<std::int64_t>(it->file_size(ec));
  }
  return total;
}

// Fills through the writer, a minute of all series per step, several batches in flight, ending
// now. Returns the readings accepted.
std::int64_t Fill(store::Store& s, std::int64_t target) {
  constexpr int kDevices = 1000;
  const OrgId org = Must(s.CreateOrganization({"Bench", "UTC", Tier::kFree}), "org").id;
  std::vector<DeviceId> devices;
  for (int i = 0; i < kDevices; ++i) {
    devices.push_back(Must(s.CreateDevice({org, fmt::format("d{}", i), std::nullopt, std::nullopt}), "device").id);
  }
  const std::int64_t minutes = target / (2 * kDevices);
  const TimestampMs now = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  const TimestampMs start = (now - minutes * kMsPerMinute) / kMsPerMinute * kMsPerMinute;
  std::mt19937 rng(7);
  std::vector<std::int64_t> walk(2 * kDevices, 400);
  std::deque<std::future<Result<IngestResult>>> inflight;
  std::int64_t accepted = 0;
  auto take = [&] {
    auto r = inflight.front().get();
    inflight.pop_front();
    if (!r) throw std::runtime_error("ingest: " + r.error().message);
    accepted += static_cast<std::int64_t>(r->accepted);
  };
  for (std::int64_t m = 0; m < minutes; m += 50) {
    std::vector<Reading> batch;
    for (std::int64_t k = m; k < std::min(minutes, m + 50); ++k) {
      for (int d = 0; d < kDevices; ++d) {
        for (int metric = 0; metric < 2; ++metric) {
          auto& w = walk[static_cast<std::size_t>(2 * d + metric)];
          w += static_cast<std::int64_t>(rng() % 21) - 10;
          batch.push_back({devices[static_cast<std::size_t>(d)], metric == 0 ? "temperature" : "humidity",
                           metric == 0 ? "Cel" : "%RH", start + k * kMsPerMinute, static_cast<double>(w) / 100.0});
        }
      }
    }
    inflight.push_back(s.Ingest(org, std::move(batch)));
    while (inflight.size() > 8) take();
  }
  while (!inflight.empty()) take();
  return accepted;
}

// An age key pair in `dir`: the identity file and the public key.
std::pair<std::string, std::string> MakeKey(const std::string& dir) {
  const std::string key = dir + "/key.txt";
  (void)backup::RunPipeline({backup::Command{{"age-keygen", "-o", key}, {}}});
  std::ifstream kin(key);
  std::string line, pub;
  while (std::getline(kin, line)) {
    if (line.rfind("# public key: ", 0) == 0) pub = line.substr(14);
  }
  return {key, pub};
}

struct Cycle {
  backup::Manifest manifest;
  double backup_s = 0, verify_s = 0, restore_s = 0;
};

// Backup (with the store open, as under `serve`), drill, full restore into `restore_to`.
Cycle RunCycle(const backup::BackupOptions& o, const std::string& key, const std::string& restore_to) {
  Cycle c;
  auto t0 = bench::Clock::now();
  c.manifest = Must(backup::CreateBackup(o), "backup");
  c.backup_s = bench::Seconds(t0, bench::Clock::now());
  auto ref = Must(backup::FindBackup(o, c.manifest.name), "find");
  t0 = bench::Clock::now();
  Must(backup::VerifyBackup(o, ref, key), "verify");
  c.verify_s = bench::Seconds(t0, bench::Clock::now());
  t0 = bench::Clock::now();
  Must(backup::RestoreBackup(o, ref, key, restore_to, false), "restore");
  c.restore_s = bench::Seconds(t0, bench::Clock::now());
  return c;
}

void PrintCycle(const std::string& what, const Cycle& c, double extra_restore_s = 0) {
  const auto& m = c.manifest;
  const double readings = static_cast<double>(m.readings);
  const double restore_s = c.restore_s + extra_restore_s;
  const double restore_year_s = restore_s * kYear / readings;
  fmt::print("\n{}\n", what);
  fmt::print("readings            {}\n", bench::Thousands(m.readings));
  if (m.plain_bytes > 0) {
    fmt::print("snapshot (plain)    {} bytes ({:.2f} B/reading)\n", bench::Thousands(m.plain_bytes),
               static_cast<double>(m.plain_bytes) / readings);
  }
  fmt::print("backup (encrypted)  {} bytes ({:.2f} B/reading)\n", bench::Thousands(m.encrypted_bytes),
             static_cast<double>(m.encrypted_bytes) / readings);
  fmt::print("backup              {:.2f} s\n", c.backup_s);
  fmt::print("verify (drill)      {:.2f} s\n", c.verify_s);
  fmt::print("full restore        {:.2f} s ({} readings/s)\n", c.restore_s,
             bench::Thousands(static_cast<std::int64_t>(readings / c.restore_s)));
  if (extra_restore_s > 0) {
    fmt::print("server start (WAL replay) {:.2f} s; restore + start {:.2f} s\n", extra_restore_s, restore_s);
  }
  fmt::print("restore, 1 year of 1,000 devices ({} readings), extrapolated: {:.0f} s = {:.1f} min "
             "(budget 30 min)\n",
             bench::Thousands(static_cast<std::int64_t>(kYear)), restore_year_s, restore_year_s / 60);
  fmt::print("backup size, 1 year, extrapolated: {:.1f} GiB\n",
             static_cast<double>(m.encrypted_bytes) * kYear / readings / (1 << 30));
  fmt::print("backup time, 1 year, extrapolated: {:.1f} min\n", c.backup_s * kYear / readings / 60);
}

int RunSqlite(std::int64_t target) {
  bench::TempDir tmp(fs::temp_directory_path().string(), "opensense-backup-bench-");
  const std::string data = tmp.path() + "/data";
  fs::create_directories(data);
  store::StoreOptions so;
  so.url = "sqlite://" + data + "/opensense.db";
  so.synchronous = store::Synchronous::kNormal;
  auto st = Must(store::OpenStore(so), "open");
  auto fill_start = bench::Clock::now();
  const std::int64_t accepted = Fill(*st, target);
  (void)st->Compact();
  const double fill_s = bench::Seconds(fill_start, bench::Clock::now());
  const auto stats = st->Stats();
  fmt::print("filled {} readings in {:.1f} s; store {} bytes\n", bench::Thousands(accepted), fill_s,
             bench::Thousands(stats ? stats->file_bytes : 0));
  const auto [key, pub] = MakeKey(tmp.path());
  backup::BackupOptions o;
  o.store_url = so.url;
  o.backup_dir = tmp.path() + "/backups";
  o.recipients = {pub};
  o.work_dir = data;
  Cycle c = RunCycle(o, key, tmp.path() + "/restored");
  st->Close();
  PrintCycle("SQLite", c);
  return 0;
}

int RunPostgres(std::int64_t target, const std::string& method, std::string admin) {
  std::optional<bench::PgFixtureCluster> cluster;
  if (admin.empty()) {
    cluster.emplace(OPENSENSE_SOURCE_DIR, "backup_bench");
    admin = cluster->url();
  }
  // Traversable by the postgres user: the drill and the restored server run as it under root.
  bench::TempDir tmp(fs::temp_directory_path().string(), "opensense-backup-bench-");
  fs::permissions(tmp.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const std::string url = Must(store::postgres::CreateDatabase(admin, fmt::format("bench_backup_{}", ::getpid())), "createdb");
  store::StoreOptions so;
  so.url = url;
  auto st = Must(store::OpenStore(so), "open");
  auto fill_start = bench::Clock::now();
  const std::int64_t accepted = Fill(*st, target);
  const double fill_s = bench::Seconds(fill_start, bench::Clock::now());
  auto conn = Must(store::postgres::Conn::Connect(Must(store::postgres::ParseConnInfo(url), "url")), "connect");
  Must(conn->Exec("CHECKPOINT"), "checkpoint");
  const auto db_bytes = Must(conn->Exec("SELECT pg_database_size(current_database())"), "size").Int(0, 0);
  fmt::print("filled {} readings through the writer in {:.1f} s; database {} bytes ({:.1f} B/reading)\n",
             bench::Thousands(accepted), fill_s, bench::Thousands(db_bytes),
             static_cast<double>(db_bytes) / static_cast<double>(accepted));
  if (cluster) {
    const std::string& datadir = cluster->datadir();
    const std::int64_t cluster = TreeBytes(datadir), wal = TreeBytes(datadir + "/pg_wal");
    fmt::print("cluster data directory {} bytes ({:.1f} B/reading), of which pg_wal {} bytes\n",
               bench::Thousands(cluster), static_cast<double>(cluster) / static_cast<double>(accepted),
               bench::Thousands(wal));
  }
  const auto [key, pub] = MakeKey(tmp.path());
  backup::BackupOptions o;
  o.store_url = url;
  o.backup_dir = tmp.path() + "/backups";
  o.recipients = {pub};
  o.work_dir = tmp.path();
  if (method == "logical" || method == "both") {
    fmt::print("load before logical: {}\n", LoadAverage());
    o.pg_method = backup::PgBackupMethod::kLogical;
    const std::string target_db =
        Must(store::postgres::CreateDatabase(admin, fmt::format("bench_restored_{}", ::getpid())), "createdb");
    Cycle c = RunCycle(o, key, target_db);
    PrintCycle("PostgreSQL, logical (pg_dump -Fc | age; pg_restore --single-transaction)", c);
    Must(conn->Exec(fmt::format("DROP DATABASE bench_restored_{} WITH (FORCE)", ::getpid())), "drop");
    fmt::print("load after logical: {}\n", LoadAverage());
  }
  if (method == "physical" || method == "both") {
    fmt::print("load before physical: {}\n", LoadAverage());
    o.pg_method = backup::PgBackupMethod::kPhysical;
    const std::string restored = tmp.path() + "/restored-pgdata";
    Cycle c = RunCycle(o, key, restored);
    const std::int64_t unpacked = TreeBytes(restored);
    // The downtime also holds the server's start on the restored directory (WAL replay).
    auto t0 = bench::Clock::now();
    auto server = Must(backup::LocalPostgres::Start({restored, tmp.path() + "/restored-run", backup::kDefaultPgBinDir, {}}),
                       "start restored");
    const double start_s = bench::Seconds(t0, bench::Clock::now());
    auto rc = Must(store::postgres::Conn::Connect(Must(store::postgres::ParseConnInfo(
                       server.Url(c.manifest.role, c.manifest.database)), "url")), "connect restored");
    const auto n = Must(rc->Exec("SELECT count(*) FROM readings"), "count").Int(0, 0);
    rc.reset();
    Must(server.Stop(), "stop restored");
    PrintCycle("PostgreSQL, physical (pg_basebackup -Ft zstd:1 | age; age -d | zstd -d | tar -x + pg_verifybackup)",
               c, start_s);
    fmt::print("unpacked data directory {} bytes ({:.1f} B/reading); restore throughput {:.0f} MB/s unpacked, "
               "{:.0f} MB/s of backup file; readings in the restored server {}\n",
               bench::Thousands(unpacked), static_cast<double>(unpacked) / static_cast<double>(accepted),
               static_cast<double>(unpacked) / c.restore_s / 1e6,
               static_cast<double>(c.manifest.encrypted_bytes) / c.restore_s / 1e6, bench::Thousands(n));
    fmt::print("load after physical: {}\n", LoadAverage());
  }
  conn.reset();
  st->Close();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::int64_t target = 10'000'000;
    bool postgres = false;
    std::string method = "both", url;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--postgres") postgres = true;
      else if (a == "--method" && i + 1 < argc) method = argv[++i];
      else if (a == "--url" && i + 1 < argc) url = argv[++i];
      else if (!a.empty() && a[0] != '-') target = std::atoll(a.c_str());
      else {
        fmt::print(stderr, "usage: backup_bench [--postgres [--method logical|physical|both] [--url ADMIN_URL]] [READINGS]\n");
        return 2;
      }
    }
    fmt::print("load before: {}\n", LoadAverage());
    const int rc = postgres ? RunPostgres(target, method, url) : RunSqlite(target);
    fmt::print("load after: {}\n", LoadAverage());
    return rc;
  } catch (const std::exception& e) {
    fmt::print(stderr, "backup_bench: {}\n", e.what());
    return 1;
  }
}
