// Side-by-side load driver (a plain main, run by bench/peers/run): OpenSense, InfluxDB 1.x and
// VictoriaMetrics on the same machine, the same load and the same three queries.
//
// Each system runs as a child process on 127.0.0.1 (free ports picked here) with its data in a
// fresh temp directory, and is stopped (SIGTERM, then SIGKILL after 60 s) before the next one.
//
// Load: N devices x 2 fields (temperature, humidity), one line per device every 5 simulated
// minutes from UTC midnight `--days` ago to today's UTC midnight, time-ordered (every device at
// one timestamp, then the next), as InfluxDB line protocol with millisecond timestamps
// `r,device=dev-7 temperature=4.12,humidity=55.03 1732838400000`, in batches of --batch-lines
// lines posted by --writers keep-alive clients that take batches in order. Values are a function
// of (--seed, device, field, timestamp) only (per-series random walks in hundredths, made before
// the run), so any batch can be made by any writer and every system gets byte-identical bodies.
//   OpenSense: POST /write?precision=ms with a site gateway token (Authorization: Token), the
//              devices auto-registered on first sight; answers 204 after the commit.
//   InfluxDB:  POST /write?db=bench&precision=ms (204).
//   VictoriaMetrics: POST /write?precision=ms (204; fields become r_temperature, r_humidity).
//
// Per system:
//   ingest: --ingest-runs fresh instances each loaded with the first --ingest-days days; the
//           figure is the median points/s (timed from the first request to the last answer).
//           The runs go round-robin over the systems (run 1 of each, then run 2, ...), so a change
//           in the machine's load is spread over all of them.
//   year:   one fresh instance loaded with all --days days (its rate is reported too), brought to
//           its settled state (InfluxDB: its WAL snapshotted and shards fully compacted, with the
//           cold-shard durations shortened so that happens within the run; VictoriaMetrics:
//           /internal/force_flush and /internal/force_merge; OpenSense: nothing, its writer keeps
//           rollups and compaction current), then queried, then stopped; disk bytes are the sum
//           of the data directory's allocated blocks (as `du`) after the stop (OpenSense: after `opensense
//           compact` too), peak RSS is the server's VmHWM before the stop.
//   queries (each once to warm up, then --queries times on one keep-alive connection; p50, p99):
//     hourly: device dev-0's temperature, hourly min/max/mean over the last 30 days (or fewer,
//             when --days is smaller) — OpenSense series?resolution=1h; InfluxDB
//             SELECT min,max,mean ... GROUP BY time(1h); VictoriaMetrics query_range
//             rollup(r_temperature{device="dev-0"}[1h] offset 1ms) step 1h (the 1 ms offset makes
//             the window [t-1h, t) like the others' buckets).
//     daily:  the same over all --days days by day (UTC days; the OpenSense organisation is in
//             UTC so its local-day buckets are UTC days).
//     latest: the last temperature and humidity of every device — OpenSense GET /api/v1/latest;
//             InfluxDB SELECT last(temperature), last(humidity) ... WHERE time >= end-1d GROUP BY
//             device; VictoriaMetrics last_over_time(...[1d]) at the end (the peers are given the
//             one-day window; OpenSense needs none).
//     OpenSense's hourly and daily charts are timed again with every answer computed (each
//     request's `to` 1 ms later than the last: the same answer, never in its chart cache); the
//     peers keep their own caches on (their defaults), as OpenSense does in the main rows.
//   Every answer is checked against the generator (the exact expected min/max/mean/last), so the
//   three systems are also checked against each other. A mismatch fails the run.
//
// OpenSense runs twice: the default configuration (store_synchronous = full) for everything, and
// separately with --store-synchronous normal for the ingest runs. Its request rate limits per
// ingest token and per organisation (policies against runaway clients, not storage settings) are
// raised so they cap neither the load nor the timed queries.
//
// Output: a markdown report on stdout (progress on stderr); exit status 1 when any check failed.
//
// Usage: peers_bench [--mode full|quick|smoke] [--devices 100] [--days 365] [--ingest-days 30]
//                    [--ingest-runs 3] [--queries 50] [--batch-lines 5000] [--writers 4]
//                    [--seed 12] [--dir /tmp] [--systems opensense,normal,influxdb,victoriametrics]
//                    [--opensense PATH] [--influxd PATH] [--victoria-metrics PATH]
//                    [--pids-file FILE] [--phase-timeout 900]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "api/http/client.hpp"
#include "bench_common.hpp"
#include "opensense_process.hpp"

