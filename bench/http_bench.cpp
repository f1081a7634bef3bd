// HTTP load driver (a plain main): starts the real `opensense serve` binary as a child process on
// a loopback port with a fresh data directory, loads it over HTTP from keep-alive clients, and
// measures the in-process writer on the same data in the same run, so the two can be compared.
//
// Set-up (not timed): `opensense org create --tier enterprise --json` (owner osk_ token) before
// the server starts; then over HTTP one site with auto_register and gateway tokens
// (POST /api/v1/sites, POST /api/v1/sites/{id}/token; one token per client unless
// --gateway-tokens says otherwise, extra tokens made by rotating with a 30-day grace so all stay
// valid), and a warm-up post that auto-registers the 1,000 devices `dev-0` .. `dev-999`.
//
// Data (like ingest_bench): 1,000 devices x 2 metrics (temperature, humidity), a per-series random
// walk in hundredths (fixed seed), 60 s spacing from 30 days ago (aligned to the minute), sent in
// time order: each timestamp for every device, then the next. A batch of N readings is N/2 lines
// of line protocol `r,device=dev-K temperature=21.37,humidity=55.12 <ms>`, posted to
// POST /api/v1/ingest?precision=ms as text/plain with a gateway token.
//
// Cases (in this order; each bounded by its count and by --case-timeout):
//  writer: Store::Ingest in this process into a temp store (synchronous=FULL, one producer keeping
//          16 (and, for comparison, 4) batches in flight, same devices, same batches as A and B),
//          before the server is started and again after it stopped; the reference for the ratio
//          is the mean of the two 16-in-flight runs.
//  D (post): one device `year-0` gets a year of 5-minute temperature readings (batches of 10,000),
//     then --queries GET /api/v1/devices/{id}/series?metric=temperature&from=<1y ago>&to=<now>
//     &resolution=auto with the owner token, one after another on one connection (one warm-up
//     query first, not counted), while those readings are still in the store's head.
//  A: 16 clients (one KeepAliveClient each) post batches of 1,000 readings until 2M are sent.
//  B: the same with batches of 100 (the next 2M readings).
//  fill: case A's pattern continues until 10M readings were posted by A + B + fill; the server's
//        VmRSS/VmHWM (/proc/PID/status) are read then (and after each case).
//  C: single-reading posts (`r temperature=21.37 <ms>`), one device token per client (devices made
//     with POST /api/v1/devices), each token used once before timing so it is cached; 16 clients
//     as fast as answers come, for --single-seconds.
//  D (again): the same queries once the head has been flushed by the readings posted since.
// "server CPU" is the child's user+system time over the case (100% = one core); "driver CPU" is
// this process's (the clients share the machine with the server).
//
// Every reply is checked: an ingest answer must be 200 with accepted + duplicates == the lines'
// readings. 429/503 are retried after 20 ms and counted (the per-token rate limit shows up there).
// The server is stopped with SIGTERM at the end and must exit 0.
//
// Usage: http_bench [--binary build/release/opensense] [--dir /tmp] [--clients 16]
//                   [--readings 2000000] [--total-readings 10000000] [--single-seconds 10]
//                   [--queries 200] [--rate-per-token 1000000 | --no-rate-flag]
//                   [--gateway-tokens N] [--cases writer,a,b,fill,c,d] [--case-timeout 600]
//                   [--json FILE] [--server-log FILE] [--pause-before-stop SECONDS]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <semaphore>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/http/client.hpp"
#include "bench_common.hpp"
#include "core/clock.hpp"
#include "store/store.hpp"

namespace opensense::bench {
namespace {

using nlohmann::json;

constexpr TimestampMs kSpacing = 60 * kMsPerSecond;
constexpr int kMetrics = 2;
const char* const kMetricNames[kMetrics] = {"temperature", "humidity"};

struct Options {
  std::string binary = "build/release/opensense";
  std::string dir = "/tmp";
  int clients = 16;
  int devices = 1000;
  std::int64_t readings = 2'000'000;         // per case A and B
  std::int64_t total_readings = 10'000'000;  // A + B + fill
  double single_seconds = 10;
  int queries = 200;
  std::int64_t rate_per_token = 1'000'000;   // passed as --ingest-rate-per-token/--ingest-burst-per-token
  bool rate_flag = true;
  int gateway_tokens = 0;  // 0: one per client
  bool case_writer = true, case_a = true, case_b = true, case_fill = true, case_c = true, case_d = true;
  double case_timeout_s = 600;
  double pause_before_stop_s = 0;  // keeps the loaded server up (e.g. to attach perf)
  std::string json_path;
  std::string server_log;  // copy of the server's output
};

// ---- data ------------------------------------------------------------------------------------

// cents[series][t]; series = device * kMetrics + metric (as in ingest_bench).
struct Data {
  int devices = 0;
  int timestamps = 0;
  TimestampMs start = 0;
  std::vector<std::vector<std::int32_t>> cents;
  TimestampMs Ts(std::int64_t t) const { return start + t * kSpacing; }
  std::int64_t per_ts() const { return static_cast<std::int64_t>(devices) * kMetrics; }
};

Data MakeData(int devices, int timestamps, TimestampMs start) {
  Data d;
  d.devices = devices;
  d.timestamps = timestamps;
  d.start = start;
  std::mt19937_64 rng(20240120);
  std::uniform_int_distribution<int> step(-10, 10);
  std::uniform_int_distribution<int> first(-500, 500);
  d.cents.resize(static_cast<std::size_t>(devices) * kMetrics);
  for (std::size_t s = 0; s < d.cents.size(); ++s) {
    auto& v = d.cents[s];
    v.resize(static_cast<std::size_t>(timestamps));
    std::int32_t x = (s % kMetrics == 0 ? 2000 : 5000) + first(rng);
    for (int t = 0; t < timestamps; ++t) {
      v[static_cast<std::size_t>(t)] = x;
      x += step(rng);
    }
  }
  return d;
}

// Readings [first, first + n) of the time-ordered stream (index i: timestamp i / per_ts, series
// i % per_ts) as line protocol; `first` and `n` are even, so each line holds both metrics.
std::string LineBatch(const Data& d, std::int64_t first, std::int64_t n) {
  std::string out;
  out.reserve(static_cast<std::size_t>(n) * 30);
  for (std::int64_t i = first; i < first + n; i += kMetrics) {
    std::int64_t t = i / d.per_ts();
    auto s = static_cast<std::size_t>(i % d.per_ts());
    std::size_t dev = s / kMetrics;
    out += "r,device=dev-";
    out += std::to_string(dev);
    out += " temperature=";
    AppendCents(out, d.cents[s][static_cast<std::size_t>(t)]);
    out += ",humidity=";
    AppendCents(out, d.cents[s + 1][static_cast<std::size_t>(t)]);
    out.push_back(' ');
    out += std::to_string(d.Ts(t));
    out.push_back('\n');
  }
  return out;
}

template <typename T>
T Must(Result<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().ToString()));
  return std::move(*r);
}

