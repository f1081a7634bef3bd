// Ingest load driver (a plain main: every run loads 2M readings once into a fresh database).
//
// Data (as in design/machine-limits.md): 1,000 devices x 2 metrics, 60 s spacing from
// 2024-01-20T00:00Z, 1,000 timestamps = 2,000,000 readings, values a per-series random walk
// rounded to 2 decimals with steps of -0.10..+0.10 (fixed seed), sent in time order: each
// timestamp for every series, then the next; batches of 1,000 readings (half a timestamp).
//
// For each synchronous mode it measures, in the same process:
//  (a) bare SQLite: WAL, 1,000 rows per transaction, prepared INSERT into a plain rowid table,
//      rows in series-contiguous order: the best case this disk allows SQLite;
//  store: Store::Ingest from one producer keeping N batches in flight (like N HTTP clients),
//      rollups maintained; timed from the first submit to the last completion, then Compact()
//      timed separately; disk bytes per reading after Compact (dbstat on the closed file);
//  (b) bare SQLite, time-ordered into a (device, metric, ts)-keyed WITHOUT ROWID table,
//      1,000 rows per transaction (slow: --quick loads fewer timestamps for this case only).
//
// Usage: ingest_bench [--sync full,normal] [--quick] [--inflight 16] [--runs 1]
//                     [--cases a,store,b] [--timestamps 1000] [--spacing-s 60] [--days D]
//                     [--dir /tmp] [--json FILE] [--head-flush N] [--keep] [--bytes]
// --quick: (b) loads 100 timestamps (200,000 rows); --head-flush overrides
// StoreOptions::head_flush_readings (experiments); --keep copies the store's file to --dir;
// --days D loads D days at --spacing-s (overrides --timestamps).
// --bytes: the disk side of bench/peers in-process (its load shape, without HTTP): 100 devices x
// 2 metrics every 5 minutes for 365 days (21,024,000 readings), store case only, NORMAL, batches
// of 10,000 readings made as they are sent (not all in memory), then Compact and the dbstat split
// (`chunks`, `rollups` B/reading). Options after --bytes still apply (e.g. --days 60).
// "written B/reading" is the process's write()/pwrite() bytes (/proc/self/io wchar): WAL frames
// plus checkpoint copies, i.e. write amplification.
#include <semaphore>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench_common.hpp"
#include "core/clock.hpp"
#include "store/store.hpp"