namespace opensense::bench {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr TimestampMs kStep = 5 * kMsPerMinute;
constexpr std::int64_t kPerDay = kMsPerDay / kStep;  // 288
const char* const kFields[2] = {"temperature", "humidity"};

// ---- options -------------------------------------------------------------------------------------

struct Options {
  std::string mode = "full";
  int devices = 100;
  int days = 365;
  int ingest_days = 30;
  int ingest_runs = 3;
  int queries = 50;
  int batch_lines = 5000;
  int writers = 4;
  std::uint64_t seed = 12;
  std::string dir = "/tmp";
  bool os_full = true, os_normal = true, influx = true, vm = true;
  std::string opensense = "build/release/opensense";
  std::string influxd = "/usr/bin/influxd";
  std::string victoria = "/usr/bin/victoria-metrics";
  std::string pids_file;
  double phase_timeout_s = 900;
  int hold_s = 0;  // after the queries, keep the loaded instance running this long (for profiling)
};

void Usage() {
  std::cerr << "usage: peers_bench [--mode full|quick|smoke] [--devices 100] [--days 365] [--ingest-days 30]\n"
               "                   [--ingest-runs 3] [--queries 50] [--batch-lines 5000] [--writers 4]\n"
               "                   [--seed 12] [--dir /tmp] [--systems opensense,normal,influxdb,victoriametrics]\n"
               "                   [--opensense PATH] [--influxd PATH] [--victoria-metrics PATH]\n"
               "                   [--pids-file FILE] [--phase-timeout 900] [--hold SECONDS]\n"
               "--hold: after each system's queries, print its address, token and query targets and keep it\n"
               "        running that long (at most 3600 s), e.g. to attach perf to it\n";
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string> given;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      Usage();
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) {
      Usage();
      std::exit(2);
    }
    given[a] = argv[++i];
  }
  auto mode = given.find("--mode");
  if (mode != given.end()) o.mode = mode->second;
  // Mode defaults first, explicit options after.
  if (o.mode == "quick") {
    o.days = 60, o.ingest_days = 10, o.queries = 20;
  } else if (o.mode == "smoke") {
    o.devices = 5, o.days = 3, o.ingest_days = 1, o.ingest_runs = 1, o.queries = 3, o.batch_lines = 100;
    o.phase_timeout_s = 120;
  } else if (o.mode != "full") {
    Usage();
    std::exit(2);
  }
  try {
    for (const auto& [k, v] : given) {
      if (k == "--mode") continue;
      else if (k == "--devices") o.devices = std::stoi(v);
      else if (k == "--days") o.days = std::stoi(v);
      else if (k == "--ingest-days") o.ingest_days = std::stoi(v);
      else if (k == "--ingest-runs") o.ingest_runs = std::stoi(v);
      else if (k == "--queries") o.queries = std::stoi(v);
      else if (k == "--batch-lines") o.batch_lines = std::stoi(v);
      else if (k == "--writers") o.writers = std::stoi(v);
      else if (k == "--seed") o.seed = std::stoull(v);
      else if (k == "--dir") o.dir = v;
      else if (k == "--opensense") o.opensense = v;
      else if (k == "--influxd") o.influxd = v;
      else if (k == "--victoria-metrics") o.victoria = v;
      else if (k == "--pids-file") o.pids_file = v;
      else if (k == "--phase-timeout") o.phase_timeout_s = std::stod(v);
      else if (k == "--hold") o.hold_s = std::stoi(v);
      else if (k == "--systems") {
        o.os_full = o.os_normal = o.influx = o.vm = false;
        std::stringstream ss(v);
        std::string s;
        while (std::getline(ss, s, ',')) {
          if (s == "opensense") o.os_full = true;
          else if (s == "normal") o.os_normal = true;
          else if (s == "influxdb") o.influx = true;
          else if (s == "victoriametrics") o.vm = true;
          else throw std::invalid_argument(s);
        }
      } else {
        throw std::invalid_argument(k);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "peers_bench: bad option (" << e.what() << ")\n";
    Usage();
    std::exit(2);
  }
  // Bounded: at most 10,000 devices, 3 years and 400,000 device-days (the generator keeps every
  // value: 2.3 KiB per device-day); batches of whole lines.
  if (o.devices < 1 || o.devices > 10000 || o.days < 1 || o.days > 1100 ||
      static_cast<std::int64_t>(o.devices) * o.days > 400000 || o.ingest_days < 1 ||
      o.ingest_days > o.days || o.ingest_runs < 1 || o.ingest_runs > 9 || o.queries < 1 || o.queries > 10000 ||
      o.batch_lines < 1 || o.batch_lines > 100000 || o.writers < 1 || o.writers > 64 || o.phase_timeout_s <= 0 ||
      o.hold_s < 0 || o.hold_s > 3600) {
    std::cerr << "peers_bench: an option is out of range\n";
    Usage();
    std::exit(2);
  }
  return o;
}

// ---- the generator -------------------------------------------------------------------------------

std::uint64_t SplitMix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

struct Gen {
  int devices = 0;
  std::int64_t timestamps = 0;  // per device
  TimestampMs start = 0;
  std::vector<std::vector<std::int16_t>> cents;  // [device * 2 + field][t]

  // Each series is a random walk in hundredths like a sensor's (steps of at most 0.10 per
  // reading, the same shape as ingest_bench's and http_bench's data), reflected within +-3.00
  // of its base (fridges at ~4 °C, humidity ~55 %); step k of series s is a hash of (seed, s, k),
  // so the data depends only on the seed and the sizes.
  Gen(int n, int days, TimestampMs start_ms, std::uint64_t seed)
      : devices(n), timestamps(days * kPerDay), start(start_ms) {
    cents.resize(static_cast<std::size_t>(n) * 2);
    for (std::size_t sidx = 0; sidx < cents.size(); ++sidx) {
      const std::uint64_t key = SplitMix(seed * 1000003 + sidx);
      const std::int32_t base = sidx % 2 == 0 ? 400 + static_cast<std::int32_t>(sidx / 2 % 10) * 10 : 5500;
      std::int32_t x = base + static_cast<std::int32_t>(key % 201) - 100;
      auto& v = cents[sidx];
      v.resize(static_cast<std::size_t>(timestamps));
      for (std::int64_t t = 0; t < timestamps; ++t) {
        v[static_cast<std::size_t>(t)] = static_cast<std::int16_t>(x);
        x += static_cast<std::int32_t>(SplitMix(key + static_cast<std::uint64_t>(t)) % 21) - 10;
        if (x > base + 300) x = 2 * (base + 300) - x;
        if (x < base - 300) x = 2 * (base - 300) - x;
      }
    }
  }
  // Hundredths of field f of device d at timestamp index t.
  std::int32_t Cents(int d, int f, std::int64_t t) const {
    return cents[static_cast<std::size_t>(d * 2 + f)][static_cast<std::size_t>(t)];
  }
  std::int64_t lines() const { return timestamps * devices; }
  TimestampMs Ts(std::int64_t t) const { return start + t * kStep; }
  TimestampMs end() const { return Ts(timestamps); }
  // Lines [first, first + n) of the time-ordered stream (line i: timestamp i / devices, device
  // i % devices).
  std::string Batch(std::int64_t first, std::int64_t n) const {
    std::string out;
    out.reserve(static_cast<std::size_t>(n) * 64);
    for (std::int64_t i = first; i < first + n; ++i) {
      std::int64_t t = i / devices;
      int d = static_cast<int>(i % devices);
      out += "r,device=dev-";
      out += std::to_string(d);
      out += " temperature=";
      AppendCents(out, Cents(d, 0, t));
      out += ",humidity=";
      AppendCents(out, Cents(d, 1, t));
      out.push_back(' ');
      out += std::to_string(Ts(t));
      out.push_back('\n');
    }
    return out;
  }
};

struct Bucket {
  TimestampMs t = 0;
  double min = 0, max = 0, mean = 0;
};
struct Last {
  double temperature = 0, humidity = 0;
};
using Latest = std::map<std::string, Last>;  // device name -> last values

// The exact answer: buckets of `width` over [from, to) of device 0's temperature.
std::vector<Bucket> ExpectedBuckets(const Gen& g, TimestampMs from, TimestampMs to, TimestampMs width) {
  std::vector<Bucket> out;
  for (TimestampMs b = from; b < to; b += width) {
    std::int64_t t0 = (b - g.start) / kStep, t1 = (b + width - g.start) / kStep;
    std::int64_t lo = INT64_MAX, hi = INT64_MIN, sum = 0;
    for (std::int64_t t = t0; t < t1; ++t) {
      std::int64_t c = g.Cents(0, 0, t);
      lo = std::min(lo, c), hi = std::max(hi, c), sum += c;
    }
    out.push_back({b, static_cast<double>(lo) / 100, static_cast<double>(hi) / 100,
                   static_cast<double>(sum) / static_cast<double>(t1 - t0) / 100});
  }
  return out;
}

Latest ExpectedLatest(const Gen& g) {
  Latest out;
  for (int d = 0; d < g.devices; ++d) {
    out[fmt::format("dev-{}", d)] = {g.Cents(d, 0, g.timestamps - 1) / 100.0, g.Cents(d, 1, g.timestamps - 1) / 100.0};
  }
  return out;
}

bool Near(double a, double b) { return std::fabs(a - b) <= 1e-6 * std::max(1.0, std::fabs(b)); }

// "" when equal, else what differs first.
std::string CompareBuckets(const std::vector<Bucket>& got, const std::vector<Bucket>& want) {
  if (got.size() != want.size()) return fmt::format("{} buckets, expected {}", got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const auto &a = got[i], &b = want[i];
    if (a.t != b.t || !Near(a.min, b.min) || !Near(a.max, b.max) || !Near(a.mean, b.mean)) {
      return fmt::format("bucket {}: got t={} min={} max={} mean={}, expected t={} min={} max={} mean={}", i, a.t, a.min,
                         a.max, a.mean, b.t, b.min, b.max, b.mean);
    }
  }
  return "";
}

std::string CompareLatest(const Latest& got, const Latest& want) {
  if (got.size() != want.size()) return fmt::format("{} devices, expected {}", got.size(), want.size());
  for (const auto& [dev, w] : want) {
    auto it = got.find(dev);
    if (it == got.end()) return "no answer for " + dev;
    if (!Near(it->second.temperature, w.temperature) || !Near(it->second.humidity, w.humidity)) {
      return fmt::format("{}: got {}/{}, expected {}/{}", dev, it->second.temperature, it->second.humidity,
                         w.temperature, w.humidity);
    }
  }
  return "";
}

// ---- processes -----------------------------------------------------------------------------------

// Children to kill if the driver is interrupted.
std::atomic<pid_t> g_children[8];

void OnSignal(int sig) {
  for (auto& c : g_children) {
    pid_t p = c.load();
    if (p > 0) ::kill(p, SIGKILL);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error("cannot find a free loopback port");
  }
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

std::string ReadText(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string TailOf(const std::string& text, std::size_t lines = 15) {
  std::size_t at = text.size();
  for (std::size_t k = 0; k < lines && at > 0; ++k) {
    at = text.rfind('\n', at - 1);
    if (at == std::string::npos) return text;
  }
  return text.substr(at + 1);
}

std::int64_t ProcStatusKb(pid_t pid, const char* key) {
  std::ifstream f(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::strlen(key)));
  }
  return 0;
}

struct DiskUse {
  std::int64_t allocated = 0;  // blocks in use, as `du` counts them (sparse preallocation is free)
  std::int64_t apparent = 0;   // sum of the file sizes
  std::vector<std::pair<std::int64_t, std::string>> largest;  // (allocated, path under the dir), top 4
  std::vector<std::pair<std::int64_t, std::string>> tables;   // OpenSense: (bytes, table or index)
};

// What the regular files under `dir` take.
DiskUse DirUse(const std::string& dir) {
  DiskUse u;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); !ec && it != decltype(it)(); it.increment(ec)) {
    struct stat st {};
    if (it->is_regular_file(ec) && ::lstat(it->path().c_str(), &st) == 0) {
      u.allocated += static_cast<std::int64_t>(st.st_blocks) * 512;
      u.apparent += static_cast<std::int64_t>(st.st_size);
      u.largest.emplace_back(static_cast<std::int64_t>(st.st_blocks) * 512,
                             std::filesystem::relative(it->path(), dir, ec).string());
    }
  }
  std::sort(u.largest.rbegin(), u.largest.rend());
  if (u.largest.size() > 4) u.largest.resize(4);
  return u;
}
std::int64_t DirBytes(const std::string& dir) { return DirUse(dir).apparent; }

