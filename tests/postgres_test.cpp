// Integration tests of the PostgreSQL store through the real `opensense` binary: the HTTP API
// against a PostgreSQL store URL, SIGKILL mid-ingest, and the PostgreSQL server stopped for a
// while. The cluster comes from the CTest fixture `postgres` (scripts/pg-fixture.sh); the
// outage test starts a private cluster of its own, so stopping it disturbs no other test.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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
#include "store/postgres/pg_conn.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/store.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string FirstLine(const fs::path& p) {
  std::string s = ReadFile(p);
  return s.substr(0, s.find('\n'));
}

long long WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A PostgreSQL cluster: the run's fixture, or a private one (scripts/pg-fixture.sh).
struct Cluster {
  fs::path state;
  bool owned = false;
  std::string admin_url, password;

  static std::optional<Cluster> Shared() {
    const char* s = std::getenv("OPENSENSE_TEST_PG_STATE");
    if (s == nullptr || !fs::exists(fs::path(s) / "url")) return std::nullopt;
    return Cluster{s, false, FirstLine(fs::path(s) / "url"), ReadFile(fs::path(s) / "password")};
  }
  static std::optional<Cluster> Private(const fs::path& state) {
    if (Script("start", state) != 0) return std::nullopt;
    return Cluster{state, true, FirstLine(state / "url"), ReadFile(state / "password")};
  }
  static int Script(const std::string& cmd, const fs::path& state) {
    std::string line = std::string(OPENSENSE_SOURCE_DIR) + "/scripts/pg-fixture.sh " + cmd + " '" +
                       state.string() + "' >/dev/null 2>&1";
    return std::system(line.c_str());
  }
  void Pause() { ASSERT_EQ(Script("pause", state), 0); }
  void Resume() { ASSERT_EQ(Script("resume", state), 0); }
  void Stop() {
    if (!owned) return;
    Script("stop", state);
    std::error_code ec;
    fs::remove_all(state, ec);
  }
  // A fresh database; the URL the binary gets with --store.
  std::string NewDatabase(const std::string& name) {
    ::setenv("OPENSENSE_STORE_PASSWORD", password.c_str(), 1);
    auto url = opensense::store::postgres::CreateDatabase(admin_url, name);
    EXPECT_TRUE(url) << (url ? "" : url.error().message);
    return url ? *url : "";
  }
};

struct Ran {
  int code = -1;
  std::string out, err;
};

// Runs `opensense <args>` in `cwd` with only PATH and the store password in its environment;
// stdout to `out`, stderr to `err` (the same file when they are equal).
pid_t SpawnCli(const std::vector<std::string>& args, const std::string& password, const fs::path& out,
               const fs::path& err, const fs::path& cwd = fs::temp_directory_path()) {
  return opensense::testing::SpawnOpenSense(OPENSENSE_BINARY, args, {"OPENSENSE_STORE_PASSWORD=" + password},
                                            out, err, cwd);
}

