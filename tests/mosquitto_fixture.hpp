// A real Mosquitto 2.0 broker for tests, started from the shipped configuration
// (deploy/mosquitto/mosquitto.conf) with only ports, directories, the plugin path and the
// plugin's options substituted.
//
//   opensense::testing::MosquittoOptions o;
//   o.hook_url = "http://" + opensense_address;   // where the plugin asks /internal/mqtt/auth
//   o.hook_secret = "the-shared-secret";           // written to a 0600 file for the plugin
//   opensense::testing::MosquittoBroker broker(o);
//   ASSERT_TRUE(broker.Start()) << broker.Log();   // waits until it accepts connections
//   ... connect to 127.0.0.1:broker.port() ...
//   broker.Stop();      // SIGTERM: mosquitto saves its persistence file and exits
//   broker.Kill();      // SIGKILL: nothing saved since the last autosave
//   broker.Start();     // again, on the same port with the same persistence directory
//
// What is substituted (the sections between "# BEGIN x" / "# END x" markers in the shipped file):
//   - loopback:  `listener 1883 127.0.0.1` -> a free 127.0.0.1 port chosen once per fixture;
//   - field-tls: dropped, unless `tls_cert_file`/`tls_key_file` are given (a test that made a
//                certificate with openssl): then a second 127.0.0.1 listener on tls_port();
//   - plugin:    the plugin path (the build's .so), plugin_opt_url, plugin_opt_secret_file; extra
//                or overridden plugin_opt_* from `plugin_options`. With `load_plugin = false`
//                the block is replaced by `allow_anonymous true` (broker-only tests);
//   - persistence_location -> <dir()>/persistence/;  logging -> stderr, captured in Log().
// Everything else (limits, persistence, autosave) is exactly what production runs.
//
// Running as root (CI does): Mosquitto started as root drops to the `mosquitto` user, so the
// fixture hands its temp directory and the secret file to that user.
//
// Build: the test target needs OPENSENSE_SOURCE_DIR (to find deploy/) and
// OPENSENSE_MQTT_PLUGIN (the plugin .so, `$<TARGET_FILE:opensense_mosquitto_auth>`) defined, or
// the paths set in MosquittoOptions.
//
// Threads: one fixture is driven by one thread. Header-only, POSIX.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace opensense::testing {

struct MosquittoOptions {
  // Base URL of OpenSense's HTTP server, e.g. "http://127.0.0.1:41234" (the plugin appends
  // /internal/mqtt/...).
  std::string hook_url = "http://127.0.0.1:1";
  // The shared hook secret (OPENSENSE_MQTT_HOOK_SECRET of that OpenSense process).
  std::string hook_secret = "test-hook-secret";
  // false: no plugin and `allow_anonymous true` instead (a broker-only test).
  bool load_plugin = true;
  // plugin_opt_<key> values added or replaced, e.g. {"cache_seconds", "1"}.
  std::map<std::string, std::string> plugin_options;
  // A PEM certificate and key for the field TLS listener (else no TLS listener).
  std::string tls_cert_file;
  std::string tls_key_file;
  // Lines appended at the end of the configuration (a later line wins in mosquitto.conf).
  std::vector<std::string> extra_lines;
  // Paths; default from the build.
#ifdef OPENSENSE_SOURCE_DIR
  std::string config_template = std::string(OPENSENSE_SOURCE_DIR) + "/deploy/mosquitto/mosquitto.conf";
#else
  std::string config_template;
#endif
#ifdef OPENSENSE_MQTT_PLUGIN
  std::string plugin_path = OPENSENSE_MQTT_PLUGIN;
#else
  std::string plugin_path;
#endif
  std::string mosquitto_binary = "/usr/sbin/mosquitto";
};