// A server child: stdout+stderr to `log`, only PATH (and `env`) in its environment.
class Child {
 public:
  Child(const std::string& binary, const std::vector<std::string>& args, const std::vector<std::string>& env,
        const std::string& log, const std::string& cwd, const std::string& pids_file)
      : log_(log) {
    pid_ = testing::SpawnOpenSense(binary, args, env, log, log, cwd);
    if (pid_ <= 0) throw std::runtime_error("fork failed for " + binary);
    for (auto& c : g_children) {
      pid_t zero = 0;
      if (c.compare_exchange_strong(zero, pid_)) break;
    }
    if (!pids_file.empty()) {
      std::ofstream f(pids_file, std::ios::app);
      f << pid_ << "\n";
    }
  }
  ~Child() { Stop(5); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  bool Alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      Forget();
      return false;
    }
    return true;
  }
  // SIGTERM, up to `timeout_s`, then SIGKILL; true when it exited on its own after SIGTERM.
  bool Stop(double timeout_s = 60) {
    if (pid_ <= 0) return true;
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000));
    int status = 0;
    while (Clock::now() < deadline) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        Forget();
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    Forget();
    return false;
  }
  std::string LogTail() const { return TailOf(ReadText(log_)); }

 private:
  void Forget() {
    for (auto& c : g_children) {
      pid_t p = pid_;
      c.compare_exchange_strong(p, 0);
    }
    pid_ = -1;
  }
  std::string log_;
  pid_t pid_ = -1;
};

// Runs a command to completion (stdout+stderr to `log`); its output, or throws.
std::string RunTool(const std::string& binary, const std::vector<std::string>& args, const std::string& log,
                    const std::string& cwd) {
  pid_t pid = testing::SpawnOpenSense(binary, args, {}, log, log, cwd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::string out = ReadText(log);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error(fmt::format("{} {} failed (status {}): {}", binary, args.empty() ? "" : args[0], status,
                                         TailOf(out)));
  }
  return out;
}

std::string UrlEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

json GetJson(http::KeepAliveClient& c, const std::string& target, const Headers& h, std::string_view what) {
  auto r = c.Send("GET", target, h, {}, std::chrono::seconds(120));
  if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().ToString()));
  if (r->status != 200) throw std::runtime_error(fmt::format("{}: HTTP {}: {}", what, r->status, r->body.substr(0, 400)));
  return json::parse(r->body);
}

// ---- the systems ---------------------------------------------------------------------------------

enum class Kind { kOpenSense, kInflux, kVictoria };

struct Settings {
  Kind kind;
  std::string name;           // column header
  std::string synchronous;    // OpenSense: full | normal
};

