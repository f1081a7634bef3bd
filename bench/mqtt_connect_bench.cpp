// MQTT connect rate through the OpenSense Mosquitto plugin (issue 4): connections per second
// (TCP connect, CONNECT with username and token, CONNACK, DISCONNECT) against real Mosquitto
// brokers started from deploy/mosquitto/mosquitto.conf (tests/mosquitto_fixture.hpp) and a real
// `opensense serve`, all on 127.0.0.1, in one run:
//
//   baseline     a broker without the plugin (anonymous): what Mosquitto itself costs;
//   uncached     each device's first login: plugin -> /internal/mqtt/auth -> bcrypt (cost 10);
//   plugin miss  plugin cache off (cache_seconds 0), OpenSense's token cache warm: one HTTP
//                round trip per login, no bcrypt;
//   cached       the plugin's cache holds the login: no HTTP at all.
//
//   mqtt_connect_bench [--devices 100] [--connects 20000] [--threads 4] [--json]
//
// Bounded: at most --devices uncached logins (about 55 ms of bcrypt each) and --connects logins
// per other phase; every phase also stops after 60 s.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/http/client.hpp"
#include "mosquitto_fixture.hpp"
#include "opensense_process.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kSecret[] = "bench-hook-secret";

struct Options {
  int devices = 100;
  int connects = 20'000;
  int threads = 4;
  bool json_out = false;
};

// An MQTT 3.1.1 CONNECT with clean session, username and password.
std::string ConnectPacket(const std::string& client_id, const std::string& user, const std::string& pass) {
  auto str = [](std::string& out, const std::string& s) {
    out.push_back(static_cast<char>(s.size() >> 8));
    out.push_back(static_cast<char>(s.size() & 0xff));
    out += s;
  };
  std::string body;
  str(body, "MQTT");
  body.push_back(4);                                // protocol level 3.1.1
  body.push_back(static_cast<char>(0x80 | 0x40 | 0x02));  // username, password, clean session
  body.push_back(0);
  body.push_back(60);  // keep-alive
  str(body, client_id);
  str(body, user);
  str(body, pass);
  std::string packet(1, static_cast<char>(0x10));
  std::size_t n = body.size();
  do {
    unsigned char b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    packet.push_back(static_cast<char>(b));
  } while (n > 0);
  return packet + body;
}

// One login; the CONNACK return code (0 accepted), or -1 on a transport failure.
int Login(int port, const std::string& packet) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  int rc = -1;
  unsigned char ack[4];
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::send(fd, packet.data(), packet.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(packet.size()) &&
      ::recv(fd, ack, 4, MSG_WAITALL) == 4 && ack[0] == 0x20) {
    rc = ack[3];
    const char disconnect[2] = {static_cast<char>(0xE0), 0};
    (void)::send(fd, disconnect, 2, MSG_NOSIGNAL);
  }
  ::close(fd);
  return rc;
}

struct Phase {
  std::string name;
  long logins = 0;
  long refused = 0;
  double seconds = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(logins) / seconds : 0; }
};

