// Compliance report rendering: time and peak memory (a plain main).
//
// Fills a SQLite store through Store::Ingest (the writer builds the rollups) with one year of
// simulated fridge temperatures (sim::FridgeModel, seed per device) for 20 devices, one reading
// every --spacing-s seconds (default 300: the report reads 5-minute rollups, so finer raw data
// changes the fill time, not the report), then, each in a fresh child process (so that ru_maxrss
// is the peak of that case alone):
//   baseline     open the store and read every 5-minute rollup row the report reads (QuerySeries)
//   1 month x 10 devices   BuildReport + RenderPdf
//   1 year  x 20 devices   BuildReport + RenderPdf
// and prints wall time, peak RSS, PDF size and pages, and the ratio of each report's time to the
// baseline of the same case (the store reads alone).
//
// Usage: report_bench [--dir /tmp] [--spacing-s 300] [--reps 3] [--keep]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "reports/report.hpp"
#include "sim/fridge_model.hpp"
#include "store/store.hpp"

using namespace opensense;

namespace {

constexpr int kDevices = 20;
// 2025-11-01T00:00 Europe/Berlin (23:00Z the day before) .. 2026-11-01T00:00 (CET).
constexpr TimestampMs kYearFrom = 1761951600000;
constexpr TimestampMs kYearTo = 1793487600000;
constexpr TimestampMs kMonthFrom = 1790805600000;  // 2026-10-01T00:00 CEST
constexpr TimestampMs kNow = 1794744000000;        // 2026-11-15T12:00Z

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return fmt::format("{} {} {}", a, b, c);
}

struct Outcome {
  double seconds = 0;
  long max_rss_kb = 0;
  long long bytes = 0;
  int pages = 0;
  long long rows = 0;
  bool ok = false;
};

// Runs `fn` in a child process; its time and ru_maxrss come back through a pipe.
template <typename Fn>
Outcome InChild(Fn fn) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    Outcome o;
    auto t0 = std::chrono::steady_clock::now();
    o.ok = fn(&o);
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    o.max_rss_kb = ru.ru_maxrss;
    ssize_t n = ::write(fds[1], &o, sizeof o);
    ::_exit(n == static_cast<ssize_t>(sizeof o) ? 0 : 1);
  }
  ::close(fds[1]);
  Outcome o;
  ssize_t n = ::read(fds[0], &o, sizeof o);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (n != static_cast<ssize_t>(sizeof o)) o.ok = false;
  return o;
}

