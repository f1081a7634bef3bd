// Backup figures for docs/performance.md: backup (snapshot + age), verify (restore drill) and
// full restore time and size for a store of N readings (default 10 million: 1,000 devices x 2
// metrics, one reading a minute, values a random walk of 2 decimals), filled through the real
// writer; then the restore time extrapolated to a year of 1,000 devices (1.05 billion readings)
// against the 30-minute downtime budget. Prints the machine load (other builds share the cores).
//
//   build/release/backup_bench [READINGS]
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <random>

#include "backup/backup.hpp"
#include "backup/subprocess.hpp"
#include "bench_common.hpp"

using namespace opensense;
namespace fs = std::filesystem;

namespace {

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return fmt::format("{} {} {} (1/5/15 min) on {} cores", a, b, c, std::thread::hardware_concurrency());
}

}  // namespace

int main(int argc, char** argv) {
  const std::int64_t target = argc > 1 ? std::atoll(argv[1]) : 10'000'000;
  constexpr int kDevices = 1000;
  bench::TempDir tmp(fs::temp_directory_path().string(), "opensense-backup-bench-");
  const std::string data = tmp.path() + "/data", backups = tmp.path() + "/backups";
  fs::create_directories(data);
  fmt::print("load before: {}\n", LoadAverage());

  // Fill through the writer, a minute of all series per step, several batches in flight.
  store::StoreOptions so;
  so.url = "sqlite://" + data + "/opensense.db";
  so.synchronous = store::Synchronous::kNormal;
  auto st = store::OpenStore(so);
  if (!st) {
    fmt::print(stderr, "{}\n", st.error().message);
    return 1;
  }
  auto& s = **st;
  const OrgId org = s.CreateOrganization({"Bench", "UTC", Tier::kFree})->id;
  std::vector<DeviceId> devices;
  for (int i = 0; i < kDevices; ++i) devices.push_back(s.CreateDevice({org, fmt::format("d{}", i), std::nullopt, std::nullopt})->id);
  const std::int64_t minutes = target / (2 * kDevices);
  const TimestampMs now = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  const TimestampMs start = (now - minutes * kMsPerMinute) / kMsPerMinute * kMsPerMinute;
  std::mt19937 rng(7);
  std::vector<std::int64_t> walk(2 * kDevices, 400);
  auto fill_start = bench::Clock::now();
  std::deque<std::future<Result<IngestResult>>> inflight;
  std::int64_t accepted = 0;
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
    while (inflight.size() > 8) {
      auto r = inflight.front().get();
      inflight.pop_front();
      if (r) accepted += static_cast<std::int64_t>(r->accepted);
    }
  }
  while (!inflight.empty()) {
    auto r = inflight.front().get();
    inflight.pop_front();
    if (r) accepted += static_cast<std::int64_t>(r->accepted);
  }
  (void)s.Compact();
  const double fill_s = bench::Seconds(fill_start, bench::Clock::now());
  const auto stats = s.Stats();
  fmt::print("filled {} readings in {:.1f} s; store {} bytes\n", bench::Thousands(accepted), fill_s,
             bench::Thousands(stats ? stats->file_bytes : 0));

  const std::string key = tmp.path() + "/key.txt";
  (void)backup::RunPipeline({backup::Command{{"age-keygen", "-o", key}, {}}});
  std::ifstream kin(key);
  std::string line, pub;
  while (std::getline(kin, line)) {
    if (line.rfind("# public key: ", 0) == 0) pub = line.substr(14);
  }
  backup::BackupOptions o;
  o.store_url = so.url;
  o.backup_dir = backups;
  o.recipients = {pub};
  o.work_dir = data;

  // Backup while the store is open with its writer (as under `serve`).
  auto t0 = bench::Clock::now();
  auto m = backup::CreateBackup(o);
  const double backup_s = bench::Seconds(t0, bench::Clock::now());
  if (!m) {
    fmt::print(stderr, "backup: {}\n", m.error().message);
    return 1;
  }
  s.Close();
  auto ref = backup::FindBackup(o, m->name);
  t0 = bench::Clock::now();
  auto v = backup::VerifyBackup(o, *ref, key);
  const double verify_s = bench::Seconds(t0, bench::Clock::now());
  if (!v) {
    fmt::print(stderr, "verify: {}\n", v.error().message);
    return 1;
  }
  t0 = bench::Clock::now();
  auto r = backup::RestoreBackup(o, *ref, key, tmp.path() + "/restored", false);
  const double restore_s = bench::Seconds(t0, bench::Clock::now());
  if (!r) {
    fmt::print(stderr, "restore: {}\n", r.error().message);
    return 1;
  }
  // A year of 1,000 devices, 2 metrics a minute.
  const double year = 1000.0 * 2 * 525'600;
  const double restore_year_s = restore_s * year / static_cast<double>(m->readings);
  fmt::print("readings            {}\n", bench::Thousands(m->readings));
  fmt::print("snapshot (plain)    {} bytes ({:.2f} B/reading)\n", bench::Thousands(m->plain_bytes),
             static_cast<double>(m->plain_bytes) / static_cast<double>(m->readings));
  fmt::print("backup (encrypted)  {} bytes\n", bench::Thousands(m->encrypted_bytes));
  fmt::print("backup              {:.2f} s\n", backup_s);
  fmt::print("verify (drill)      {:.2f} s\n", verify_s);
  fmt::print("full restore        {:.2f} s ({} readings/s)\n", restore_s,
             bench::Thousands(static_cast<std::int64_t>(static_cast<double>(m->readings) / restore_s)));
  fmt::print("restore, 1 year of 1,000 devices ({} readings), extrapolated: {:.0f} s = {:.1f} min "
             "(budget 30 min)\n",
             bench::Thousands(static_cast<std::int64_t>(year)), restore_year_s, restore_year_s / 60);
  fmt::print("backup size, 1 year, extrapolated: {:.1f} GiB\n",
             static_cast<double>(m->encrypted_bytes) * year / static_cast<double>(m->readings) / (1 << 30));
  fmt::print("load after: {}\n", LoadAverage());
  return 0;
}
