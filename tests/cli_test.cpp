// Integration tests of the real `opensense` binary: its commands, exit codes, --json output,
// configuration precedence, and a clean stop of `serve` on SIGTERM.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

std::string Slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Cli : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("opensense-cli-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs the binary in dir_ with `env` added to a clean environment.
  pid_t Spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
              const fs::path& out, const fs::path& err) {
    pid_t pid = ::fork();
    if (pid == 0) {
      if (::chdir(dir_.c_str()) != 0) ::_exit(126);
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<std::string> full = {OPENSENSE_BINARY};
      full.insert(full.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : full) argv.push_back(a.data());
      argv.push_back(nullptr);
      std::vector<std::string> envs = {"PATH=/usr/bin:/bin", "TZ=UTC"};
      envs.insert(envs.end(), env.begin(), env.end());
      std::vector<char*> envp;
      for (auto& v : envs) envp.push_back(v.data());
      envp.push_back(nullptr);
      ::execve(OPENSENSE_BINARY, argv.data(), envp.data());
      ::_exit(127);
    }
    return pid;
  }

  Outcome Exec(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    fs::path out = dir_ / "stdout", err = dir_ / "stderr";
    pid_t pid = Spawn(args, env, out, err);
    int status = 0;
    ::waitpid(pid, &status, 0);
    Outcome r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }

  json Json(const std::vector<std::string>& args) {
    Outcome r = Exec(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  fs::path dir_;
};

TEST_F(Cli, VersionAndHelpOnEveryCommand) {
  Outcome v = Exec({"version", "--json"});
  ASSERT_EQ(v.code, 0);
  EXPECT_EQ(json::parse(v.out)["version"], "0.1.0");
  for (std::vector<std::string> cmd :
       {std::vector<std::string>{"--help"}, {"serve", "--help"}, {"migrate", "--help"},
        {"org", "create", "--help"}, {"org", "list", "--help"}, {"org", "set", "--help"},
        {"site", "create", "--help"}, {"device", "create", "--help"}, {"device", "list", "--help"}, {"device", "rotate-token", "--help"},
        {"retention", "run", "--help"}, {"retention", "show", "--help"}, {"retention", "set", "--help"},
        {"rollup", "rebuild", "--help"}, {"compact", "--help"}, {"version", "--help"}}) {
    Outcome r = Exec(cmd);
    EXPECT_EQ(r.code, 0) << cmd[0];
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd[0];
  }
}

TEST_F(Cli, UsageErrorsExitWithTwo) {
  EXPECT_EQ(Exec({}).code, 2);
  EXPECT_EQ(Exec({"frobnicate"}).code, 2);
  EXPECT_EQ(Exec({"org", "create"}).code, 2);  // --name is required
  Outcome bad = Exec({"org", "list", "--log-level", "loud"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--log-level"), std::string::npos);
}

TEST_F(Cli, OrganisationsAndDevicesWithJson) {
  json org = Json({"org", "create", "--name", "Cafe Rosa", "--timezone", "Europe/Berlin", "--json"});
  ASSERT_TRUE(org.is_object());
  EXPECT_EQ(org["name"], "Cafe Rosa");
  EXPECT_EQ(org["timezone"], "Europe/Berlin");
  EXPECT_EQ(org["token"].get<std::string>().rfind("osk_", 0), 0u);
  std::string id = std::to_string(org["id"].get<long>());
  json site = Json({"site", "create", "--org", id, "--name", "Kitchen", "--json"});
  json dev = Json({"device", "create", "--org", id, "--name", "Walk-in", "--serial", "AA:BB:CC",
                   "--site", std::to_string(site["id"].get<long>()), "--json"});
  EXPECT_EQ(dev["serial"], "AA:BB:CC");
  std::string first_token = dev["token"].get<std::string>();
  EXPECT_EQ(first_token.rfind("osd_", 0), 0u);
  json rotated = Json({"device", "rotate-token", "--org", id, "--device",
                       std::to_string(dev["id"].get<long>()), "--json"});
  EXPECT_EQ(rotated["token"].get<std::string>().rfind("osd_", 0), 0u);
  EXPECT_NE(rotated["token"], first_token);
  json list = Json({"device", "list", "--org", id, "--json"});
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "Walk-in");
  Outcome human = Exec({"device", "list", "--org", id});
  EXPECT_NE(human.out.find("Walk-in"), std::string::npos);
  // Errors say what is wrong and exit 1.
  Outcome dup = Exec({"device", "create", "--org", id, "--name", "X", "--serial", "AA:BB:CC"});
  EXPECT_EQ(dup.code, 1);
  EXPECT_NE(dup.err.find("exists already"), std::string::npos);
  Outcome tz = Exec({"org", "create", "--name", "Bad", "--timezone", "Mars/Base"});
  EXPECT_EQ(tz.code, 1);
  EXPECT_NE(tz.err.find("Mars/Base"), std::string::npos);
  Outcome missing = Exec({"device", "list", "--org", "999"});
  EXPECT_EQ(missing.code, 1);
}

TEST_F(Cli, RetentionCommands) {
  json org = Json({"org", "create", "--name", "Free", "--json"});
  std::string id = std::to_string(org["id"].get<long>());
  Outcome refused = Exec({"retention", "set", "--org", id, "--class", "raw_readings", "--period", "24 months"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("free tier"), std::string::npos);
  ASSERT_EQ(Exec({"org", "set", "--org", id, "--tier", "team"}).code, 0);
  Outcome shorter = Exec({"retention", "set", "--org", id, "--class", "raw_readings", "--period", "6 months"});
  EXPECT_EQ(shorter.code, 1);
  EXPECT_NE(shorter.err.find("at least 13 months"), std::string::npos);
  ASSERT_EQ(Exec({"retention", "set", "--org", id, "--class", "raw_readings", "--period", "2 years"}).code, 0);
  json shown = Json({"retention", "show", "--org", id, "--json"});
  EXPECT_EQ(shown["raw_readings"], "2 years");
  EXPECT_EQ(shown["rollup_1d"], "forever");
  json dry = Json({"retention", "run", "--dry-run", "--json"});
  EXPECT_EQ(dry["dry_run"], true);
  EXPECT_EQ(dry["deleted"]["raw_readings"], 0);
  json real = Json({"retention", "run", "--json"});
  EXPECT_EQ(real["dry_run"], false);
}

TEST_F(Cli, ConfigurationPrecedenceFileEnvFlag) {
  std::ofstream(dir_ / "opensense.toml") << "data_dir = \"from-file\"\n";
  ASSERT_EQ(Exec({"migrate"}).code, 0);
  EXPECT_TRUE(fs::exists(dir_ / "from-file" / "opensense.db"));
  ASSERT_EQ(Exec({"migrate"}, {"OPENSENSE_DATA_DIR=from-env"}).code, 0);
  EXPECT_TRUE(fs::exists(dir_ / "from-env" / "opensense.db"));
  ASSERT_EQ(Exec({"migrate", "--data-dir", "from-flag"}, {"OPENSENSE_DATA_DIR=from-env"}).code, 0);
  EXPECT_TRUE(fs::exists(dir_ / "from-flag" / "opensense.db"));
  // An unknown key fails at start-up naming it.
  std::ofstream(dir_ / "opensense.toml") << "data_dri = \"x\"\n";
  Outcome bad = Exec({"migrate"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("data_dri"), std::string::npos);
  fs::remove(dir_ / "opensense.toml");
  Outcome env = Exec({"org", "list", "--data-dir", "d"}, {"OPENSENSE_SYNCHRONUS=full"});
  EXPECT_EQ(env.code, 2);
  EXPECT_NE(env.err.find("OPENSENSE_SYNCHRONUS"), std::string::npos);
  // A password never comes from a flag.
  Outcome pw = Exec({"migrate", "--store", "postgres://u:secret@localhost/db"});
  EXPECT_EQ(pw.code, 2);
  EXPECT_EQ(pw.err.find("u:secret@"), std::string::npos) << "the password was echoed";
}

TEST_F(Cli, ServeStopsCleanlyOnSigtermAndKeepsTheDemoData) {
  fs::path out = dir_ / "serve.out", err = dir_ / "serve.err";
  pid_t pid = Spawn({"serve", "--demo", "--data-dir", "data"},
                    {"OPENSENSE_DEMO_HISTORY_DAYS=1", "OPENSENSE_DEMO_DEVICES=3"}, out, err);
  // Wait (bounded) until the demo is ready.
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ready = Slurp(err).find("ready") != std::string::npos || Slurp(out).find("ready") != std::string::npos;
  }
  ASSERT_TRUE(ready) << Slurp(err) << Slurp(out);
  // A second writer is refused while serve runs; a metadata command works beside it.
  Outcome second = Exec({"compact", "--data-dir", "data"});
  EXPECT_EQ(second.code, 1);
  EXPECT_NE(second.err.find("opensense serve"), std::string::npos);
  EXPECT_EQ(Exec({"org", "list", "--data-dir", "data"}).code, 0);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::string log = Slurp(out) + Slurp(err);
  EXPECT_NE(log.find("stopped cleanly"), std::string::npos) << log;
  EXPECT_NE(log.find("demo: owner API token (shown once): osk_"), std::string::npos) << log;
  json compact = Json({"compact", "--data-dir", "data", "--json"});
  // 1 day x 3 units x 4 metrics x 1440 minutes.
  EXPECT_GE(compact["readings"].get<long>(), 3 * 4 * 1440 - 3 * 4 * 2);
  json orgs = Json({"org", "list", "--data-dir", "data", "--json"});
  ASSERT_EQ(orgs.size(), 1u);
  EXPECT_EQ(orgs[0]["name"], "OpenSense Demo");
  std::string org_id = std::to_string(orgs[0]["id"].get<long>());
  json devices = Json({"device", "list", "--org", org_id, "--data-dir", "data", "--json"});
  ASSERT_EQ(devices.size(), 3u);
  Outcome rebuild = Exec({"rollup", "rebuild", "--device", std::to_string(devices[0]["id"].get<long>()),
                      "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "--data-dir", "data"});
  EXPECT_EQ(rebuild.code, 0) << rebuild.err;
  Outcome bad_time = Exec({"rollup", "rebuild", "--device", "1", "--from", "yesterday", "--to", "0",
                       "--data-dir", "data"});
  EXPECT_EQ(bad_time.code, 2);
}

}  // namespace