namespace opensense::bench {
namespace {

constexpr TimestampMs kStart = 1705708800000;  // 2024-01-20T00:00:00Z
constexpr int kMetrics = 2;
const char* const kMetricNames[kMetrics] = {"temperature", "humidity"};

struct Options {
  std::vector<store::Synchronous> modes = {store::Synchronous::kFull, store::Synchronous::kNormal};
  int devices = 1000;
  int timestamps = 1000;
  int spacing_s = 60;
  int days = 0;  // > 0: timestamps = days of spacing_s
  int batch = 1000;
  int inflight = 16;
  int runs = 1;
  int quick_timestamps = 0;  // > 0: case (b) loads only this many timestamps
  bool case_a = true, case_store = true, case_b = true;
  std::string dir = "/tmp";
  std::string json_path;
  std::size_t head_flush = 0;  // > 0: StoreOptions::head_flush_readings (default: the store's)
  bool keep = false;  // keep the store's database (debugging); its path goes to stderr
  bool lazy_batches = false;  // make each store batch just before it is sent (--bytes: 21M readings)
};

const char* ModeName(store::Synchronous m) { return m == store::Synchronous::kFull ? "FULL" : "NORMAL"; }

// values[series][t] in hundredths; series = device * kMetrics + metric.
struct Data {
  int devices = 0;
  int timestamps = 0;
  TimestampMs spacing = 60 * kMsPerSecond;
  std::vector<std::vector<std::int32_t>> cents;
  std::int64_t readings() const { return static_cast<std::int64_t>(devices) * kMetrics * timestamps; }
  double Value(int series, int t) const { return cents[series][t] / 100.0; }
  TimestampMs Ts(int t) const { return kStart + static_cast<TimestampMs>(t) * spacing; }
};

Data MakeData(int devices, int timestamps, TimestampMs spacing) {
  Data d;
  d.devices = devices;
  d.timestamps = timestamps;
  d.spacing = spacing;
  std::mt19937_64 rng(20240120);
  std::uniform_int_distribution<int> step(-10, 10);
  std::uniform_int_distribution<int> start(-500, 500);
  d.cents.resize(static_cast<std::size_t>(devices) * kMetrics);
  for (std::size_t s = 0; s < d.cents.size(); ++s) {
    auto& v = d.cents[s];
    v.resize(timestamps);
    std::int32_t x = (s % kMetrics == 0 ? 2000 : 5000) + start(rng);  // 20.00 Cel / 50.00 %RH
    for (int t = 0; t < timestamps; ++t) {
      v[t] = x;
      x += step(rng);
    }
  }
  return d;
}

// One measured figure of one run.
struct Row {
  std::string mode;
  int run = 0;
  std::string key;    // a | store | store_compact | b
  std::string label;
  std::int64_t rows = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(rows) / seconds : 0; }
  std::string notes;
  nlohmann::json extra = nlohmann::json::object();
};

struct DiskRow {
  std::string mode;
  int run = 0;
  std::string what;
  std::int64_t bytes = 0;
  std::int64_t readings = 0;
};

void BarePragmas(Sql& db, store::Synchronous mode) {
  auto rows = db.Rows("PRAGMA journal_mode=WAL");
  if (rows.empty() || rows[0][0] != "wal") throw std::runtime_error("cannot switch to WAL");
  db.Exec(mode == store::Synchronous::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
}

// Inserts rows in the given order, 1,000 per transaction; returns {insert seconds, checkpoint s}.
template <typename RowFn>
std::pair<double, double> BareLoad(Sql& db, std::int64_t n, int rows_per_txn, std::int64_t* written,
                                   RowFn row_of) {
  sqlite3_stmt* ins = db.Prepare("INSERT INTO r(device, metric, ts, value) VALUES(?,?,?,?)");
  sqlite3_stmt* begin = db.Prepare("BEGIN");
  sqlite3_stmt* commit = db.Prepare("COMMIT");
  std::int64_t w0 = ProcessWrittenBytes();
  auto t0 = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) {
    if (i % rows_per_txn == 0) db.Step(begin);
    auto [device, metric, ts, value] = row_of(i);
    sqlite3_bind_int(ins, 1, device);
    sqlite3_bind_int(ins, 2, metric);
    sqlite3_bind_int64(ins, 3, ts);
    sqlite3_bind_double(ins, 4, value);
    db.Step(ins);
    if (i % rows_per_txn == rows_per_txn - 1 || i == n - 1) db.Step(commit);
  }
  auto t1 = Clock::now();
  db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  auto t2 = Clock::now();
  *written = ProcessWrittenBytes() - w0;
  return {Seconds(t0, t1), Seconds(t1, t2)};
}

void RunBareA(const Options& o, const Data& d, store::Synchronous mode, int run, std::vector<Row>* rows,
              std::vector<DiskRow>* disk) {
  TempDir dir(o.dir);
  std::string path = dir.path() + "/a.db";
  double ins_s = 0, ckpt_s = 0;
  std::int64_t written = 0;
  {
    Sql db(path);
    BarePragmas(db, mode);
    db.Exec("CREATE TABLE r(device INT, metric INT, ts INT, value REAL)");
    const int series = d.devices * kMetrics;
    const int nt = d.timestamps;
    std::tie(ins_s, ckpt_s) = BareLoad(db, d.readings(), 1000, &written, [&](std::int64_t i) {
      int s = static_cast<int>(i / nt), t = static_cast<int>(i % nt);
      (void)series;
      return std::tuple{s / kMetrics, s % kMetrics, d.Ts(t), d.Value(s, t)};
    });
  }
  Row r{ModeName(mode), run, "a", "(a) bare SQLite, plain rowid table, series-contiguous", d.readings(), ins_s};
  r.notes = fmt::format("final wal_checkpoint(TRUNCATE) {:.2f} s (not in the rate); written {:.0f} B/row",
                        ckpt_s, static_cast<double>(written) / static_cast<double>(d.readings()));
  r.extra["checkpoint_s"] = ckpt_s;
  r.extra["written_bytes"] = written;
  rows->push_back(std::move(r));
  disk->push_back({ModeName(mode), run, "(a) plain rowid table, after checkpoint", FileBytes(path), d.readings()});
}

void RunBareB(const Options& o, const Data& d, store::Synchronous mode, int run, std::vector<Row>* rows,
              std::vector<DiskRow>* disk) {
  TempDir dir(o.dir);
  std::string path = dir.path() + "/b.db";
  const int nt = o.quick_timestamps > 0 ? std::min(o.quick_timestamps, d.timestamps) : d.timestamps;
  const std::int64_t per_ts = static_cast<std::int64_t>(d.devices) * kMetrics;
  const std::int64_t n = per_ts * nt;
  double ins_s = 0, ckpt_s = 0;
  std::int64_t written = 0;
  {
    Sql db(path);
    BarePragmas(db, mode);
    db.Exec("CREATE TABLE r(device INT, metric INT, ts INT, value REAL, PRIMARY KEY(device, metric, ts)) "
            "WITHOUT ROWID");
    std::tie(ins_s, ckpt_s) = BareLoad(db, n, 1000, &written, [&](std::int64_t i) {
      int t = static_cast<int>(i / per_ts), s = static_cast<int>(i % per_ts);
      return std::tuple{s / kMetrics, s % kMetrics, d.Ts(t), d.Value(s, t)};
    });
  }
  Row r{ModeName(mode), run, "b", "(b) bare SQLite, (device,metric,ts) WITHOUT ROWID, time-ordered", n, ins_s};
  r.notes = fmt::format("final checkpoint {:.2f} s; written {:.0f} B/row{}", ckpt_s,
                        static_cast<double>(written) / static_cast<double>(n),
                        n < d.readings() ? fmt::format("; --quick: {} timestamps only", nt) : "");
  r.extra["checkpoint_s"] = ckpt_s;
  r.extra["written_bytes"] = written;
  r.extra["timestamps"] = nt;
  rows->push_back(std::move(r));
  disk->push_back({ModeName(mode), run,
                   fmt::format("(b) keyed WITHOUT ROWID, after wal_checkpoint(TRUNCATE){}",
                               n < d.readings() ? " (--quick rows)" : ""),
                   FileBytes(path), n});
}

template <typename T>
T Must(Result<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().ToString()));
  return std::move(*r);
}
inline void MustOk(const Status& s, std::string_view what) {
  if (!s) throw std::runtime_error(fmt::format("{}: {}", what, s.error().ToString()));
}

