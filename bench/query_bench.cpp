// Query load driver (a plain main).
//
// Builds (or reuses) a store holding 13 months of one metric for 50 devices, one reading per
// minute by default (2023-01-20T00:00Z .. 2024-02-20T00:00Z: 396 days, 28,512,000 readings),
// loaded through Store::Ingest in time order with big batches (synchronous=NORMAL), then times
// warm QuerySeries calls for one device (median of 21 after a warm-up):
//   one year at 1d, 30 days at 1h, 1 day raw.
// It also shows how many rows each query's level holds in range and in total, and SQLite's plan,
// so that "rows touched do not grow with raw data volume" can be checked.
//
// Usage: query_bench [--dir /tmp] [--spacing-s 60] [--reps 21] [--json FILE]
//        query_bench --build-only PATH [--spacing-s 60]   (build and keep the database at PATH)
//        query_bench --reuse PATH [--reps 21] [--json FILE] (query an existing database)
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <random>
#include <semaphore>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench_common.hpp"
#include "core/clock.hpp"
#include "store/store.hpp"

namespace opensense::bench {
namespace {

constexpr TimestampMs kStart = 1674172800000;  // 2023-01-20T00:00:00Z
constexpr TimestampMs kEnd = 1708387200000;    // 2024-02-20T00:00:00Z (exclusive)
constexpr const char* kMetric = "temperature";

struct Options {
  std::string dir = "/tmp";
  std::string build_only;
  std::string reuse;
  int devices = 50;
  int spacing_s = 60;
  int batch = 50'000;
  int inflight = 8;
  int reps = 21;
  int query_device = 25;  // index among the devices
  std::string json_path;
};

template <typename T>
T Must(Result<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().ToString()));
  return std::move(*r);
}
inline void MustOk(const Status& s, std::string_view what) {
  if (!s) throw std::runtime_error(fmt::format("{}: {}", what, s.error().ToString()));
}

struct BuildReport {
  std::int64_t readings = 0;
  double ingest_s = 0;
  double compact_s = 0;
  std::int64_t file_bytes = 0;
};

BuildReport Build(const Options& o, const std::string& path) {
  if (std::filesystem::exists(path)) {
    throw std::runtime_error(fmt::format("{} exists already; remove it or use --reuse", path));
  }
  ManualClock clock(kEnd);
  store::StoreOptions so;
  so.url = "sqlite://" + path;
  so.synchronous = store::Synchronous::kNormal;
  so.clock = &clock;
  auto st = Must(store::OpenStore(so), "open store");
  auto org = Must(st->CreateOrganization({"bench", "UTC", Tier::kEnterprise}), "create org");
  std::vector<DeviceId> ids;
  for (int i = 0; i < o.devices; ++i) {
    ids.push_back(Must(st->CreateDevice({org.id, fmt::format("fridge-{}", i), std::nullopt,
                                         fmt::format("Q{:06}", i)}),
                       "create device")
                      .id);
  }
  const TimestampMs spacing = static_cast<TimestampMs>(o.spacing_s) * kMsPerSecond;
  const std::int64_t timestamps = (kEnd - kStart) / spacing;
  const std::int64_t total = timestamps * o.devices;
  std::mt19937_64 rng(20230120);
  std::uniform_int_distribution<int> step(-10, 10);
  std::vector<std::int32_t> cents(static_cast<std::size_t>(o.devices));
  for (auto& c : cents) c = 400 + std::uniform_int_distribution<int>(-200, 200)(rng);  // ~4.00 Cel

  std::counting_semaphore<1024> slots(o.inflight);
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::future<Result<IngestResult>>> pending;
  std::int64_t accepted = 0, not_accepted = 0;
  std::string first_error;
  const std::int64_t batches = (total + o.batch - 1) / o.batch;
  auto t0 = Clock::now();
  std::thread waiter([&] {
    std::int64_t next_report = std::max<std::int64_t>(1, batches / 10);
    for (std::int64_t i = 0; i < batches; ++i) {
      std::future<Result<IngestResult>> f;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return !pending.empty(); });
        f = std::move(pending.front());
        pending.pop_front();
      }
      auto res = f.get();
      if (!res) {
        if (first_error.empty()) first_error = res.error().ToString();
        not_accepted += o.batch;
      } else {
        accepted += static_cast<std::int64_t>(res->accepted);
        not_accepted += static_cast<std::int64_t>(res->duplicates + res->rejected.size());
        if (!res->rejected.empty() && first_error.empty()) first_error = res->rejected[0].message;
      }
      if (i + 1 == next_report || i + 1 == batches) {
        std::cerr << fmt::format("  build: {:.1f}% ({} readings, {:.0f} s)\n",
                                 100.0 * static_cast<double>(i + 1) / static_cast<double>(batches),
                                 Thousands(accepted), Seconds(t0, Clock::now()));
        next_report += std::max<std::int64_t>(1, batches / 10);
      }
      slots.release();
    }
  });
  std::int64_t i = 0;
  while (i < total) {
    std::vector<Reading> b;
    b.reserve(o.batch);
    for (; i < total && static_cast<int>(b.size()) < o.batch; ++i) {
      std::int64_t t = i / o.devices;
      auto dev = static_cast<std::size_t>(i % o.devices);
      Reading r;
      r.device = ids[dev];
      r.metric = kMetric;
      r.ts = kStart + t * spacing;
      r.value = cents[dev] / 100.0;
      cents[dev] += step(rng);
      b.push_back(std::move(r));
    }
    slots.acquire();
    auto f = st->Ingest(org.id, std::move(b));
    {
      std::lock_guard lock(mu);
      pending.push_back(std::move(f));
    }
    cv.notify_one();
  }
  waiter.join();
  auto t1 = Clock::now();
  MustOk(st->Compact(), "compact");
  auto t2 = Clock::now();
  st->Close();
  if (accepted != total) {
    throw std::runtime_error(fmt::format("build: {} of {} readings accepted; first error: {}", accepted, total,
                                         first_error));
  }
  return {total, Seconds(t0, t1), Seconds(t1, t2), FileBytes(path)};
}

