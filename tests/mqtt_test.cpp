// Integration tests of MQTT ingest: the real `opensense serve` (subscriber on) with a temp data
// dir, a real Mosquitto 2.0 started from the shipped deploy/mosquitto/mosquitto.conf
// (tests/mosquitto_fixture.hpp), and devices publishing with libmosquitto at QoS 1. Each fault
// test ends with an exact compare: readings acknowledged to the publisher == readings stored.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
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

constexpr char kHookSecret[] = "mqtt-test-hook-secret";
constexpr char kServicePassword[] = "mqtt-test-service-password";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long long NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

// `opensense serve` with MQTT ingest on, its CLI, and its HTTP address.
class OpenSense {
 public:
  OpenSense() {
    dir_ = fs::temp_directory_path() /
           ("opensense-mqtt-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  ~OpenSense() {
    Kill(SIGKILL);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  json CliJson(std::vector<std::string> args) {
    args.insert(args.end(), {"--data-dir", (dir_ / "data").string(), "--json"});
    pid_t pid = Spawn(args, dir_ / "cli.out", {});
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Slurp(dir_ / "cli.out");
    return json::parse(Slurp(dir_ / "cli.out"), nullptr, false);
  }

  // Runs the CLI as given; returns the exit status and fills `out` with stdout + stderr.
  int Run(std::vector<std::string> args, std::string* out) {
    pid_t pid = Spawn(args, dir_ / "run.out", {});
    int status = 0;
    ::waitpid(pid, &status, 0);
    *out = Slurp(dir_ / "run.out");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Starts serve; waits until the HTTP API listens and every MQTT session is subscribed.
  void Start(const std::string& mqtt_url, std::vector<std::string> extra = {},
             std::vector<std::string> env = {}, bool wait_subscribed = true) {
    ++starts_;
    log_ = dir_ / ("serve" + std::to_string(starts_) + ".log");
    std::vector<std::string> args = {"serve", "--data-dir", (dir_ / "data").string(),
                                     "--roles", "api,ingest", "--mqtt-url", mqtt_url,
                                     "--mqtt-keepalive-seconds", "5"};
    args.insert(args.end(), extra.begin(), extra.end());
    bool has_password = false;
    for (const auto& e : env) has_password = has_password || e.rfind("OPENSENSE_MQTT_PASSWORD=", 0) == 0;
    if (!has_password) env.push_back(std::string("OPENSENSE_MQTT_PASSWORD=") + kServicePassword);
#ifdef OPENSENSE_MQTT_PLUGIN
    env.push_back(std::string("OPENSENSE_MQTT_HOOK_SECRET=") + kHookSecret);
#endif
    pid_ = Spawn(args, log_, env);
    std::regex re(R"(listening on http://([0-9.]+:[0-9]+))");
    ASSERT_TRUE(WaitFor(
        [&] {
          std::smatch m;
          std::string text = Slurp(log_);
          if (!std::regex_search(text, m, re)) return false;
          address_ = m[1];
          return true;
        },
        std::chrono::seconds(20)))
        << "serve did not start: " << Slurp(log_);
    if (wait_subscribed) {
      ASSERT_TRUE(WaitFor([&] { return Slurp(log_).find("subscribed to") != std::string::npos; },
                          std::chrono::seconds(20)))
          << "the subscriber did not subscribe: " << Slurp(log_);
    }
  }
  void Kill(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  bool running() const { return pid_ > 0; }

  // A value of /metrics (0 when absent). `name` includes labels, if any.
  double Metric(const std::string& name) {
    auto r = opensense::http::Fetch(address_, "GET", "/metrics", {}, {}, std::chrono::seconds(10));
    if (!r) return -1;
    std::istringstream in(r->body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return 0;
  }

  // Raw points of one metric of a device in [from, to).
  std::vector<json> Points(const std::string& owner, long device, const std::string& metric, long long from,
                           long long to) {
    auto r = opensense::http::Fetch(
        address_, "GET",
        "/api/v1/devices/" + std::to_string(device) + "/series?metric=" + metric + "&resolution=raw&from=" +
            std::to_string(from) + "&to=" + std::to_string(to),
        {{"Authorization", "Bearer " + owner}}, {}, std::chrono::seconds(20));
    if (!r || r->status != 200) return {};
    json j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j["points"].is_array()) return {};
    return j["points"].get<std::vector<json>>();
  }

  const fs::path& dir() const { return dir_; }
  std::string Log() const { return Slurp(log_); }
  std::string AllLogs() const {
    std::string out;
    for (int i = 1; i <= starts_; ++i) out += Slurp(dir_ / ("serve" + std::to_string(i) + ".log"));
    return out;
  }
  const std::string& address() const { return address_; }

 private:
  pid_t Spawn(const std::vector<std::string>& args, const fs::path& out, std::vector<std::string> env) {
    return opensense::testing::SpawnOpenSense(OPENSENSE_BINARY, args, std::move(env), out, out, dir_);
  }
  fs::path dir_;
  fs::path log_;
  pid_t pid_ = -1;
  int starts_ = 0;
  std::string address_;
};

// A device (or test tool) publishing at QoS 1 with libmosquitto; counts the PUBACKs it got.
class Publisher {
 public:
  Publisher(int port, const std::string& username, const std::string& password, const std::string& client_id) {
    mosquitto_lib_init();
    m_ = mosquitto_new(client_id.c_str(), true, this);
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_username_pw_set(m_, username.c_str(), password.c_str());
    mosquitto_max_inflight_messages_set(m_, 1000);
    mosquitto_reconnect_delay_set(m_, 1, 2, false);
    mosquitto_publish_v5_callback_set(m_, [](mosquitto*, void* self, int mid, int reason, const mosquitto_property*) {
      auto* p = static_cast<Publisher*>(self);
      std::lock_guard lock(p->mu_);
      if (p->pending_.erase(mid) == 0) return;
      if (reason < 0x80) {
        p->acked_ += p->readings_of_[mid];
      } else {
        p->refused_ += 1;
      }
      p->readings_of_.erase(mid);
    });
    mosquitto_connect_v5_callback_set(m_, [](mosquitto*, void* self, int rc, int, const mosquitto_property*) {
      static_cast<Publisher*>(self)->connect_rc_ = rc;
    });
    connect_rc_ = -1;
    mosquitto_connect_async(m_, "127.0.0.1", port, 30);
    mosquitto_loop_start(m_);
  }
  ~Publisher() {
    mosquitto_disconnect(m_);
    mosquitto_loop_stop(m_, true);
    mosquitto_destroy(m_);
  }
  bool WaitConnected() {
    return WaitFor([&] { return connect_rc_.load() == 0; }, std::chrono::seconds(10));
  }
  int connect_rc() const { return connect_rc_.load(); }
  // Publishes one message carrying `readings` readings.
  bool Publish(const std::string& topic, const std::string& payload, int readings,
               const char* content_type = nullptr) {
    mosquitto_property* props = nullptr;
    if (content_type != nullptr) mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, content_type);
    std::lock_guard lock(mu_);
    int mid = 0;
    int rc = mosquitto_publish_v5(m_, &mid, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 1,
                                  false, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) return false;
    pending_.insert(mid);
    readings_of_[mid] = readings;
    return true;
  }
  // Waits until every message published so far was acknowledged (or refused).
  bool WaitAllAcked(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    return WaitFor(
        [&] {
          std::lock_guard lock(mu_);
          return pending_.empty();
        },
        timeout);
  }
  long acked() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  long refused() {
    std::lock_guard lock(mu_);
    return refused_;
  }

 private:
  mosquitto* m_ = nullptr;
  std::mutex mu_;
  std::set<int> pending_;
  std::map<int, int> readings_of_;
  long acked_ = 0;
  long refused_ = 0;
  std::atomic<int> connect_rc_{-1};
};

struct DeviceCred {
  long id = 0;
  std::string token;
};

// An organisation with its owner token and `n` devices with their tokens.
struct World {
  std::string owner;
  std::vector<DeviceCred> devices;
};

World MakeWorld(OpenSense& os, int n) {
  World w;
  json org = os.CliJson({"org", "create", "--name", "Cold Co", "--owner-email", "o@example.com"});
  w.owner = org["token"];
  for (int i = 0; i < n; ++i) {
    json d = os.CliJson({"device", "create", "--org", std::to_string(org["id"].get<long>()), "--name",
                         "Fridge " + std::to_string(i)});
    w.devices.push_back({d["id"].get<long>(), d["token"].get<std::string>()});
  }
  return w;
}

std::string Topic(long device) { return "devices/" + std::to_string(device) + "/readings"; }

opensense::testing::MosquittoOptions BrokerOptions() {
  opensense::testing::MosquittoOptions o;
#ifdef OPENSENSE_MQTT_PLUGIN
  o.load_plugin = true;
#else
  o.load_plugin = false;  // the plugin is not built yet: an anonymous broker, same config otherwise
#endif
  o.hook_secret = kHookSecret;
  return o;
}

// Publishes `messages` messages of `per_message` readings (OpenSense JSON, unique timestamps from
// `first_ts`, 1 s apart per device) round-robin over the devices; one publisher per device.
class Stream {
 public:
  Stream(const opensense::testing::MosquittoBroker& broker, const World& w, long long first_ts)
      : world_(w), first_ts_(first_ts) {
    for (const auto& d : w.devices) {
      pubs_.push_back(std::make_unique<Publisher>(broker.port(), std::to_string(d.id), d.token,
                                                  "dev-" + std::to_string(d.id)));
    }
    for (auto& p : pubs_) EXPECT_TRUE(p->WaitConnected()) << "rc " << p->connect_rc();
    next_.assign(w.devices.size(), 0);
  }
  void Publish(int messages, int per_message, std::chrono::microseconds gap = std::chrono::microseconds(0)) {
    for (int m = 0; m < messages; ++m) {
      const std::size_t i = turn_++ % pubs_.size();
      std::string body = "[";
      for (int k = 0; k < per_message; ++k) {
        const long long ts = first_ts_ + 1000LL * next_[i]++;
        if (k > 0) body += ",";
        body += "{\"ts\":" + std::to_string(ts) + ",\"temperature\":" + std::to_string(3 + (ts / 1000) % 7) + "}";
      }
      body += "]";
      EXPECT_TRUE(pubs_[i]->Publish(Topic(world_.devices[i].id), body, per_message));
      if (gap.count() > 0) std::this_thread::sleep_for(gap);
    }
  }
  bool WaitAllAcked() {
    for (auto& p : pubs_) {
      if (!p->WaitAllAcked()) return false;
    }
    return true;
  }
  long Acked() {
    long n = 0;
    for (auto& p : pubs_) n += p->acked();
    return n;
  }
  long long first_ts() const { return first_ts_; }

 private:
  const World& world_;
  long long first_ts_;
  std::vector<std::unique_ptr<Publisher>> pubs_;
  std::vector<long> next_;
  std::size_t turn_ = 0;
};

// Readings stored for every device of the world since `from` (raw points, exact).
long Stored(OpenSense& os, const World& w, long long from) {
  long n = 0;
  for (const auto& d : w.devices) n += static_cast<long>(os.Points(w.owner, d.id, "temperature", from, NowMs() + 1).size());
  return n;
}

// Waits until `expected` readings are stored (or the timeout), and returns the count.
long WaitStored(OpenSense& os, const World& w, long long from, long expected, std::chrono::seconds timeout) {
  long n = 0;
  WaitFor(
      [&] {
        n = Stored(os, w, from);
        return n >= expected;
      },
      timeout);
  // A little longer: more than expected would be a duplicate.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  return Stored(os, w, from);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// A broker whose plugin asks OpenSense's hook at a fixed loopback port, and OpenSense listening
// there (chosen before either starts, so each can be restarted on its own).
class MqttIngest : public ::testing::Test {
 protected:
  void SetUp() override {
    http_ = "127.0.0.1:" + std::to_string(FreePort());
    auto o = BrokerOptions();
    o.hook_url = "http://" + http_;
    broker_ = std::make_unique<opensense::testing::MosquittoBroker>(o);
    ASSERT_TRUE(broker_->Start()) << broker_->Log();
  }
  void StartOpenSense(std::vector<std::string> extra = {}, std::vector<std::string> env = {}) {
    extra.insert(extra.begin(), {"--listen", http_});
    os_.Start(broker_->url(), extra, env);
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "---- opensense logs\n" << os_.AllLogs().substr(0, 20000) << "\n---- broker log (tail)\n";
      const std::string log = broker_->Log();
      std::cerr << log.substr(log.size() > 8000 ? log.size() - 8000 : 0) << "\n";
    }
  }

  std::string http_;
  OpenSense os_;
  std::unique_ptr<opensense::testing::MosquittoBroker> broker_;
};

}  // namespace

// ---- payload formats ------------------------------------------------------------------------

TEST_F(MqttIngest, SenmlJsonAndLineProtocolPayloadsEachLand) {
  World w = MakeWorld(os_, 1);
  StartOpenSense();
  const long dev = w.devices[0].id;
  Publisher pub(broker_->port(), std::to_string(dev), w.devices[0].token, "fmt-dev");
  ASSERT_TRUE(pub.WaitConnected());
  const long long t0 = (NowMs() / 1000 - 600) * 1000;
  // SenML sniffed (no content type), OpenSense JSON with its content type, line protocol sniffed.
  ASSERT_TRUE(pub.Publish(Topic(dev), R"([{"bn":"urn:dev:x:","bt":)" + std::to_string(t0 / 1000) +
                                          R"(,"n":"temperature","u":"Cel","v":4.25}])", 1));
  ASSERT_TRUE(pub.Publish(Topic(dev), R"({"ts":)" + std::to_string(t0 + 1000) + R"(,"temperature":4.5,"humidity":61})",
                          2, "application/json"));
  ASSERT_TRUE(pub.Publish(Topic(dev), "fridge temperature=4.75,humidity=62 " + std::to_string((t0 + 2000) * 1000000), 2));
  // Line protocol with an explicit content type and a garbage payload: rejected, acknowledged.
  ASSERT_TRUE(pub.Publish(Topic(dev), "{not json", 0, "application/json"));
  ASSERT_TRUE(pub.Publish(Topic(dev), "x", 0, "image/png"));
  ASSERT_TRUE(pub.WaitAllAcked());
  ASSERT_TRUE(WaitFor([&] { return os_.Points(w.owner, dev, "temperature", t0, t0 + 3000).size() == 3; },
                      std::chrono::seconds(15)));
  auto temps = os_.Points(w.owner, dev, "temperature", t0, t0 + 3000);
  ASSERT_EQ(temps.size(), 3u);
  EXPECT_DOUBLE_EQ(temps[0]["v"].get<double>(), 4.25);
  EXPECT_DOUBLE_EQ(temps[1]["v"].get<double>(), 4.5);
  EXPECT_DOUBLE_EQ(temps[2]["v"].get<double>(), 4.75);
  EXPECT_EQ(os_.Points(w.owner, dev, "humidity", t0, t0 + 3000).size(), 2u);
  // The two bad payloads were counted, and acknowledged (nothing left waiting).
  EXPECT_TRUE(WaitFor([&] { return os_.Metric("opensense_mqtt_acks_sent_total") == 5; }, std::chrono::seconds(10)));
  EXPECT_EQ(os_.Metric("opensense_mqtt_rejected_total{reason=\"payload\"}"), 1);
  EXPECT_EQ(os_.Metric("opensense_mqtt_rejected_total{reason=\"content_type\"}"), 1);
  EXPECT_EQ(os_.Metric("opensense_mqtt_acks_pending"), 0);
  EXPECT_NE(os_.Log().find("rejected 1 reading from device " + std::to_string(dev)), std::string::npos) << os_.Log();
}

TEST_F(MqttIngest, InvalidReadingsAreCountedAndAcknowledged) {
  World w = MakeWorld(os_, 1);
  StartOpenSense();
  const long dev = w.devices[0].id;
  Publisher pub(broker_->port(), std::to_string(dev), w.devices[0].token, "bad-dev");
  ASSERT_TRUE(pub.WaitConnected());
  // Far in the future: the writer rejects it; it will never become valid, so it is acknowledged.
  ASSERT_TRUE(pub.Publish(Topic(dev), R"({"ts":)" + std::to_string(NowMs() + 86'400'000) + R"(,"temperature":4})", 1));
  ASSERT_TRUE(pub.WaitAllAcked());
  EXPECT_TRUE(WaitFor([&] { return os_.Metric("opensense_mqtt_acks_sent_total") == 1; }, std::chrono::seconds(10)));
  EXPECT_EQ(os_.Metric("opensense_mqtt_rejected_total{reason=\"in_future\"}"), 1) << os_.Log();
  EXPECT_EQ(os_.Metric("opensense_mqtt_readings_stored_total"), 0);
}

// ---- acknowledgement after the commit -------------------------------------------------------

TEST_F(MqttIngest, NothingIsAcknowledgedBeforeItsCommitAndTheBrokerRedelivers) {
  World w = MakeWorld(os_, 2);
  const fs::path hold = os_.dir() / "hold-commit";
  std::ofstream(hold) << "held\n";
  StartOpenSense({}, {"OPENSENSE_TEST_HOLD_COMMIT=" + hold.string()});
  const long long t0 = (NowMs() / 1000 - 3600) * 1000;
  Stream stream(*broker_, w, t0);
  stream.Publish(50, 2);
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_EQ(stream.Acked(), 100);
  // Every message reached OpenSense, the writer is held before COMMIT: none acknowledged.
  ASSERT_TRUE(WaitFor([&] { return os_.Metric("opensense_mqtt_messages_received_total") == 50; },
                      std::chrono::seconds(15)))
      << os_.Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(os_.Metric("opensense_mqtt_acks_sent_total"), 0);
  EXPECT_EQ(os_.Metric("opensense_mqtt_acks_pending"), 50);
  EXPECT_EQ(Stored(os_, w, t0), 0);
  os_.Kill(SIGKILL);
  // Restart without the hold: the broker delivers the 50 again (they were never acknowledged).
  fs::remove(hold);
  StartOpenSense();
  EXPECT_EQ(WaitStored(os_, w, t0, 100, std::chrono::seconds(20)), 100);
  EXPECT_TRUE(WaitFor([&] { return os_.Metric("opensense_mqtt_acks_sent_total") == 50; }, std::chrono::seconds(10)));
  EXPECT_EQ(os_.Metric("opensense_mqtt_messages_received_total"), 50);
}

// ---- faults: exact counts -------------------------------------------------------------------

TEST_F(MqttIngest, SigkillMidStreamLosesNothingAndDuplicatesNothing) {
  World w = MakeWorld(os_, 10);
  StartOpenSense();
  const long long t0 = (NowMs() / 1000 - 3 * 3600) * 1000;
  Stream stream(*broker_, w, t0);
  std::atomic<bool> publishing{true};
  std::thread publisher([&] {
    stream.Publish(4000, 5, std::chrono::microseconds(250));
    publishing = false;
  });
  std::mt19937 rng(std::random_device{}());
  // Mid-stream: OpenSense has taken some readings and the devices are still publishing.
  ASSERT_TRUE(WaitFor([&] { return os_.Metric("opensense_mqtt_messages_received_total") > 0; },
                      std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
  EXPECT_TRUE(publishing.load()) << "the stream ended before the kill; publish more or kill sooner";
  os_.Kill(SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  StartOpenSense();
  publisher.join();
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_EQ(stream.Acked(), 20000);
  EXPECT_EQ(WaitStored(os_, w, t0, 20000, std::chrono::seconds(40)), 20000);
}

TEST_F(MqttIngest, ReadingsPublishedWhileDownArriveAfterRestart) {
  World w = MakeWorld(os_, 5);
  StartOpenSense();
  const long long t0 = (NowMs() / 1000 - 3600) * 1000;
  Stream stream(*broker_, w, t0);
  stream.Publish(100, 2);
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_EQ(WaitStored(os_, w, t0, 200, std::chrono::seconds(20)), 200);
  os_.Kill(SIGTERM);  // a clean stop: the session stays at the broker
  EXPECT_NE(os_.Log().find("stopped cleanly"), std::string::npos) << os_.Log();
  stream.Publish(500, 2);  // while OpenSense is down
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_EQ(stream.Acked(), 1200);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  StartOpenSense();
  EXPECT_EQ(WaitStored(os_, w, t0, 1200, std::chrono::seconds(30)), 1200);
}

TEST_F(MqttIngest, BrokerRestartMidStreamSubscriberReconnectsByItself) {
  World w = MakeWorld(os_, 5);
  // The writer is held, so 2,000 messages are surely in flight (delivered, not acknowledged)
  // when the broker restarts.
  const fs::path hold = os_.dir() / "hold-commit";
  std::ofstream(hold) << "held\n";
  StartOpenSense({}, {"OPENSENSE_TEST_HOLD_COMMIT=" + hold.string()});
  const long long t0 = (NowMs() / 1000 - 3 * 3600) * 1000;
  Stream stream(*broker_, w, t0);
  stream.Publish(2000, 5);
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_TRUE(WaitFor([&] { return os_.Metric("opensense_mqtt_acks_pending") == 2000; }, std::chrono::seconds(15)));
  EXPECT_EQ(os_.Metric("opensense_mqtt_connected"), 1);
  // Mid-stream: stop the broker (SIGTERM saves its persistence; the session and its
  // unacknowledged messages survive); the connection gauge shows ingest over MQTT is down.
  broker_->Stop();
  EXPECT_TRUE(WaitFor([&] { return os_.Metric("opensense_mqtt_connected") == 0; }, std::chrono::seconds(15)));
  ASSERT_TRUE(broker_->Restart()) << broker_->Log();
  // The publishers reconnect on their own; so must the subscriber.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stream.Publish(200, 5);
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_EQ(stream.Acked(), 11000);
  fs::remove(hold);
  EXPECT_EQ(WaitStored(os_, w, t0, 11000, std::chrono::seconds(40)), 11000);
  EXPECT_GE(os_.Metric("opensense_mqtt_reconnects_total"), 1);
  EXPECT_EQ(os_.Metric("opensense_mqtt_sessions_lost_total"), 0);
  EXPECT_TRUE(WaitFor([&] { return os_.Metric("opensense_mqtt_connected") == 1; }, std::chrono::seconds(15)));
}

TEST_F(MqttIngest, BurstOf200000ReadingsFasterThanCommitsIsStoredWhole) {
  World w = MakeWorld(os_, 20);
  StartOpenSense();
  const long long t0 = (NowMs() / 1000 - 4 * 3600) * 1000;
  Stream stream(*broker_, w, t0);
  const auto start = Clock::now();
  stream.Publish(20000, 10);  // as fast as libmosquitto goes
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_EQ(stream.Acked(), 200000);
  EXPECT_EQ(WaitStored(os_, w, t0, 200000, std::chrono::seconds(60)), 200000);
  std::cerr << "burst: 200,000 readings published and stored in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count() << " ms\n";
}

// ---- shared subscription: retiring a member -------------------------------------------------

TEST_F(MqttIngest, ShrinkingTheSetOfClientIdsLosesNothing) {
  World w = MakeWorld(os_, 4);
  StartOpenSense({"--mqtt-shared-group", "opensense", "--mqtt-client-id", "ingest-a,ingest-b"});
  const long long t0 = (NowMs() / 1000 - 3600) * 1000;
  Stream stream(*broker_, w, t0);
  stream.Publish(200, 2);
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_EQ(WaitStored(os_, w, t0, 400, std::chrono::seconds(20)), 400);
  // Down; the broker keeps queueing to both members of the group.
  os_.Kill(SIGKILL);
  stream.Publish(300, 2);
  ASSERT_TRUE(stream.WaitAllAcked());
  // Back with one member; the other is retired: drained, then its session ended.
  StartOpenSense({"--mqtt-shared-group", "opensense", "--mqtt-client-id", "ingest-a",
                  "--mqtt-retired-client-ids", "ingest-b"});
  ASSERT_TRUE(WaitFor([&] { return os_.Log().find("ingest-b: retired") != std::string::npos; },
                      std::chrono::seconds(20)))
      << os_.Log();
  // After the retirement every new reading goes to the remaining member.
  stream.Publish(100, 2);
  ASSERT_TRUE(stream.WaitAllAcked());
  ASSERT_EQ(stream.Acked(), 1200);
  EXPECT_EQ(WaitStored(os_, w, t0, 1200, std::chrono::seconds(20)), 1200);
}

// ---- the plugin: the subscriber authenticates with its service credential ---------------------

TEST_F(MqttIngest, AWrongServicePasswordIsRefusedAndTheLogSaysWhatToDo) {
#ifndef OPENSENSE_MQTT_PLUGIN
  GTEST_SKIP() << "without the plugin the test broker allows anonymous clients";
#endif
  // The broker's hook is this OpenSense, which knows the right service password ...
  MakeWorld(os_, 1);
  StartOpenSense();
  // ... and a second OpenSense presents a wrong one: refused, and its log says what to check.
  OpenSense other;
  other.Start(broker_->url(), {"--listen", "127.0.0.1:0"}, {"OPENSENSE_MQTT_PASSWORD=wrong"},
              /*wait_subscribed=*/false);
  EXPECT_TRUE(WaitFor([&] { return other.Log().find("OPENSENSE_MQTT_PASSWORD") != std::string::npos; },
                      std::chrono::seconds(15)))
      << other.Log();
  EXPECT_EQ(other.Log().find("subscribed to"), std::string::npos) << other.Log();
}

// ---- the simulator --------------------------------------------------------------------------

TEST_F(MqttIngest, SimulatePublishesTheFridgeModelAsADevice) {
  World w = MakeWorld(os_, 1);
  StartOpenSense();
  const long dev = w.devices[0].id;
  std::string out;
  // 10 minutes of backfill at one step a minute: 10 SenML packs of 4 readings, then the clock.
  ASSERT_EQ(os_.Run({"simulate", "--mqtt", broker_->url(), "--token", w.devices[0].token, "--device",
                     std::to_string(dev), "--rate", "50", "--duration", "2", "--backfill", "600"},
                    &out),
            0)
      << out;
  EXPECT_NE(out.find("refused by the broker"), std::string::npos) << out;
  const long long now = NowMs();
  EXPECT_TRUE(WaitFor([&] { return os_.Points(w.owner, dev, "temperature", now - 900'000, now + 1).size() >= 10; },
                      std::chrono::seconds(10)));
  EXPECT_GE(os_.Points(w.owner, dev, "battery", now - 900'000, now + 1).size(), 10u);
  // A wrong token is refused by the broker's plugin, and the simulator says what to check.
  EXPECT_EQ(os_.Run({"simulate", "--mqtt", broker_->url(), "--token", w.devices[0].token + "x", "--device",
                     std::to_string(dev), "--duration", "1"},
                    &out),
            1);
  EXPECT_NE(out.find("check the device id, the token"), std::string::npos) << out;
}

// ---- TLS ------------------------------------------------------------------------------------

TEST_F(MqttIngest, MqttsVerifiesTheBrokerCertificateAndIngests) {
  // A self-signed certificate for 127.0.0.1, made with the openssl CLI.
  const fs::path cert = os_.dir() / "broker.pem";
  const fs::path key = os_.dir() / "broker.key";
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                          "-addext subjectAltName=IP:127.0.0.1 -keyout " + key.string() + " -out " +
                          cert.string() + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  fs::permissions(key, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);  // the broker drops root
  auto o = BrokerOptions();
  o.hook_url = "http://" + http_;
  o.tls_cert_file = cert.string();
  o.tls_key_file = key.string();
  opensense::testing::MosquittoBroker tls_broker(o);
  ASSERT_TRUE(tls_broker.Start()) << tls_broker.Log();
  const std::string url = "mqtts://127.0.0.1:" + std::to_string(tls_broker.tls_port());

  World w = MakeWorld(os_, 1);
  // Without the CA the certificate is not trusted: no session, and the log says what to set.
  os_.Start(url, {"--listen", http_}, {}, /*wait_subscribed=*/false);
  EXPECT_TRUE(WaitFor([&] { return os_.Log().find("check mqtt_ca_file") != std::string::npos; },
                      std::chrono::seconds(15)))
      << os_.Log();
  EXPECT_EQ(os_.Log().find("subscribed to"), std::string::npos);
  os_.Kill(SIGTERM);
  // With it: subscribed over TLS, and a reading published on the plain listener lands.
  os_.Start(url, {"--listen", http_, "--mqtt-ca-file", cert.string()});
  EXPECT_NE(os_.Log().find("(TLS)"), std::string::npos) << os_.Log();
  const long dev = w.devices[0].id;
  Publisher pub(tls_broker.port(), std::to_string(dev), w.devices[0].token, "tls-dev");
  ASSERT_TRUE(pub.WaitConnected());
  const long long t = (NowMs() / 1000 - 60) * 1000;
  ASSERT_TRUE(pub.Publish(Topic(dev), R"({"ts":)" + std::to_string(t) + R"(,"temperature":2.5})", 1));
  ASSERT_TRUE(pub.WaitAllAcked());
  EXPECT_TRUE(WaitFor([&] { return os_.Points(w.owner, dev, "temperature", t, t + 1).size() == 1; },
                      std::chrono::seconds(10)));
}

TEST_F(MqttIngest, TwoProcessesWithOneClientIdAreToldWhatToFix) {
  MakeWorld(os_, 1);
  StartOpenSense();
  OpenSense other;  // its own store, the same (default) client id: the broker hands the session over
  other.Start(broker_->url(), {"--listen", "127.0.0.1:0"});
  EXPECT_TRUE(WaitFor([&] { return os_.Log().find("give every process ids of its own") != std::string::npos; },
                      std::chrono::seconds(15)))
      << os_.Log();
  // And the two do not fight in a reconnect storm: the back-off keeps growing.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const std::string log = os_.Log() + other.Log();
  std::size_t reconnects = 0;
  for (std::size_t at = log.find("reconnecting in"); at != std::string::npos; at = log.find("reconnecting in", at + 1)) {
    ++reconnects;
  }
  EXPECT_LT(reconnects, 25u) << log;
}
