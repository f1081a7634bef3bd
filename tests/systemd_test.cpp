// The systemd integration: sd_notify readiness, watchdog and stopping from the real binary to a
// fake NOTIFY_SOCKET (a unix datagram socket here), and the shipped units checked with
// systemd-analyze (verify, and the offline security exposure score). systemd is not PID 1 here.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "api/http/client.hpp"
#include "app/systemd_notify.hpp"
#include "opensense_process.hpp"
#include "shell_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using opensense::testing::OpenSenseProcess;

// A bound unix datagram socket playing systemd's notification socket.
class FakeNotifySocket {
 public:
  explicit FakeNotifySocket(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    auto addr = opensense::app::ParseNotifySocket(name_);
    if (fd_ < 0 || !addr ||
        ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr->addr), addr->length) != 0) {
      ::perror("bind");
      fd_ = -1;
    }
  }
  ~FakeNotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    if (name_.front() == '/') ::unlink(name_.c_str());
  }
  bool ok() const { return fd_ >= 0; }
  const std::string& name() const { return name_; }
  // The next datagram, or "" after `timeout`.
  std::string Next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "";
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  }

 private:
  std::string name_;
  int fd_ = -1;
};

std::string Unique(const std::string& stem) {
  return stem + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
}

TEST(SdNotifyParse, PathsAbstractNamesAndWatchdogInterval) {
  using opensense::app::ParseNotifySocket;
  using opensense::app::WatchdogPingInterval;
  auto path = ParseNotifySocket("/run/systemd/notify");
  ASSERT_TRUE(path);
  EXPECT_EQ(std::string(path->addr.sun_path), "/run/systemd/notify");
  auto abstract = ParseNotifySocket("@x/y");
  ASSERT_TRUE(abstract);
  EXPECT_EQ(abstract->addr.sun_path[0], '\0');
  EXPECT_EQ(abstract->length, offsetof(sockaddr_un, sun_path) + 4);
  EXPECT_FALSE(ParseNotifySocket(""));
  EXPECT_FALSE(ParseNotifySocket("vsock:2:1"));
  EXPECT_FALSE(ParseNotifySocket("/" + std::string(200, 'a')));
  EXPECT_EQ(WatchdogPingInterval("30000000", nullptr, 7), std::chrono::seconds(15));
  EXPECT_EQ(WatchdogPingInterval("30000000", "7", 7), std::chrono::seconds(15));
  EXPECT_FALSE(WatchdogPingInterval("30000000", "8", 7));  // meant for another process
  EXPECT_FALSE(WatchdogPingInterval(nullptr, nullptr, 7));
  EXPECT_FALSE(WatchdogPingInterval("0", nullptr, 7));
  EXPECT_FALSE(WatchdogPingInterval("abc", nullptr, 7));
}

TEST(SdNotify, ReadyAfterTheListenerPeriodicWatchdogAndStoppingOnAnAbstractSocket) {
  FakeNotifySocket sock("@" + Unique("opensense-notify-"));
  ASSERT_TRUE(sock.ok());
  OpenSenseProcess os({{"NOTIFY_SOCKET", sock.name()}, {"WATCHDOG_USEC", "300000"}});
  ASSERT_TRUE(os.Start({"--roles", "api,ingest,scheduler"})) << os.Log();
  std::string first = sock.Next(std::chrono::seconds(10));
  EXPECT_EQ(first.rfind("READY=1", 0), 0u) << first << "\n" << os.Log();
  // Ready means ready: the API answers and the store is writable.
  auto ready = opensense::http::Fetch(os.address(), "GET", "/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  // WATCHDOG_USEC 300 ms: a ping every 150 ms.
  int pings = 0;
  const auto start = Clock::now();
  while (pings < 4 && Clock::now() - start < std::chrono::seconds(5)) {
    if (sock.Next(std::chrono::seconds(1)) == "WATCHDOG=1") ++pings;
  }
  EXPECT_GE(pings, 4) << os.Log();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  os.Stop();
  std::string last;
  for (std::string m; !(m = sock.Next(std::chrono::milliseconds(500))).empty();) last = m;
  EXPECT_EQ(last.rfind("STOPPING=1", 0), 0u) << last;
  EXPECT_NE(os.Log().find("stopped cleanly"), std::string::npos) << os.Log();
}

TEST(SdNotify, PathSocketWithoutWatchdogGetsReadyAndStoppingOnly) {
  FakeNotifySocket sock((fs::temp_directory_path() / Unique("opensense-notify-")).string());
  ASSERT_TRUE(sock.ok());
  OpenSenseProcess os({{"NOTIFY_SOCKET", sock.name()}});
  ASSERT_TRUE(os.Start({"--roles", "api"})) << os.Log();
  EXPECT_EQ(sock.Next(std::chrono::seconds(10)).rfind("READY=1", 0), 0u);
  EXPECT_EQ(sock.Next(std::chrono::milliseconds(400)), "");  // no watchdog asked for
  os.Stop();
  EXPECT_EQ(sock.Next(std::chrono::seconds(2)).rfind("STOPPING=1", 0), 0u);
}

// ---- the units ------------------------------------------------------------------------------

using Ran = opensense::testing::ShellRun;

// Both streams: systemd-analyze reports on stderr.
Ran Shell(const std::string& command) { return opensense::testing::Shell(command + " 2>&1"); }

const auto& Slurp = opensense::testing::ReadFile;

// The shipped units with the binary's path substituted (verify checks that ExecStart exists).
class SystemdUnits : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Shell("command -v systemd-analyze").code != 0) GTEST_SKIP() << "systemd-analyze is missing";
    dir_ = fs::temp_directory_path() / Unique("opensense-units-");
    fs::create_directories(dir_);
    for (const auto& e : fs::directory_iterator(fs::path(OPENSENSE_SOURCE_DIR) / "deploy" / "systemd")) {
      const std::string text = std::regex_replace(Slurp(e.path()), std::regex("/usr/local/bin/opensense"),
                                                  OPENSENSE_BINARY);
      std::ofstream(dir_ / e.path().filename()) << text;
      units_.push_back(dir_ / e.path().filename());
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
  std::vector<fs::path> units_;
};

TEST_F(SystemdUnits, VerifyPasses) {
  ASSERT_FALSE(units_.empty());
  for (const auto& u : units_) {
    const Ran r = Shell("systemd-analyze verify '" + u.string() + "'");
    EXPECT_EQ(r.code, 0) << u << "\n" << r.output;
    EXPECT_EQ(r.output.find(u.filename().string() + ":"), std::string::npos) << r.output;
  }
}

TEST_F(SystemdUnits, OpenSenseExposureScoreIsUnder2AndTheSandboxIsThere) {
  const fs::path unit = dir_ / "opensense.service";
  const std::string text = Slurp(unit);
  for (const char* line :
       {"Type=notify", "WatchdogSec=", "Restart=on-failure", "LoadCredential=secrets.env:/etc/opensense/secrets.env",
        "ProtectSystem=strict", "ReadWritePaths=/var/lib/opensense\n", "ProtectHome=yes", "PrivateTmp=yes",
        "NoNewPrivileges=yes", "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  const Ran r = Shell("systemd-analyze security --offline=true '" + unit.string() + "'");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex(R"(Overall exposure level for opensense\.service: ([0-9.]+))")))
      << r.output;
  const double score = std::stod(m[1]);
  RecordProperty("exposure", m[1].str());
  std::printf("systemd-analyze security --offline=true: exposure %.1f\n", score);
  EXPECT_LT(score, 2.0) << r.output;
}

}  // namespace
