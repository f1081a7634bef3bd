// PostgreSQL store load driver (a plain main).
//
// Starts a private PostgreSQL 15 cluster (scripts/pg-fixture.sh; 127.0.0.1, temp dir) unless
// --url names one, then in the same run:
//  1. ingest: 1,000 devices x 2 metrics arriving time-ordered (each 1,000-reading batch holds one
//     timestamp for 500 devices), through Store::Ingest with rollups (16 batches in flight),
//     as a ratio to a bare COPY of the same rows into the same partitioned readings table (one
//     stream), and to one COPY + commit per 1,000 rows;
//  2. the same readings through the SQLite store (synchronous=FULL), for bytes per reading;
//  3. queries: 50 devices x 13 months at --query-spacing-s (default 600 s) loaded through the
//     writer, then warm QuerySeries medians (one year at 1d, 30 days at 1h, one day raw) and
//     the first query on a fresh store (new connections).
// Prints markdown to stdout.
//
// Usage: pg_bench [--url postgres://...] [--timestamps 1000] [--query-spacing-s 600] [--reps 21]
//                 [--no-queries]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>

#include "bench_common.hpp"
#include "core/clock.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/postgres/pg_schema.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/store.hpp"

namespace opensense::bench {
namespace {

using store::postgres::Conn;
using store::postgres::ParseConnInfo;

constexpr TimestampMs kStart = 1674172800000;  // 2023-01-20T00:00:00Z
constexpr TimestampMs kQueryEnd = 1708387200000;  // 2024-02-20T00:00:00Z

struct Options {
  std::string url;
  int timestamps = 1000;
  int devices = 1000;
  int query_devices = 50;
  int query_spacing_s = 600;
  int reps = 21;
  bool queries = true;
};

template <typename T>
T Must(Result<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().ToString()));
  return std::move(*r);
}