// `opensense` with --store pointing at PostgreSQL and the password in its environment only.
class Server {
 public:
  Server(std::string store_url, std::string password)
      : store_(std::move(store_url)), password_(std::move(password)) {
    dir_ = fs::temp_directory_path() /
           ("opensense-pgit-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  ~Server() {
    Kill(SIGKILL);
    fs::remove_all(dir_);
  }

  Ran Cli(std::vector<std::string> args) {
    args.insert(args.end(), {"--store", store_, "--data-dir", (dir_ / "data").string()});
    pid_t pid = Spawn(args, dir_ / "cli.out", dir_ / "cli.err");
    int status = 0;
    ::waitpid(pid, &status, 0);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(dir_ / "cli.out"),
            ReadFile(dir_ / "cli.err")};
  }
  json CliJson(std::vector<std::string> args) {
    args.push_back("--json");
    Ran r = Cli(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }
  void Start(std::vector<std::string> extra = {}) {
    ++starts_;
    fs::path log = dir_ / ("serve" + std::to_string(starts_) + ".log");
    log_ = log;
    // A loop of small posts is the load here, not what the rate limit is for.
    std::vector<std::string> args = {"serve", "--listen", "127.0.0.1:0", "--store", store_, "--data-dir",
                                     (dir_ / "data").string(), "--ingest-rate-per-token", "100000",
                                     "--ingest-burst-per-token", "100000"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = Spawn(args, log, log);
    std::regex re(R"(listening on http://([0-9.]+:[0-9]+))");
    for (int i = 0; i < 400; ++i) {
      std::smatch m;
      std::string text = ReadFile(log);
      if (std::regex_search(text, m, re)) {
        address_ = m[1];
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "server did not start: " << ReadFile(log);
  }
  void Kill(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  opensense::http::ClientResponse Call(const std::string& method, const std::string& target,
                                       const std::string& token = "", std::string body = "") {
    std::vector<std::pair<std::string, std::string>> h;
    if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
    if (method == "POST" || !body.empty()) h.emplace_back("Content-Type", "application/json");
    auto r = opensense::http::Fetch(address_, method, target, h, std::move(body), std::chrono::seconds(20));
    EXPECT_TRUE(r) << method << " " << target << ": " << (r ? "" : r.error().message);
    return r ? *r : opensense::http::ClientResponse{};
  }
  const std::string& address() const { return address_; }
  std::string Log() const { return ReadFile(log_); }

 private:
  pid_t Spawn(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
    return SpawnCli(args, password_, out, err, dir_);
  }
  std::string store_, password_;
  fs::path dir_, log_;
  pid_t pid_ = -1;
  int starts_ = 0;
  std::string address_;
};

struct World {
  std::string owner_a, owner_b, device_a, device_b;
  long org_a = 0, org_b = 0, dev_a = 0, dev_b = 0;
};

World MakeWorld(Server& s) {
  World w;
  json a = s.CliJson({"org", "create", "--name", "A", "--timezone", "Europe/Berlin", "--owner-email", "a@example.com"});
  json b = s.CliJson({"org", "create", "--name", "B", "--owner-email", "b@example.com"});
  w.owner_a = a.value("token", "");
  w.owner_b = b.value("token", "");
  w.org_a = a.value("id", 0L);
  w.org_b = b.value("id", 0L);
  json da = s.CliJson({"device", "create", "--org", std::to_string(w.org_a), "--name", "Fridge A"});
  json db = s.CliJson({"device", "create", "--org", std::to_string(w.org_b), "--name", "Fridge B"});
  w.device_a = da.value("token", "");
  w.device_b = db.value("token", "");
  w.dev_a = da.value("id", 0L);
  w.dev_b = db.value("id", 0L);
  return w;
}

std::string DbName(const std::string& test) {
  return "it_" + test + "_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}() % 100000);
}

std::string SeriesPath(long dev, long long from, long long to, const std::string& res) {
  return "/api/v1/devices/" + std::to_string(dev) + "/series?metric=temperature&resolution=" + res +
         "&from=" + std::to_string(from) + "&to=" + std::to_string(to);
}

// HTTP statuses in the order they came, shared between the posting thread and the test.
struct Statuses {
  std::mutex mu;
  std::vector<int> all;
  void Add(int s) {
    std::lock_guard lock(mu);
    all.push_back(s);
  }
  std::vector<int> Copy() {
    std::lock_guard lock(mu);
    return all;
  }
};

// Posts 20-reading batches until `stop`; returns the batches answered 200.
std::vector<int> IngestUntil(const std::string& address, const std::string& token, long long base,
                             std::atomic<bool>& stop, Statuses* statuses = nullptr) {
  std::vector<int> acked;
  for (int k = 0; k < 100000 && !stop; ++k) {
    json batch = json::array();
    for (int i = 0; i < 20; ++i) batch.push_back({{"ts", base + k * 20 + i}, {"temperature", (k % 100) / 10.0}});
    auto r = opensense::http::Fetch(address, "POST", "/api/v1/ingest",
                                    {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}},
                                    batch.dump(), std::chrono::seconds(10));
    if (statuses != nullptr) statuses->Add(r ? r->status : -1);
    if (r && r->status == 200) {
      acked.push_back(k);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // as a client told to retry
    }
  }
  return acked;
}

void ExpectAllStored(Server& s, const World& w, long long base, const std::vector<int>& acked) {
  auto r = s.Call("GET", SeriesPath(w.dev_a, base, base + 100000LL * 20, "raw"), w.owner_a);
  ASSERT_EQ(r.status, 200) << r.body;
  std::set<long long> stored;
  const json answer = json::parse(r.body);
  for (const auto& p : answer["points"]) stored.insert(p["t"].get<long long>());
  for (int k : acked) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(stored.count(base + k * 20 + i))
          << "acknowledged batch " << k << " lost (" << acked.size() << " acknowledged, "
          << stored.size() << " readings stored)";
    }
  }
}

class PostgresApi : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = Cluster::Shared();
    if (!c) return;
    cluster_ = new Cluster(*c);
    server_ = new Server(cluster_->NewDatabase(DbName("api")), cluster_->password);
    world_ = new World(MakeWorld(*server_));
    server_->Start();
  }
  static void TearDownTestSuite() {
    delete server_;
    delete world_;
    delete cluster_;
  }
  void SetUp() override {
    if (cluster_ == nullptr) GTEST_SKIP() << "no PostgreSQL test cluster: run through ctest";
  }
  static Cluster* cluster_;
  static Server* server_;
  static World* world_;
  Server& S() { return *server_; }
  World& W() { return *world_; }
};
Cluster* PostgresApi::cluster_ = nullptr;
Server* PostgresApi::server_ = nullptr;
World* PostgresApi::world_ = nullptr;

