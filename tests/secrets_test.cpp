// The secrets file through the real binary: the permission rule (0644 refused with the command to
// run, root 0400 accepted, the service user's 0600 accepted), the environment winning over the
// file, and no secret value in anything the process writes during a representative session.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "api/http/client.hpp"
#include "opensense_process.hpp"
#include "shell_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using opensense::testing::OpenSenseProcess;

const auto& Slurp = opensense::testing::ReadFile;

// Distinct, unmistakable test values for every secret.
const std::map<std::string, std::string>& TestSecrets() {
  static const std::map<std::string, std::string> s = {
      {"OPENSENSE_STORE_PASSWORD", "pw-Zq81StorePassXx"},
      {"OPENSENSE_POSTMARK_TOKEN", "pm-Zq82PostmarkTokXx"},
      {"OPENSENSE_TELEGRAM_TOKEN", "tg-Zq83TelegramTokXx"},
      {"OPENSENSE_MQTT_PASSWORD", "mq-Zq84MqttPassXx"},
      {"OPENSENSE_MQTT_HOOK_SECRET", "hk-Zq85HookSecretXx"},
  };
  return s;
}

struct Ran {
  int code = -1;
  std::string output;  // stdout and stderr
};

// A scratch directory with a secrets file and a runner for the binary (optionally as another uid).
class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("opensense-secrets-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir_ / "data");
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    file_ = (dir_ / "secrets.env").string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void WriteSecrets(mode_t mode, const std::map<std::string, std::string>& values = TestSecrets()) {
    std::ofstream out(file_, std::ios::trunc);
    out << "# test secrets\n";
    for (const auto& [k, v] : values) out << k << "='" << v << "'\n";
    out.close();
    ASSERT_EQ(::chmod(file_.c_str(), mode), 0);
  }

  // Runs the binary with `args`, only PATH and `env` in its environment, as `uid` when >= 0.
  Ran Run(const std::vector<std::string>& args, std::map<std::string, std::string> env = {},
          int uid = -1) {
    const fs::path out = dir_ / ("run-" + std::to_string(runs_++) + ".out");
    std::vector<std::string> argv_text = {OPENSENSE_BINARY};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<std::string> env_text = {"PATH=/usr/bin:/bin"};
    for (const auto& [k, v] : env) env_text.push_back(k + "=" + v);
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(o, 2);
      if (::chdir(dir_.c_str()) != 0) ::_exit(126);
      if (uid >= 0 && (::setgid(static_cast<gid_t>(uid)) != 0 || ::setuid(static_cast<uid_t>(uid)) != 0)) {
        ::_exit(125);
      }
      std::vector<char*> argv, envp;
      for (auto& a : argv_text) argv.push_back(a.data());
      for (auto& e : env_text) envp.push_back(e.data());
      argv.push_back(nullptr);
      envp.push_back(nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    Ran r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.output = Slurp(out);
    all_output_ += r.output;
    return r;
  }

  std::vector<std::string> Migrate() {
    return {"migrate", "--secrets-file", file_, "--data-dir", (dir_ / "data").string()};
  }

  fs::path dir_;
  std::string file_;
  int runs_ = 0;
  std::string all_output_;
};

TEST_F(SecretsTest, WorldReadableFileIsRefusedWithTheCommandToRun) {
  WriteSecrets(0644);
  const Ran r = Run(Migrate());
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("group or others have permissions on it (mode 0644)"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("run `chown root:root " + file_ + " && chmod 0400 " + file_ + "`"),
            std::string::npos)
      << r.output;
  for (const auto& [k, v] : TestSecrets()) EXPECT_EQ(r.output.find(v), std::string::npos) << k;
  // Group-readable only is refused as well.
  WriteSecrets(0640);
  EXPECT_EQ(Run(Migrate()).code, 1);
}

TEST_F(SecretsTest, Root0400IsAcceptedAndTheSecretsTakeEffect) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to own a file as root (CI runs as root)";
  WriteSecrets(0400);
  ASSERT_EQ(Run(Migrate()).code, 0) << all_output_;
  // serve reads it through OPENSENSE_SECRETS_FILE: the hook secret from the file opens the hooks.
  OpenSenseProcess os({{"OPENSENSE_SECRETS_FILE", file_}});
  ASSERT_TRUE(os.Start({"--roles", "api"})) << os.Log();
  auto right = opensense::http::Fetch(os.address(), "GET", "/internal/mqtt/revoked?since=0",
                                      {{"X-OpenSense-Hook-Secret", TestSecrets().at("OPENSENSE_MQTT_HOOK_SECRET")}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200) << right->body;
  auto wrong = opensense::http::Fetch(os.address(), "GET", "/internal/mqtt/revoked?since=0",
                                      {{"X-OpenSense-Hook-Secret", "not-it"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_NE(os.Log().find("secrets from " + file_ + " (OPENSENSE_SECRETS_FILE): OPENSENSE_MQTT_HOOK_SECRET"),
            std::string::npos)
      << os.Log();
}

TEST_F(SecretsTest, ServiceUser0600IsAcceptedAndAStrangersFileRefused) {
  if (::geteuid() != 0) {
    // Not root: the running user is the service user.
    WriteSecrets(0600);
    EXPECT_EQ(Run(Migrate()).code, 0) << all_output_;
    return;
  }
  // Root: `nobody` plays the service user, running the binary itself.
  const passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user 'nobody'";
  WriteSecrets(0600);
  ASSERT_EQ(::chown(file_.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  ASSERT_EQ(::chown((dir_ / "data").c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  const Ran as_service = Run(Migrate(), {}, static_cast<int>(nobody->pw_uid));
  EXPECT_EQ(as_service.code, 0) << as_service.output;
  // The same file is a stranger's to root: refused, with the fix.
  const Ran as_root = Run(Migrate());
  EXPECT_EQ(as_root.code, 1) << as_root.output;
  EXPECT_NE(as_root.output.find("it is owned by nobody"), std::string::npos) << as_root.output;
  EXPECT_NE(as_root.output.find("chown root:root " + file_ + " && chmod 0400 " + file_), std::string::npos);
  // And nobody may not read a root-only file: the message says how to give access.
  ASSERT_EQ(::chown(file_.c_str(), 0, 0), 0);
  ASSERT_EQ(::chmod(file_.c_str(), 0400), 0);
  const Ran denied = Run(Migrate(), {}, static_cast<int>(nobody->pw_uid));
  EXPECT_EQ(denied.code, 1);
  EXPECT_NE(denied.output.find("LoadCredential=secrets.env:"), std::string::npos) << denied.output;
}

// systemd's LoadCredential leaves the file root-owned 0400 and grants the service user read through
// an ACL entry (the mode then shows the mask: 0440). That is accepted; an entry for anyone else
// is not.
TEST_F(SecretsTest, SystemdStyleAclForTheServiceUserIsAcceptedAndForOthersRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CI runs as root)";
  const passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) GTEST_SKIP() << "no user 'nobody'";
  WriteSecrets(0400);
  ASSERT_EQ(::chown((dir_ / "data").c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  auto set_acl = [&](std::uint32_t reader) {
    // version 2; user_obj r; user <reader> r; group_obj -; mask r; other -.
    const std::uint32_t kNone = 0xffffffff;
    const struct {
      std::uint16_t tag, perm;
      std::uint32_t id;
    } entries[] = {{1, 4, kNone}, {2, 4, reader}, {4, 0, kNone}, {0x10, 4, kNone}, {0x20, 0, kNone}};
    std::string value("\x02\0\0\0", 4);
    for (const auto& e : entries) value.append(reinterpret_cast<const char*>(&e), sizeof e);
    return ::setxattr(file_.c_str(), "system.posix_acl_access", value.data(), value.size(), 0) == 0;
  };
  if (!set_acl(nobody->pw_uid)) GTEST_SKIP() << "the temp filesystem has no POSIX ACLs";
  struct stat st {};
  ASSERT_EQ(::stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0440u);
  const Ran accepted = Run(Migrate(), {}, static_cast<int>(nobody->pw_uid));
  EXPECT_EQ(accepted.code, 0) << accepted.output;
  ASSERT_TRUE(set_acl(4242));
  const Ran refused = Run(Migrate());
  EXPECT_EQ(refused.code, 1) << refused.output;
  EXPECT_NE(refused.output.find("its ACL gives uid 4242 (uid 4242) permissions"), std::string::npos) << refused.output;
}

TEST_F(SecretsTest, EnvironmentWinsOverTheFileAndTheLogSaysSoWithoutValues) {
  WriteSecrets(0600);
  OpenSenseProcess os({{"OPENSENSE_SECRETS_FILE", file_}, {"OPENSENSE_MQTT_HOOK_SECRET", "from-env-Zq86"}});
  ASSERT_TRUE(os.Start({"--roles", "api"})) << os.Log();
  auto env_value = opensense::http::Fetch(os.address(), "GET", "/internal/mqtt/revoked?since=0",
                                          {{"X-OpenSense-Hook-Secret", "from-env-Zq86"}});
  ASSERT_TRUE(env_value);
  EXPECT_EQ(env_value->status, 200);
  auto file_value = opensense::http::Fetch(
      os.address(), "GET", "/internal/mqtt/revoked?since=0",
      {{"X-OpenSense-Hook-Secret", TestSecrets().at("OPENSENSE_MQTT_HOOK_SECRET")}});
  ASSERT_TRUE(file_value);
  EXPECT_EQ(file_value->status, 401);
  os.Stop();
  EXPECT_NE(os.Log().find("OPENSENSE_MQTT_HOOK_SECRET is also set in the environment, which wins"),
            std::string::npos)
      << os.Log();
  EXPECT_EQ(os.Log().find("from-env-Zq86"), std::string::npos);
}

TEST_F(SecretsTest, MalformedFileStopsStartWithTheLineAndNoValue) {
  {
    std::ofstream out(file_);
    out << "OPENSENSE_MQTT_HOOK_SECRET=ok-Zq87\nOPENSENSE_POSTMARK_TOKEN='unterminated-Zq88\n";
  }
  ASSERT_EQ(::chmod(file_.c_str(), 0600), 0);
  const Ran r = Run({"serve", "--listen", "127.0.0.1:0", "--data-dir", (dir_ / "data").string()},
                    {{"OPENSENSE_SECRETS_FILE", file_}});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(file_ + ":2: unterminated single quote"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Zq87"), std::string::npos);
  EXPECT_EQ(r.output.find("Zq88"), std::string::npos);
}

// Everything the process writes during a representative session: no secret value anywhere.
TEST_F(SecretsTest, NoSecretInAnythingTheProcessWrites) {
  WriteSecrets(0600);
  const std::map<std::string, std::string> env = {{"OPENSENSE_SECRETS_FILE", file_}};
  std::string seen;  // every byte written or answered
  auto record = [&seen](const opensense::Result<opensense::http::ClientResponse>& r) {
    if (!r) {
      seen += r.error().message;
      return 0;
    }
    for (const auto& [k, v] : r->headers) seen += k + ": " + v + "\n";
    seen += r->body;
    return r->status;
  };

  OpenSenseProcess os(env);
  nlohmann::json org = os.Cli({"org", "create", "--name", "Secretive", "--owner-email", "o@x"});
  ASSERT_TRUE(org.contains("token")) << org;
  seen += org.dump();
  nlohmann::json dev = os.Cli({"device", "create", "--org", std::to_string(org["id"].get<long>()),
                               "--name", "Fridge"});
  ASSERT_TRUE(dev.contains("token")) << dev;
  seen += dev.dump();
  ASSERT_TRUE(os.Start({"--roles", "api,ingest,scheduler", "--log-level", "debug"})) << os.Log();
  const std::string& a = os.address();
  const std::string owner = "Bearer " + org["token"].get<std::string>();
  const std::string device = "Bearer " + dev["token"].get<std::string>();
  const std::string hook = TestSecrets().at("OPENSENSE_MQTT_HOOK_SECRET");
  EXPECT_EQ(record(opensense::http::Fetch(a, "POST", "/api/v1/ingest",
                                          {{"Authorization", device}, {"Content-Type", "application/json"}},
                                          R"({"temperature": 4.5})")),
            200);
  EXPECT_EQ(record(opensense::http::Fetch(a, "POST", "/api/v1/ingest",
                                          {{"Authorization", device}, {"Content-Type", "application/json"}},
                                          "{not json")),
            400);
  EXPECT_EQ(record(opensense::http::Fetch(a, "POST", "/api/v1/ingest",
                                          {{"Authorization", "Bearer osd_1_wrong"}}, "x")),
            401);
  EXPECT_EQ(record(opensense::http::Fetch(a, "GET", "/api/v1/devices", {{"Authorization", owner}})), 200);
  EXPECT_EQ(record(opensense::http::Fetch(a, "GET", "/api/v1/devices/999999", {{"Authorization", owner}})), 404);
  EXPECT_EQ(record(opensense::http::Fetch(a, "GET", "/api/v1/no/such/route")), 404);
  // The broker hooks: the service login (the MQTT password) and wrong secrets.
  record(opensense::http::Fetch(a, "POST", "/internal/mqtt/auth",
                                {{"X-OpenSense-Hook-Secret", hook}, {"Content-Type", "application/json"}},
                                nlohmann::json({{"clientid", "opensense-ingest"},
                                                {"username", "opensense"},
                                                {"password", TestSecrets().at("OPENSENSE_MQTT_PASSWORD")}})
                                    .dump()));
  record(opensense::http::Fetch(a, "POST", "/internal/mqtt/auth",
                                {{"X-OpenSense-Hook-Secret", hook}, {"Content-Type", "application/json"}},
                                R"({"clientid": "x", "username": "opensense", "password": "wrong"})"));
  EXPECT_EQ(record(opensense::http::Fetch(a, "POST", "/internal/mqtt/auth",
                                          {{"X-OpenSense-Hook-Secret", hook + "x"}}, "{}")),
            401);
  EXPECT_EQ(record(opensense::http::Fetch(a, "GET", "/metrics")), 200);
  record(opensense::http::Fetch(a, "GET", "/healthz"));
  record(opensense::http::Fetch(a, "GET", "/readyz"));
  os.Stop();
  seen += os.Log();

  // --help of every command, a config error, a store that cannot be reached (uses the password).
  const std::vector<std::vector<std::string>> helps = {
      {"--help"}, {"--help-all"}, {"serve", "--help"}, {"migrate", "--help"}, {"version", "--help"},
      {"org", "--help"}, {"org", "create", "--help"}, {"org", "list", "--help"}, {"org", "set", "--help"},
      {"site", "create", "--help"}, {"device", "--help"}, {"device", "create", "--help"},
      {"device", "rotate-token", "--help"}, {"device", "list", "--help"}, {"retention", "run", "--help"},
      {"retention", "show", "--help"}, {"retention", "set", "--help"}, {"rollup", "rebuild", "--help"},
      {"simulate", "--help"}, {"compact", "--help"}, {"store", "copy", "--help"}};
  for (const auto& h : helps) EXPECT_EQ(Run(h, env).code, 0) << h[0];
  EXPECT_EQ(Run({"serve", "--log-level", "loud"}, env).code, 2);
  EXPECT_EQ(Run({"serve", "--store", "postgres://u:inline@127.0.0.1:1/db"}, env).code, 2);
  EXPECT_EQ(Run({"migrate", "--store", "postgres://opensense@127.0.0.1:1/opensense"}, env).code, 1);
  EXPECT_EQ(Run({"device", "list", "--org", "424242", "--data-dir", os.DataDir()}, env).code, 1);
  seen += all_output_;
  // What the store keeps (the request log among it).
  for (const auto& entry : fs::directory_iterator(os.DataDir())) seen += Slurp(entry.path());

  ASSERT_GT(seen.size(), 10000u);
  EXPECT_NE(seen.find("# HELP"), std::string::npos);  // /metrics was read
  for (const auto& [name, value] : TestSecrets()) {
    EXPECT_EQ(seen.find(value), std::string::npos) << name << " appears in the output";
  }
}

}  // namespace
