// Broker-side device authentication end to end: the real `opensense serve` (the /internal/mqtt
// hooks), a real Mosquitto 2.0 started from deploy/mosquitto/mosquitto.conf with the OpenSense
// plugin (tests/mosquitto_fixture.hpp), and libmosquitto clients playing devices, gateways and
// the OpenSense subscriber. Also the hooks alone, with the request bodies EMQX's documentation
// gives.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
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
using namespace std::chrono_literals;

constexpr char kHookSecret[] = "hook-secret-for-tests-0123456789";
constexpr char kServicePassword[] = "service-password-for-tests";

// `opensense serve` with the MQTT secrets in its environment, and helpers for its API and hooks.
class OpenSense : public opensense::testing::OpenSenseProcess {
 public:
  explicit OpenSense(bool with_secret = true) : OpenSenseProcess(Env(with_secret)) {}

  void Start() { ASSERT_TRUE(OpenSenseProcess::Start({"--roles", "api"})) << "opensense did not start: " << Log(); }

  opensense::http::ClientResponse Http(const std::string& method, const std::string& target,
                                       std::vector<std::pair<std::string, std::string>> headers,
                                       std::string body = "") {
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    auto r = opensense::http::Fetch(address(), method, target, headers, std::move(body), 20s);
    EXPECT_TRUE(r) << method << " " << target << ": " << (r ? "" : r.error().message);
    return r ? *r : opensense::http::ClientResponse{};
  }
  // An API call with a user token.
  json Api(const std::string& method, const std::string& target, const std::string& token, json body = {}) {
    auto r = Http(method, target, {{"Authorization", "Bearer " + token}}, body.is_null() ? "" : body.dump());
    EXPECT_LT(r.status, 300) << method << " " << target << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
  // A hook call with the secret.
  opensense::http::ClientResponse Hook(const std::string& target, const json& body) {
    return Http("POST", target, {{"X-OpenSense-Hook-Secret", kHookSecret}}, body.dump());
  }

 private:
  static std::map<std::string, std::string> Env(bool with_secret) {
    std::map<std::string, std::string> env = {{"OPENSENSE_MQTT_PASSWORD", kServicePassword}};
    if (with_secret) env["OPENSENSE_MQTT_HOOK_SECRET"] = kHookSecret;
    return env;
  }
};

// A libmosquitto MQTT 5 client with its own network thread, and blocking helpers for tests.
class Client {
 public:
  static constexpr int kTimeout = -1;