// `count` logins spread over `threads` threads; login i uses credential i % credentials.size().
Phase Run(const std::string& name, int port, const std::vector<std::pair<std::string, std::string>>& credentials,
          long count, int threads) {
  std::vector<std::string> packets;
  for (std::size_t i = 0; i < credentials.size(); ++i) {
    packets.push_back(ConnectPacket("bench-" + std::to_string(i), credentials[i].first, credentials[i].second));
  }
  std::atomic<long> next{0}, refused{0}, done{0};
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::seconds(60);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (long i = next++; i < count && Clock::now() < deadline; i = next++) {
        if (Login(port, packets[static_cast<std::size_t>(i) % packets.size()]) != 0) ++refused;
        ++done;
      }
    });
  }
  for (auto& th : pool) th.join();
  Phase p;
  p.name = name;
  p.logins = done;
  p.refused = refused;
  p.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return p;
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return std::stoi(argv[++i]);
    };
    if (a == "--devices") o.devices = std::clamp(value(), 1, 1000);
    else if (a == "--connects") o.connects = std::clamp(value(), 1, 1'000'000);
    else if (a == "--threads") o.threads = std::clamp(value(), 1, 64);
    else if (a == "--json") o.json_out = true;
    else {
      std::fprintf(stderr, "usage: mqtt_connect_bench [--devices N] [--connects N] [--threads N] [--json]\n");
      return 2;
    }
  }
  opensense::testing::OpenSenseProcess server(std::map<std::string, std::string>{{"OPENSENSE_MQTT_HOOK_SECRET", kSecret}});
  json org = server.Cli({"org", "create", "--name", "Bench", "--owner-email", "bench@example.com"});
  if (!org.contains("token") || !server.Start({"--roles", "api"})) {
    std::fprintf(stderr, "mqtt_connect_bench: cannot start opensense (%s)\n", OPENSENSE_BINARY);
    return 1;
  }
  const std::string owner = org["token"];
  std::fprintf(stderr, "creating %d devices...\n", o.devices);
  std::vector<std::pair<std::string, std::string>> credentials;
  for (int i = 0; i < o.devices; ++i) {
    auto r = opensense::http::Fetch(server.address(), "POST", "/api/v1/devices",
                                    {{"Authorization", "Bearer " + owner}, {"Content-Type", "application/json"}},
                                    json({{"name", "bench-" + std::to_string(i)}}).dump());
    if (!r || r->status != 201) {
      std::fprintf(stderr, "mqtt_connect_bench: cannot create a device\n");
      return 1;
    }
    json d = json::parse(r->body);
    credentials.emplace_back(std::to_string(d["id"].get<long>()), d["token"].get<std::string>());
  }

  auto broker = [&](bool plugin, const std::string& cache_seconds) {
    opensense::testing::MosquittoOptions mo;
    mo.hook_url = "http://" + server.address();
    mo.hook_secret = kSecret;
    mo.load_plugin = plugin;
    mo.plugin_options["cache_seconds"] = cache_seconds;
    mo.plugin_options["revocation_poll_ms"] = "0";
    auto b = std::make_unique<opensense::testing::MosquittoBroker>(mo);
    if (!b->Start()) throw std::runtime_error("mosquitto did not start: " + b->Log());
    return b;
  };
  auto cached_broker = broker(true, "300");
  auto miss_broker = broker(true, "0");
  auto bare_broker = broker(false, "0");

  std::vector<Phase> phases;
  std::fprintf(stderr, "uncached: %d first logins (bcrypt each)...\n", o.devices);
  phases.push_back(Run("uncached (plugin -> OpenSense -> bcrypt)", cached_broker->port(), credentials, o.devices, o.threads));
  std::fprintf(stderr, "plugin miss, OpenSense token cache hit...\n");
  phases.push_back(Run("plugin miss, OpenSense cache hit (1 HTTP round trip)", miss_broker->port(), credentials,
                       std::min(o.connects, 5'000), o.threads));
  std::fprintf(stderr, "cached...\n");
  phases.push_back(Run("cached in the plugin", cached_broker->port(), credentials, o.connects, o.threads));
  std::fprintf(stderr, "baseline...\n");
  phases.push_back(Run("baseline: no plugin (anonymous)", bare_broker->port(), credentials, o.connects, o.threads));
  const double base = phases.back().rate();

  if (o.json_out) {
    json out = json::array();
    for (const auto& p : phases) {
      out.push_back({{"phase", p.name}, {"logins", p.logins}, {"refused", p.refused}, {"seconds", p.seconds},
                     {"per_second", p.rate()}, {"ratio_to_baseline", base > 0 ? p.rate() / base : 0}});
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("| phase | logins | refused | seconds | connections/s | ratio to baseline |\n|---|---|---|---|---|---|\n");
    for (const auto& p : phases) {
      std::printf("| %s | %ld | %ld | %.2f | %.0f | %.3f |\n", p.name.c_str(), p.logins, p.refused, p.seconds,
                  p.rate(), base > 0 ? p.rate() / base : 0);
    }
  }
  for (const auto& p : phases) {
    if (p.refused > 0) {
      std::fprintf(stderr, "mqtt_connect_bench: %ld logins refused in '%s'\n", p.refused, p.name.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mqtt_connect_bench: %s\n", e.what());
    return 1;
  }
}