void RunStore(const Options& o, const Data& d, store::Synchronous mode, int run, std::vector<Row>* rows,
              std::vector<DiskRow>* disk) {
  TempDir dir(o.dir);
  std::string path = dir.path() + "/opensense.db";
  ManualClock clock(d.Ts(d.timestamps - 1) + d.spacing);
  store::StoreOptions so;
  so.url = "sqlite://" + path;
  so.synchronous = mode;
  so.clock = &clock;
  if (o.head_flush > 0) so.head_flush_readings = o.head_flush;
  auto st = Must(store::OpenStore(so), "open store");
  auto org = Must(st->CreateOrganization({"bench", "UTC", Tier::kEnterprise}), "create org");
  std::vector<DeviceId> ids;
  for (int i = 0; i < d.devices; ++i) {
    ids.push_back(Must(st->CreateDevice({org.id, fmt::format("dev-{}", i), std::nullopt,
                                         fmt::format("SN{:06}", i)}),
                       "create device")
                      .id);
  }
  // Batches in time order, each timestamp across all devices and metrics; built before timing
  // unless lazy_batches (then each is made just before it is sent).
  const std::int64_t n = d.readings();
  const std::int64_t per_ts = static_cast<std::int64_t>(d.devices) * kMetrics;
  const std::size_t nb = static_cast<std::size_t>((n + o.batch - 1) / o.batch);
  auto make_batch = [&](std::size_t b) {
    std::vector<Reading> batch;
    const std::int64_t first = static_cast<std::int64_t>(b) * o.batch;
    const std::int64_t end = std::min(n, first + o.batch);
    batch.reserve(static_cast<std::size_t>(end - first));
    for (std::int64_t i = first; i < end; ++i) {
      int t = static_cast<int>(i / per_ts), s = static_cast<int>(i % per_ts);
      Reading r;
      r.device = ids[s / kMetrics];
      r.metric = kMetricNames[s % kMetrics];
      r.ts = d.Ts(t);
      r.value = d.Value(s, t);
      batch.push_back(std::move(r));
    }
    return batch;
  };
  std::vector<std::vector<Reading>> batches;
  if (!o.lazy_batches) {
    batches.reserve(nb);
    for (std::size_t b = 0; b < nb; ++b) batches.push_back(make_batch(b));
  }

  // One producer keeps up to `inflight` batches outstanding (as concurrent clients would).
  std::vector<Clock::time_point> done_at(nb);
  std::int64_t accepted = 0, duplicates = 0, rejected = 0, failed = 0;
  std::string first_error;
  double cpu0 = ProcessCpuSeconds();
  std::int64_t w0 = ProcessWrittenBytes();
  auto t0 = Clock::now();
  {
    InFlightSubmitter submitter(st.get(), org.id, static_cast<std::size_t>(o.inflight), nb,
                                [&](std::size_t i, const Result<IngestResult>& res) {
      done_at[i] = Clock::now();
      if (!res) {
        ++failed;
        if (first_error.empty()) first_error = res.error().ToString();
      } else {
        accepted += static_cast<std::int64_t>(res->accepted);
        duplicates += static_cast<std::int64_t>(res->duplicates);
        rejected += static_cast<std::int64_t>(res->rejected.size());
        if (!res->rejected.empty() && first_error.empty()) first_error = res->rejected[0].message;
      }
    });
    for (std::size_t i = 0; i < nb; ++i) submitter.Submit(o.lazy_batches ? make_batch(i) : std::move(batches[i]));
  }
  auto t1 = Clock::now();
  double cpu1 = ProcessCpuSeconds();
  std::int64_t w1 = ProcessWrittenBytes();
  MustOk(st->Compact(), "compact");
  auto t2 = Clock::now();
  double cpu2 = ProcessCpuSeconds();
  std::int64_t w2 = ProcessWrittenBytes();
  auto stats = Must(st->Stats(), "stats");
  st->Close();
  st.reset();
  if (o.keep) {
    std::string kept = fmt::format("{}/opensense-ingest-{}-{}.db", o.dir, ModeName(mode), run);
    std::filesystem::copy_file(path, kept, std::filesystem::copy_options::overwrite_existing);
    std::cerr << "kept the store's database at " << kept << "\n";
  }

  if (failed > 0 || accepted != n) {
    throw std::runtime_error(fmt::format("store ingest: {} accepted of {}, {} duplicates, {} rejected, {} "
                                         "failed batches; first error: {}",
                                         accepted, n, duplicates, rejected, failed, first_error));
  }
  if (stats.chunk_readings != n || stats.head_readings != 0) {
    throw std::runtime_error(fmt::format("after Compact: {} readings in chunks, {} in the head (want {})",
                                         stats.chunk_readings, stats.head_readings, n));
  }
  // Stalls: gaps between consecutive completions (in-run head flushes show up here).
  std::vector<double> gaps;
  double stall_s = 0;
  int stalls = 0;
  double max_gap = 0;
  for (std::size_t i = 1; i < nb; ++i) {
    double g = Seconds(done_at[i - 1], done_at[i]);
    max_gap = std::max(max_gap, g);
    if (g > 0.1) {
      ++stalls;
      stall_s += g;
    }
  }
  double ingest_s = Seconds(t0, t1), compact_s = Seconds(t1, t2);
  Row r{ModeName(mode), run, "store", fmt::format("store: Ingest, {} in flight, excl. final Compact", o.inflight),
        n, ingest_s};
  const double nd = static_cast<double>(n);
  r.notes = fmt::format("CPU {:.1f} s ({:.0f}% of wall); {} completion gaps > 100 ms = {:.2f} s (in-run "
                        "flushes), max {:.2f} s; written {:.0f} B/reading",
                        cpu1 - cpu0, 100 * (cpu1 - cpu0) / ingest_s, stalls, stall_s, max_gap,
                        static_cast<double>(w1 - w0) / nd);
  r.extra = {{"cpu_s", cpu1 - cpu0}, {"stalls", stalls}, {"stall_s", stall_s}, {"max_gap_s", max_gap},
             {"written_bytes", w1 - w0}};
  rows->push_back(std::move(r));
  Row c{ModeName(mode), run, "store_compact", "store: incl. final Compact()", n, ingest_s + compact_s};
  c.notes = fmt::format("Compact {:.2f} s (CPU {:.1f} s); {} chunks for {} series; written {:.0f} B/reading "
                        "in all",
                        compact_s, cpu2 - cpu1, stats.chunks, stats.series, static_cast<double>(w2 - w0) / nd);
  c.extra = {{"compact_s", compact_s}, {"compact_cpu_s", cpu2 - cpu1}, {"chunks", stats.chunks},
             {"written_bytes", w2 - w0}};
  rows->push_back(std::move(c));

  FileUse u = InspectFile(path);
  disk->push_back({ModeName(mode), run, "store: whole file after Compact", u.file_bytes, n});
  if (u.dbstat) {
    disk->push_back({ModeName(mode), run, "store: raw readings (`chunks` table)", u.BytesOf("chunks"), n});
    std::int64_t rollups = u.BytesOf("rollups");
    disk->push_back({ModeName(mode), run, "store: rollups, all levels (`rollups` table)", rollups, n});
    {
      Sql db(path, /*read_only=*/true);
      const char* names[3] = {"5m", "1h", "1d"};
      for (const auto& row : db.Rows("SELECT level, sum(length(data)) FROM rollups GROUP BY level ORDER BY level")) {
        int level = std::stoi(row[0]);
        if (level < 0 || level > 2) continue;
        disk->push_back({ModeName(mode), run, fmt::format("store: rollups {} (encoded payload only)", names[level]),
                         std::stoll(row[1]), n});
      }
    }
    std::int64_t known = u.BytesOf("chunks") + rollups;
    disk->push_back({ModeName(mode), run,
                     "store: everything else (metadata, empty reading_log, free pages)",
                     u.file_bytes - known, n});
    for (const auto& obj : u.objects) {
      if (obj.name == "chunks") {
        disk->push_back({ModeName(mode), run, "store: chunk row payload only (no page overhead)", obj.payload, n});
      }
    }
  } else {
    disk->push_back({ModeName(mode), run, "store: (dbstat not compiled in: no per-table split)", 0, n});
  }
}