  explicit Client(const std::string& id, bool clean = true) : clean_(clean) {
    static const int init = mosquitto_lib_init();
    (void)init;
    m_ = mosquitto_new(id.c_str(), clean, this);
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(m_, [](mosquitto*, void* self, int rc, int, const mosquitto_property*) {
      static_cast<Client*>(self)->Set([&](Client& c) { c.connack_ = rc; });
    });
    mosquitto_disconnect_v5_callback_set(m_, [](mosquitto*, void* self, int, const mosquitto_property*) {
      static_cast<Client*>(self)->Set([](Client& c) { c.disconnected_ = true; });
    });
    mosquitto_publish_v5_callback_set(m_, [](mosquitto*, void* self, int mid, int rc, const mosquitto_property*) {
      static_cast<Client*>(self)->Set([&](Client& c) { c.acks_[mid] = rc; });
    });
    mosquitto_subscribe_v5_callback_set(m_, [](mosquitto*, void* self, int, int n, const int* granted,
                                               const mosquitto_property*) {
      static_cast<Client*>(self)->Set([&](Client& c) { c.granted_.assign(granted, granted + n); });
    });
    mosquitto_message_v5_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg,
                                             const mosquitto_property*) {
      std::string payload(static_cast<const char*>(msg->payload), static_cast<std::size_t>(msg->payloadlen));
      static_cast<Client*>(self)->Set([&](Client& c) { c.messages_.push_back(std::string(msg->topic) + " " + payload); });
    });
  }
  ~Client() {
    Disconnect();
    mosquitto_destroy(m_);
  }

  // Speak TLS, verifying the broker with this CA (PEM) file.
  void UseTls(const std::string& ca_file) { mosquitto_tls_set(m_, ca_file.c_str(), nullptr, nullptr, nullptr, nullptr); }

  // CONNACK reason code: 0 accepted, 135 not authorised, 134 bad user name or password;
  // kTimeout when no CONNACK came.
  int Connect(int port, const std::string& username, const std::string& password) {
    mosquitto_username_pw_set(m_, username.c_str(), password.c_str());
    mosquitto_property* props = nullptr;
    if (!clean_) mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 3600);
    const int rc = mosquitto_connect_bind_v5(m_, "127.0.0.1", port, 30, nullptr, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) return kTimeout;
    stop_ = false;
    loop_ = std::thread([this] {
      while (!stop_) {
        if (mosquitto_loop(m_, 20, 1) != MOSQ_ERR_SUCCESS) {
          Set([](Client& c) { c.disconnected_ = true; });
          break;
        }
      }
    });
    Wait([&] { return connack_.has_value() || disconnected_; }, 10s);
    std::lock_guard lock(mu_);
    return connack_.value_or(kTimeout);
  }
  void Disconnect() {
    if (loop_.joinable()) {
      mosquitto_disconnect(m_);
      stop_ = true;
      loop_.join();
    }
  }

  // QoS 1; the PUBACK reason code (0 success, 16 no matching subscribers, 135 not authorised).
  int Publish(const std::string& topic, const std::string& payload) {
    int mid = 0;
    if (mosquitto_publish_v5(m_, &mid, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 1, false,
                             nullptr) != MOSQ_ERR_SUCCESS) {
      return kTimeout;
    }
    if (!Wait([&] { return acks_.count(mid) != 0 || disconnected_; }, 10s)) return kTimeout;
    std::lock_guard lock(mu_);
    return acks_.count(mid) != 0 ? acks_[mid] : kTimeout;
  }
  // The SUBACK reason code for one filter: 0/1 granted QoS, 135 not authorised.
  int Subscribe(const std::string& filter) {
    {
      std::lock_guard lock(mu_);
      granted_.clear();
    }
    if (mosquitto_subscribe_v5(m_, nullptr, filter.c_str(), 1, 0, nullptr) != MOSQ_ERR_SUCCESS) return kTimeout;
    if (!Wait([&] { return !granted_.empty(); }, 10s)) return kTimeout;
    std::lock_guard lock(mu_);
    return granted_[0];
  }
  // Waits for a message "topic payload"; true when it came.
  bool WaitMessage(const std::string& topic_and_payload, std::chrono::milliseconds timeout = 10s) {
    return Wait([&] {
      return std::find(messages_.begin(), messages_.end(), topic_and_payload) != messages_.end();
    }, timeout);
  }
  std::vector<std::string> Messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  bool WaitDisconnected(std::chrono::milliseconds timeout) {
    return Wait([&] { return disconnected_; }, timeout);
  }
  bool disconnected() {
    std::lock_guard lock(mu_);
    return disconnected_;
  }

 private:
  template <typename Fn>
  void Set(Fn fn) {
    {
      std::lock_guard lock(mu_);
      fn(*this);
    }
    cv_.notify_all();
  }
  template <typename Pred>
  bool Wait(Pred pred, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, pred);
  }

  bool clean_;
  mosquitto* m_ = nullptr;
  std::thread loop_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<int> connack_;
  bool disconnected_ = false;
  std::map<int, int> acks_;
  std::vector<int> granted_;
  std::vector<std::string> messages_;
};

// One organisation with a site, a gateway token, devices in and out of the site; a second
// organisation with its own device.
struct World {
  std::string owner, owner_b;
  long site = 0, gateway_site_device = 0, lone_device = 0, other_org_device = 0, second_site_device = 0;
  std::string site_token, gateway_site_device_token, lone_token, other_org_token;
};

