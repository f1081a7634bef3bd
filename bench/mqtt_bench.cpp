// MQTT ingest throughput (issue 4): readings per second from 100 publishing devices through a
// real Mosquitto (started from deploy/mosquitto/mosquitto.conf with the OpenSense plugin,
// tests/mosquitto_fixture.hpp) into the store, as a ratio to a bare subscriber that only counts,
// through the same broker in the same run.
//
//   baseline  a libmosquitto subscriber (QoS 1, service credential) that counts messages; it
//             acknowledges before its callback and stores nothing: what the broker delivers.
//   store     `opensense serve` with MQTT ingest: our subscriber parses (SenML), group-commits
//             (synchronous=FULL) and acknowledges after the commit; the rate is measured until
//             the store has committed every reading (/metrics opensense_mqtt_readings_stored_total).
//
// Each phase publishes the same messages (--messages per device, 4 readings each: temperature,
// humidity, battery, door, as the fridge model sends) from --devices publishers (libmosquitto,
// QoS 1, each with its device id and token), as fast as the broker takes them.
//
//   mqtt_bench [--devices 100] [--messages 500] [--runs 2]
//
// Bounded: devices x messages x runs messages; every phase also stops after 120 s.
#include <arpa/inet.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/http/client.hpp"
#include "mosquitto_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kSecret[] = "bench-hook-secret";
constexpr char kServicePassword[] = "bench-service-password";
constexpr int kReadingsPerMessage = 4;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// `opensense` in a temp dir: the CLI, and serve on a fixed loopback port (the plugin's hook).
class OpenSense {
 public:
  explicit OpenSense(std::string listen) : listen_(std::move(listen)) {
    dir_ = fs::temp_directory_path() / ("opensense-mqtt-bench-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~OpenSense() {
    Stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  json Cli(std::vector<std::string> args) {
    args.insert(args.end(), {"--data-dir", (dir_ / "data").string(), "--json"});
    pid_t pid = Spawn(args, dir_ / "cli.out");
    int status = 0;
    ::waitpid(pid, &status, 0);
    return json::parse(ReadAll(dir_ / "cli.out"), nullptr, false);
  }
  bool Start(const std::string& mqtt_url) {
    std::vector<std::string> args = {"serve", "--roles", "api,ingest", "--listen", listen_, "--data-dir",
                                     (dir_ / "data").string()};
    if (!mqtt_url.empty()) args.insert(args.end(), {"--mqtt-url", mqtt_url});
    const fs::path log = dir_ / "serve.log";
    pid_ = Spawn(args, log);
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      const std::string text = ReadAll(log);
      if (text.find("listening on") != std::string::npos &&
          (mqtt_url.empty() || text.find("subscribed to") != std::string::npos)) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::fprintf(stderr, "serve did not start:\n%s\n", ReadAll(log).c_str());
    return false;
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  double Metric(const std::string& name) {
    auto r = opensense::http::Fetch(listen_, "GET", "/metrics", {}, {}, std::chrono::seconds(10));
    if (!r) return -1;
    std::istringstream in(r->body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return 0;
  }

 private:
  pid_t Spawn(const std::vector<std::string>& args, const fs::path& out) {
    pid_t pid = ::fork();
    if (pid == 0) {
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(o, 1);
      ::dup2(o, 2);
      std::vector<std::string> full = {OPENSENSE_BINARY};
      full.insert(full.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : full) argv.push_back(a.data());
      argv.push_back(nullptr);
      std::string e1 = std::string("OPENSENSE_MQTT_PASSWORD=") + kServicePassword;
      std::string e2 = std::string("OPENSENSE_MQTT_HOOK_SECRET=") + kSecret;
      std::string e3 = "PATH=/usr/bin:/bin";
      char* envp[] = {e1.data(), e2.data(), e3.data(), nullptr};
      ::execve(OPENSENSE_BINARY, argv.data(), envp);
      ::_exit(127);
    }
    return pid;
  }
  std::string listen_;
  fs::path dir_;
  pid_t pid_ = -1;
};

struct Device {
  long id = 0;
  std::string token;
};

// 100 libmosquitto publishers (one per device, its own network thread each).
class Publishers {
 public:
  Publishers(int port, const std::vector<Device>& devices) : devices_(devices) {
    for (const auto& d : devices) {
      mosquitto* m = mosquitto_new(("bench-dev-" + std::to_string(d.id)).c_str(), true, this);
      mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
      mosquitto_username_pw_set(m, std::to_string(d.id).c_str(), d.token.c_str());
      mosquitto_max_inflight_messages_set(m, 200);
      mosquitto_publish_v5_callback_set(m, [](mosquitto*, void* self, int, int, const mosquitto_property*) {
        static_cast<Publishers*>(self)->acked_.fetch_add(1);
      });
      mosquitto_connect_v5_callback_set(m, [](mosquitto*, void* self, int rc, int, const mosquitto_property*) {
        if (rc == 0) static_cast<Publishers*>(self)->connected_.fetch_add(1);
      });
      mosquitto_connect(m, "127.0.0.1", port, 60);
      mosquitto_loop_start(m);
      clients_.push_back(m);
    }
  }
  ~Publishers() {
    for (auto* m : clients_) {
      mosquitto_disconnect(m);
      mosquitto_loop_stop(m, true);
      mosquitto_destroy(m);
    }
  }
  // Every device publishes `messages` SenML packs of 4 readings (timestamps from `t0_s`, 60 s apart).
  void Publish(int messages, long long t0_s) {
    for (int k = 0; k < messages; ++k) {
      for (std::size_t i = 0; i < clients_.size(); ++i) {
        const long long t = t0_s + 60LL * k;
        const std::string body =
            "[{\"bt\":" + std::to_string(t) + ",\"n\":\"temperature\",\"u\":\"Cel\",\"v\":" +
            std::to_string(3 + (k % 7) * 0.25) + "},{\"n\":\"humidity\",\"u\":\"%RH\",\"v\":" +
            std::to_string(55 + k % 10) + "},{\"n\":\"battery\",\"u\":\"%EL\",\"v\":97.5},{\"n\":\"door\",\"v\":" +
            std::to_string(k % 2) + "}]";
        const std::string topic = "devices/" + std::to_string(devices_[i].id) + "/readings";
        mosquitto_publish_v5(clients_[i], nullptr, topic.c_str(), static_cast<int>(body.size()), body.data(), 1,
                             false, nullptr);
      }
    }
  }
  long acked() const { return acked_.load(); }
  bool AllConnected() const { return connected_.load() == static_cast<int>(clients_.size()); }

 private:
  std::vector<Device> devices_;
  std::vector<mosquitto*> clients_;
  std::atomic<long> acked_{0};
  std::atomic<int> connected_{0};
};

// A subscriber that only counts (libmosquitto acknowledges before the callback).
class BareSubscriber {
 public:
  explicit BareSubscriber(int port) {
    m_ = mosquitto_new("bench-bare", true, this);
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_username_pw_set(m_, "opensense", kServicePassword);
    mosquitto_message_v5_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message*, const mosquitto_property*) {
      static_cast<BareSubscriber*>(self)->count_.fetch_add(1);
    });
    mosquitto_subscribe_v5_callback_set(m_, [](mosquitto*, void* self, int, int, const int*, const mosquitto_property*) {
      static_cast<BareSubscriber*>(self)->subscribed_ = true;
    });
    mosquitto_connect(m_, "127.0.0.1", port, 60);
    mosquitto_subscribe_v5(m_, nullptr, "devices/+/readings", 1, 0, nullptr);
    mosquitto_loop_start(m_);
  }
  ~BareSubscriber() {
    mosquitto_disconnect(m_);
    mosquitto_loop_stop(m_, true);
    mosquitto_destroy(m_);
  }
  bool subscribed() const { return subscribed_.load(); }
  long count() const { return count_.load(); }

 private:
  mosquitto* m_ = nullptr;
  std::atomic<long> count_{0};
  std::atomic<bool> subscribed_{false};
};

// Ends OpenSense's persistent session (a clean-start login with its client id), so the broker
// does not queue the next baseline's messages for it.
void DropSession(int port, const char* client_id) {
  mosquitto* m = mosquitto_new(client_id, true, nullptr);
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_username_pw_set(m, "opensense", kServicePassword);
  if (mosquitto_connect(m, "127.0.0.1", port, 60) == MOSQ_ERR_SUCCESS) {
    mosquitto_loop(m, 1000, 1);
    mosquitto_disconnect(m);
    mosquitto_loop(m, 100, 1);
  }
  mosquitto_destroy(m);
}

// CPU seconds (user + system) a process has used so far.
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stod(f);
    if (i == 15) stime = std::stod(f);
  }
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

template <typename Pred>
bool WaitUntil(Pred pred, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 100, messages = 500, runs = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--devices") devices = std::stoi(argv[i + 1]);
    else if (a == "--messages") messages = std::stoi(argv[i + 1]);
    else if (a == "--runs") runs = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: mqtt_bench [--devices 100] [--messages 500] [--runs 2]\n");
      return 2;
    }
  }
  mosquitto_lib_init();
  const std::string listen = "127.0.0.1:" + std::to_string(FreePort());
  opensense::testing::MosquittoOptions bo;
  bo.hook_url = "http://" + listen;
  bo.hook_secret = kSecret;
  opensense::testing::MosquittoBroker broker(bo);
  if (!broker.Start()) {
    std::fprintf(stderr, "mosquitto did not start:\n%s\n", broker.Log().c_str());
    return 1;
  }
  OpenSense os(listen);
  json org = os.Cli({"org", "create", "--name", "Bench"});
  std::vector<Device> devs;
  for (int i = 0; i < devices; ++i) {
    json d = os.Cli({"device", "create", "--org", std::to_string(org["id"].get<long>()), "--name", "d" + std::to_string(i)});
    devs.push_back({d["id"].get<long>(), d["token"].get<std::string>()});
  }
  const long total = static_cast<long>(devices) * messages;
  const long long now_s = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  std::printf("| run | case | messages | readings | time s | readings/s | ratio to bare | broker CPU s |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (int run = 1; run <= runs; ++run) {
    // Timestamps of this run: every run stores new readings.
    const long long t0 = now_s - 60LL * messages * (runs + 1 - run) - 3600;
    // ---- baseline: OpenSense only answers the plugin's hook; a bare subscriber counts.
    if (!os.Start("")) return 1;
    double bare_rate = 0;
    {
      BareSubscriber bare(broker.port());
      Publishers pubs(broker.port(), devs);
      if (!WaitUntil([&] { return bare.subscribed(); }, std::chrono::seconds(20))) {
        std::fprintf(stderr, "bare subscriber did not subscribe\n%s\n", broker.Log().c_str());
        return 1;
      }
      // Logins (the plugin's first check of each token costs a bcrypt) are not timed.
      if (!WaitUntil([&] { return pubs.AllConnected(); }, std::chrono::seconds(60))) return 1;
      const auto start = Clock::now();
      const double cpu0 = CpuSeconds(broker.pid());
      pubs.Publish(messages, t0);
      const bool all = WaitUntil([&] { return bare.count() >= total; }, std::chrono::seconds(120));
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      const double cpu = CpuSeconds(broker.pid()) - cpu0;
      bare_rate = bare.count() * kReadingsPerMessage / s;
      std::printf("| %d | bare libmosquitto subscriber (counts only) | %ld | %ld | %.2f | %.0f | 1.000 | %.2f |%s\n", run,
                  bare.count(), bare.count() * kReadingsPerMessage, s, bare_rate, cpu, all ? "" : " INCOMPLETE");
    }
    os.Stop();
    // ---- store: OpenSense's subscriber; done when every reading is committed.
    if (!os.Start(broker.url())) return 1;
    {
      Publishers pubs(broker.port(), devs);
      if (!WaitUntil([&] { return pubs.AllConnected(); }, std::chrono::seconds(60))) return 1;
      const auto start = Clock::now();
      const double cpu0 = CpuSeconds(broker.pid());
      pubs.Publish(messages, t0);
      const long want = total * kReadingsPerMessage;
      double stored = 0;
      const bool all = WaitUntil(
          [&] {
            stored = os.Metric("opensense_mqtt_readings_stored_total");
            return stored >= want;
          },
          std::chrono::seconds(120));
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      const double cpu = CpuSeconds(broker.pid()) - cpu0;
      const double rate = stored / s;
      std::printf("| %d | OpenSense subscriber -> store (ack after commit) | %ld | %.0f | %.2f | %.0f | %.3f | %.2f |%s\n",
                  run, total, stored, s, rate, bare_rate > 0 ? rate / bare_rate : 0.0, cpu, all ? "" : " INCOMPLETE");
    }
    os.Stop();
    DropSession(broker.port(), "opensense-ingest");
  }
  return 0;
}