TEST_F(PostgresApi, HealthAndReadiness) {
  EXPECT_EQ(S().Call("GET", "/healthz").status, 200);
  EXPECT_EQ(S().Call("GET", "/readyz").status, 200);
}

TEST_F(PostgresApi, IngestRetryAndSeriesAtEveryResolution) {
  long long t = WallMs() - 3600 * 1000;
  json batch = json::array();
  for (int i = 0; i < 60; ++i) batch.push_back({{"ts", t + i * 60000LL}, {"temperature", 3.5 + (i % 4) * 0.25}});
  auto r = S().Call("POST", "/api/v1/ingest", W().device_a, batch.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["accepted"], 60);
  auto again = S().Call("POST", "/api/v1/ingest", W().device_a, batch.dump());
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(json::parse(again.body)["duplicates"], 60);
  auto raw = S().Call("GET", SeriesPath(W().dev_a, t, t + 3600 * 1000, "raw"), W().owner_a);
  ASSERT_EQ(raw.status, 200) << raw.body;
  auto rj = json::parse(raw.body);
  EXPECT_EQ(rj["unit"], "Cel");
  ASSERT_EQ(rj["points"].size(), 60u);
  EXPECT_EQ(rj["points"][1]["v"], 3.75);
  auto hourly = S().Call("GET", SeriesPath(W().dev_a, t - 3600 * 1000, t + 7200 * 1000, "1h"), W().owner_a);
  ASSERT_EQ(hourly.status, 200);
  long long count = 0;
  const json hours = json::parse(hourly.body);
  for (const auto& p : hours["points"]) count += p["count"].get<long long>();
  EXPECT_EQ(count, 60) << hourly.body;
  auto latest = S().Call("GET", "/api/v1/devices/" + std::to_string(W().dev_a) + "/latest", W().owner_a);
  ASSERT_EQ(latest.status, 200) << latest.body;
  EXPECT_NE(latest.body.find("temperature"), std::string::npos);
}

TEST_F(PostgresApi, OneOrganisationCannotSeeAnothersDevices) {
  std::string b = std::to_string(W().dev_b);
  for (std::string target : {"/api/v1/devices/" + b, "/api/v1/devices/" + b + "/latest",
                             "/api/v1/devices/" + b + "/series?metric=temperature"}) {
    EXPECT_EQ(S().Call("GET", target, W().owner_a).status, 404) << target;
  }
  EXPECT_EQ(S().Call("PATCH", "/api/v1/devices/" + b, W().owner_a, R"({"name":"stolen"})").status, 404);
  auto mine = S().Call("GET", "/api/v1/devices/" + b, W().owner_b);
  ASSERT_EQ(mine.status, 200);
  EXPECT_EQ(json::parse(mine.body)["name"], "Fridge B");
}

TEST_F(PostgresApi, WrongAndRevokedTokensAreRefused) {
  EXPECT_EQ(S().Call("POST", "/api/v1/ingest", "osd_nope", R"({"temperature":1})").status, 401);
  auto tokens = json::parse(S().Call("GET", "/api/v1/tokens", W().owner_b).body);
  ASSERT_FALSE(tokens.empty());
  long device_token = 0;
  for (const auto& t : tokens) {
    if (t.value("kind", "") == "device") device_token = t["id"];
  }
  ASSERT_GT(device_token, 0) << tokens.dump();
  EXPECT_EQ(S().Call("DELETE", "/api/v1/tokens/" + std::to_string(device_token), W().owner_b).status / 100, 2);
  EXPECT_EQ(S().Call("POST", "/api/v1/ingest", W().device_b, R"({"temperature":1})").status, 401);
}