class MqttAuth : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    os_ = new OpenSense();
    json a = os_->Cli({"org", "create", "--name", "A", "--owner-email", "a@example.com"});
    json b = os_->Cli({"org", "create", "--name", "B", "--owner-email", "b@example.com"});
    ASSERT_TRUE(a.contains("token") && b.contains("token")) << a.dump() << b.dump();
    os_->Start();
    World& w = *(world_ = new World());
    w.owner = a["token"];
    w.owner_b = b["token"];
    w.site = os_->Api("POST", "/api/v1/sites", w.owner, {{"name", "Kitchen"}})["id"];
    long other_site = os_->Api("POST", "/api/v1/sites", w.owner, {{"name", "Bar"}})["id"];
    json d1 = os_->Api("POST", "/api/v1/devices", w.owner, {{"name", "Fridge 1"}, {"site", w.site}, {"serial", "SER-1"}});
    json d2 = os_->Api("POST", "/api/v1/devices", w.owner, {{"name", "Lone"}, {"serial", "AB:CD:EF:01"}});
    json d3 = os_->Api("POST", "/api/v1/devices", w.owner_b, {{"name", "Other org"}, {"serial", "SER-1"}});
    json d4 = os_->Api("POST", "/api/v1/devices", w.owner, {{"name", "Bar fridge"}, {"site", other_site}});
    w.gateway_site_device = d1["id"];
    w.gateway_site_device_token = d1["token"];
    w.lone_device = d2["id"];
    w.lone_token = d2["token"];
    w.other_org_device = d3["id"];
    w.other_org_token = d3["token"];
    w.second_site_device = d4["id"];
    w.site_token = os_->Api("POST", "/api/v1/sites/" + std::to_string(w.site) + "/token", w.owner)["token"];

    opensense::testing::MosquittoOptions o;
    o.hook_url = "http://" + os_->address();
    o.hook_secret = kHookSecret;
    o.plugin_options["revocation_poll_ms"] = "200";
    broker_ = new opensense::testing::MosquittoBroker(o);
    ASSERT_TRUE(broker_->Start()) << broker_->Log() << broker_->Config();
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete os_;
    delete world_;
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "--- broker log ---\n" << broker_->Log() << "--- opensense log ---\n" << os_->Log();
  }

  // A PUBACK that means "taken": 0, or 16 (no subscriber matched).
  static bool Taken(int rc) { return rc == 0 || rc == MQTT_RC_NO_MATCHING_SUBSCRIBERS; }
  static std::string Topic(long device) { return "devices/" + std::to_string(device) + "/readings"; }
  static std::string Unique(const std::string& base) {
    static int n = 0;
    return base + "-" + std::to_string(++n);
  }
  // The OpenSense subscriber's login, subscribed to every device's readings.
  std::unique_ptr<Client> Subscriber() {
    auto s = std::make_unique<Client>(Unique("svc"));
    EXPECT_EQ(s->Connect(broker_->port(), "opensense", kServicePassword), 0);
    EXPECT_EQ(s->Subscribe("devices/+/readings"), 1);
    return s;
  }

  static OpenSense* os_;
  static World* world_;
  static opensense::testing::MosquittoBroker* broker_;
  World& W() { return *world_; }
  int Port() { return broker_->port(); }
};
OpenSense* MqttAuth::os_ = nullptr;
World* MqttAuth::world_ = nullptr;
opensense::testing::MosquittoBroker* MqttAuth::broker_ = nullptr;

TEST_F(MqttAuth, DeviceTokenConnectsByIdOrSerialAndPublishesToItsTopic) {
  auto sub = Subscriber();
  Client by_id(Unique("dev"));
  ASSERT_EQ(by_id.Connect(Port(), std::to_string(W().lone_device), W().lone_token), 0);
  EXPECT_EQ(by_id.Publish(Topic(W().lone_device), "by-id"), 0);
  EXPECT_TRUE(sub->WaitMessage(Topic(W().lone_device) + " by-id"));
  Client by_serial(Unique("dev"));
  ASSERT_EQ(by_serial.Connect(Port(), "AB:CD:EF:01", W().lone_token), 0);
  EXPECT_EQ(by_serial.Publish(Topic(W().lone_device), "by-serial"), 0);
  EXPECT_TRUE(sub->WaitMessage(Topic(W().lone_device) + " by-serial"));
}