store::StoreOptions Options(const std::string& path, bool writer, const Clock* clock) {
  store::StoreOptions o;
  o.url = "sqlite://" + path;
  o.synchronous = store::Synchronous::kNormal;
  o.writer = writer;
  o.clock = clock;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp";
  TimestampMs spacing_ms = 300 * kMsPerSecond;
  int reps = 3;
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (a == "--spacing-s" && i + 1 < argc) spacing_ms = std::stoll(argv[++i]) * kMsPerSecond;
    else if (a == "--reps" && i + 1 < argc) reps = std::stoi(argv[++i]);
    else if (a == "--keep") keep = true;
    else {
      fmt::print(stderr, "usage: report_bench [--dir /tmp] [--spacing-s 300] [--reps 3] [--keep]\n");
      return 2;
    }
  }
  const std::string path = fmt::format("{}/report-bench-{}.db", dir, ::getpid());
  ManualClock clock(kNow);
  fmt::print("load average at start: {}\n", LoadAverage());

  OrgId org = 0;
  std::vector<DeviceId> devices;
  {
    auto t0 = std::chrono::steady_clock::now();
    auto opened = store::OpenStore(Options(path, true, &clock));
    if (!opened) {
      fmt::print(stderr, "report_bench: {}\n", opened.error().message);
      return 1;
    }
    auto& store = **opened;
    org = store.CreateOrganization({"Bench", "Europe/Berlin", Tier::kEnterprise})->id;
    auto zone = *TimeZone::Load("Europe/Berlin");
    long long readings = 0;
    for (int d = 0; d < kDevices; ++d) {
      DeviceProfile p;
      p.target_min = 0;
      p.target_max = 8;
      p.expected_interval_s = spacing_ms / kMsPerSecond;
      p.medicine_storage = d % 2 == 0;
      p.calibration_date = "2025-06-01";
      p.calibration_due = d % 5 == 0 ? "2026-06-01" : "2027-06-01";
      auto dev = store.CreateDevice({org, fmt::format("Fridge {:02}", d + 1), std::nullopt, std::nullopt, p});
      devices.push_back(dev->id);
      sim::FridgeModel model({"f", sim::UnitKind::kFridge, 4.0, d == 3, static_cast<std::uint64_t>(1000 + d)},
                             kYearFrom - spacing_ms, zone, spacing_ms);
      for (TimestampMs t = kYearFrom; t < kYearTo; t += 30 * kMsPerDay) {
        std::vector<Reading> batch;
        for (const auto& s : model.AdvanceTo(std::min(kYearTo, t + 30 * kMsPerDay) - 1)) {
          if (s.metric == "temperature") batch.push_back({dev->id, s.metric, s.unit, s.ts, s.value});
        }
        readings += static_cast<long long>(batch.size());
        auto r = store.Ingest(org, std::move(batch)).get();
        if (!r) {
          fmt::print(stderr, "report_bench: ingest: {}\n", r.error().message);
          return 1;
        }
      }
    }
    store.Compact();
    store.Close();
    fmt::print("filled {} devices x 1 year, {} readings (every {} s) in {:.1f} s\n", kDevices, readings,
               spacing_ms / kMsPerSecond, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  struct Case {
    const char* name;
    int devices;
    TimestampMs from, to;
  };
  const Case cases[] = {{"1 month x 10 devices", 10, kMonthFrom, kYearTo}, {"1 year x 20 devices", 20, kYearFrom, kYearTo}};
  fmt::print("{:<22} {:>10} {:>12} {:>12} {:>10} {:>6} {:>10} {:>8}\n", "case", "rows", "baseline s",
             "report s", "ratio", "pages", "PDF KiB", "RSS MiB");
  for (const Case& c : cases) {
    std::vector<DeviceId> ids(devices.begin(), devices.begin() + c.devices);
    std::vector<double> base_s, report_s;
    Outcome base, rep;
    for (int i = 0; i < reps; ++i) {
      base = InChild([&](Outcome* o) {
        auto s = store::OpenStore(Options(path, false, &clock));
        if (!s) return false;
        for (DeviceId d : ids) {
          auto r = (*s)->QuerySeries({org, d, "temperature", c.from, c.to, Resolution::k5m});
          if (!r) return false;
          o->rows += static_cast<long long>(r->points.size());
        }
        return true;
      });
      rep = InChild([&](Outcome* o) {
        auto s = store::OpenStore(Options(path, false, &clock));
        if (!s) return false;
        reports::ReportRequest q;
        q.org = org;
        q.devices = ids;
        q.from = c.from;
        q.to = c.to;
        q.generated_by = "bench";
        q.software_version = "bench";
        reports::NoAlertHistory alerts;
        auto data = reports::BuildReport(**s, alerts, q, kNow);
        if (!data) return false;
        auto pdf = reports::RenderPdf(*data);
        if (!pdf) return false;
        o->bytes = static_cast<long long>(pdf->size());
        // Pages: count "/Type /Page" objects that are not the "/Pages" tree.
        for (std::size_t at = pdf->find("/Type /Page"); at != std::string::npos; at = pdf->find("/Type /Page", at + 1)) {
          if (pdf->compare(at, 12, "/Type /Pages") != 0) ++o->pages;
        }
        if (keep) std::ofstream(fmt::format("{}/report-bench-{}dev.pdf", dir, c.devices), std::ios::binary) << *pdf;
        return true;
      });
      if (!base.ok || !rep.ok) {
        fmt::print(stderr, "report_bench: {} failed\n", c.name);
        return 1;
      }
      base_s.push_back(base.seconds);
      report_s.push_back(rep.seconds);
    }
    std::sort(base_s.begin(), base_s.end());
    std::sort(report_s.begin(), report_s.end());
    const double b = base_s[base_s.size() / 2], r = report_s[report_s.size() / 2];
    fmt::print("{:<22} {:>10} {:>12.3f} {:>12.3f} {:>10.1f} {:>6} {:>10} {:>8.1f}\n", c.name, base.rows, b, r, r / b,
               rep.pages, rep.bytes / 1024, static_cast<double>(rep.max_rss_kb) / 1024.0);
    fmt::print("{:<22} baseline (store reads only) peak RSS {:.1f} MiB\n", "", static_cast<double>(base.max_rss_kb) / 1024.0);
  }
  fmt::print("load average at end: {}\n", LoadAverage());
  if (!keep) {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ec);
  } else {
    fmt::print("kept {}\n", path);
  }
  return 0;
}