TEST(PostgresDurability, EveryAcknowledgedBatchSurvivesSigkill) {
  auto cluster = Cluster::Shared();
  if (!cluster) GTEST_SKIP() << "no PostgreSQL test cluster: run through ctest";
  Server s(cluster->NewDatabase(DbName("crash")), cluster->password);
  World w = MakeWorld(s);
  s.Start();
  std::mt19937 rng(std::random_device{}());
  long long base = WallMs() - 3600 * 1000;
  std::atomic<bool> stop{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 1000));
    s.Kill(SIGKILL);
    stop = true;
  });
  std::vector<int> acked = IngestUntil(s.address(), w.device_a, base, stop);
  killer.join();
  ASSERT_FALSE(acked.empty());
  s.Start();
  ExpectAllStored(s, w, base, acked);
}

TEST(PostgresOutage, IngestAnswers503WhileTheServerIsDownAndRecoversByItself) {
  if (!Cluster::Shared()) GTEST_SKIP() << "no PostgreSQL test cluster: run through ctest";
  // A private cluster: stopping the shared one would fail the tests running beside this one.
  fs::path state = fs::temp_directory_path() / ("opensense-pg-outage-" + std::to_string(::getpid()));
  auto cluster = Cluster::Private(state);
  ASSERT_TRUE(cluster) << "could not start a private PostgreSQL cluster";
  struct StopAtEnd {
    Cluster* c;
    ~StopAtEnd() { c->Stop(); }
  } stop_at_end{&*cluster};
  Server s(cluster->NewDatabase("outage"), cluster->password);
  World w = MakeWorld(s);
  s.Start();
  long long base = WallMs() - 3600 * 1000;
  std::atomic<bool> stop{false};
  Statuses statuses;
  std::vector<int> acked;
  std::thread client([&] { acked = IngestUntil(s.address(), w.device_a, base, stop, &statuses); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  cluster->Pause();
  std::size_t before = statuses.Copy().size();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::size_t during_end = statuses.Copy().size();
  EXPECT_EQ(s.Call("GET", "/readyz").status, 503);
  cluster->Resume();
  // Recovers without a restart of opensense: 200s again within a few seconds.
  bool recovered = false;
  for (int i = 0; i < 100 && !recovered; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = statuses.Copy();
    std::size_t n = now.size();
    recovered = n > during_end + 2 && now[n - 1] == 200;
  }
  stop = true;
  client.join();
  // While the server was down: refusals (503), never an acknowledgement.
  int unavailable = 0, ok_while_down = 0;
  auto all = statuses.Copy();
  std::string tail;
  for (std::size_t i = all.size() > 20 ? all.size() - 20 : 0; i < all.size(); ++i) tail += std::to_string(all[i]) + " ";
  EXPECT_TRUE(recovered) << "ingest did not recover after PostgreSQL came back; last statuses: " << tail;
  for (std::size_t i = before + 2; i < during_end && i < all.size(); ++i) {
    if (all[i] == 503) ++unavailable;
    if (all[i] == 200) ++ok_while_down;
  }
  EXPECT_GT(unavailable, 0);
  EXPECT_EQ(ok_while_down, 0);
  EXPECT_EQ(s.Call("GET", "/readyz").status, 200);
  ExpectAllStored(s, w, base, acked);
}

// ---- MQTT ingest into the PostgreSQL store -----------------------------------------------------

TEST(PostgresMqtt, ReadingsPublishedAtQos1LandInPostgres) {
  auto cluster = Cluster::Shared();
  if (!cluster) GTEST_SKIP() << "no PostgreSQL test cluster: run through ctest";
  // A broker from the shipped configuration without the auth plugin (anonymous clients): what
  // is tested here is the subscriber's path into this store, not broker authentication.
  opensense::testing::MosquittoOptions mo;
  mo.load_plugin = false;
  opensense::testing::MosquittoBroker broker(mo);
  ASSERT_TRUE(broker.Start()) << broker.Log();
  Server s(cluster->NewDatabase(DbName("mqtt")), cluster->password);
  World w = MakeWorld(s);
  s.Start({"--roles", "api,ingest", "--mqtt-url", broker.url()});
  for (int i = 0; i < 200; ++i) {
    if (s.Log().find("subscribed to") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(s.Log().find("subscribed to"), std::string::npos) << s.Log();
  const long long t0 = (WallMs() / 1000 - 600) * 1000;
  for (int i = 0; i < 5; ++i) {
    std::string cmd = "mosquitto_pub -q 1 -h 127.0.0.1 -p " + std::to_string(broker.port()) + " -t devices/" +
                      std::to_string(w.dev_a) + "/readings -m '{\"ts\":" + std::to_string(t0 + i * 1000) +
                      ",\"temperature\":" + std::to_string(4 + i) + "}'";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::size_t stored = 0;
  for (int i = 0; i < 200 && stored < 5; ++i) {
    auto r = s.Call("GET", SeriesPath(w.dev_a, t0, t0 + 5000, "raw"), w.owner_a);
    if (r.status == 200) stored = json::parse(r.body)["points"].size();
    if (stored < 5) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(stored, 5u) << s.Log();
}

// ---- store copy: SQLite -> PostgreSQL ----------------------------------------------------------

int Wait(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(PostgresStoreCopy, InterruptedCopyResumesVerifiesAndCatchesACorruptTarget) {
  using namespace opensense;
  auto cluster = Cluster::Shared();
  if (!cluster) GTEST_SKIP() << "no PostgreSQL test cluster: run through ctest";
  fs::path dir = fs::temp_directory_path() / ("opensense-copy-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path d;
    ~Cleanup() { fs::remove_all(d); }
  } cleanup{dir};
  const std::string sqlite_url = "sqlite://" + (dir / "opensense.db").string();

  // A SQLite installation: 2 organisations, 50 devices, a token, 300,000 readings, some of them
  // compacted and some still in the log.
  const TimestampMs now = WallMs();
  std::vector<DeviceId> devices;
  OrgId org = 0;
  {
    store::StoreOptions o;
    o.url = sqlite_url;
    auto s = store::OpenStore(o);
    ASSERT_TRUE(s) << s.error().message;
    auto& st = **s;
    org = st.CreateOrganization({"Cafe", "Europe/Berlin", Tier::kTeam})->id;
    ASSERT_TRUE(st.CreateOrganization({"Pharmacy", "UTC", Tier::kFree}));
    for (int i = 0; i < 50; ++i) devices.push_back(st.CreateDevice({org, "Fridge " + std::to_string(i), std::nullopt, "S" + std::to_string(i)})->id);
    TokenRecord t;
    t.public_id = "copyme";
    t.org_id = org;
    t.device = devices[0];
    t.secret_hash = "$2b$10$x";
    ASSERT_TRUE(st.CreateToken(t));
    const TimestampMs start = now - 3000 * kMsPerMinute;
    for (int minute = 0; minute < 3000; minute += 100) {
      std::vector<Reading> batch;
      for (int m = minute; m < minute + 100; ++m) {
        for (DeviceId d : devices) {
          batch.push_back({d, "temperature", "", start + m * kMsPerMinute, 3 + (m % 50) * 0.01});
          batch.push_back({d, "humidity", "", start + m * kMsPerMinute, 60.0 + (m % 7)});
        }
      }
      auto r = st.Ingest(org, std::move(batch)).get();
      ASSERT_TRUE(r && r->accepted == 10000u);
      if (minute == 1500) {
        ASSERT_TRUE(st.Compact());
      }
    }
    st.Close();
  }
  const std::string pg_url = cluster->NewDatabase(DbName("copy"));
  std::vector<std::string> copy = {"store", "copy", "--from", sqlite_url, "--to", pg_url};

  // Interrupted: SIGKILL once the readings are on their way.
  pid_t pid = SpawnCli(copy, cluster->password, dir / "out1", dir / "err1");
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    started = ReadFile(dir / "err1").find("readings: 100000") != std::string::npos;
  }
  ::kill(pid, SIGKILL);
  Wait(pid);
  ASSERT_TRUE(started) << ReadFile(dir / "err1");

  // Resumed: only the rest is copied, and everything verifies.
  auto args = copy;
  args.push_back("--json");
  ASSERT_EQ(Wait(SpawnCli(args, cluster->password, dir / "out2", dir / "err2")), 0) << ReadFile(dir / "err2");
  json report = json::parse(ReadFile(dir / "out2"));
  EXPECT_TRUE(report["verified"].get<bool>());
  EXPECT_GT(report["readings_copied"].get<long long>(), 0);
  EXPECT_LT(report["readings_copied"].get<long long>(), 300000);
  for (const auto& t : report["tables"]) {
    EXPECT_EQ(t["source"], t["target"]) << t.dump();
    if (t["table"] == "readings") {
      EXPECT_EQ(t["target"], 300000);
    }
  }

  // The PostgreSQL store answers like the SQLite one did.
  {
    store::StoreOptions o;
    o.url = pg_url;
    o.writer = false;
    auto pg = store::OpenStore(o);
    ASSERT_TRUE(pg) << pg.error().message;
    auto q = (*pg)->QuerySeries({org, devices[7], "temperature", now - 3000 * kMsPerMinute, now, Resolution::k1h});
    ASSERT_TRUE(q);
    std::int64_t count = 0;
    for (const auto& p : q->points) count += p.count;
    EXPECT_EQ(count, 3000);
    EXPECT_EQ((*pg)->FindToken("copyme")->device, devices[0]);
    EXPECT_EQ((*pg)->FindDeviceBySerial(org, "S7")->id, devices[7]);
    // New rows get ids after the copied ones.
    auto fresh = (*pg)->CreateDevice({org, "New", std::nullopt, std::nullopt});
    ASSERT_TRUE(fresh) << fresh.error().message;
    EXPECT_GT(fresh->id, devices.back());
  }

  // And back: PostgreSQL -> a fresh SQLite store, verified, answering the same.
  const std::string back_url = "sqlite://" + (dir / "back.db").string();
  ASSERT_EQ(Wait(SpawnCli({"store", "copy", "--from", pg_url, "--to", back_url}, cluster->password,
                          dir / "out4", dir / "err4")),
            0)
      << ReadFile(dir / "err4");
  {
    store::StoreOptions o;
    o.url = back_url;
    auto back = store::OpenStore(o);
    ASSERT_TRUE(back) << back.error().message;
    auto q = (*back)->QuerySeries({org, devices[7], "temperature", now - 3000 * kMsPerMinute, now, Resolution::k1h});
    ASSERT_TRUE(q);
    std::int64_t count = 0;
    for (const auto& p : q->points) count += p.count;
    EXPECT_EQ(count, 3000);
    EXPECT_EQ((*back)->FindToken("copyme")->device, devices[0]);
    EXPECT_EQ((*back)->GetOrganization(org)->time_zone, "Europe/Berlin");
    // Readings keep flowing into the copy; a duplicate of a copied reading is recognised.
    auto dup = (*back)->Ingest(org, {Reading{devices[7], "temperature", "", now - 3000 * kMsPerMinute, 3}}).get();
    ASSERT_TRUE(dup);
    EXPECT_EQ(dup->duplicates, 1u);
    (*back)->Close();
  }

  // A corrupted target (one reading changed) is caught, and the device named.
  {
    ::setenv("OPENSENSE_STORE_PASSWORD", cluster->password.c_str(), 1);
    auto info = store::postgres::ParseConnInfo(pg_url);
    ASSERT_TRUE(info);
    auto conn = store::postgres::Conn::Connect(*info);
    ASSERT_TRUE(conn);
    ASSERT_TRUE((*conn)->Exec(
        "UPDATE readings SET value = value + 1 WHERE (series_id, ts) = (SELECT r.series_id, min(r.ts) "
        "FROM readings r JOIN series s ON s.id = r.series_id WHERE s.device_id = $1 GROUP BY r.series_id LIMIT 1)",
        {std::to_string(devices[3])}));
  }
  args = copy;
  args.push_back("--verify-only");
  args.push_back("--json");
  EXPECT_EQ(Wait(SpawnCli(args, cluster->password, dir / "out3", dir / "err3")), 1);
  EXPECT_NE(ReadFile(dir / "err3").find("verification FAILED"), std::string::npos) << ReadFile(dir / "err3");
  json bad = json::parse(ReadFile(dir / "out3"));
  EXPECT_FALSE(bad["verified"].get<bool>());
  EXPECT_EQ(bad["mismatched_devices"], json::array({devices[3]}));
}

}  // namespace