class MosquittoBroker {
 public:
  explicit MosquittoBroker(MosquittoOptions options) : options_(std::move(options)) {
    namespace fs = std::filesystem;
    dir_ = fs::temp_directory_path() /
           ("opensense-mosquitto-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_ / "persistence");
    port_ = FreePort();
    if (!options_.tls_cert_file.empty()) tls_port_ = FreePort();
  }
  ~MosquittoBroker() {
    Kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  // Writes the configuration, starts mosquitto and waits (up to 10 s) until the loopback
  // listener accepts connections. false (see Log()) when it exits or never listens.
  bool Start() {
    if (pid_ > 0) return true;
    if (!WriteFiles()) return false;
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // do not outlive a crashed test (until it drops root)
      int log = ::open(LogPath().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
      const std::string conf = ConfigPath();
      ::execl(options_.mosquitto_binary.c_str(), options_.mosquitto_binary.c_str(), "-c", conf.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (Accepts(port_) && (tls_port_ == 0 || Accepts(tls_port_))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill();
    return false;
  }

  // SIGTERM and wait: mosquitto writes its persistence file on the way out.
  void Stop() { Signal(SIGTERM); }
  // SIGKILL and wait: whatever was not autosaved is gone.
  void Kill() { Signal(SIGKILL); }
  // Stop() then Start() on the same port and persistence directory.
  bool Restart() {
    Stop();
    return Start();
  }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "mqtt://" + host_port(); }
  int tls_port() const { return tls_port_; }  // 0 without a TLS listener
  const std::filesystem::path& dir() const { return dir_; }
  std::string ConfigPath() const { return (dir_ / "mosquitto.conf").string(); }
  std::string LogPath() const { return (dir_ / "mosquitto.log").string(); }
  // Everything the broker logged so far, across restarts.
  std::string Log() const {
    std::ifstream in(LogPath());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The configuration it runs with (for failure messages).
  std::string Config() const {
    std::ifstream in(ConfigPath());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // The shipped file with the substitutions above, as text (exposed for a test of the fixture).
  static std::string RenderConfig(const std::string& shipped, const MosquittoOptions& o, int port,
                                  int tls_port, const std::string& dir, const std::string& secret_file) {
    std::istringstream in(shipped);
    std::ostringstream out;
    std::string line, section;
    auto starts = [](const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; };
    std::map<std::string, std::string> opts_left = o.plugin_options;
    while (std::getline(in, line)) {
      if (starts(line, "# BEGIN ")) {
        section = line.substr(8);
        out << line << "\n";
        if (section == "plugin" && !o.load_plugin) out << "allow_anonymous true\n";
        if (section == "field-tls" && tls_port > 0) {
          out << "listener " << tls_port << " 127.0.0.1\nprotocol mqtt\ncertfile " << o.tls_cert_file
              << "\nkeyfile " << o.tls_key_file << "\ntls_version tlsv1.2\n";
        }
        continue;
      }
      if (starts(line, "# END ")) {
        if (section == "plugin" && o.load_plugin) {
          for (const auto& [k, v] : opts_left) out << "plugin_opt_" << k << " " << v << "\n";
        }
        section.clear();
        out << line << "\n";
        continue;
      }
      if (section.empty() || starts(line, "#") || line.empty()) {
        out << line << "\n";
        continue;
      }
      if (section == "plugin") {
        if (!o.load_plugin) continue;
        if (starts(line, "plugin ")) {
          out << "plugin " << o.plugin_path << "\n";
        } else if (starts(line, "plugin_opt_url ")) {
          out << "plugin_opt_url " << o.hook_url << "\n";
        } else if (starts(line, "plugin_opt_secret_file ")) {
          out << "plugin_opt_secret_file " << secret_file << "\n";
        } else if (starts(line, "plugin_opt_")) {
          std::string key = line.substr(11, line.find(' ') - 11);
          auto it = opts_left.find(key);
          if (it == opts_left.end()) {
            out << line << "\n";
          } else {
            out << "plugin_opt_" << key << " " << it->second << "\n";
            opts_left.erase(it);
          }
        } else {
          out << line << "\n";
        }
      } else if (section == "loopback") {
        if (starts(line, "listener ")) out << "listener " << port << " 127.0.0.1\n";
        else out << line << "\n";
      } else if (section == "field-tls") {
        // replaced above (or dropped)
      } else if (section == "persistence_location") {
        out << "persistence_location " << dir << "/persistence/\n";
      } else if (section == "logging") {
        out << "log_dest stderr\n";
      } else {
        out << line << "\n";
      }
    }
    for (const auto& l : o.extra_lines) out << l << "\n";
    return out.str();
  }

 private:
  bool WriteFiles() {
    namespace fs = std::filesystem;
    std::ifstream in(options_.config_template);
    if (!in) {
      AppendLog("fixture: cannot read " + options_.config_template + "\n");
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string secret_file = (dir_ / "hook-secret").string();
    {
      std::ofstream s(secret_file, std::ios::trunc);
      s << options_.hook_secret << "\n";
    }
    ::chmod(secret_file.c_str(), 0600);
    {
      std::ofstream c(ConfigPath(), std::ios::trunc);
      c << RenderConfig(ss.str(), options_, port_, tls_port_, dir_.string(), secret_file);
    }
    // Mosquitto started as root switches to the `mosquitto` user: hand it our files.
    if (::geteuid() == 0) {
      if (const passwd* pw = ::getpwnam("mosquitto")) {
        for (const auto& p : {dir_, dir_ / "persistence", fs::path(secret_file)}) {
          if (::chown(p.c_str(), pw->pw_uid, pw->pw_gid) != 0) AppendLog("fixture: chown failed\n");
        }
        for (const auto& e : fs::directory_iterator(dir_ / "persistence")) {
          if (::chown(e.path().c_str(), pw->pw_uid, pw->pw_gid) != 0) AppendLog("fixture: chown failed\n");
        }
        // The test's certificate and key (read again as `mosquitto` on SIGHUP).
        for (const auto& f : {options_.tls_cert_file, options_.tls_key_file}) {
          if (!f.empty() && ::chown(f.c_str(), pw->pw_uid, pw->pw_gid) != 0) AppendLog("fixture: chown failed\n");
        }
      }
    }
    return true;
  }

  void AppendLog(const std::string& text) {
    std::ofstream(LogPath(), std::ios::app) << text;
  }

  void Signal(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  static int FreePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("mosquitto fixture: cannot find a free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
  }

  static bool Accepts(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }

  MosquittoOptions options_;
  std::filesystem::path dir_;
  int port_ = 0;
  int tls_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace opensense::testing