// The time-ordered stream: timestamp-major, then device, then metric; value a random walk.
std::vector<std::vector<Reading>> Batches(const std::vector<DeviceId>& devices, int timestamps,
                                          TimestampMs start, TimestampMs spacing, std::size_t batch) {
  std::mt19937 rng(7);
  std::vector<double> walk(devices.size() * 2, 4.0);
  std::vector<std::vector<Reading>> out;
  std::vector<Reading> cur;
  for (int t = 0; t < timestamps; ++t) {
    for (std::size_t d = 0; d < devices.size(); ++d) {
      for (int m = 0; m < 2; ++m) {
        double& w = walk[d * 2 + m];
        w = std::round((w + (static_cast<int>(rng() % 21) - 10) * 0.01) * 100) / 100;
        cur.push_back({devices[d], m == 0 ? "temperature" : "humidity", "", start + t * spacing, w});
        if (cur.size() == batch) out.push_back(std::move(cur)), cur.clear();
      }
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string FreshDb(const std::string& admin, const std::string& name) {
  return Must(store::postgres::CreateDatabase(admin, name), "create database");
}

std::unique_ptr<Conn> Connect(const std::string& url) {
  return Must(Conn::Connect(Must(ParseConnInfo(url), "url")), "connect");
}

std::int64_t ReadingsBytes(Conn* c) {
  auto r = Must(c->Exec("SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                        "WHERE inhparent='readings'::regclass"),
                "size");
  return r.Int(0, 0);
}

struct IngestFigures {
  double writer_rate = 0, copy_rate = 0, copy1k_rate = 0, sqlite_rate = 0;
  double pg_bytes = 0, pg_total_bytes = 0, sqlite_bytes = 0;
  std::int64_t readings = 0;
};

IngestFigures RunIngest(const Options& o, const std::string& admin, int run) {
  IngestFigures f;
  ManualClock clock(kStart + static_cast<TimestampMs>(o.timestamps) * kMsPerMinute);
  // Writer with rollups.
  std::string url = FreshDb(admin, fmt::format("bench_writer_{}_{}", ::getpid(), run));
  store::StoreOptions so;
  so.url = url;
  so.clock = &clock;
  auto st = Must(store::OpenStore(so), "open");
  OrgId org = Must(st->CreateOrganization({"Bench", "UTC", Tier::kFree}), "org").id;
  std::vector<DeviceId> devices;
  for (int i = 0; i < o.devices; ++i) devices.push_back(Must(st->CreateDevice({org, "d", std::nullopt, std::nullopt}), "dev").id);
  auto batches = Batches(devices, o.timestamps, kStart, kMsPerMinute, 1000);
  f.readings = static_cast<std::int64_t>(o.timestamps) * o.devices * 2;
  std::atomic<std::int64_t> accepted{0};
  auto t0 = Clock::now();
  {
    InFlightSubmitter sub(st.get(), org, 16, batches.size(), [&](std::size_t, const Result<IngestResult>& r) {
      if (!r) throw std::runtime_error(r.error().message);
      accepted += static_cast<std::int64_t>(r->accepted);
    });
    for (auto& b : batches) sub.Submit(b);
  }
  f.writer_rate = static_cast<double>(accepted.load()) / Seconds(t0, Clock::now());
  if (accepted.load() != f.readings) throw std::runtime_error("writer lost readings");
  auto wc = Connect(url);
  Must(wc->Exec("VACUUM ANALYZE"), "vacuum");
  f.pg_bytes = static_cast<double>(ReadingsBytes(wc.get())) / static_cast<double>(f.readings);
  auto total = Must(wc->Exec("SELECT pg_database_size(current_database())"), "dbsize");
  auto empty = Must(wc->Exec("SELECT pg_database_size('template1')"), "t1");
  f.pg_total_bytes = static_cast<double>(total.Int(0, 0) - empty.Int(0, 0)) / static_cast<double>(f.readings);
  st->Close();

  // Bare COPY of the same rows (series ids as the writer assigned them) into the same table.
  auto ids = Must(wc->Exec("SELECT device_id, metric, id FROM series"), "series");
  std::map<std::pair<DeviceId, std::string>, int> sid;
  for (int i = 0; i < ids.Rows(); ++i) sid[{ids.Int(i, 0), std::string(ids.Text(i, 1))}] = static_cast<int>(ids.Int(i, 2));
  std::vector<std::string> chunks;
  for (auto& b : batches) {
    std::string data;
    for (auto& r : b) fmt::format_to(std::back_inserter(data), "{}\t{}\t{}\n", sid[{r.device, r.metric}], r.ts, r.value);
    chunks.push_back(std::move(data));
  }
  for (int mode = 0; mode < 2; ++mode) {
    std::string bare = FreshDb(admin, fmt::format("bench_copy{}_{}_{}", mode, ::getpid(), run));
    { store::StoreOptions bo; bo.url = bare; bo.writer = false; Must(store::OpenStore(bo), "schema")->Close(); }
    auto c = Connect(bare);
    for (int m = store::postgres::MonthIndexOf(kStart); m <= store::postgres::MonthIndexOf(clock.NowMs()); ++m) {
      if (auto s = store::postgres::EnsurePartition(c.get(), m); !s) throw std::runtime_error(s.error().message);
    }
    auto c0 = Clock::now();
    if (mode == 0) {
      std::string all;
      for (auto& ch : chunks) all += ch;
      c0 = Clock::now();
      if (auto s = c->CopyIn("COPY readings FROM STDIN", all); !s) throw std::runtime_error(s.error().message);
    } else {
      for (auto& ch : chunks) {
        if (auto s = c->CopyIn("COPY readings FROM STDIN", ch); !s) throw std::runtime_error(s.error().message);
      }
    }
    double rate = static_cast<double>(f.readings) / Seconds(c0, Clock::now());
    (mode == 0 ? f.copy_rate : f.copy1k_rate) = rate;
  }

  // SQLite, for bytes per reading on the embedded backend.
  auto dir = std::filesystem::temp_directory_path() / fmt::format("pg_bench_sqlite_{}_{}", ::getpid(), run);
  std::filesystem::create_directories(dir);
  {
    store::StoreOptions lo;
    lo.url = "sqlite://" + (dir / "s.db").string();
    lo.clock = &clock;
    auto ls = Must(store::OpenStore(lo), "sqlite");
    OrgId lorg = Must(ls->CreateOrganization({"Bench", "UTC", Tier::kFree}), "org").id;
    std::vector<DeviceId> ld;
    for (int i = 0; i < o.devices; ++i) ld.push_back(Must(ls->CreateDevice({lorg, "d", std::nullopt, std::nullopt}), "dev").id);
    auto lb = Batches(ld, o.timestamps, kStart, kMsPerMinute, 1000);
    auto l0 = Clock::now();
    {
      InFlightSubmitter sub(ls.get(), lorg, 16, lb.size(), [&](std::size_t, const Result<IngestResult>& r) {
        if (!r) throw std::runtime_error(r.error().message);
      });
      for (auto& b : lb) sub.Submit(b);
    }
    f.sqlite_rate = static_cast<double>(f.readings) / Seconds(l0, Clock::now());
    if (auto s = ls->Compact(); !s) throw std::runtime_error(s.error().message);
    f.sqlite_bytes = static_cast<double>(Must(ls->Stats(), "stats").file_bytes) / static_cast<double>(f.readings);
    ls->Close();
  }
  std::filesystem::remove_all(dir);
  return f;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void RunQueries(const Options& o, const std::string& admin) {
  ManualClock clock(kQueryEnd);
  std::string url = FreshDb(admin, fmt::format("bench_query_{}", ::getpid()));
  store::StoreOptions so;
  so.url = url;
  so.clock = &clock;
  auto st = Must(store::OpenStore(so), "open");
  OrgId org = Must(st->CreateOrganization({"Bench", "UTC", Tier::kTeam}), "org").id;
  std::vector<DeviceId> devices;
  for (int i = 0; i < o.query_devices; ++i) devices.push_back(Must(st->CreateDevice({org, "d", std::nullopt, std::nullopt}), "dev").id);
  const TimestampMs spacing = o.query_spacing_s * kMsPerSecond;
  const int steps = static_cast<int>((kQueryEnd - kStart) / spacing);
  // One metric: temperature only (drop humidity from the generated stream).
  auto batches = Batches(devices, steps, kStart, spacing, 20'000);
  for (auto& b : batches) std::erase_if(b, [](const Reading& r) { return r.metric != "temperature"; });
  std::int64_t n = 0;
  auto t0 = Clock::now();
  {
    InFlightSubmitter sub(st.get(), org, 8, batches.size(), [&](std::size_t, const Result<IngestResult>& r) {
      if (!r) throw std::runtime_error(r.error().message);
      n += static_cast<std::int64_t>(r->accepted);
    });
    for (auto& b : batches) sub.Submit(std::move(b));
  }
  double load_s = Seconds(t0, Clock::now());
  st->Close();
  { auto c = Connect(url); Must(c->Exec("VACUUM ANALYZE"), "vacuum"); }
  // A fresh store: its first query opens a new connection.
  st = Must(store::OpenStore(so), "reopen");
  DeviceId d = devices[devices.size() / 2];
  struct Q {
    const char* name;
    TimestampMs from, to;
    Resolution res;
  };
  std::vector<Q> qs = {{"one year, 1d", kQueryEnd - 365 * kMsPerDay, kQueryEnd, Resolution::k1d},
                       {"30 days, 1h", kQueryEnd - 30 * kMsPerDay, kQueryEnd, Resolution::k1h},
                       {"1 day, raw", kQueryEnd - kMsPerDay, kQueryEnd, Resolution::kRaw}};
  fmt::print("\n### Series queries (PostgreSQL store, {} devices x 13 months, one reading per {} s: {} readings, loaded in {:.1f} s)\n\n",
             o.query_devices, o.query_spacing_s, Thousands(n), load_s);
  fmt::print("| query | points | first on a fresh store (ms) | warm median of {} (ms) |\n|---|---|---|---|\n", o.reps);
  for (const Q& q : qs) {
    auto a = Clock::now();
    auto first = Must(st->QuerySeries({org, d, "temperature", q.from, q.to, q.res}), "query");
    double first_ms = Seconds(a, Clock::now()) * 1000;
    std::vector<double> times;
    for (int i = 0; i < o.reps; ++i) {
      auto b = Clock::now();
      Must(st->QuerySeries({org, d, "temperature", q.from, q.to, q.res}), "query");
      times.push_back(Seconds(b, Clock::now()) * 1000);
    }
    fmt::print("| {} | {} | {:.2f} | {:.3f} |\n", q.name, first.points.size(), first_ms, Median(times));
  }
  st->Close();
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--url") o.url = next();
    else if (a == "--timestamps") o.timestamps = std::stoi(next());
    else if (a == "--query-spacing-s") o.query_spacing_s = std::stoi(next());
    else if (a == "--reps") o.reps = std::stoi(next());
    else if (a == "--no-queries") o.queries = false;
    else {
      std::cerr << "usage: pg_bench [--url postgres://...] [--timestamps 1000] [--query-spacing-s 600] [--reps 21] [--no-queries]\n";
      return 2;
    }
  }
  std::optional<PgFixtureCluster> cluster;
  if (o.url.empty()) {
    cluster.emplace(OPENSENSE_SOURCE_DIR, "pg_bench");
    o.url = cluster->url();
  }
  fmt::print("## PostgreSQL store (pg_bench)\n\n");
  fmt::print("{} devices x 2 metrics x {} timestamps = {} readings, time-ordered, 1,000-reading batches, "
             "16 in flight; synchronous_commit=on.\n\n",
             o.devices, o.timestamps, Thousands(static_cast<std::int64_t>(o.devices) * 2 * o.timestamps));
  fmt::print("| run | writer with rollups | bare COPY, one stream | ratio | COPY per 1,000 rows | SQLite writer (FULL) | PG readings B/reading | PG whole DB B/reading | SQLite file B/reading |\n");
  fmt::print("|---|---|---|---|---|---|---|---|---|\n");
  for (int run = 1; run <= 2; ++run) {
    IngestFigures f = RunIngest(o, o.url, run);
    fmt::print("| {} | {}/s | {}/s | **{:.2f}** | {}/s | {}/s | {:.1f} | {:.1f} | {:.2f} |\n", run, Rate(f.writer_rate),
               Rate(f.copy_rate), f.writer_rate / f.copy_rate, Rate(f.copy1k_rate), Rate(f.sqlite_rate),
               f.pg_bytes, f.pg_total_bytes, f.sqlite_bytes);
    std::fflush(stdout);
  }
  if (o.queries) RunQueries(o, o.url);
  return 0;
}

}  // namespace
}  // namespace opensense::bench

int main(int argc, char** argv) {
  try {
    return opensense::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "pg_bench: " << e.what() << "\n";
    return 1;
  }
}
