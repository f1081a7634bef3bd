// The real `opensense` binary for integration tests and benchmarks: CLI commands against a temp
// data directory, and `opensense serve` on a free 127.0.0.1 port with a chosen environment.
//
//   opensense::testing::OpenSenseProcess os({{"OPENSENSE_MQTT_HOOK_SECRET", "s"}});
//   nlohmann::json org = os.Cli({"org", "create", "--name", "A", "--owner-email", "a@x"});
//   ASSERT_TRUE(os.Start({"--roles", "api"})) << os.Log();   // waits for "listening on ..."
//   opensense::http::Fetch(os.address(), "GET", "/healthz");
//
// The child gets only PATH and the given variables, so nothing of the caller's environment
// (OPENSENSE_* included) leaks in. Header-only, POSIX. Needs OPENSENSE_BINARY defined (the
// build's `$<TARGET_FILE:opensense>`). Threads: one object is driven by one thread.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace opensense::testing {

// Runs `binary args...` in `cwd` with PATH=/usr/bin:/bin and `env` ("NAME=value" each) as its
// whole environment; stdout to `out`, stderr to `err` (one file when they are equal). Every test
// that starts the real binary goes through here, so none inherits the caller's OPENSENSE_*.
inline pid_t SpawnOpenSense(const std::string& binary, const std::vector<std::string>& args,
                            std::vector<std::string> env, const std::filesystem::path& out,
                            const std::filesystem::path& err, const std::filesystem::path& cwd) {
  std::vector<std::string> argv_text = {binary};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  env.push_back("PATH=/usr/bin:/bin");
  pid_t pid = ::fork();
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = out == err ? o : ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, 1);
    ::dup2(e, 2);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    std::vector<char*> argv, envp;
    for (auto& a : argv_text) argv.push_back(a.data());
    for (auto& v : env) envp.push_back(v.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    ::execve(binary.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

class OpenSenseProcess {
 public:
  explicit OpenSenseProcess(std::map<std::string, std::string> env = {}, std::string binary = OPENSENSE_BINARY)
      : env_(std::move(env)), binary_(std::move(binary)) {
    dir_ = std::filesystem::temp_directory_path() /
           ("opensense-proc-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir_);
  }
  ~OpenSenseProcess() {
    Stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  OpenSenseProcess(const OpenSenseProcess&) = delete;
  OpenSenseProcess& operator=(const OpenSenseProcess&) = delete;

  // A CLI command with --data-dir and --json appended; its stdout as JSON (discarded on failure).
  nlohmann::json Cli(std::vector<std::string> args) {
    args.insert(args.end(), {"--data-dir", DataDir(), "--json"});
    pid_t pid = Spawn(args, dir_ / "cli.out");
    int status = 0;
    ::waitpid(pid, &status, 0);
    return nlohmann::json::parse(Read(dir_ / "cli.out"), nullptr, false);
  }

  // `serve --listen 127.0.0.1:0 --data-dir ... <extra>`; true once it logs its address (10 s).
  bool Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"serve", "--listen", "127.0.0.1:0", "--data-dir", DataDir()};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = Spawn(args, dir_ / "serve.log");
    const std::regex re(R"(listening on http://([0-9.]+:[0-9]+))");
    for (int i = 0; i < 400; ++i) {
      std::smatch m;
      const std::string text = Log();
      if (std::regex_search(text, m, re)) {
        address_ = m[1];
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return false;
  }
  // SIGTERM (graceful) and wait.
  void Stop() { Signal(SIGTERM); }
  // SIGKILL and wait.
  void Kill() { Signal(SIGKILL); }

  const std::string& address() const { return address_; }  // "127.0.0.1:41234"
  std::string DataDir() const { return (dir_ / "data").string(); }
  std::string Log() const { return Read(dir_ / "serve.log"); }

 private:
  static std::string Read(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  void Signal(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  pid_t Spawn(const std::vector<std::string>& args, const std::filesystem::path& out) {
    std::vector<std::string> env;
    for (const auto& [k, v] : env_) env.push_back(k + "=" + v);
    return SpawnOpenSense(binary_, args, std::move(env), out, out, dir_);
  }

  std::map<std::string, std::string> env_;
  std::string binary_;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::string address_;
};

}  // namespace opensense::testing