// One running instance of a system, loaded and queried over HTTP.
class Instance {
 public:
  Instance(const Options& o, const Settings& s, const std::string& label) : o_(o), s_(s) {
    dir_ = std::make_unique<TempDir>(o.dir, "opensense-peers-");
    data_ = dir_->path() + "/data";
    std::filesystem::create_directories(data_);
    const int port = FreePort();
    addr_ = fmt::format("127.0.0.1:{}", port);
    const std::string log = dir_->path() + "/server.log";
    std::cerr << "[peers] " << s.name << " (" << label << ") on " << addr_ << std::endl;
    if (s.kind == Kind::kOpenSense) {
      json org = json::parse(RunTool(o.opensense,
                                     {"org", "create", "--name", "bench", "--timezone", "UTC", "--tier", "enterprise",
                                      "--json", "--data-dir", data_},
                                     dir_->path() + "/cli.log", dir_->path()));
      owner_ = org.at("token").get<std::string>();
      child_ = std::make_unique<Child>(
          o.opensense,
          std::vector<std::string>{"serve", "--listen", addr_, "--data-dir", data_, "--store-synchronous",
                                   s.synchronous, "--ingest-rate-per-token", "1000000", "--ingest-burst-per-token",
                                   "1000000", "--api-rate-per-org", "1000000", "--api-burst-per-org", "1000000"},
          std::vector<std::string>{}, log, dir_->path(), o.pids_file);
    } else if (s.kind == Kind::kInflux) {
      const std::string conf = dir_->path() + "/influxdb.conf";
      std::ofstream f(conf);
      // The package's defaults (influxd config) except: paths, loopback ports, no usage
      // reporting, no _internal monitor database (only the benchmark's data is measured), no
      // HTTP request log, and shorter cold-shard durations so the snapshot and full compaction
      // happen within the run (they only act on shards that had no writes for that long).
      f << "reporting-disabled = true\n"
        << fmt::format("bind-address = \"127.0.0.1:{}\"\n", FreePort())
        << "[meta]\n  dir = \"" << data_ << "/meta\"\n"
        << "[data]\n  dir = \"" << data_ << "/data\"\n  wal-dir = \"" << data_ << "/wal\"\n"
        << "  wal-fsync-delay = \"0s\"\n  query-log-enabled = false\n"
        << "  cache-snapshot-write-cold-duration = \"5s\"\n  compact-full-write-cold-duration = \"10s\"\n"
        << "[monitor]\n  store-enabled = false\n"
        << "[http]\n  bind-address = \"" << addr_ << "\"\n  log-enabled = false\n"
        << "[logging]\n  level = \"warn\"\n";
      f.close();
      child_ = std::make_unique<Child>(o.influxd, std::vector<std::string>{"-config", conf},
                                       std::vector<std::string>{"HOME=" + dir_->path()}, log, dir_->path(),
                                       o.pids_file);
    } else {
      // Single-node defaults except the paths, the loopback listener and a retention long
      // enough for the simulated year (the default, 1 month, would drop it).
      child_ = std::make_unique<Child>(
          o.victoria,
          std::vector<std::string>{"-storageDataPath=" + data_, "-httpListenAddr=" + addr_, "-retentionPeriod=5y",
                                   "-loggerLevel=WARN"},
          std::vector<std::string>{}, log, dir_->path(), o.pids_file);
    }
    WaitReady();
    client_ = std::make_unique<http::KeepAliveClient>(addr_);
    if (s.kind == Kind::kOpenSense) {
      auto site = client_->Send("POST", "/api/v1/sites", Bearer("application/json"),
                                R"({"name":"bench","auto_register":true})");
      if (!site || site->status != 201) throw std::runtime_error("OpenSense: cannot create the site");
      auto id = json::parse(site->body).at("id").get<std::int64_t>();
      auto tok = client_->Send("POST", fmt::format("/api/v1/sites/{}/token", id), Bearer("application/json"), "{}");
      if (!tok || tok->status != 200) throw std::runtime_error("OpenSense: cannot issue the gateway token");
      gateway_ = json::parse(tok->body).at("token").get<std::string>();
    } else if (s.kind == Kind::kInflux) {
      auto r = client_->Send("POST", "/query?q=" + UrlEncode("CREATE DATABASE bench"), {}, {});
      if (!r || r->status != 200) throw std::runtime_error("InfluxDB: CREATE DATABASE failed");
    }
  }
  ~Instance() {
    client_.reset();
    if (child_) child_->Stop();
  }

  const std::string& addr() const { return addr_; }
  pid_t pid() const { return child_ ? child_->pid() : -1; }

  std::string WriteTarget() const {
    return s_.kind == Kind::kInflux ? "/write?db=bench&precision=ms" : "/write?precision=ms";
  }
  Headers WriteHeaders() const {
    Headers h{{"Content-Type", "text/plain; charset=utf-8"}};
    if (s_.kind == Kind::kOpenSense) h.emplace_back("Authorization", "Token " + gateway_);
    return h;
  }

  // Brings the loaded instance to its settled state (see the top of the file); the seconds it took.
  double Settle(double timeout_s) {
    auto t0 = Clock::now();
    if (s_.kind == Kind::kVictoria) {
      for (const char* path : {"/internal/force_flush", "/internal/force_merge"}) {
        auto r = client_->Send("GET", path, {}, {}, std::chrono::seconds(static_cast<int>(timeout_s)));
        if (!r || r->status != 200) throw std::runtime_error(std::string("VictoriaMetrics: ") + path + " failed");
      }
      WaitStable(data_, 3, timeout_s, [] { return true; });
    } else if (s_.kind == Kind::kInflux) {
      // Every shard's WAL snapshotted (no segment with data left) and no compaction in progress.
      const std::string wal = data_ + "/wal/bench", tsm = data_ + "/data/bench";
      WaitStable(tsm, 5, timeout_s, [&] {
        std::error_code ec;
        for (auto it = std::filesystem::recursive_directory_iterator(wal, ec); !ec && it != decltype(it)();
             it.increment(ec)) {
          if (it->is_regular_file(ec) && it->file_size(ec) > 0) return false;
        }
        for (auto it = std::filesystem::recursive_directory_iterator(tsm, ec); !ec && it != decltype(it)();
             it.increment(ec)) {
          if (it->path().extension() == ".tmp") return false;
        }
        return true;
      });
    }
    return Seconds(t0, Clock::now());
  }

  // Stops the server, then (OpenSense) compacts and checkpoints the store; what the data directory takes.
  DiskUse StopAndMeasure() {
    client_.reset();
    if (!child_->Stop()) std::cerr << "[peers] " << s_.name << " needed SIGKILL to stop" << std::endl;
    DiskUse u;
    if (s_.kind == Kind::kOpenSense) {
      RunTool(o_.opensense, {"compact", "--data-dir", data_}, dir_->path() + "/compact.log", dir_->path());
      u = DirUse(data_);
      // Where the pages of the store go (dbstat), for the report.
      FileUse f = InspectFile(data_ + "/opensense.db");
      for (const auto& obj : f.objects) {
        if (obj.bytes >= f.file_bytes / 100) u.tables.emplace_back(obj.bytes, obj.name);
      }
      if (f.freelist > 0) u.tables.emplace_back(f.freelist * f.page_size, "(free pages)");
      return u;
    }
    return DirUse(data_);
  }
  std::int64_t PeakRssKb() const { return ProcStatusKb(pid(), "VmHWM:"); }

  // ---- the three queries: the target and the parse of the answer ----