// ---- the writer in this process (reference rate) -------------------------------------------

struct WriterRun {
  std::string when;  // "before" | "after"
  int batch = 0;
  int inflight = 0;
  std::int64_t readings = 0;
  double seconds = 0;
  double cpu_s = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(readings) / seconds : 0; }
};

// Readings [first, first + n) of `d` through Store::Ingest of a fresh FULL store, `inflight`
// batches of `batch` outstanding from one producer; timed from the first submit to the last
// completion (no final Compact, like the server, which does not compact on every request).
WriterRun RunWriter(const Options& o, const Data& d, std::int64_t first, std::int64_t n, int batch, int inflight,
                    const std::string& when) {
  TempDir dir(o.dir, "opensense-httpbench-writer-");
  SystemClock clock;
  store::StoreOptions so;
  so.url = "sqlite://" + dir.path() + "/opensense.db";
  so.synchronous = store::Synchronous::kFull;
  so.clock = &clock;
  auto st = Must(store::OpenStore(so), "open store");
  auto org = Must(st->CreateOrganization({"bench", "UTC", Tier::kEnterprise}), "create org");
  std::vector<DeviceId> ids;
  for (int i = 0; i < d.devices; ++i) {
    std::string name = fmt::format("dev-{}", i);
    ids.push_back(Must(st->CreateDevice({org.id, name, std::nullopt, name}), "create device").id);
  }
  std::vector<std::vector<Reading>> batches;
  for (std::int64_t i = first; i < first + n; ++i) {
    if ((i - first) % batch == 0) {
      batches.emplace_back();
      batches.back().reserve(static_cast<std::size_t>(batch));
    }
    std::int64_t t = i / d.per_ts();
    auto s = static_cast<std::size_t>(i % d.per_ts());
    Reading r;
    r.device = ids[s / kMetrics];
    r.metric = kMetricNames[s % kMetrics];
    r.ts = d.Ts(t);
    r.value = d.cents[s][static_cast<std::size_t>(t)] / 100.0;
    batches.back().push_back(std::move(r));
  }
  const std::size_t nb = batches.size();
  std::int64_t accepted = 0;
  std::string first_error;
  double cpu0 = ProcessCpuSeconds();
  auto t0 = Clock::now();
  {
    InFlightSubmitter submitter(st.get(), org.id, inflight, nb, [&](std::size_t, const Result<IngestResult>& res) {
      if (!res) {
        if (first_error.empty()) first_error = res.error().ToString();
      } else {
        accepted += static_cast<std::int64_t>(res->accepted);
        if (!res->rejected.empty() && first_error.empty()) first_error = res->rejected[0].message;
      }
    });
    for (std::size_t i = 0; i < nb; ++i) submitter.Submit(std::move(batches[i]));
  }
  auto t1 = Clock::now();
  double cpu1 = ProcessCpuSeconds();
  st->Close();
  if (accepted != n) {
    throw std::runtime_error(fmt::format("writer: {} accepted of {}; first error: {}", accepted, n, first_error));
  }
  return WriterRun{when, batch, inflight, n, Seconds(t0, t1), cpu1 - cpu0};
}

// ---- child processes -----------------------------------------------------------------------

// Runs argv to completion (at most `timeout_s`), returning its stdout; throws with its stderr
// when it fails.
std::string RunCapture(const std::vector<std::string>& argv, const std::string& err_path, double timeout_s) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out[1], 1);
    if (err >= 0) dup2(err, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  std::string text;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  char buf[4096];
  bool timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    int pr = poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (pr < 0 && errno != EINTR) break;
    if (pr <= 0) continue;
    ssize_t k = read(out[0], buf, sizeof buf);
    if (k <= 0) break;
    text.append(buf, static_cast<std::size_t>(k));
  }
  close(out[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream f(err_path);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw std::runtime_error(fmt::format("`{}` {}: {}", cmd,
                                         timed_out ? "timed out" : fmt::format("exited with status {}", status),
                                         ss.str()));
  }
  return text;
}

// `opensense serve` as a child: its output (stdout and stderr) is drained by a thread, kept in
// memory (last lines) and optionally copied to a file.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& argv, const std::string& log_copy) {
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Dies with the driver (the forking thread is the main thread, which lives to the end).
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(126);
      dup2(out[1], 1);
      dup2(out[1], 2);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    fd_ = out[0];
    if (!log_copy.empty()) copy_.open(log_copy);
    reader_ = std::thread([this] { Drain(); });
  }
  ~ServerProcess() {
    if (!reaped_) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (reader_.joinable()) reader_.join();
    close(fd_);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  pid_t pid() const { return pid_; }

  // The listening address ("127.0.0.1:PORT"), or nullopt when the process ended or `timeout_s`
  // passed first.
  std::optional<std::string> WaitListening(double timeout_s) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return !address_.empty() || eof_; });
    if (address_.empty()) return std::nullopt;
    return address_;
  }

  // SIGTERM, then waits up to `timeout_s`; the exit status (-signal when killed by one), or
  // std::nullopt when it had to be killed.
  std::optional<int> Stop(double timeout_s) {
    kill(pid_, SIGTERM);
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    int status = 0;
    while (Clock::now() < deadline) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    reaped_ = true;
    return std::nullopt;
  }

  // Whether the process has exited (reaps it).
  bool Exited() {
    if (reaped_) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }

  std::string Tail(std::size_t lines = 30) {
    std::lock_guard lock(mu_);
    std::string out;
    std::size_t from = lines_.size() > lines ? lines_.size() - lines : 0;
    for (std::size_t i = from; i < lines_.size(); ++i) out += "  | " + lines_[i] + "\n";
    return out;
  }
  std::vector<std::string> LinesWith(std::string_view needle, std::size_t max) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& l : notable_) {
      if (l.find(needle) != std::string::npos && out.size() < max) out.push_back(l);
    }
    return out;
  }

 private:
  void Drain() {
    char buf[8192];
    std::string partial;
    for (;;) {
      ssize_t k = read(fd_, buf, sizeof buf);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) break;
      if (copy_.is_open()) copy_.write(buf, k);
      partial.append(buf, static_cast<std::size_t>(k));
      std::size_t nl;
      while ((nl = partial.find('\n')) != std::string::npos) {
        Line(partial.substr(0, nl));
        partial.erase(0, nl + 1);
      }
    }
    if (!partial.empty()) Line(partial);
    if (copy_.is_open()) copy_.flush();
    std::lock_guard lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }
  void Line(const std::string& line) {
    std::lock_guard lock(mu_);
    lines_.push_back(line);
    if (lines_.size() > 200) lines_.pop_front();
    // Warnings and errors are kept (up to a bound) for the report.
    // The server's lines are "<time> <level> <message>".
    {
      std::istringstream in(line);
      std::string when, level;
      in >> when >> level;
      if ((level.rfind("warn", 0) == 0 || level == "error" || level == "critical") && notable_.size() < 1000) {
        notable_.push_back(line);
      }
    }
    static const std::string kListening = "HTTP API listening on http://";
    auto at = line.find(kListening);
    if (at != std::string::npos && address_.empty()) {
      std::string rest = line.substr(at + kListening.size());
      auto end = rest.find_first_of(" \t\r/");
      address_ = rest.substr(0, end);
      cv_.notify_all();
    }
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
  std::ofstream copy_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;
  std::vector<std::string> notable_;
  std::string address_;
  bool eof_ = false;
};