void Usage() {
  std::cerr << "usage: ingest_bench [--sync full,normal] [--quick] [--inflight N] [--runs N]\n"
               "                    [--cases a,store,b] [--timestamps N] [--devices N] [--batch N]\n"
               "                    [--spacing-s 60] [--days D] [--bytes]\n"
               "                    [--dir DIR] [--json FILE] [--keep]\n"
               "                    [--head-flush N]   (StoreOptions::head_flush_readings)\n";
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sync") {
      o.modes.clear();
      std::string v = next();
      if (v.find("full") != std::string::npos) o.modes.push_back(store::Synchronous::kFull);
      if (v.find("normal") != std::string::npos) o.modes.push_back(store::Synchronous::kNormal);
    } else if (a == "--quick") {
      o.quick_timestamps = 100;
    } else if (a == "--inflight") {
      o.inflight = std::stoi(next());
    } else if (a == "--runs") {
      o.runs = std::stoi(next());
    } else if (a == "--timestamps") {
      o.timestamps = std::stoi(next());
    } else if (a == "--spacing-s") {
      o.spacing_s = std::stoi(next());
    } else if (a == "--days") {
      o.days = std::stoi(next());
    } else if (a == "--bytes") {
      o.modes = {store::Synchronous::kNormal};
      o.case_a = o.case_b = false;
      o.case_store = true;
      o.devices = 100;
      o.spacing_s = 300;
      o.days = 365;
      o.batch = 10'000;
      o.lazy_batches = true;
    } else if (a == "--devices") {
      o.devices = std::stoi(next());
    } else if (a == "--batch") {
      o.batch = std::stoi(next());
    } else if (a == "--dir") {
      o.dir = next();
    } else if (a == "--head-flush") {
      o.head_flush = std::stoull(next());
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--json") {
      o.json_path = next();
    } else if (a == "--cases") {
      std::string v = next() + ",";
      o.case_a = o.case_store = o.case_b = false;
      for (std::size_t at = 0, comma; (comma = v.find(',', at)) != std::string::npos; at = comma + 1) {
        std::string c = v.substr(at, comma - at);
        if (c == "a") o.case_a = true;
        else if (c == "store") o.case_store = true;
        else if (c == "b") o.case_b = true;
        else if (!c.empty()) {
          Usage();
          std::exit(2);
        }
      }
    } else {
      Usage();
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  if (o.days > 0 && o.spacing_s > 0) {
    o.timestamps = static_cast<int>(std::int64_t{o.days} * 86'400 / o.spacing_s);
  }
  if (o.modes.empty() || o.inflight < 1 || o.inflight > 4096 || o.runs < 1 || o.batch < 1 ||
      o.spacing_s < 1 || o.timestamps < 1) {
    Usage();
    std::exit(2);
  }
  return o;
}

int Main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  Data d = MakeData(o.devices, o.timestamps, static_cast<TimestampMs>(o.spacing_s) * kMsPerSecond);
  std::vector<Row> rows;
  std::vector<DiskRow> disk;
  for (int run = 1; run <= o.runs; ++run) {
    for (auto mode : o.modes) {
      if (o.case_a) {
        std::cerr << fmt::format("[run {} {}] (a) bare plain table...\n", run, ModeName(mode));
        RunBareA(o, d, mode, run, &rows, &disk);
      }
      if (o.case_store) {
        std::cerr << fmt::format("[run {} {}] store...\n", run, ModeName(mode));
        RunStore(o, d, mode, run, &rows, &disk);
      }
      if (o.case_b) {
        std::cerr << fmt::format("[run {} {}] (b) bare keyed table...\n", run, ModeName(mode));
        RunBareB(o, d, mode, run, &rows, &disk);
      }
    }
  }

  std::cout << fmt::format(
      "### Ingest: {} devices x {} metrics x {} timestamps {} s apart = {} readings, time-ordered, batches of {}\n\n",
      Thousands(o.devices), kMetrics, Thousands(o.timestamps), o.spacing_s, Thousands(d.readings()),
      Thousands(o.batch));
  std::cout << fmt::format("SQLite {}; store: {} batches in flight from one producer, head_flush_readings {}; "
                           "runs: {}{}\n\n",
                           sqlite3_libversion(), o.inflight,
                           o.head_flush > 0 ? Thousands(static_cast<std::int64_t>(o.head_flush))
                                            : Thousands(static_cast<std::int64_t>(store::StoreOptions{}.head_flush_readings)),
                           o.runs,
                           o.quick_timestamps > 0
                               ? fmt::format("; --quick: (b) loads {} timestamps only", o.quick_timestamps)
                               : "");
  std::cout << "| sync | run | case | rows | time s | rows/s | vs (a) | notes |\n"
               "|---|---|---|---:|---:|---:|---:|---|\n";
  auto base_rate = [&](const Row& r) -> double {
    for (const auto& x : rows) {
      if (x.key == "a" && x.mode == r.mode && x.run == r.run) return x.rate();
    }
    return 0;
  };
  for (const auto& r : rows) {
    double b = base_rate(r);
    std::cout << fmt::format("| {} | {} | {} | {} | {:.2f} | {} | {} | {} |\n", r.mode, r.run, r.label,
                             Thousands(r.rows), r.seconds, Rate(r.rate()),
                             b > 0 ? fmt::format("{:.3f}", r.rate() / b) : "-", r.notes);
  }
  // Summary: medians over runs.
  std::cout << "\n**Summary** (median over runs; target: store >= 0.3 of (a) with FULL, aim 0.5)\n\n"
               "| sync | (a) rows/s | store rows/s | ratio | store incl. Compact | ratio | (b) rows/s | (b) vs (a) |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  nlohmann::json summary = nlohmann::json::array();
  for (auto mode : o.modes) {
    std::map<std::string, std::vector<double>> rate, ratio;
    for (const auto& r : rows) {
      if (r.mode != ModeName(mode)) continue;
      rate[r.key].push_back(r.rate());
      double b = base_rate(r);
      if (b > 0) ratio[r.key].push_back(r.rate() / b);
    }
    auto med = [&](std::map<std::string, std::vector<double>>& m, const char* k) { return Median(m[k]); };
    auto cell = [](double v, bool is_ratio) {
      return v <= 0 ? std::string("-") : is_ratio ? fmt::format("{:.3f}", v) : Rate(v);
    };
    std::cout << fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", ModeName(mode),
                             cell(med(rate, "a"), false), cell(med(rate, "store"), false),
                             cell(med(ratio, "store"), true), cell(med(rate, "store_compact"), false),
                             cell(med(ratio, "store_compact"), true), cell(med(rate, "b"), false),
                             cell(med(ratio, "b"), true));
    summary.push_back({{"sync", ModeName(mode)},
                       {"a_rows_per_s", med(rate, "a")},
                       {"store_rows_per_s", med(rate, "store")},
                       {"store_ratio", med(ratio, "store")},
                       {"store_incl_compact_rows_per_s", med(rate, "store_compact")},
                       {"store_incl_compact_ratio", med(ratio, "store_compact")},
                       {"b_rows_per_s", med(rate, "b")},
                       {"b_ratio", med(ratio, "b")}});
  }
  std::cout << "\n**Disk** (references: plain SQLite keyed table ~27 B/reading; InfluxDB 1.6 ~6.4 B; "
               "VictoriaMetrics ~0.6 B). Median over runs; range shown when runs differ.\n\n"
               "| sync | what | bytes | readings | B/reading |\n|---|---|---:|---:|---:|\n";
  {
    std::vector<std::pair<std::string, std::string>> order;  // (mode, what) in first-seen order
    std::map<std::pair<std::string, std::string>, std::vector<const DiskRow*>> groups;
    for (const auto& x : disk) {
      auto key = std::pair{x.mode, x.what};
      if (groups.find(key) == groups.end()) order.push_back(key);
      groups[key].push_back(&x);
    }
    for (const auto& key : order) {
      const auto& g = groups[key];
      std::vector<double> per;
      std::vector<double> bytes;
      for (const auto* x : g) {
        per.push_back(x->readings > 0 ? static_cast<double>(x->bytes) / static_cast<double>(x->readings) : 0);
        bytes.push_back(static_cast<double>(x->bytes));
      }
      auto [lo, hi] = std::minmax_element(per.begin(), per.end());
      std::string range = *hi - *lo >= 0.01 ? fmt::format(" ({:.2f}–{:.2f})", *lo, *hi) : "";
      std::cout << fmt::format("| {} | {} | {} | {} | {:.2f}{} |\n", key.first, key.second,
                               Thousands(static_cast<std::int64_t>(Median(bytes))), Thousands(g.front()->readings),
                               Median(per), range);
    }
  }
  std::cout.flush();

  if (!o.json_path.empty()) {
    nlohmann::json j;
    j["sqlite"] = sqlite3_libversion();
    j["devices"] = o.devices;
    j["metrics"] = kMetrics;
    j["timestamps"] = o.timestamps;
    j["spacing_s"] = o.spacing_s;
    j["batch"] = o.batch;
    j["inflight"] = o.inflight;
    j["head_flush_readings"] = o.head_flush > 0 ? o.head_flush : store::StoreOptions{}.head_flush_readings;
    j["quick_timestamps"] = o.quick_timestamps;
    j["runs"] = nlohmann::json::array();
    for (const auto& r : rows) {
      j["runs"].push_back({{"sync", r.mode},
                           {"run", r.run},
                           {"case", r.key},
                           {"rows", r.rows},
                           {"seconds", r.seconds},
                           {"rows_per_s", r.rate()},
                           {"extra", r.extra}});
    }
    j["disk"] = nlohmann::json::array();
    for (const auto& x : disk) {
      j["disk"].push_back({{"sync", x.mode}, {"run", x.run}, {"what", x.what}, {"bytes", x.bytes},
                           {"readings", x.readings}});
    }
    j["summary"] = summary;
    std::ofstream(o.json_path) << j.dump(2) << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace opensense::bench

int main(int argc, char** argv) {
  try {
    return opensense::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ingest_bench: " << e.what() << "\n";
    return 1;
  }
}