  std::string HourlyTarget(TimestampMs from, TimestampMs to) const { return BucketTarget(from, to, kMsPerHour); }
  std::string DailyTarget(TimestampMs from, TimestampMs to) const { return BucketTarget(from, to, kMsPerDay); }
  std::string LatestTarget(TimestampMs end) const {
    switch (s_.kind) {
      case Kind::kOpenSense:
        return "/api/v1/latest";
      case Kind::kInflux:
        return "/query?db=bench&epoch=ms&q=" +
               UrlEncode(fmt::format("SELECT last(temperature), last(humidity) FROM r WHERE time >= {}ms AND time < "
                                     "{}ms GROUP BY device",
                                     end - kMsPerDay, end));
      case Kind::kVictoria:
        return "/api/v1/query?time=" + fmt::format("{:.3f}", static_cast<double>(end) / 1000) + "&query=" +
               UrlEncode(R"(union(label_set(last_over_time(r_temperature[1d]), "field", "temperature"), )"
                         R"(label_set(last_over_time(r_humidity[1d]), "field", "humidity")))");
    }
    return "";
  }
  Headers QueryHeaders() const {
    return s_.kind == Kind::kOpenSense ? Bearer() : Headers{};
  }

  std::vector<Bucket> ParseBuckets(const std::string& body, TimestampMs width) const {
    json j = json::parse(body);
    std::vector<Bucket> out;
    if (s_.kind == Kind::kOpenSense) {
      for (const auto& p : j.at("points")) {
        out.push_back({p.at("t").get<TimestampMs>(), p.at("min").get<double>(), p.at("max").get<double>(),
                       p.at("v").get<double>()});
      }
    } else if (s_.kind == Kind::kInflux) {
      const auto& res = j.at("results").at(0);
      if (!res.contains("series")) return out;
      for (const auto& v : res.at("series").at(0).at("values")) {
        if (v.at(1).is_null()) continue;
        out.push_back({v.at(0).get<TimestampMs>(), v.at(1).get<double>(), v.at(2).get<double>(), v.at(3).get<double>()});
      }
    } else {
      // rollup() answers three series (rollup="min", "max", "avg"); value times are the window ends.
      std::map<TimestampMs, Bucket> by_t;
      for (const auto& series : j.at("data").at("result")) {
        std::string which = series.at("metric").value("rollup", "");
        for (const auto& v : series.at("values")) {
          auto end = static_cast<TimestampMs>(std::llround(v.at(0).get<double>() * 1000));
          Bucket& b = by_t[end - width];
          b.t = end - width;
          double x = std::stod(v.at(1).get<std::string>());
          if (which == "min") b.min = x;
          else if (which == "max") b.max = x;
          else if (which == "avg") b.mean = x;
        }
      }
      for (const auto& [t, b] : by_t) out.push_back(b);
    }
    return out;
  }

  Latest ParseLatest(const std::string& body) const {
    json j = json::parse(body);
    Latest out;
    if (s_.kind == Kind::kOpenSense) {
      for (const auto& d : j.at("devices")) {
        Last& l = out[d.at("name").get<std::string>()];
        for (const auto& m : d.at("metrics")) {
          (m.at("metric") == "temperature" ? l.temperature : l.humidity) = m.at("v").get<double>();
        }
      }
    } else if (s_.kind == Kind::kInflux) {
      const auto& res = j.at("results").at(0);
      if (!res.contains("series")) return out;
      for (const auto& s : res.at("series")) {
        const auto& v = s.at("values").at(0);
        out[s.at("tags").at("device").get<std::string>()] = {v.at(1).get<double>(), v.at(2).get<double>()};
      }
    } else {
      for (const auto& s : j.at("data").at("result")) {
        Last& l = out[s.at("metric").at("device").get<std::string>()];
        double x = std::stod(s.at("value").at(1).get<std::string>());
        (s.at("metric").at("field") == "temperature" ? l.temperature : l.humidity) = x;
      }
    }
    return out;
  }

  http::KeepAliveClient& client() { return *client_; }

 private:
  Headers Bearer(const char* content_type = nullptr) const {
    Headers h{{"Authorization", "Bearer " + owner_}};
    if (content_type != nullptr) h.emplace_back("Content-Type", content_type);
    return h;
  }

  std::string BucketTarget(TimestampMs from, TimestampMs to, TimestampMs width) const {
    switch (s_.kind) {
      case Kind::kOpenSense:
        return fmt::format("/api/v1/devices/{}/series?metric=temperature&from={}&to={}&resolution={}", DeviceZero(),
                           from, to, width == kMsPerHour ? "1h" : "1d");
      case Kind::kInflux:
        return "/query?db=bench&epoch=ms&q=" +
               UrlEncode(fmt::format("SELECT min(temperature), max(temperature), mean(temperature) FROM r WHERE "
                                     "device = 'dev-0' AND time >= {}ms AND time < {}ms GROUP BY time({})",
                                     from, to, width == kMsPerHour ? "1h" : "1d"));
      case Kind::kVictoria:
        return fmt::format("/api/v1/query_range?start={}&end={}&step={}&query=", (from + width) / 1000, to / 1000,
                           width == kMsPerHour ? "1h" : "1d") +
               UrlEncode(fmt::format(R"(rollup(r_temperature{{device="dev-0"}}[{}] offset 1ms))",
                                     width == kMsPerHour ? "1h" : "1d"));
    }
    return "";
  }

  // OpenSense's id of dev-0 (asked once).
  std::int64_t DeviceZero() const {
    if (dev0_ == 0) {
      json list = GetJson(*client_, "/api/v1/devices", Bearer(), "list devices");
      for (const auto& d : list) {
        if (d.value("name", "") == "dev-0") dev0_ = d.at("id").get<std::int64_t>();
      }
      if (dev0_ == 0) throw std::runtime_error("OpenSense: no device dev-0");
    }
    return dev0_;
  }