struct Memory {
  std::string after;
  std::int64_t readings_posted = 0;
  std::int64_t rss_kb = 0, hwm_kb = 0, threads = 0;
};

Memory ReadMemory(pid_t pid, std::string after, std::int64_t posted) {
  Memory m{std::move(after), posted};
  std::ifstream f(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(f, line)) {
    long long v = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &v) == 1) m.rss_kb = v;
    if (std::sscanf(line.c_str(), "VmHWM: %lld kB", &v) == 1) m.hwm_kb = v;
    if (std::sscanf(line.c_str(), "Threads: %lld", &v) == 1) m.threads = v;
  }
  return m;
}

// CPU seconds (user + system) of another process so far.
double ProcCpuSeconds(pid_t pid) {
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close_paren = s.rfind(')');
  if (close_paren == std::string::npos) return 0;
  std::istringstream in(s.substr(close_paren + 2));
  std::string field;
  std::vector<std::string> fields;
  while (in >> field) fields.push_back(field);
  // fields[0] is state (field 3); utime is field 14, stime 15.
  if (fields.size() < 13) return 0;
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

// ---- HTTP --------------------------------------------------------------------------------------

using Headers = std::vector<std::pair<std::string, std::string>>;

Headers Auth(const std::string& token, const char* content_type = nullptr) {
  Headers h{{"Authorization", "Bearer " + token}};
  if (content_type != nullptr) h.emplace_back("Content-Type", content_type);
  return h;
}

json MustJson(Result<http::ClientResponse> r, int want, std::string_view what) {
  if (!r) throw std::runtime_error(fmt::format("{}: {}", what, r.error().ToString()));
  if (r->status != want) {
    throw std::runtime_error(fmt::format("{}: HTTP {} (want {}): {}", what, r->status, want, r->body.substr(0, 500)));
  }
  return json::parse(r->body);
}

struct LoadResult {
  std::string name;
  int batch = 0;  // readings per request
  int clients = 0;
  std::int64_t readings = 0;   // accepted
  std::int64_t duplicates = 0;
  std::int64_t requests = 0;   // answered 200
  std::int64_t retried = 0;    // 429/503 answers (retried)
  std::int64_t failed = 0;     // other answers or transport errors
  std::int64_t connections = 0;
  double seconds = 0;
  double server_cpu_s = 0;
  double driver_cpu_s = 0;  // this process (the clients)
  bool timed_out = false;
  std::string first_error;
  std::vector<double> latency_ms;  // answered-200 requests
  double rate() const { return seconds > 0 ? static_cast<double>(readings) / seconds : 0; }
  double req_rate() const { return seconds > 0 ? static_cast<double>(requests) / seconds : 0; }
};

// `clients` threads, each with one KeepAliveClient, take request numbers 0..n-1 in order and post
// body_of(i) with tokens[thread % tokens.size()]; `expect` readings per request.
LoadResult RunLoad(std::string name, const std::string& addr, pid_t server, const std::vector<std::string>& tokens,
                   int clients, std::int64_t n, int expect, const std::function<std::string(std::int64_t)>& body_of,
                   double timeout_s, double stop_after_s = 0) {
  LoadResult res;
  res.name = std::move(name);
  res.batch = expect;
  res.clients = clients;
  std::atomic<std::int64_t> next{0};
  std::mutex mu;
  std::atomic<bool> timed_out{false};
  double cpu0 = ProcCpuSeconds(server);
  double dcpu0 = ProcessCpuSeconds();
  auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      http::KeepAliveClient client(addr);
      const std::string& token = tokens[static_cast<std::size_t>(c) % tokens.size()];
      std::vector<double> lat;
      std::int64_t readings = 0, dups = 0, ok = 0, retried = 0, failed = 0;
      std::string first_error;
      for (;;) {
        double elapsed = Seconds(t0, Clock::now());
        if (stop_after_s > 0 && elapsed >= stop_after_s) break;
        if (elapsed >= timeout_s) {
          timed_out = true;
          break;
        }
        std::int64_t i = next.fetch_add(1);
        if (i >= n) break;
        std::string body = body_of(i);
        for (int attempt = 0;; ++attempt) {
          auto a = Clock::now();
          auto r = client.Send("POST", "/api/v1/ingest?precision=ms", Auth(token, "text/plain"), body,
                               std::chrono::seconds(60));
          auto b = Clock::now();
          if (r && (r->status == 429 || r->status == 503) && attempt < 10000 &&
              Seconds(t0, b) < timeout_s) {
            ++retried;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
          }
          if (!r || r->status != 200) {
            ++failed;
            if (first_error.empty()) {
              first_error = !r ? r.error().ToString() : fmt::format("HTTP {}: {}", r->status, r->body.substr(0, 300));
            }
            break;
          }
          auto j = json::parse(r->body, nullptr, false);
          std::int64_t acc = j.is_object() ? j.value("accepted", std::int64_t{-1}) : -1;
          std::int64_t dup = j.is_object() ? j.value("duplicates", std::int64_t{0}) : 0;
          if (acc + dup != expect) {
            ++failed;
            if (first_error.empty()) first_error = fmt::format("answer {} for {} readings", r->body.substr(0, 200), expect);
          }
          ++ok;
          readings += std::max<std::int64_t>(acc, 0);
          dups += dup;
          lat.push_back(std::chrono::duration<double, std::milli>(b - a).count());
          break;
        }
      }
      std::lock_guard lock(mu);
      res.latency_ms.insert(res.latency_ms.end(), lat.begin(), lat.end());
      res.readings += readings;
      res.duplicates += dups;
      res.requests += ok;
      res.retried += retried;
      res.failed += failed;
      res.connections += client.connections_opened();
      if (res.first_error.empty()) res.first_error = first_error;
    });
  }
  for (auto& t : threads) t.join();
  res.seconds = Seconds(t0, Clock::now());
  res.server_cpu_s = ProcCpuSeconds(server) - cpu0;
  res.driver_cpu_s = ProcessCpuSeconds() - dcpu0;
  res.timed_out = timed_out;
  return res;
}