struct QueryCase {
  std::string name;
  TimestampMs from, to;
  Resolution res;
  const char* table;  // what the level reads
  int level;          // rollup level (0 5m, 1 1h, 2 1d), -1 for raw chunks
  TimestampMs period; // the rollup chunk window of that level
};

struct QueryReport {
  std::string name;
  std::size_t points = 0;
  double median_ms = 0, min_ms = 0, max_ms = 0;
  std::int64_t rows_in_range = 0, rows_in_table = 0;
  std::string plan;
};

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
      return argv[++i];
    };
    if (a == "--dir") o.dir = next();
    else if (a == "--build-only") o.build_only = next();
    else if (a == "--reuse") o.reuse = next();
    else if (a == "--spacing-s") o.spacing_s = std::stoi(next());
    else if (a == "--reps") o.reps = std::stoi(next());
    else if (a == "--devices") o.devices = std::stoi(next());
    else if (a == "--batch") o.batch = std::stoi(next());
    else if (a == "--json") o.json_path = next();
    else {
      std::cerr << "usage: query_bench [--dir DIR] [--spacing-s 60] [--reps 21] [--json FILE]\n"
                   "       query_bench --build-only PATH [--spacing-s 60]\n"
                   "       query_bench --reuse PATH [--reps 21] [--json FILE]\n";
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (o.reps < 1 || o.spacing_s < 1 || o.devices < 1 || o.batch < 1) throw std::runtime_error("bad option value");

  std::optional<TempDir> tmp;
  std::string path;
  std::optional<BuildReport> build;
  if (!o.reuse.empty()) {
    path = o.reuse;
    if (!std::filesystem::exists(path)) throw std::runtime_error(path + " does not exist");
  } else {
    if (!o.build_only.empty()) {
      path = o.build_only;
    } else {
      tmp.emplace(o.dir);
      path = tmp->path() + "/opensense.db";
    }
    std::cerr << fmt::format("building {} ...\n", path);
    build = Build(o, path);
  }

  nlohmann::json j;
  std::cout << fmt::format("### Queries: 13 months (2023-01-20 .. 2024-02-20) x {} devices x 1 metric\n\n",
                           o.devices);
  if (build) {
    std::cout << fmt::format(
        "Build through Store::Ingest (synchronous=NORMAL, batches of {}, {} in flight, {} s spacing): "
        "{} readings in {:.1f} s = {}/s; Compact {:.1f} s; file {} B = {:.2f} B/reading\n\n",
        Thousands(o.batch), o.inflight, o.spacing_s, Thousands(build->readings), build->ingest_s,
        Rate(static_cast<double>(build->readings) / build->ingest_s), build->compact_s,
        Thousands(build->file_bytes), static_cast<double>(build->file_bytes) / static_cast<double>(build->readings));
    j["build"] = {{"readings", build->readings}, {"ingest_s", build->ingest_s}, {"compact_s", build->compact_s},
                  {"file_bytes", build->file_bytes}, {"spacing_s", o.spacing_s}, {"batch", o.batch}};
  }
  if (!o.build_only.empty()) {
    std::cout << fmt::format("Kept the database at {} (query it with --reuse {})\n", path, path);
    return 0;
  }

  // Query phase: a reader-only store (like a second process beside `serve`).
  store::StoreOptions so;
  so.url = "sqlite://" + path;
  so.writer = false;
  auto st = Must(store::OpenStore(so), "open store");
  auto orgs = Must(st->ListOrganizations(), "list organisations");
  if (orgs.empty()) throw std::runtime_error("no organisation in " + path);
  OrgId org = orgs.front().id;
  auto devices = Must(st->ListDevices(org), "list devices");
  if (devices.empty()) throw std::runtime_error("no device in " + path);
  DeviceId device = devices[std::min<std::size_t>(o.query_device, devices.size() - 1)].id;
  auto stats = Must(st->Stats(), "stats");
  if (!build) {
    std::cout << fmt::format("Reused {}: {} readings in {} chunks, {} series, file {} B = {:.2f} B/reading\n\n",
                             path, Thousands(stats.chunk_readings + stats.head_readings), Thousands(stats.chunks),
                             stats.series, Thousands(stats.file_bytes),
                             static_cast<double>(stats.file_bytes) /
                                 static_cast<double>(std::max<std::int64_t>(1, stats.chunk_readings)));
  }
  j["readings"] = stats.chunk_readings + stats.head_readings;
  j["file_bytes"] = stats.file_bytes;

  const std::vector<QueryCase> cases = {
      {"1 year at 1d", kEnd - 365 * kMsPerDay, kEnd, Resolution::k1d, "rollups", 2, 48 * kMsPerDay},
      {"30 days at 1h", kEnd - 30 * kMsPerDay, kEnd, Resolution::k1h, "rollups", 1, 2 * kMsPerDay},
      {"1 day raw", kEnd - kMsPerDay, kEnd, Resolution::kRaw, "chunks", -1, 0},
  };
  Sql inspect(path, /*read_only=*/true);
  std::int64_t sid = inspect.Int(fmt::format("SELECT id FROM series WHERE device_id={} AND metric='{}'", device, kMetric));
  std::vector<QueryReport> reports;
  for (const auto& c : cases) {
    SeriesQuery q{org, device, kMetric, c.from, c.to, c.res};
    QueryReport r;
    r.name = c.name;
    auto first = Must(st->QuerySeries(q), c.name);  // warm-up
    r.points = first.points.size();
    std::vector<double> ms;
    for (int i = 0; i < o.reps; ++i) {
      auto t0 = Clock::now();
      auto res = Must(st->QuerySeries(q), c.name);
      auto t1 = Clock::now();
      if (res.points.size() != r.points) throw std::runtime_error("answer changed between repetitions");
      ms.push_back(Seconds(t0, t1) * 1e3);
    }
    r.median_ms = Median(ms);
    r.min_ms = *std::min_element(ms.begin(), ms.end());
    r.max_ms = *std::max_element(ms.begin(), ms.end());
    // What the level holds: rows in range vs in the whole table.
    const bool raw = c.level < 0;
    std::string key = raw ? "start_ts" : "period";
    TimestampMs lo = raw ? c.from : c.from - ((c.from % c.period) + c.period) % c.period;
    std::string where = raw ? fmt::format("series_id={0} AND end_ts>={1} AND start_ts<{2}", sid, c.from, c.to)
                            : fmt::format("series_id={0} AND level={1} AND period>={2} AND period<{3}", sid,
                                          c.level, lo, c.to);
    r.rows_in_range = inspect.Int(fmt::format("SELECT count(*) FROM {} WHERE {}", c.table, where));
    r.rows_in_table = inspect.Int(fmt::format("SELECT count(*) FROM {}", c.table));
    for (const auto& row : inspect.Rows(fmt::format("EXPLAIN QUERY PLAN SELECT * FROM {} WHERE {} ORDER BY {}",
                                                    c.table, where, key))) {
      if (!r.plan.empty()) r.plan += "; ";
      r.plan += row.back();
    }
    reports.push_back(std::move(r));
  }
  st->Close();

  std::cout << fmt::format("Warm QuerySeries, device {}, median of {} after 1 warm-up (SQLite {})\n\n", device,
                           o.reps, sqlite3_libversion());
  std::cout << "| query | points | median ms | min–max ms | chunks read / in table | plan |\n"
               "|---|---:|---:|---:|---:|---|\n";
  j["queries"] = nlohmann::json::array();
  for (const auto& r : reports) {
    std::cout << fmt::format("| {} | {} | {:.3f} | {:.3f}–{:.3f} | {} / {} | {} |\n", r.name, Thousands(
                                 static_cast<std::int64_t>(r.points)),
                             r.median_ms, r.min_ms, r.max_ms, Thousands(r.rows_in_range), Thousands(r.rows_in_table),
                             r.plan);
    j["queries"].push_back({{"name", r.name},
                            {"points", r.points},
                            {"median_ms", r.median_ms},
                            {"min_ms", r.min_ms},
                            {"max_ms", r.max_ms},
                            {"rows_in_range", r.rows_in_range},
                            {"rows_in_table", r.rows_in_table},
                            {"plan", r.plan}});
  }
  std::cout.flush();
  if (!o.json_path.empty()) std::ofstream(o.json_path) << j.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace opensense::bench

int main(int argc, char** argv) {
  try {
    return opensense::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "query_bench: " << e.what() << "\n";
    return 1;
  }
}
