// Debian's caddy with the shipped deploy/caddy/Caddyfile in front of a real `opensense serve`,
// spoken to with openssl s_client: TLS 1.3 only, HSTS and the security headers, /internal/ and
// /metrics refused from outside, and the client's address (127.0.0.2) in the API request log.
//
// The Caddyfile is used as shipped; only its variables (host, ports, upstream) are set and the
// global block gets test-only options: a local CA without installing trust, no admin endpoint,
// loopback only.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "opensense_process.hpp"
#include "shell_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using opensense::testing::OpenSenseProcess;


int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

using Ran = opensense::testing::ShellRun;
using opensense::testing::Shell;
const auto& Slurp = opensense::testing::ReadFile;

struct HttpAnswer {
  int status = 0;
  std::string head;  // status line and headers, lower-cased names kept as sent
  std::string body;
  bool Has(const std::string& header_line) const { return head.find(header_line) != std::string::npos; }
};

// Caddy (the shipped Caddyfile) in front of OpenSense, started once for the suite.
class CaddyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (Shell("command -v caddy >/dev/null && command -v openssl >/dev/null && command -v sqlite3 >/dev/null").code != 0) {
      skip_ = "caddy, openssl or sqlite3 is missing (scripts/install-deps.sh installs them)";
      return;
    }
    os_ = std::make_unique<OpenSenseProcess>(std::map<std::string, std::string>{{"OPENSENSE_TRUSTED_PROXIES", "127.0.0.1"}});
    org_ = os_->Cli({"org", "create", "--name", "Proxied", "--owner-email", "o@x"});
    ASSERT_TRUE(org_.contains("token")) << org_;
    ASSERT_TRUE(os_->Start({"--roles", "api"})) << os_->Log();

    dir_ = fs::temp_directory_path() /
           ("opensense-caddy-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_ / "data");
    fs::create_directories(dir_ / "config");
    std::string text = Slurp(fs::path(OPENSENSE_SOURCE_DIR) / "deploy" / "caddy" / "Caddyfile");
    const std::size_t global = text.find("\n{\n");
    ASSERT_NE(global, std::string::npos) << "the Caddyfile has no global options block";
    text.insert(global + 3, "\tdefault_bind 127.0.0.1\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n");
    std::ofstream(dir_ / "Caddyfile") << text;

    https_port_ = FreePort();
    const int http_port = FreePort();
    caddy_pid_ = ::fork();
    if (caddy_pid_ == 0) {
      const int o = ::open((dir_ / "caddy.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(o, 1);
      ::dup2(o, 2);
      const std::string env_text[] = {
          "PATH=/usr/bin:/bin", "HOME=" + dir_.string(), "XDG_DATA_HOME=" + (dir_ / "data").string(),
          "XDG_CONFIG_HOME=" + (dir_ / "config").string(), "OPENSENSE_SITE=localhost",
          "OPENSENSE_UPSTREAM=" + os_->address(), "CADDY_HTTPS_PORT=" + std::to_string(https_port_),
          "CADDY_HTTP_PORT=" + std::to_string(http_port)};
      std::vector<char*> envp;
      for (const auto& e : env_text) envp.push_back(const_cast<char*>(e.c_str()));
      envp.push_back(nullptr);
      const std::string config = (dir_ / "Caddyfile").string();
      const char* argv[] = {"caddy", "run", "--config", config.c_str(), "--adapter", "caddyfile", nullptr};
      ::execve("/usr/bin/caddy", const_cast<char* const*>(argv), envp.data());
      ::_exit(127);
    }
    // Ready once a TLS 1.3 handshake completes (the local CA is made at start).
    for (int i = 0; i < 100; ++i) {
      if (Handshake("-tls1_3").code == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL() << "caddy did not come up:\n" << Slurp(dir_ / "caddy.log");
  }

  static void TearDownTestSuite() {
    if (caddy_pid_ > 0) {
      ::kill(caddy_pid_, SIGTERM);
      ::waitpid(caddy_pid_, nullptr, 0);
      caddy_pid_ = -1;
    }
    os_.reset();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(os_ && caddy_pid_ > 0);
  }

  static std::string SClient(const std::string& options) {
    return "timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(https_port_) +
           " -servername localhost " + options;
  }
  static Ran Handshake(const std::string& options) {
    return Shell(SClient(options) + " </dev/null 2>&1");
  }

  // One HTTP/1.1 request through Caddy over TLS 1.3, from `source` (a loopback address).
  static HttpAnswer Request(const std::string& method, const std::string& target,
                            const std::vector<std::string>& headers = {},
                            const std::string& source = "127.0.0.1") {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    for (const auto& h : headers) req += h + "\r\n";
    req += "\r\n";
    const fs::path file = dir_ / ("req-" + std::to_string(requests_++));
    std::ofstream(file, std::ios::binary) << req;
    const Ran r = Shell(SClient("-tls1_3 -quiet -bind " + source + ":0") + " <" + file.string() + " 2>/dev/null");
    HttpAnswer a;
    const std::size_t end = r.output.find("\r\n\r\n");
    a.head = r.output.substr(0, end);
    a.body = end == std::string::npos ? "" : r.output.substr(end + 4);
    if (a.head.rfind("HTTP/1.1 ", 0) == 0) a.status = std::stoi(a.head.substr(9, 3));
    return a;
  }

  static inline std::unique_ptr<OpenSenseProcess> os_;
  static inline nlohmann::json org_;
  static inline fs::path dir_;
  static inline pid_t caddy_pid_ = -1;
  static inline int https_port_ = 0;
  static inline int requests_ = 0;
  static inline std::string skip_;
};

TEST_F(CaddyTest, Tls13HandshakeAndTheApiAnswersThroughIt) {
  const Ran r = Handshake("-tls1_3");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("TLSv1.3"), std::string::npos) << r.output;
  const HttpAnswer a = Request("GET", "/healthz");
  EXPECT_EQ(a.status, 200) << a.head;
  const HttpAnswer devices =
      Request("GET", "/api/v1/devices", {"Authorization: Bearer " + org_["token"].get<std::string>()});
  EXPECT_EQ(devices.status, 200) << devices.head << devices.body;
}

TEST_F(CaddyTest, Tls12AndBelowAreRefused) {
  for (const char* old : {"-tls1_2", "-tls1_1", "-tls1"}) {
    const Ran r = Handshake(old);
    EXPECT_NE(r.code, 0) << old << "\n" << r.output;
    EXPECT_EQ(r.output.find("BEGIN CERTIFICATE"), std::string::npos) << old;
  }
}

TEST_F(CaddyTest, HstsAndSecurityHeaders) {
  const HttpAnswer a = Request("GET", "/healthz");
  ASSERT_EQ(a.status, 200) << a.head;
  for (const char* h : {"Strict-Transport-Security: max-age=63072000; includeSubDomains",
                        "X-Content-Type-Options: nosniff", "X-Frame-Options: DENY",
                        "Referrer-Policy: no-referrer", "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'"}) {
    EXPECT_TRUE(a.Has(h)) << h << "\n" << a.head;
  }
  // Caddy's own answers (here the refused /metrics) carry its policy; each header once.
  const HttpAnswer refused = Request("GET", "/metrics");
  EXPECT_TRUE(refused.Has("Content-Security-Policy: default-src 'self'; frame-ancestors 'none'")) << refused.head;
  EXPECT_TRUE(refused.Has("Strict-Transport-Security: max-age=63072000")) << refused.head;
  for (const std::string name : {"Content-Security-Policy:", "X-Frame-Options:", "X-Content-Type-Options:"}) {
    const std::size_t first = a.head.find(name);
    EXPECT_EQ(a.head.find(name, first + 1), std::string::npos) << name << " twice:\n" << a.head;
  }
  EXPECT_FALSE(a.Has("Server: Caddy")) << a.head;
}

TEST_F(CaddyTest, InternalAndMetricsAreRefusedFromOutside) {
  for (const char* target : {"/metrics", "/metrics/", "/metrics?x=1", "/internal/mqtt/revoked?since=0",
                             "/internal/mqtt/auth", "/internal/", "/internal", "//metrics", "/./metrics",
                             "/api/../metrics", "/%6detrics", "/internal%2fmqtt/revoked"}) {
    const HttpAnswer a = Request("GET", target);
    // 401/503 would be OpenSense's hook gate: the request got through.
    EXPECT_TRUE(a.status != 200 && a.status != 401 && a.status != 503) << target << "\n" << a.head;
    EXPECT_EQ(a.body.find("# HELP"), std::string::npos) << target;
  }
  EXPECT_EQ(Request("GET", "/metrics").status, 404);
  EXPECT_EQ(Request("POST", "/internal/mqtt/auth").status, 404);
  // OpenSense itself still serves them on its loopback address (Prometheus, the broker).
  EXPECT_EQ(Shell("timeout 5 curl -s -o /dev/null -w '%{http_code}' http://" + os_->address() + "/metrics").output, "200");
}

TEST_F(CaddyTest, ClientAddressFrom127_0_0_2IsInTheRequestLog) {
  const std::string auth = "Authorization: Bearer " + org_["token"].get<std::string>();
  // A client claiming another address in its own X-Forwarded-For is not believed: Caddy replaces it.
  const HttpAnswer a =
      Request("GET", "/api/v1/sites", {auth, "X-Forwarded-For: 203.0.113.9"}, "127.0.0.2");
  ASSERT_EQ(a.status, 200) << a.head << a.body;
  // Straight to OpenSense from a peer that is not a trusted proxy: the header is ignored too.
  const Ran direct = Shell("timeout 10 curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.2 -H '" + auth +
                           "' -H 'X-Forwarded-For: 198.51.100.1' http://" + os_->address() + "/api/v1/tokens");
  EXPECT_EQ(direct.output, "200");
  os_->Stop();
  const Ran log = Shell("sqlite3 " + os_->DataDir() + "/opensense.db \"SELECT route || ' ' || client FROM api_requests ORDER BY id\"");
  ASSERT_EQ(log.code, 0) << log.output;
  EXPECT_NE(log.output.find("/api/v1/sites 127.0.0.2\n"), std::string::npos) << log.output;
  EXPECT_NE(log.output.find("/api/v1/tokens 127.0.0.2:"), std::string::npos) << log.output;
  EXPECT_EQ(log.output.find("203.0.113.9"), std::string::npos) << log.output;
  EXPECT_EQ(log.output.find("198.51.100.1"), std::string::npos) << log.output;
}

}  // namespace