// ---- options ---------------------------------------------------------------------------------

void Usage() {
  std::cerr << "usage: http_bench [--binary build/release/opensense] [--dir /tmp] [--clients 16]\n"
               "                  [--readings 2000000] [--total-readings 10000000] [--single-seconds 10]\n"
               "                  [--queries 200] [--rate-per-token 1000000 | --no-rate-flag]\n"
               "                  [--gateway-tokens N] [--cases writer,a,b,fill,c,d] [--case-timeout 600]\n"
               "                  [--json FILE] [--server-log FILE] [--pause-before-stop SECONDS]\n";
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
    if (a == "--binary") o.binary = next();
    else if (a == "--dir") o.dir = next();
    else if (a == "--clients") o.clients = std::stoi(next());
    else if (a == "--readings") o.readings = std::stoll(next());
    else if (a == "--total-readings") o.total_readings = std::stoll(next());
    else if (a == "--single-seconds") o.single_seconds = std::stod(next());
    else if (a == "--queries") o.queries = std::stoi(next());
    else if (a == "--rate-per-token") o.rate_per_token = std::stoll(next());
    else if (a == "--no-rate-flag") o.rate_flag = false;
    else if (a == "--gateway-tokens") o.gateway_tokens = std::stoi(next());
    else if (a == "--case-timeout") o.case_timeout_s = std::stod(next());
    else if (a == "--pause-before-stop") o.pause_before_stop_s = std::stod(next());
    else if (a == "--json") o.json_path = next();
    else if (a == "--server-log") o.server_log = next();
    else if (a == "--cases") {
      std::string v = next() + ",";
      o.case_writer = o.case_a = o.case_b = o.case_fill = o.case_c = o.case_d = false;
      for (std::size_t at = 0, comma; (comma = v.find(',', at)) != std::string::npos; at = comma + 1) {
        std::string c = v.substr(at, comma - at);
        if (c == "writer") o.case_writer = true;
        else if (c == "a") o.case_a = true;
        else if (c == "b") o.case_b = true;
        else if (c == "fill") o.case_fill = true;
        else if (c == "c") o.case_c = true;
        else if (c == "d") o.case_d = true;
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
  // Batches hold whole lines (both metrics of a device) and whole 100-reading requests.
  if (o.clients < 1 || o.clients > 1024 || o.devices < 1 || o.readings < 1000 || o.readings % 1000 != 0 ||
      o.total_readings % 1000 != 0 || o.queries < 1 || o.single_seconds <= 0 || o.case_timeout_s <= 0) {
    Usage();
    std::exit(2);
  }
  return o;
}

std::string Ms(double v) { return v >= 100 ? fmt::format("{:.0f}", v) : v >= 10 ? fmt::format("{:.1f}", v) : fmt::format("{:.2f}", v); }
std::string MiB(std::int64_t kb) { return fmt::format("{:.1f} MiB", static_cast<double>(kb) / 1024.0); }

// ---- main ------------------------------------------------------------------------------------

int Main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  if (access(o.binary.c_str(), X_OK) != 0) throw std::runtime_error("no executable at --binary " + o.binary);
  const std::string binary = std::filesystem::absolute(o.binary).string();
  const int gw_tokens = o.gateway_tokens > 0 ? o.gateway_tokens : o.clients;
  auto progress = [](const std::string& s) { std::cerr << "[http_bench] " << s << std::endl; };

  auto loadavg = [] {
    std::ifstream f("/proc/loadavg");
    std::string a, b, c;
    f >> a >> b >> c;
    return a + " " + b + " " + c;
  };
  const std::string load_start = loadavg();
  SystemClock clock;
  const TimestampMs now0 = clock.NowMs();
  // 30 days ago on the minute; the warm-up uses the minute before.
  const TimestampMs start = (now0 - 30 * kMsPerDay) / kSpacing * kSpacing;
  const std::int64_t per_ts = static_cast<std::int64_t>(o.devices) * kMetrics;
  const std::int64_t a_first = 0, b_first = o.case_a ? o.readings : 0;
  std::int64_t fill_first = b_first + (o.case_b ? o.readings : 0);
  std::int64_t fill_n = o.case_fill ? std::max<std::int64_t>(0, o.total_readings - fill_first) : 0;
  // Round the fill to whole 1,000-reading requests.
  fill_n = fill_n / 1000 * 1000;
  const std::int64_t total_stream = fill_first + fill_n;
  const int timestamps = static_cast<int>(std::max<std::int64_t>(total_stream, o.readings) / per_ts + 2);
  if (start + timestamps * kSpacing > now0) throw std::runtime_error("too many readings for 30 days at 60 s spacing");
  progress(fmt::format("generating data: {} devices x {} metrics x {} timestamps", o.devices, kMetrics, timestamps));
  Data d = MakeData(o.devices, timestamps, start);

  json out;
  out["options"] = {{"binary", binary},       {"clients", o.clients},         {"devices", o.devices},
                    {"readings", o.readings}, {"total_readings", o.total_readings},
                    {"single_seconds", o.single_seconds}, {"queries", o.queries},
                    {"rate_per_token", o.rate_flag ? json(o.rate_per_token) : json(nullptr)},
                    {"gateway_tokens", gw_tokens}};

  // ---- writer, before ----
  std::vector<WriterRun> writer;
  auto run_writers = [&](const std::string& when) {
    if (!o.case_writer) return;
    for (int batch : {1000, 100}) {
      if ((batch == 1000 && !o.case_a) || (batch == 100 && !o.case_b)) continue;
      for (int inflight : {16, 4}) {
        progress(fmt::format("writer ({}): batches of {}, {} in flight", when, batch, inflight));
        writer.push_back(RunWriter(o, d, batch == 1000 ? a_first : b_first, o.readings, batch, inflight, when));
        progress(fmt::format("  {} readings/s", Rate(writer.back().rate())));
      }
    }
  };
  run_writers("before");

  // ---- server ----
  TempDir dir(o.dir, "opensense-httpbench-");
  const std::string data_dir = dir.path() + "/data";
  std::filesystem::create_directories(data_dir);
  progress("org create (CLI)");
  json org = json::parse(RunCapture({binary, "org", "create", "--name", "B", "--tier", "enterprise", "--json",
                                     "--data-dir", data_dir},
                                    dir.path() + "/cli.err", 120));
  out["org"] = org.at("id");
  const std::string owner = org.at("token").get<std::string>();

  std::vector<std::string> base_args = {binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir};
  std::vector<std::string> args = base_args;
  if (o.rate_flag) {
    for (const char* f : {"--ingest-rate-per-token", "--ingest-burst-per-token"}) {
      args.push_back(f);
      args.push_back(std::to_string(o.rate_per_token));
    }
  }
  std::string rate_note;
  std::string command;
  auto start_server = [&](const std::vector<std::string>& a) {
    command.clear();
    for (const auto& x : a) command += (command.empty() ? "" : " ") + x;
    progress("starting: " + command);
    return std::make_unique<ServerProcess>(a, o.server_log);
  };
  auto server = start_server(args);
  auto addr = server->WaitListening(60);
  if (!addr && o.rate_flag) {
    std::string tail = server->Tail(10);
    server->Stop(10);
    rate_note = "the binary refused --ingest-rate-per-token/--ingest-burst-per-token; ran with the default "
                "per-token limit (50 req/s, burst 200) and one token per client. Server said:\n" + tail;
    progress(rate_note);
    server = start_server(base_args);
    addr = server->WaitListening(60);
  } else if (o.rate_flag) {
    rate_note = fmt::format("per-token ingest limit raised with --ingest-rate-per-token {0} --ingest-burst-per-token {0}",
                            o.rate_per_token);
  } else {
    rate_note = "default per-token ingest limit (50 req/s, burst 200)";
  }
  if (!addr) throw std::runtime_error("the server did not start listening:\n" + server->Tail());
  const pid_t pid = server->pid();
  progress(fmt::format("server pid {} listening on {}", pid, *addr));
  std::vector<Memory> memory;
  memory.push_back(ReadMemory(pid, "start (empty store)", 0));

  http::KeepAliveClient admin(*addr);
  json site = MustJson(admin.Send("POST", "/api/v1/sites", Auth(owner, "application/json"),
                                  R"({"name":"bench","auto_register":true})"),
                       201, "create site");
  const std::int64_t site_id = site.at("id").get<std::int64_t>();
  std::vector<std::string> gateway;
  for (int i = 0; i < gw_tokens; ++i) {
    json t = MustJson(admin.Send("POST", fmt::format("/api/v1/sites/{}/token", site_id),
                                 Auth(owner, "application/json"), R"({"grace_seconds":2592000})"),
                      200, "gateway token");
    gateway.push_back(t.at("token").get<std::string>());
  }
  progress(fmt::format("site {} with {} gateway token(s)", site_id, gateway.size()));

  // Warm-up: registers the devices (one line per device at the minute before the data; posted
  // one request after another) and puts every gateway token in the server's cache.
  {
    auto t0 = Clock::now();
    const std::int64_t lines_per_post = 500;
    for (std::int64_t dev0 = 0; dev0 < o.devices; dev0 += lines_per_post) {
      std::string body;
      for (std::int64_t k = dev0; k < std::min<std::int64_t>(o.devices, dev0 + lines_per_post); ++k) {
        body += fmt::format("r,device=dev-{} temperature=", k);
        AppendCents(body, d.cents[static_cast<std::size_t>(k * kMetrics)][0]);
        body += ",humidity=";
        AppendCents(body, d.cents[static_cast<std::size_t>(k * kMetrics + 1)][0]);
        body += fmt::format(" {}\n", start - kSpacing);
      }
      MustJson(admin.Send("POST", "/api/v1/ingest?precision=ms", Auth(gateway[0], "text/plain"), body,
                          std::chrono::seconds(120)),
               200, "warm-up post");
    }
    out["warmup_register_s"] = Seconds(t0, Clock::now());
    progress(fmt::format("warm-up: {} devices registered in {:.2f} s", o.devices, Seconds(t0, Clock::now())));
    for (const auto& g : gateway) {
      MustJson(admin.Send("POST", "/api/v1/ingest?precision=ms", Auth(g, "text/plain"),
                          fmt::format("r,device=dev-0 temperature=20.00 {}\n", start - kSpacing)),
               200, "token warm-up");
    }
  }

  // ---- D, first part: a year of 5-minute readings of one device, queried while they are in
  // the head (just posted) and again at the end ----
  json query_out = json::array();
  std::int64_t year_id = 0, year_posted = 0;
  double year_post_s = 0;
  auto head_readings = [&]() -> std::int64_t {
    auto m = admin.Send("GET", "/metrics", {});
    if (!m || m->status != 200) return -1;
    auto at = m->body.find("\nopensense_store_head_readings ");
    if (at == std::string::npos) return -1;
    return std::stoll(m->body.substr(at + std::strlen("\nopensense_store_head_readings ")));
  };
  auto query_year = [&](const std::string& label) {
    const TimestampMs q_to = clock.NowMs();
    const TimestampMs q_from = q_to - 365 * kMsPerDay;
    std::string target = fmt::format("/api/v1/devices/{}/series?metric=temperature&from={}&to={}&resolution=auto",
                                     year_id, q_from, q_to);
    std::int64_t head = head_readings();
    http::KeepAliveClient qc(*addr);
    json first = MustJson(qc.Send("GET", target, Auth(owner)), 200, "series warm-up");
    std::vector<double> lat;
    std::size_t bytes = 0;
    double cpu0 = ProcCpuSeconds(pid);
    auto q0 = Clock::now();
    for (int i = 0; i < o.queries && Seconds(q0, Clock::now()) < o.case_timeout_s; ++i) {
      auto a = Clock::now();
      auto r = qc.Send("GET", target, Auth(owner));
      auto b = Clock::now();
      if (!r || r->status != 200) {
        throw std::runtime_error(fmt::format("series query: {}", !r ? r.error().ToString() : std::to_string(r->status)));
      }
      bytes = r->body.size();
      lat.push_back(std::chrono::duration<double, std::milli>(b - a).count());
    }
    double q_s = Seconds(q0, Clock::now());
    double q_cpu = ProcCpuSeconds(pid) - cpu0;
    std::size_t points = first.at("points").size();
    std::int64_t count_sum = 0;
    for (const auto& p : first.at("points")) count_sum += p.value("count", std::int64_t{0});
    query_out.push_back({{"when", label},
                         {"device", year_id},
                         {"head_readings", head},
                         {"resolution", first.at("resolution")},
                         {"points", points},
                         {"readings_covered", count_sum},
                         {"response_bytes", bytes},
                         {"queries", lat.size()},
                         {"seconds", q_s},
                         {"server_cpu_s", q_cpu},
                         {"p50_ms", Percentile(lat, 50)},
                         {"p99_ms", Percentile(lat, 99)},
                         {"min_ms", lat.empty() ? 0 : *std::min_element(lat.begin(), lat.end())},
                         {"max_ms", lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end())}});
    progress(fmt::format("D ({}): {} queries, p50 {} ms, p99 {} ms, {} points at {}; head {} readings", label,
                         lat.size(), Ms(Percentile(lat, 50)), Ms(Percentile(lat, 99)), points,
                         first.at("resolution").get<std::string>(), head));
  };
  if (o.case_d) {
    const TimestampMs now = clock.NowMs();
    const TimestampMs step = 5 * kMsPerMinute;
    const TimestampMs y_first = ((now - 365 * kMsPerDay) / step + 1) * step;
    std::vector<TimestampMs> ts;
    for (TimestampMs t = y_first; t < now; t += step) ts.push_back(t);
    progress(fmt::format("D: posting {} 5-minute readings of one device (a year) in batches of 10,000",
                         Thousands(static_cast<std::int64_t>(ts.size()))));
    auto t0 = Clock::now();
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int> stepv(-10, 10);
    std::int32_t cents = 400;
    for (std::size_t i = 0; i < ts.size(); i += 10000) {
      std::string body;
      for (std::size_t k = i; k < std::min(ts.size(), i + 10000); ++k) {
        body += "r,device=year-0 temperature=";
        AppendCents(body, cents);
        cents = std::clamp(cents + stepv(rng), 100, 800);
        body += fmt::format(" {}\n", ts[k]);
      }
      json j = MustJson(admin.Send("POST", "/api/v1/ingest?precision=ms", Auth(gateway[0], "text/plain"), body,
                                   std::chrono::seconds(120)),
                        200, "year post");
      year_posted += j.at("accepted").get<std::int64_t>();
    }
    year_post_s = Seconds(t0, Clock::now());
    json devs = MustJson(admin.Send("GET", "/api/v1/devices", Auth(owner)), 200, "list devices");
    for (const auto& dv : devs) {
      if (dv.at("name") == "year-0") year_id = dv.at("id").get<std::int64_t>();
    }
    if (year_id == 0) throw std::runtime_error("device year-0 not found after posting");
    query_year("just posted (the year is in the head)");
  }

  std::vector<LoadResult> loads;
  auto batch_body = [&](std::int64_t first, int batch) {
    return [&d, first, batch](std::int64_t i) { return LineBatch(d, first + i * batch, batch); };
  };
  std::int64_t posted = year_posted;
  auto report_load = [&](const LoadResult& r) {
    progress(fmt::format("  {}: {} readings in {:.2f} s = {} readings/s, {} req/s, p50 {} ms, p99 {} ms, {} retried "
                         "(429/503), {} failed{}",
                         r.name, Thousands(r.readings), r.seconds, Rate(r.rate()), Rate(r.req_rate()),
                         Ms(Percentile(r.latency_ms, 50)), Ms(Percentile(r.latency_ms, 99)), r.retried, r.failed,
                         r.first_error.empty() ? "" : "; first error: " + r.first_error));
  };
  // Prebuilt bodies for A and B (so the clients only send).
  auto run_case = [&](const std::string& name, std::int64_t first, std::int64_t n, int batch) {
    progress(fmt::format("{}: building {} bodies of {} readings", name, n / batch, batch));
    std::vector<std::string> bodies(static_cast<std::size_t>(n / batch));
    for (std::size_t i = 0; i < bodies.size(); ++i) bodies[i] = LineBatch(d, first + static_cast<std::int64_t>(i) * batch, batch);
    progress(fmt::format("{}: {} clients posting", name, o.clients));
    auto r = RunLoad(name, *addr, pid, gateway, o.clients, static_cast<std::int64_t>(bodies.size()), batch,
                     [&](std::int64_t i) { return bodies[static_cast<std::size_t>(i)]; }, o.case_timeout_s);
    report_load(r);
    posted += r.readings;
    loads.push_back(std::move(r));
    memory.push_back(ReadMemory(pid, "case " + name, posted));
  };
  if (o.case_a) run_case("A", a_first, o.readings, 1000);
  if (o.case_b) run_case("B", b_first, o.readings, 100);
  if (fill_n > 0) {
    progress(fmt::format("fill: {} more readings in batches of 1,000 (bodies built by the clients)", Thousands(fill_n)));
    auto r = RunLoad("fill", *addr, pid, gateway, o.clients, fill_n / 1000, 1000, batch_body(fill_first, 1000),
                     o.case_timeout_s);
    report_load(r);
    posted += r.readings;
    loads.push_back(std::move(r));
    std::int64_t abf = 0;
    for (const auto& x : loads) abf += x.readings;
    memory.push_back(ReadMemory(pid, fmt::format("fill: {} readings posted by A, B and fill", Thousands(abf)), posted));
  }

  // ---- C: single-reading posts with device tokens ----
  if (o.case_c) {
    std::vector<std::string> device_tokens;
    for (int c = 0; c < o.clients; ++c) {
      json dev = MustJson(admin.Send("POST", "/api/v1/devices", Auth(owner, "application/json"),
                                     json({{"name", fmt::format("single-{}", c)}, {"site", site_id}}).dump()),
                          201, "create device");
      device_tokens.push_back(dev.at("token").get<std::string>());
    }
    // Each client's device: timestamps 1 s apart from 30 days ago (never duplicates); one post
    // per token first so the token is verified (bcrypt) and cached before timing.
    const TimestampMs c_start = start + 1;
    for (const auto& t : device_tokens) {
      MustJson(admin.Send("POST", "/api/v1/ingest?precision=ms", Auth(t, "text/plain"),
                          fmt::format("r temperature=20.00 {}\n", c_start - kMsPerSecond)),
               200, "device token warm-up");
    }
    progress(fmt::format("C: {} clients, single-reading posts for {} s", o.clients, o.single_seconds));
    // A dedicated loop (the token and timestamps are per client).
    LoadResult r;
    r.name = "C";
    r.batch = 1;
    r.clients = o.clients;
    std::mutex mu;
    double cpu0 = ProcCpuSeconds(pid);
    double dcpu0 = ProcessCpuSeconds();
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < o.clients; ++c) {
      threads.emplace_back([&, c] {
        http::KeepAliveClient client(*addr);
        std::vector<double> lat;
        std::int64_t ok = 0, retried = 0, failed = 0, acc_sum = 0;
        std::string first_error;
        for (std::int64_t k = 0; Seconds(t0, Clock::now()) < o.single_seconds; ++k) {
          std::int32_t cents = 400 + static_cast<std::int32_t>((k * 7 + c) % 50);
          std::string body = "r temperature=";
          AppendCents(body, cents);
          body += fmt::format(" {}\n", c_start + k * kMsPerSecond);
          auto a = Clock::now();
          auto res = client.Send("POST", "/api/v1/ingest?precision=ms",
                                 Auth(device_tokens[static_cast<std::size_t>(c)], "text/plain"), body,
                                 std::chrono::seconds(60));
          auto b = Clock::now();
          if (res && (res->status == 429 || res->status == 503)) {
            ++retried;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            --k;  // the same timestamp again
            continue;
          }
          if (!res || res->status != 200 || res->body.find("\"accepted\":1") == std::string::npos) {
            ++failed;
            if (first_error.empty()) {
              first_error = !res ? res.error().ToString() : fmt::format("HTTP {}: {}", res->status, res->body.substr(0, 300));
            }
            continue;
          }
          ++ok;
          ++acc_sum;
          lat.push_back(std::chrono::duration<double, std::milli>(b - a).count());
        }
        std::lock_guard lock(mu);
        r.latency_ms.insert(r.latency_ms.end(), lat.begin(), lat.end());
        r.requests += ok;
        r.readings += acc_sum;
        r.retried += retried;
        r.failed += failed;
        r.connections += client.connections_opened();
        if (r.first_error.empty()) r.first_error = first_error;
      });
    }
    for (auto& t : threads) t.join();
    r.seconds = Seconds(t0, Clock::now());
    r.server_cpu_s = ProcCpuSeconds(pid) - cpu0;
    r.driver_cpu_s = ProcessCpuSeconds() - dcpu0;
    report_load(r);
    loads.push_back(std::move(r));
  }

  // ---- D, second part: the year again, now that the readings posted since have flushed the head ----
  if (o.case_d) {
    // The head only grows between flushes, and a flush takes all of it: fewer readings in the head
    // than were posted since the year means the year has left the head.
    std::int64_t since = 0;
    for (const auto& x : loads) since += x.readings;
    std::int64_t head = head_readings();
    query_year(head >= 0 && head < since ? "after A, B, fill, C (a head flush ran since: the year is in chunks)"
                                         : "after A, B, fill, C (no head flush since: the year may still be in the head)");
  }
  memory.push_back(ReadMemory(pid, "all cases", posted));

  // Server-side counters.
  std::map<std::string, std::string> counters;
  {
    auto m = admin.Send("GET", "/metrics", {});
    if (m && m->status == 200) {
      std::istringstream in(m->body);
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        if (line.rfind("opensense_ingest", 0) == 0 || line.rfind("opensense_store", 0) == 0 ||
            line.rfind("opensense_writer", 0) == 0 || line.rfind("opensense_http_requests_total", 0) == 0) {
          auto sp = line.rfind(' ');
          counters[line.substr(0, sp)] = line.substr(sp + 1);
        }
      }
    }
  }
  if (o.pause_before_stop_s > 0) {
    progress(fmt::format("pausing {} s before stopping the server (pid {})", o.pause_before_stop_s, pid));
    std::this_thread::sleep_for(std::chrono::duration<double>(o.pause_before_stop_s));
  }
  progress("stopping the server (SIGTERM)");
  auto stop0 = Clock::now();
  auto code = server->Stop(120);
  double stop_s = Seconds(stop0, Clock::now());
  std::vector<std::string> warnings = server->LinesWith("", 20);
  std::string tail = server->Tail(8);
  server.reset();

  // ---- writer, after ----
  run_writers("after");

  // ---- report ----
  auto writer_rate = [&](int batch, int inflight) {
    std::vector<double> v;
    for (const auto& w : writer) {
      if (w.batch == batch && w.inflight == inflight) v.push_back(w.rate());
    }
    if (v.empty()) return 0.0;
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
  };
  std::cout << fmt::format("### HTTP: {} clients, 1,000 devices x 2 metrics, line protocol, gateway token{}\n\n",
                           o.clients, gateway.size() > 1 ? fmt::format("s ({} tokens, one per client)", gateway.size()) : "");
  std::cout << fmt::format("Server: `{}` (pid {}; `--data-dir` on {}); {}. Load average at start {}, at end {} "
                           "({} CPUs; the driver's clients share them with the server).\n\n",
                           command, pid, o.dir, rate_note, load_start, loadavg(), std::thread::hardware_concurrency());
  std::cout << "| case | readings/request | readings | requests | time s | readings/s | requests/s | p50 ms | p99 ms | "
               "max ms | writer readings/s (16 in flight) | ratio | server CPU | driver CPU | notes |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  json loads_json = json::array();
  for (const auto& r : loads) {
    double w = r.name == "A" ? writer_rate(1000, 16) : r.name == "B" ? writer_rate(100, 16) : 0;
    double lmax = r.latency_ms.empty() ? 0 : *std::max_element(r.latency_ms.begin(), r.latency_ms.end());
    std::string notes = fmt::format("{} connections", r.connections);
    if (r.retried > 0) notes += fmt::format("; {} answers 429/503 (retried after 20 ms)", Thousands(r.retried));
    if (r.failed > 0) notes += fmt::format("; {} FAILED, first: {}", r.failed, r.first_error);
    if (r.duplicates > 0) notes += fmt::format("; {} duplicates", r.duplicates);
    if (r.timed_out) notes += "; STOPPED at --case-timeout";
    if (r.name == "C") notes += "; one device token per client, `r temperature=X <ms>`";
    std::cout << fmt::format("| {} | {} | {} | {} | {:.2f} | {} | {} | {} | {} | {} | {} | {} | {:.1f} s ({:.0f}%) | {:.1f} s ({:.0f}%) | {} |\n",
                             r.name, Thousands(r.batch), Thousands(r.readings), Thousands(r.requests), r.seconds,
                             Rate(r.rate()), Rate(r.req_rate()), Ms(Percentile(r.latency_ms, 50)),
                             Ms(Percentile(r.latency_ms, 99)), Ms(lmax), w > 0 ? Rate(w) : "-",
                             w > 0 ? fmt::format("{:.3f}", r.rate() / w) : "-", r.server_cpu_s,
                             100 * r.server_cpu_s / std::max(r.seconds, 1e-9), r.driver_cpu_s,
                             100 * r.driver_cpu_s / std::max(r.seconds, 1e-9), notes);
    loads_json.push_back({{"case", r.name},           {"batch", r.batch},
                          {"clients", r.clients},     {"readings", r.readings},
                          {"requests", r.requests},   {"seconds", r.seconds},
                          {"readings_per_s", r.rate()}, {"requests_per_s", r.req_rate()},
                          {"p50_ms", Percentile(r.latency_ms, 50)}, {"p99_ms", Percentile(r.latency_ms, 99)},
                          {"max_ms", lmax},           {"retried", r.retried},
                          {"failed", r.failed},       {"first_error", r.first_error},
                          {"writer_readings_per_s", w}, {"ratio", w > 0 ? r.rate() / w : 0.0},
                          {"server_cpu_s", r.server_cpu_s}, {"driver_cpu_s", r.driver_cpu_s},
                          {"timed_out", r.timed_out}});
  }
  out["loads"] = loads_json;
  for (const auto& r : loads) {
    if (r.name == "A" && writer_rate(1000, 16) > 0) {
      double ratio = r.rate() / writer_rate(1000, 16);
      std::cout << fmt::format("\nTarget: HTTP with 1,000-reading batches >= 0.6 of the writer: **{:.3f}** ({}).\n",
                               ratio, ratio >= 0.6 ? "met" : "NOT met");
    }
  }
  if (!writer.empty()) {
    std::cout << "\n**Writer in this process** (Store::Ingest, synchronous=FULL, fresh store, same devices and "
                 "batches as A/B, one producer; timed to the last completion, no final Compact). The ratio above "
                 "uses the mean of `before` and `after` with 16 in flight; the server runs 4 handler threads, so "
                 "it never has more than 4 batches in the writer's queue (4 in flight shown for that).\n\n"
                 "| when | batch | in flight | readings | time s | readings/s | CPU s |\n|---|---:|---:|---:|---:|---:|---:|\n";
    json wj = json::array();
    for (const auto& w : writer) {
      std::cout << fmt::format("| {} | {} | {} | {} | {:.2f} | {} | {:.1f} |\n", w.when, Thousands(w.batch), w.inflight,
                               Thousands(w.readings), w.seconds, Rate(w.rate()), w.cpu_s);
      wj.push_back({{"when", w.when}, {"batch", w.batch}, {"inflight", w.inflight}, {"readings", w.readings},
                    {"seconds", w.seconds}, {"readings_per_s", w.rate()}, {"cpu_s", w.cpu_s}});
    }
    out["writer"] = wj;
  }
  if (!query_out.empty()) {
    std::cout << fmt::format(
        "\n**One-year `auto` series query** (device {} `year-0`: {} 5-minute temperature readings posted over HTTP "
        "in batches of 10,000 in {:.1f} s, right after the warm-up; each row: one warm-up query, then {} sequential "
        "GETs on one keep-alive connection with the owner token)\n\n"
        "| when | head readings | resolution | points | readings covered | response bytes | p50 ms | p99 ms | min ms "
        "| max ms | server CPU per query |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        year_id, Thousands(year_posted), year_post_s, o.queries);
    for (const auto& q : query_out) {
      std::cout << fmt::format(
          "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2f} ms |\n", q["when"].get<std::string>(),
          Thousands(q["head_readings"].get<std::int64_t>()), q["resolution"].get<std::string>(),
          q["points"].get<std::size_t>(), Thousands(q["readings_covered"].get<std::int64_t>()),
          Thousands(static_cast<std::int64_t>(q["response_bytes"].get<std::size_t>())), Ms(q["p50_ms"].get<double>()),
          Ms(q["p99_ms"].get<double>()), Ms(q["min_ms"].get<double>()), Ms(q["max_ms"].get<double>()),
          1000 * q["server_cpu_s"].get<double>() / std::max<double>(1.0, static_cast<double>(q["queries"].get<std::size_t>())));
    }
    out["query"] = query_out;
    out["year_posted"] = year_posted;
    out["year_post_s"] = year_post_s;
  }
  std::cout << "\n**Server memory** (/proc/PID/status)\n\n| after | readings posted | VmRSS | VmHWM | threads |\n"
               "|---|---:|---:|---:|---:|\n";
  json mj = json::array();
  for (const auto& m : memory) {
    std::cout << fmt::format("| {} | {} | {} | {} | {} |\n", m.after, Thousands(m.readings_posted), MiB(m.rss_kb),
                             MiB(m.hwm_kb), m.threads);
    mj.push_back({{"after", m.after}, {"readings_posted", m.readings_posted}, {"rss_kb", m.rss_kb},
                  {"hwm_kb", m.hwm_kb}, {"threads", m.threads}});
  }
  out["memory"] = mj;
  std::cout << fmt::format("\nWarm-up (auto-registering {} devices, 2 posts of 500 lines): {:.2f} s. ", o.devices,
                           out["warmup_register_s"].get<double>());
  std::cout << fmt::format("Server stop (SIGTERM): {} after {:.2f} s.\n",
                           code ? fmt::format("exit status {}", *code) : std::string("did NOT exit; killed"), stop_s);
  if (!counters.empty()) {
    std::cout << "\n<details><summary>server counters at the end (/metrics)</summary>\n\n```\n";
    for (const auto& [k, v] : counters) std::cout << k << " " << v << "\n";
    std::cout << "```\n</details>\n";
  }
  if (!warnings.empty()) {
    std::cout << "\nServer warnings/errors (first 20):\n\n```\n";
    for (const auto& w : warnings) std::cout << w << "\n";
    std::cout << "```\n";
  }
  std::cout.flush();
  out["server_exit"] = code ? json(*code) : json(nullptr);
  out["counters"] = counters;
  out["rate_note"] = rate_note;
  if (!o.json_path.empty()) std::ofstream(o.json_path) << out.dump(2) << "\n";
  if (!code || *code != 0) {
    std::cerr << "http_bench: the server did not exit 0 on SIGTERM; last output:\n" << tail;
    return 1;
  }
  for (const auto& r : loads) {
    if (r.failed > 0 || r.timed_out) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace opensense::bench

int main(int argc, char** argv) {
  try {
    return opensense::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "http_bench: " << e.what() << "\n";
    return 1;
  }
}