TEST_F(MqttAuth, WrongTruncatedAndMisusedTokensAreRefused) {
  const std::string good = W().lone_token;
  std::string wrong = good;
  wrong[wrong.size() - 8] = wrong[wrong.size() - 8] == 'a' ? 'b' : 'a';
  const std::string user = std::to_string(W().lone_device);
  struct Case {
    std::string username, password, why;
  };
  const std::vector<Case> cases = {
      {user, wrong, "one character changed"},
      {user, good.substr(0, good.size() - 1), "truncated"},
      {user, good + "x", "one character appended"},
      {user, "", "empty password"},
      {user, W().owner, "a user API token"},
      {user, W().other_org_token, "another device's token"},
      {std::to_string(W().other_org_device), good, "another device's id as username"},
      {"SER-1", good, "another device's serial"},
      {"opensense", good, "the service username with a device token"},
      {"opensense", "wrong", "the service username with a wrong password"},
      {"site:" + std::to_string(W().site), good, "a device token with a gateway username"},
      {user, W().site_token, "a gateway token with a device username"},
      {std::string(300, 'u'), good, "a huge username"},
      {user, std::string(70000, 'p'), "a huge password"},
  };
  for (const auto& c : cases) {
    Client cl(Unique("bad"));
    EXPECT_NE(cl.Connect(Port(), c.username, c.password), 0) << c.why;
  }
}