  void WaitReady() {
    const char* path = s_.kind == Kind::kOpenSense ? "/healthz" : s_.kind == Kind::kInflux ? "/ping" : "/health";
    auto t0 = Clock::now();
    while (Seconds(t0, Clock::now()) < 60) {
      if (!child_->Alive()) throw std::runtime_error(s_.name + " exited at start:\n" + child_->LogTail());
      auto r = http::Fetch(addr_, "GET", path, {}, {}, std::chrono::seconds(2));
      if (r && (r->status == 200 || r->status == 204)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error(s_.name + " did not answer " + path + " within 60 s:\n" + child_->LogTail());
  }

  // Waits until `ready()` holds and the size of `dir` has not changed for `quiet_s` seconds.
  void WaitStable(const std::string& dir, double quiet_s, double timeout_s, const std::function<bool()>& ready) {
    auto t0 = Clock::now(), since = t0;
    std::int64_t last = -1;
    while (Seconds(t0, Clock::now()) < timeout_s) {
      std::int64_t now = DirBytes(dir);
      if (now != last || !ready()) {
        last = now;
        since = Clock::now();
      } else if (Seconds(since, Clock::now()) >= quiet_s) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    std::cerr << "[peers] " << s_.name << ": not settled after " << timeout_s << " s; measuring anyway" << std::endl;
  }

  const Options& o_;
  Settings s_;
  std::unique_ptr<TempDir> dir_;
  std::string data_, addr_, owner_, gateway_;
  std::unique_ptr<Child> child_;
  std::unique_ptr<http::KeepAliveClient> client_;
  mutable std::int64_t dev0_ = 0;
};

// ---- load and queries ----------------------------------------------------------------------------

struct LoadRun {
  std::int64_t points = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(points) / seconds : 0; }
};

// Lines [0, lines) of the stream, in batches taken in order by `writers` keep-alive clients.
LoadRun Load(const Options& o, const Gen& g, Instance& inst, std::int64_t lines) {
  const std::int64_t batches = (lines + o.batch_lines - 1) / o.batch_lines;
  const std::string target = inst.WriteTarget();
  const Headers headers = inst.WriteHeaders();
  std::atomic<std::int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string first_error;
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < o.writers; ++w) {
    threads.emplace_back([&] {
      http::KeepAliveClient c(inst.addr());
      for (;;) {
        std::int64_t b = next.fetch_add(1);
        if (b >= batches || failed) break;
        std::int64_t first = b * o.batch_lines;
        std::string body = g.Batch(first, std::min<std::int64_t>(o.batch_lines, lines - first));
        auto r = c.Send("POST", target, headers, std::move(body), std::chrono::seconds(120));
        if (!r || r->status != 204 || Seconds(t0, Clock::now()) > o.phase_timeout_s) {
          std::lock_guard lock(mu);
          if (first_error.empty()) {
            first_error = !r ? r.error().ToString()
                             : r->status != 204 ? fmt::format("HTTP {}: {}", r->status, r->body.substr(0, 300))
                                                : "the phase timeout passed";
          }
          failed = true;
          break;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) throw std::runtime_error("write failed: " + first_error);
  return {lines * 2, Seconds(t0, Clock::now())};
}

struct QueryStats {
  double p50 = 0, p99 = 0;
  std::string mismatch;  // "" when the answer was right
};

// The timed queries' client: one keep-alive connection with blocking reads and writes (bounded by
// socket timeouts), so a request costs the client one send and the reads of its answer; the
// general client (api/http/client.hpp) runs an event loop and a timer per operation, which
// added ~0.1 ms to every request here, the same for every system.
class QueryClient {
 public:
  explicit QueryClient(const std::string& addr) {
    auto colon = addr.rfind(':');
    host_ = addr.substr(0, colon);
    port_ = addr.substr(colon + 1);
  }
  Result<http::ClientResponse> Get(const std::string& target, const Headers& headers) {
    namespace bhttp = boost::beast::http;
    for (int attempt = 0; attempt < 2; ++attempt) {
      boost::system::error_code ec;
      if (!socket_.is_open()) Connect(ec);
      bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
      req.set(bhttp::field::host, host_ + ":" + port_);
      for (const auto& [k, v] : headers) req.set(k, v);
      if (!ec) bhttp::write(socket_, req, ec);
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(std::uint64_t{1} << 32);
      if (!ec) bhttp::read(socket_, buffer_, parser, ec);
      if (ec) {
        socket_.close(ec);
        buffer_.consume(buffer_.size());
        continue;  // the server may have closed an idle connection: once more on a new one
      }
      auto msg = parser.release();
      http::ClientResponse r;
      r.status = static_cast<int>(msg.result_int());
      r.body = std::move(msg.body());
      if (!msg.keep_alive()) socket_.close(ec);
      return r;
    }
    return MakeError(ErrorCode::kUnavailable, "query to " + host_ + ":" + port_ + " failed twice");
  }

 private:
  void Connect(boost::system::error_code& ec) {
    using boost::asio::ip::tcp;
    auto endpoints = tcp::resolver(ioc_).resolve(host_, port_, ec);
    if (ec) return;
    boost::asio::connect(socket_, endpoints, ec);
    if (ec) return;
    socket_.set_option(tcp::no_delay(true), ec);
    timeval tv{120, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_{ioc_};
  boost::beast::flat_buffer buffer_;
  std::string host_, port_;
};

// One warm-up (its answer is checked), then `o.queries` timed requests; `vary(i)`, when given,
// is the target of the i-th timed request instead of `target`.
QueryStats TimeQuery(const Options& o, Instance& inst, const std::string& target,
                     const std::function<std::string(const std::string&)>& check,
                     const std::function<std::string(int)>& vary = nullptr) {
  QueryStats st;
  QueryClient c(inst.addr());
  const Headers h = inst.QueryHeaders();
  auto first = c.Get(target, h);
  if (!first || first->status != 200) {
    st.mismatch = !first ? first.error().ToString() : fmt::format("HTTP {}: {}", first->status, first->body.substr(0, 300));
    return st;
  }
  try {
    st.mismatch = check(first->body);
  } catch (const std::exception& e) {
    st.mismatch = fmt::format("unreadable answer ({}): {}", e.what(), first->body.substr(0, 300));
  }
  std::vector<double> ms;
  auto t0 = Clock::now();
  for (int i = 0; i < o.queries && Seconds(t0, Clock::now()) < o.phase_timeout_s; ++i) {
    auto a = Clock::now();
    auto r = c.Get(vary ? vary(i) : target, h);
    auto b = Clock::now();
    if (!r || r->status != 200) {
      st.mismatch = "a timed query failed";
      break;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(b - a).count());
  }
  st.p50 = Percentile(ms, 50);
  st.p99 = Percentile(ms, 99);
  return st;
}

// ---- report --------------------------------------------------------------------------------------

struct Result {
  Settings s;
  std::vector<double> ingest;  // points/s per run
  bool year = false;           // loaded with the full range and queried
  LoadRun year_load;
  double settle_s = 0;
  DiskUse disk;
  std::int64_t points = 0;
  std::int64_t peak_rss_kb = 0;
  QueryStats hourly, daily, latest;
  // OpenSense: the same chart queries with every answer computed: each request's 'to' is 1 ms
  // later (no reading lies there), so none is found in the chart cache.
  QueryStats hourly_computed, daily_computed;
  double ingest_median() const { return Median(ingest); }
  double bytes_per_point() const { return points > 0 ? static_cast<double>(disk.allocated) / static_cast<double>(points) : 0; }
};

std::string Ms(double v) {
  return v >= 100 ? fmt::format("{:.0f}", v) : v >= 10 ? fmt::format("{:.1f}", v) : fmt::format("{:.2f}", v);
}
std::string LoadAvg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

// One ingest run (a fresh instance loaded with `month`) of `res`'s system.
void IngestRun(const Options& o, const Gen& month, Result& res, int r) {
  Instance inst(o, res.s, fmt::format("ingest run {}/{}", r + 1, o.ingest_runs));
  LoadRun run = Load(o, month, inst, month.lines());
  res.ingest.push_back(run.rate());
  std::cerr << "[peers]   " << Rate(run.rate()) << " points/s (" << run.points << " points in "
            << fmt::format("{:.2f}", run.seconds) << " s)" << std::endl;
}

// The full range into a fresh instance, the queries, memory and disk.
void YearRun(const Options& o, const Gen& year, Result& res) {
  const Settings& s = res.s;
  res.year = true;
  Instance inst(o, s, fmt::format("{} days, then queries", o.days));
  res.year_load = Load(o, year, inst, year.lines());
  res.points = res.year_load.points;
  std::cerr << "[peers]   loaded " << Thousands(res.points) << " points at " << Rate(res.year_load.rate())
            << " points/s; settling" << std::endl;
  res.settle_s = inst.Settle(o.phase_timeout_s);
  const TimestampMs end = year.end();
  const TimestampMs hourly_from = end - std::min<TimestampMs>(30, o.days) * kMsPerDay;
  const auto want_hourly = ExpectedBuckets(year, hourly_from, end, kMsPerHour);
  const auto want_daily = ExpectedBuckets(year, year.start, end, kMsPerDay);
  const auto want_latest = ExpectedLatest(year);
  res.hourly = TimeQuery(o, inst, inst.HourlyTarget(hourly_from, end), [&](const std::string& body) {
    return CompareBuckets(inst.ParseBuckets(body, kMsPerHour), want_hourly);
  });
  res.daily = TimeQuery(o, inst, inst.DailyTarget(year.start, end), [&](const std::string& body) {
    return CompareBuckets(inst.ParseBuckets(body, kMsPerDay), want_daily);
  });
  res.latest = TimeQuery(o, inst, inst.LatestTarget(end), [&](const std::string& body) {
    return CompareLatest(inst.ParseLatest(body), want_latest);
  });
  if (s.kind == Kind::kOpenSense) {
    res.hourly_computed = TimeQuery(
        o, inst, inst.HourlyTarget(hourly_from, end),
        [&](const std::string& body) { return CompareBuckets(inst.ParseBuckets(body, kMsPerHour), want_hourly); },
        [&](int i) { return inst.HourlyTarget(hourly_from, end + 1 + i); });
    res.daily_computed = TimeQuery(
        o, inst, inst.DailyTarget(year.start, end),
        [&](const std::string& body) { return CompareBuckets(inst.ParseBuckets(body, kMsPerDay), want_daily); },
        [&](int i) { return inst.DailyTarget(year.start, end + 1 + i); });
    std::cerr << fmt::format("[peers]   every answer computed: hourly p50 {} ms, daily p50 {} ms",
                             Ms(res.hourly_computed.p50), Ms(res.daily_computed.p50))
              << std::endl;
  }
  for (const auto* q : {&res.hourly, &res.daily, &res.latest, &res.hourly_computed, &res.daily_computed}) {
    if (!q->mismatch.empty()) std::cerr << "[peers]   WRONG ANSWER: " << q->mismatch << std::endl;
  }
  std::cerr << fmt::format("[peers]   hourly p50 {} ms, daily p50 {} ms, latest p50 {} ms", Ms(res.hourly.p50),
                           Ms(res.daily.p50), Ms(res.latest.p50))
            << std::endl;
  if (o.hold_s > 0) {
    std::cerr << fmt::format("[peers]   holding {} for {} s: http://{}\n", s.name, o.hold_s, inst.addr());
    for (const auto& [k, v] : inst.QueryHeaders()) std::cerr << "[peers]     header " << k << ": " << v << "\n";
    for (const auto& t : {inst.HourlyTarget(hourly_from, end), inst.DailyTarget(year.start, end), inst.LatestTarget(end)}) {
      std::cerr << "[peers]     GET " << t << "\n";
    }
    std::cerr << "[peers]     pid " << inst.pid() << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(o.hold_s));
  }
  res.peak_rss_kb = inst.PeakRssKb();
  res.disk = inst.StopAndMeasure();
}

int Main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGINT, OnSignal);
  ::signal(SIGTERM, OnSignal);
  ::signal(SIGHUP, OnSignal);
  for (const auto* b : {&o.opensense, &o.influxd, &o.victoria}) {
    if (::access(b->c_str(), X_OK) != 0) throw std::runtime_error("no executable at " + *b);
  }
  o.opensense = std::filesystem::absolute(o.opensense).string();
  const std::string load_start = LoadAvg();
  auto t_start = Clock::now();

  // The simulated range ends at today's UTC midnight.
  const TimestampMs now = SystemClock().NowMs();
  const TimestampMs end = now / kMsPerDay * kMsPerDay;
  Gen year(o.devices, o.days, end - o.days * kMsPerDay, o.seed);
  Gen month(o.devices, o.ingest_days, year.start, o.seed);

  std::vector<Result> results;
  if (o.os_full) results.push_back({{Kind::kOpenSense, "OpenSense (FULL)", "full"}});
  if (o.os_normal) results.push_back({{Kind::kOpenSense, "OpenSense (NORMAL)", "normal"}});
  if (o.influx) results.push_back({{Kind::kInflux, "InfluxDB", ""}});
  if (o.vm) results.push_back({{Kind::kVictoria, "VictoriaMetrics", ""}});
  // Round-robin, so a change in the machine's load during the run is spread over all systems:
  // ingest run 1 of each system, then run 2 of each, ...; then the year of each (not NORMAL).
  for (int r = 0; r < o.ingest_runs; ++r) {
    for (auto& res : results) IngestRun(o, month, res, r);
  }
  for (auto& res : results) {
    if (res.s.synchronous != "normal") YearRun(o, year, res);
  }
  const std::string load_end = LoadAvg();

  // ---- the table ----
  bool wrong = false;
  for (const auto& r : results) {
    for (const auto* q : {&r.hourly, &r.daily, &r.latest, &r.hourly_computed, &r.daily_computed}) wrong = wrong || !q->mismatch.empty();
  }
  const Result* os = nullptr;
  std::vector<const Result*> peers;
  for (const auto& r : results) {
    if (r.s.kind == Kind::kOpenSense && r.s.synchronous == "full") os = &r;
    if (r.s.kind != Kind::kOpenSense) peers.push_back(&r);
  }
  auto fsync = [](const Result& r) -> std::string {
    switch (r.s.kind) {
      case Kind::kOpenSense:
        return r.s.synchronous == "full" ? "yes (WAL commit, synchronous=FULL)" : "no (synchronous=NORMAL: fsync at checkpoints)";
      case Kind::kInflux:
        return "yes (wal-fsync-delay = 0s)";
      case Kind::kVictoria:
        return "no (buffered in memory, flushed to disk about every second)";
    }
    return "";
  };
  struct Row {
    std::string name;
    std::function<std::string(const Result&)> cell;
    std::function<double(const Result&)> value;  // for ratios; nullptr: no ratio
    bool needs_year;
  };
  std::vector<Row> rows = {
      {"acknowledged write fsynced", fsync, nullptr, false},
      {fmt::format("ingest, points/s (median of {}, first {} days)", o.ingest_runs, o.ingest_days),
       [](const Result& r) { return Rate(r.ingest_median()); }, [](const Result& r) { return r.ingest_median(); }, false},
      {"ingest runs, points/s",
       [](const Result& r) {
         std::string s;
         for (double v : r.ingest) s += (s.empty() ? "" : ", ") + Rate(v);
         return s;
       },
       nullptr, false},
      {fmt::format("load of all {} days, points/s", o.days), [](const Result& r) { return Rate(r.year_load.rate()); },
       [](const Result& r) { return r.year_load.rate(); }, true},
      {"disk bytes per point (allocated, after flush/compaction)",
       [](const Result& r) { return fmt::format("{:.2f}", r.bytes_per_point()); },
       [](const Result& r) { return r.bytes_per_point(); }, true},
      {"peak resident memory, MiB", [](const Result& r) { return fmt::format("{:.0f}", r.peak_rss_kb / 1024.0); },
       [](const Result& r) { return static_cast<double>(r.peak_rss_kb); }, true},
  };
  const std::pair<const char*, QueryStats Result::*> queries[] = {
      {"hourly min/max/mean, 30 days, one device", &Result::hourly},
      {"daily min/max/mean, all days, one device", &Result::daily},
      {"last value of every device", &Result::latest}};
  for (const auto& [qname, member] : queries) {
    const std::string base = o.days < 30 && member == &Result::hourly
                                 ? fmt::format("hourly min/max/mean, {} days, one device", o.days)
                                 : std::string(qname);
    rows.push_back({base + ", p50 ms", [member](const Result& r) { return Ms((r.*member).p50) + ((r.*member).mismatch.empty() ? "" : " WRONG"); },
                    [member](const Result& r) { return (r.*member).p50; }, true});
    rows.push_back({base + ", p99 ms", [member](const Result& r) { return Ms((r.*member).p99); },
                    [member](const Result& r) { return (r.*member).p99; }, true});
  }
  // OpenSense without its chart cache; the ratio is to each peer's own p50 above.
  const std::pair<const char*, std::pair<QueryStats Result::*, QueryStats Result::*>> computed[] = {
      {"hourly chart, every OpenSense answer computed (no chart cache), p50 ms; ratio to the peer's p50",
       {&Result::hourly_computed, &Result::hourly}},
      {"daily chart, every OpenSense answer computed (no chart cache), p50 ms; ratio to the peer's p50",
       {&Result::daily_computed, &Result::daily}}};
  for (const auto& [qname, members] : computed) {
    const auto [mine, theirs] = members;
    rows.push_back({qname,
                    [mine = mine](const Result& r) {
                      return r.s.kind == Kind::kOpenSense ? Ms((r.*mine).p50) + ((r.*mine).mismatch.empty() ? "" : " WRONG")
                                                          : std::string("—");
                    },
                    [mine = mine, theirs = theirs](const Result& r) {
                      return r.s.kind == Kind::kOpenSense ? (r.*mine).p50 : (r.*theirs).p50;
                    },
                    true});
  }

  std::cout << "| figure |";
  for (const auto& r : results) std::cout << " " << r.s.name << " |";
  if (os != nullptr) {
    for (const auto* p : peers) std::cout << " OpenSense / " << p->s.name << " |";
  }
  std::cout << "\n|---|";
  for (std::size_t i = 0; i < results.size() + (os != nullptr ? peers.size() : 0); ++i) std::cout << "---|";
  std::cout << "\n";
  for (const auto& row : rows) {
    std::cout << "| " << row.name << " |";
    for (const auto& r : results) std::cout << " " << (row.needs_year && !r.year ? "—" : row.cell(r)) << " |";
    if (os != nullptr) {
      for (const auto* p : peers) {
        double a = row.value ? row.value(*os) : 0, b = row.value ? row.value(*p) : 0;
        std::cout << " " << (row.value && b > 0 ? fmt::format("{:.2f}", a / b) : "") << " |";
      }
    }
    std::cout << "\n";
  }
  std::cout << "\n";
  std::cout << fmt::format("- {} devices x 2 fields, one line per device every 5 minutes, {} days ({} points; "
                           "ingest runs: {} points), batches of {} lines, {} writers, seed {}; {} timed queries each\n",
                           o.devices, o.days, Thousands(year.lines() * 2), Thousands(month.lines() * 2), o.batch_lines,
                           o.writers, o.seed, o.queries);
  if (os != nullptr && os->year) {
    const Result* normal = nullptr;
    for (const auto& r : results) {
      if (r.s.synchronous == "normal") normal = &r;
    }
    for (const auto* p : peers) {
      if (!p->year) continue;
      std::cout << fmt::format("- vs {}: ingest {:.2f}x{}; hourly chart {:.1f}x faster (p50; {:.1f}x with every answer "
                               "computed); daily chart {:.1f}x faster ({:.1f}x computed); "
                               "last values {:.1f}x faster; bytes/point {:.2f}x; peak memory {:.2f}x\n",
                               p->s.name, os->ingest_median() / p->ingest_median(),
                               normal != nullptr ? fmt::format(" (NORMAL: {:.2f}x)", normal->ingest_median() / p->ingest_median()) : "",
                               p->hourly.p50 / os->hourly.p50, p->hourly.p50 / os->hourly_computed.p50,
                               p->daily.p50 / os->daily.p50, p->daily.p50 / os->daily_computed.p50,
                               p->latest.p50 / os->latest.p50, os->bytes_per_point() / p->bytes_per_point(),
                               static_cast<double>(os->peak_rss_kb) / static_cast<double>(p->peak_rss_kb));
    }
  }
  for (const auto& r : results) {
    if (r.year) {
      std::cout << fmt::format("- {}: settled in {:.1f} s after the load; {} bytes on disk (allocated blocks; "
                               "file sizes {}, {:.2f} B/point)\n",
                               r.s.name, r.settle_s, Thousands(r.disk.allocated), Thousands(r.disk.apparent),
                               static_cast<double>(r.disk.apparent) / static_cast<double>(r.points));
      std::string files;
      for (const auto& [bytes, path] : r.disk.largest) files += fmt::format("{}{} {}", files.empty() ? "" : ", ", path, Thousands(bytes));
      std::cout << "  - largest files: " << files << "\n";
      if (!r.disk.tables.empty()) {
        std::string tables;
        for (const auto& [bytes, name] : r.disk.tables) {
          tables += fmt::format("{}{} {:.2f} B/point", tables.empty() ? "" : ", ", name,
                                static_cast<double>(bytes) / static_cast<double>(r.points));
        }
        std::cout << "  - in the store file (dbstat, tables and indexes >= 1%): " << tables << "\n";
      }
    }
  }
  std::cout << fmt::format("- load average at start: {}; at end: {}; driver wall time {:.0f} s\n", load_start, load_end,
                           Seconds(t_start, Clock::now()));
  std::cout << (wrong ? "- ANSWERS DIFFER (see stderr)\n"
                      : "- answers: every system's hourly, daily and latest answers equal the generator's exact values "
                        "(so each other's) within 1e-6\n");
  return wrong ? 1 : 0;
}

}  // namespace
}  // namespace opensense::bench

int main(int argc, char** argv) {
  try {
    return opensense::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "peers_bench: " << e.what() << std::endl;
    return 1;
  }
}