TEST_F(MqttAuth, PublishingToAnotherDevicesTopicIsDenied) {
  auto sub = Subscriber();
  Client dev(Unique("dev"));
  ASSERT_EQ(dev.Connect(Port(), std::to_string(W().lone_device), W().lone_token), 0);
  EXPECT_EQ(dev.Publish(Topic(W().other_org_device), "intruder"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(dev.Publish(Topic(W().gateway_site_device), "intruder"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(dev.Publish("devices/+/readings", "intruder"), -1);  // a wildcard: refused by the library
  EXPECT_EQ(dev.Publish("$SYS/x", "intruder"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(dev.Subscribe("#"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(dev.Subscribe(Topic(W().lone_device)), MQTT_RC_NOT_AUTHORIZED);
  // A sentinel published afterwards arrives: had the intruder got through it would be there too.
  EXPECT_EQ(dev.Publish(Topic(W().lone_device), "sentinel"), 0);
  ASSERT_TRUE(sub->WaitMessage(Topic(W().lone_device) + " sentinel"));
  for (const auto& m : sub->Messages()) EXPECT_EQ(m.find("intruder"), std::string::npos) << m;
}

TEST_F(MqttAuth, GatewayTokenPublishesForItsSitesDevicesOnly) {
  auto sub = Subscriber();
  Client gw(Unique("gw"));
  ASSERT_EQ(gw.Connect(Port(), "site:" + std::to_string(W().site), W().site_token), 0);
  EXPECT_EQ(gw.Publish(Topic(W().gateway_site_device), "via-gateway"), 0);
  EXPECT_EQ(gw.Publish(Topic(W().lone_device), "not-my-site"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(gw.Publish(Topic(W().second_site_device), "not-my-site"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(gw.Publish(Topic(W().other_org_device), "not-my-site"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_TRUE(sub->WaitMessage(Topic(W().gateway_site_device) + " via-gateway"));
  EXPECT_EQ(gw.Publish(Topic(W().gateway_site_device), "sentinel"), 0);
  ASSERT_TRUE(sub->WaitMessage(Topic(W().gateway_site_device) + " sentinel"));
  for (const auto& m : sub->Messages()) EXPECT_EQ(m.find("not-my-site"), std::string::npos) << m;
  Client wrong_site(Unique("gw"));
  EXPECT_NE(wrong_site.Connect(Port(), "site:999", W().site_token), 0);
}

TEST_F(MqttAuth, GatewayIsReconnectedWhenItsSiteGetsANewDeviceAndMayThenPublishForIt) {
  // A device added after the gateway logged in is not in its list: without this the broker would
  // drop (and, over MQTT 3.1.1, still acknowledge) the gateway's readings for it.
  json site = os_->Api("POST", "/api/v1/sites", W().owner, {{"name", Unique("new-site")}});
  const std::string site_id = std::to_string(site["id"].get<long>());
  const std::string token = os_->Api("POST", "/api/v1/sites/" + site_id + "/token", W().owner)["token"];
  Client gw(Unique("gw"));
  ASSERT_EQ(gw.Connect(Port(), "site:" + site_id, token), 0);
  json d = os_->Api("POST", "/api/v1/devices", W().owner, {{"name", Unique("new")}, {"site", site["id"]}});
  EXPECT_TRUE(gw.WaitDisconnected(5s)) << "the gateway was not told about the new device";
  Client again(Unique("gw"));
  ASSERT_EQ(again.Connect(Port(), "site:" + site_id, token), 0);
  EXPECT_TRUE(Taken(again.Publish(Topic(d["id"]), "new-device")));
  EXPECT_FALSE(again.WaitDisconnected(1s)) << "disconnected twice for one change";
}

TEST_F(MqttAuth, ServiceUserMaySubscribeToReadingsButNotPublishOrSubscribeToEverything) {
  Client svc(Unique("svc"));
  ASSERT_EQ(svc.Connect(Port(), "opensense", kServicePassword), 0);
  EXPECT_EQ(svc.Subscribe("devices/+/readings"), 1);
  EXPECT_EQ(svc.Subscribe("$share/opensense/devices/+/readings"), 1);
  EXPECT_EQ(svc.Subscribe("#"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(svc.Subscribe("devices/#"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(svc.Subscribe("$SYS/#"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(svc.Subscribe("$share/g/#"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(svc.Publish(Topic(W().lone_device), "forged"), MQTT_RC_NOT_AUTHORIZED);
  EXPECT_EQ(svc.Publish("anything", "forged"), MQTT_RC_NOT_AUTHORIZED);
}

TEST_F(MqttAuth, RotationDisconnectsTheSessionOfTheOldToken) {
  json d = os_->Api("POST", "/api/v1/devices", W().owner, {{"name", Unique("rotating")}});
  const std::string id = std::to_string(d["id"].get<long>());
  Client old_session(Unique("rot"));
  ASSERT_EQ(old_session.Connect(Port(), id, d["token"]), 0);
  ASSERT_TRUE(Taken(old_session.Publish(Topic(d["id"]), "before")));
  json rotated = os_->Api("POST", "/api/v1/devices/" + id + "/token", W().owner);
  EXPECT_TRUE(old_session.WaitDisconnected(5s)) << "the old session is still connected";
  Client again(Unique("rot"));
  EXPECT_NE(again.Connect(Port(), id, d["token"]), 0);
  Client fresh(Unique("rot"));
  ASSERT_EQ(fresh.Connect(Port(), id, rotated["token"]), 0);
  EXPECT_TRUE(Taken(fresh.Publish(Topic(d["id"]), "after")));
}

TEST_F(MqttAuth, RotationWithGraceKeepsTheOldSessionUntilTheGraceEnds) {
  json d = os_->Api("POST", "/api/v1/devices", W().owner, {{"name", Unique("grace")}});
  const std::string id = std::to_string(d["id"].get<long>());
  Client old_session(Unique("grace"));
  ASSERT_EQ(old_session.Connect(Port(), id, d["token"]), 0);
  const auto rotated_at = std::chrono::steady_clock::now();
  os_->Api("POST", "/api/v1/devices/" + id + "/token", W().owner, {{"grace_seconds", 2}});
  EXPECT_FALSE(old_session.WaitDisconnected(1200ms)) << "disconnected during the grace period";
  EXPECT_TRUE(old_session.WaitDisconnected(6s)) << "still connected after the grace period";
  EXPECT_GE(std::chrono::steady_clock::now() - rotated_at, 1900ms);
}

TEST_F(MqttAuth, RevokedAndDecommissionedDevicesAreDisconnectedAndRefused) {
  json d = os_->Api("POST", "/api/v1/devices", W().owner, {{"name", Unique("doomed")}});
  const std::string id = std::to_string(d["id"].get<long>());
  Client session(Unique("doomed"));
  ASSERT_EQ(session.Connect(Port(), id, d["token"]), 0);
  os_->Api("DELETE", "/api/v1/devices/" + id, W().owner);
  EXPECT_TRUE(session.WaitDisconnected(5s));
  Client again(Unique("doomed"));
  EXPECT_NE(again.Connect(Port(), id, d["token"]), 0);
}

TEST_F(MqttAuth, RestoredSubscriberSessionKeepsReceivingAcrossABrokerRestart) {
  // The OpenSense subscriber has a persistent session; after a broker restart, readings published
  // before it reconnects must still be queued for it (the plugin has no memory of it yet).
  {
    Client svc("opensense-persistent", /*clean=*/false);
    ASSERT_EQ(svc.Connect(Port(), "opensense", kServicePassword), 0);
    ASSERT_EQ(svc.Subscribe("devices/+/readings"), 1);
  }
  ASSERT_TRUE(broker_->Restart()) << broker_->Log();
  Client dev(Unique("dev"));
  ASSERT_EQ(dev.Connect(Port(), std::to_string(W().lone_device), W().lone_token), 0);
  EXPECT_EQ(dev.Publish(Topic(W().lone_device), "while-away"), 0);
  Client svc("opensense-persistent", /*clean=*/false);
  ASSERT_EQ(svc.Connect(Port(), "opensense", kServicePassword), 0);
  EXPECT_TRUE(svc.WaitMessage(Topic(W().lone_device) + " while-away"));
}

TEST_F(MqttAuth, FieldTlsListenerServesDevicesWithTheShippedSettings) {
  // The shipped field-tls block with a certificate made here (the fixture only swaps the port
  // and the file paths in).
  const fs::path dir = fs::temp_directory_path() / ("opensense-tls-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
                          "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " + key +
                          " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  opensense::testing::MosquittoOptions o;
  o.hook_url = "http://" + os_->address();
  o.hook_secret = kHookSecret;
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  {
    opensense::testing::MosquittoBroker tls_broker(o);
    ASSERT_TRUE(tls_broker.Start()) << tls_broker.Log() << tls_broker.Config();
    ASSERT_GT(tls_broker.tls_port(), 0);
    Client dev(Unique("tls"));
    dev.UseTls(cert);
    ASSERT_EQ(dev.Connect(tls_broker.tls_port(), std::to_string(W().lone_device), W().lone_token), 0)
        << tls_broker.Log();
    EXPECT_TRUE(Taken(dev.Publish(Topic(W().lone_device), "over-tls")));
    Client wrong(Unique("tls"));
    wrong.UseTls(cert);
    EXPECT_NE(wrong.Connect(tls_broker.tls_port(), std::to_string(W().lone_device), "osd_wrong"), 0);
    Client plain(Unique("plain"));  // no TLS on the TLS port: no CONNACK
    EXPECT_NE(plain.Connect(tls_broker.tls_port(), std::to_string(W().lone_device), W().lone_token), 0);
  }
  fs::remove_all(dir);
}

// ---- the hooks alone, as EMQX calls them ---------------------------------------------------

TEST_F(MqttAuth, HooksRefuseMissingOrWrongSecretAndUserTokens) {
  const json body = {{"username", std::to_string(W().lone_device)}, {"password", W().lone_token}};
  EXPECT_EQ(os_->Http("POST", "/internal/mqtt/auth", {}, body.dump()).status, 401);
  EXPECT_EQ(os_->Http("POST", "/internal/mqtt/auth", {{"X-OpenSense-Hook-Secret", "wrong"}}, body.dump()).status, 401);
  EXPECT_EQ(os_->Http("POST", "/internal/mqtt/auth", {{"X-OpenSense-Hook-Secret", std::string(kHookSecret) + "x"}},
                      body.dump()).status,
            401);
  EXPECT_EQ(os_->Http("POST", "/internal/mqtt/auth", {{"Authorization", "Bearer " + W().owner}}, body.dump()).status,
            401);
  EXPECT_EQ(os_->Http("POST", "/internal/mqtt/acl", {}, R"({"username":"1","topic":"a","action":"publish"})").status,
            401);
  EXPECT_EQ(os_->Http("GET", "/internal/mqtt/revoked?since=0", {}).status, 401);
  // Malformed bodies with the right secret: 400, never an allow.
  for (const char* bad : {"", "{", "[]", R"({"username":1,"password":"x"})", R"({"username":"1"})"}) {
    EXPECT_EQ(os_->Http("POST", "/internal/mqtt/auth", {{"X-OpenSense-Hook-Secret", kHookSecret}}, bad).status, 400)
        << bad;
  }
  EXPECT_EQ(os_->Http("POST", "/internal/mqtt/auth", {{"X-OpenSense-Hook-Secret", kHookSecret}},
                      std::string(100'000, ' '))
                .status,
            413);
}

TEST_F(MqttAuth, HooksAreOffWithoutAConfiguredSecret) {
  OpenSense bare(/*with_secret=*/false);
  bare.Cli({"org", "create", "--name", "C", "--owner-email", "c@example.com"});
  bare.Start();
  auto r = bare.Http("POST", "/internal/mqtt/auth", {{"X-OpenSense-Hook-Secret", ""}},
                     R"({"username":"1","password":"x"})");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("OPENSENSE_MQTT_HOOK_SECRET"), std::string::npos) << r.body;
  EXPECT_NE(bare.Log().find("OPENSENSE_MQTT_HOOK_SECRET"), std::string::npos) << bare.Log();
}

TEST_F(MqttAuth, EmqxAuthnBodiesGetTheDocumentedAnswers) {
  // EMQX 5 docs: body {username = "${username}", password = "${password}"}, clientid in the URL.
  auto allow = os_->Hook("/internal/mqtt/auth?clientid=fridge-7",
                         {{"username", std::to_string(W().lone_device)}, {"password", W().lone_token}});
  ASSERT_EQ(allow.status, 200);
  EXPECT_EQ(allow.Header("Content-Type").value_or(""), "application/json");
  json a = json::parse(allow.body);
  EXPECT_EQ(a["result"], "allow");
  EXPECT_EQ(a["is_superuser"], false);
  EXPECT_EQ(a["acl"], json::parse(R"([{"permission":"allow","action":"publish","topic":")" +
                                  Topic(W().lone_device) + R"("},{"permission":"deny","action":"all","topic":"#"}])"));
  EXPECT_FALSE(a.contains("expire_at"));
  auto deny = os_->Hook("/internal/mqtt/auth", {{"username", std::to_string(W().lone_device)},
                                                {"password", "osd_nope"},
                                                {"clientid", "c"}});
  ASSERT_EQ(deny.status, 200);
  EXPECT_EQ(json::parse(deny.body), json::parse(R"({"result":"deny","is_superuser":false})"));
  auto svc = json::parse(os_->Hook("/internal/mqtt/auth", {{"username", "opensense"}, {"password", kServicePassword}}).body);
  EXPECT_EQ(svc["result"], "allow");
  EXPECT_EQ(svc["acl"].size(), 3u);
  auto gw = json::parse(
      os_->Hook("/internal/mqtt/auth", {{"username", "site:" + std::to_string(W().site)}, {"password", W().site_token}}).body);
  EXPECT_EQ(gw["result"], "allow");
  EXPECT_EQ(gw["acl"][0]["topic"], Topic(W().gateway_site_device));
  EXPECT_EQ(gw["acl"].back()["permission"], "deny");
}

TEST_F(MqttAuth, EmqxAuthnGetsExpireAtDuringAGracePeriod) {
  json d = os_->Api("POST", "/api/v1/devices", W().owner, {{"name", Unique("expiring")}});
  const std::string id = std::to_string(d["id"].get<long>());
  const long long before = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
  os_->Api("POST", "/api/v1/devices/" + id + "/token", W().owner, {{"grace_seconds", 3600}});
  json a = json::parse(os_->Hook("/internal/mqtt/auth", {{"username", id}, {"password", d["token"]}}).body);
  EXPECT_EQ(a["result"], "allow");
  ASSERT_TRUE(a.contains("expire_at")) << a.dump();
  EXPECT_GE(a["expire_at"].get<long long>(), before + 3590);
  EXPECT_LE(a["expire_at"].get<long long>(), before + 3610);
}

TEST_F(MqttAuth, EmqxAuthzBodiesGetTheDocumentedAnswers) {
  struct Case {
    std::string username, topic, action, result;
  };
  const std::string dev = std::to_string(W().lone_device);
  const std::string site = "site:" + std::to_string(W().site);
  const std::vector<Case> cases = {
      {dev, Topic(W().lone_device), "publish", "allow"},
      {dev, Topic(W().other_org_device), "publish", "deny"},
      {dev, Topic(W().lone_device), "subscribe", "deny"},
      {dev, "#", "subscribe", "deny"},
      {site, Topic(W().gateway_site_device), "publish", "allow"},
      {site, Topic(W().lone_device), "publish", "deny"},
      {"opensense", "devices/+/readings", "subscribe", "allow"},
      {"opensense", "$share/opensense/devices/+/readings", "subscribe", "allow"},
      {"opensense", "#", "subscribe", "deny"},
      {"opensense", Topic(W().lone_device), "publish", "deny"},
      {"AB:CD:EF:01", Topic(W().lone_device), "publish", "deny"},  // serials need the acl list of auth
      {dev, Topic(W().lone_device), "retain", "deny"},
  };
  for (const auto& c : cases) {
    auto r = os_->Hook("/internal/mqtt/acl", {{"username", c.username}, {"topic", c.topic}, {"action", c.action}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body), json({{"result", c.result}})) << c.username << " " << c.action << " " << c.topic;
  }
}

TEST_F(MqttAuth, RevokedFeedListsTokensThatStoppedWorking) {
  auto start = os_->Http("GET", "/internal/mqtt/revoked", {{"X-OpenSense-Hook-Secret", kHookSecret}});
  ASSERT_EQ(start.status, 200);
  const long long now = json::parse(start.body)["now"];
  json d = os_->Api("POST", "/api/v1/devices", W().owner, {{"name", Unique("feed")}});
  const std::string token = d["token"];
  const std::string token_id = token.substr(4, 12);
  os_->Api("POST", "/api/v1/devices/" + std::to_string(d["id"].get<long>()) + "/token", W().owner);
  auto feed = os_->Http("GET", "/internal/mqtt/revoked?since=" + std::to_string(now - 1),
                        {{"X-OpenSense-Hook-Secret", kHookSecret}});
  ASSERT_EQ(feed.status, 200);
  json f = json::parse(feed.body);
  EXPECT_NE(std::find(f["tokens"].begin(), f["tokens"].end(), token_id), f["tokens"].end()) << feed.body;
  EXPECT_EQ(os_->Http("GET", "/internal/mqtt/revoked?since=abc", {{"X-OpenSense-Hook-Secret", kHookSecret}}).status,
            400);
}

}  // namespace
