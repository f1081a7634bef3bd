#include "app/config.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace opensense::app {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("opensense_config_test_" + std::to_string(::getpid()) + "_" +
             std::to_string(counter++) + "_" + (info ? info->name() : "x"));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) const {
    const fs::path p = path_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class ConfigTest : public ::testing::Test {
 protected:
  // Loads with `toml` as a required config file (when given), plus env and flags.
  Result<Config> Load(std::optional<std::string> toml, std::map<std::string, std::string> env = {},
                      std::map<std::string, std::string> flags = {}) {
    ConfigSources sources;
    if (toml) {
      sources.file_path = dir_.Write("opensense.toml", *toml);
      sources.file_required = true;
    }
    sources.env = std::move(env);
    sources.flags = std::move(flags);
    return LoadConfig(sources);
  }
  std::string FilePath() const { return (dir_.path() / "opensense.toml").string(); }

  // The error message of a load that must fail with kInvalidArgument.
  std::string LoadError(std::optional<std::string> toml, std::map<std::string, std::string> env = {},
                        std::map<std::string, std::string> flags = {}) {
    auto r = Load(std::move(toml), std::move(env), std::move(flags));
    if (r) {
      ADD_FAILURE() << "expected an error";
      return "";
    }
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << r.error().message;
    return r.error().message;
  }

  TempDir dir_;
};

// ---------------------------------------------------------------------------------------------
// Defaults and the table.

TEST_F(ConfigTest, NothingSetGivesTheDefaults) {
  auto r = LoadConfig(ConfigSources{});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->data_dir, "data");
  EXPECT_EQ(r->store, "");
  EXPECT_EQ(r->store_synchronous, "full");
  EXPECT_EQ(r->listen, "127.0.0.1:8080");
  EXPECT_EQ(r->log_level, "info");
  EXPECT_EQ(r->head_flush_readings, 262144);
  EXPECT_EQ(r->head_flush_age_seconds, 600);
  EXPECT_EQ(r->retention_interval_seconds, 3600);
  EXPECT_EQ(r->demo_devices, 6);
  EXPECT_EQ(r->demo_history_days, 14);
  EXPECT_EQ(*r, Config{});
}

TEST_F(ConfigTest, TrustedProxiesAreIpAddresses) {
  auto ok = Load("trusted_proxies = \"127.0.0.1, ::1\"\n");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->trusted_proxies, "127.0.0.1, ::1");
  auto bad = Load(std::nullopt, {{"OPENSENSE_TRUSTED_PROXIES", "127.0.0.1,caddy.local"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message,
            "OPENSENSE_TRUSTED_PROXIES: 'caddy.local' is not an IP address (e.g. 127.0.0.1 or ::1)");
}

TEST_F(ConfigTest, EmptyFileGivesTheDefaults) {
  auto r = Load("# nothing here\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, Config{});
}

TEST_F(ConfigTest, SettingsTableNamesEnvVarsAndFlags) {
  const auto settings = Settings();
  ASSERT_EQ(settings.size(), 57u);
  std::set<std::string> names;
  for (const auto& s : settings) names.insert(s.name);
  EXPECT_EQ(names, (std::set<std::string>{"data_dir", "store", "store_synchronous", "listen",
                                          "log_level", "log_format", "head_flush_readings",
                                          "head_flush_age_seconds", "retention_interval_seconds",
                                          "http_worker_threads", "ingest_rate_per_token", "ingest_burst_per_token",
                                          "trusted_proxies",
                                          "mqtt_url", "mqtt_username", "mqtt_client_id",
                                          "mqtt_retired_client_ids", "mqtt_shared_group",
                                          "mqtt_ca_file", "mqtt_keepalive_seconds",
                                          "mqtt_session_expiry_seconds", "mqtt_receive_maximum",
                                          "postmark_base_url", "mail_from", "postmark_message_stream",
                                          "telegram_base_url", "notify_timeout_seconds",
                                          "notify_max_attempts", "operator_email",
                                          "operator_telegram_chat", "operator_webhook_url",
                                          "backup_dir", "backup_recipients", "backup_recipients_file",
                                          "backup_schedule", "backup_method", "backup_hourly_keep_days",
                                          "backup_daily_keep_days", "backup_offsite_dir",
                                          "backup_offsite_command", "backup_offsite_fetch_command",
                                          "backup_offsite_delete_command", "backup_offsite_keep_weeks",
                                          "backup_identity_file",
                                          "demo_devices", "demo_history_days", "public_url",
                                          "self_signup", "login_links_per_address",
                                          "login_links_per_client", "session_idle_minutes",
                                          "session_absolute_hours", "api_rate_per_org",
                                          "api_burst_per_org", "reports_running", "reports_waiting", "chart_cache_mb"}));
  for (const auto& s : settings) {
    EXPECT_FALSE(s.description.empty()) << s.name;
    EXPECT_FALSE(s.value_name.empty()) << s.name;
    EXPECT_FALSE(s.allowed.empty()) << s.name;
  }
  const auto& flush = settings[6];
  EXPECT_EQ(flush.name, "head_flush_readings");
  EXPECT_EQ(flush.type, SettingType::kInteger);
  EXPECT_EQ(flush.env_var, "OPENSENSE_HEAD_FLUSH_READINGS");
  EXPECT_EQ(flush.flag, "--head-flush-readings");
  EXPECT_EQ(flush.default_value, "262144");
  EXPECT_EQ(flush.allowed, ">= 1024");
  EXPECT_EQ(settings[3].default_value, "127.0.0.1:8080");
  EXPECT_EQ(settings[3].type, SettingType::kString);
}

// Every setting can be set from each layer by the names the table gives, with its default.
TEST_F(ConfigTest, EveryDefaultRoundTripsThroughEveryLayer) {
  std::string toml;
  std::map<std::string, std::string> env, flags;
  for (const auto& s : Settings()) {
    toml += s.name + " = " +
            (s.type == SettingType::kString ? "\"" + s.default_value + "\"" : s.default_value) +
            "\n";
    env[s.env_var] = s.default_value;
    flags[s.name] = s.default_value;
  }
  auto r = Load(toml, env, flags);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, Config{});
}

// ---------------------------------------------------------------------------------------------
// Precedence: defaults < file < environment < flags.

TEST_F(ConfigTest, FileOverridesDefaults) {
  auto r = Load(
      "data_dir = \"/var/lib/opensense\"\n"
      "listen = \"0.0.0.0:9000\"\n"
      "log_level = \"debug\"\n"
      "head_flush_readings = 100_000\n"
      "store_synchronous = \"normal\"\n"
      "demo_history_days = 0\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->data_dir, "/var/lib/opensense");
  EXPECT_EQ(r->listen, "0.0.0.0:9000");
  EXPECT_EQ(r->log_level, "debug");
  EXPECT_EQ(r->head_flush_readings, 100000);
  EXPECT_EQ(r->store_synchronous, "normal");
  EXPECT_EQ(r->demo_history_days, 0);
  EXPECT_EQ(r->retention_interval_seconds, 3600);  // untouched
}

TEST_F(ConfigTest, NotificationSettingsAreValidatedAndTokensAreSecrets) {
  auto ok = Load("postmark_base_url = \"http://127.0.0.1:9999\"\noperator_email = \"ops@example.com\"\n"
                 "operator_telegram_chat = \"-1001234567890\"\n",
                 {{"OPENSENSE_POSTMARK_TOKEN", "t"}, {"OPENSENSE_OPERATOR_WEBHOOK_SECRET", "s"}});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->postmark_base_url, "http://127.0.0.1:9999");
  EXPECT_EQ(ok->operator_email, "ops@example.com");
  EXPECT_EQ(ok->notify_timeout_seconds, 10);
  for (const char* bad : {"postmark_base_url = \"http://api.postmarkapp.com\"\n",
                          "telegram_base_url = \"http://127.0.0.1.evil.example\"\n",
                          "operator_email = \"not an address\"\n",
                          "operator_telegram_chat = \"12ab\"\n",
                          "operator_webhook_url = \"http://hooks.example.com\"\n",
                          "notify_timeout_seconds = 0\n", "notify_max_attempts = 101\n"}) {
    EXPECT_FALSE(Load(bad)) << bad;
  }
}

TEST_F(ConfigTest, EnvironmentOverridesFile) {
  auto r = Load(
      "data_dir = \"/from/file\"\n"
      "listen = \"0.0.0.0:9000\"\n"
      "head_flush_age_seconds = 30\n"
      "demo_devices = 3\n",
      {{"OPENSENSE_DATA_DIR", "/from/env"},
       {"OPENSENSE_HEAD_FLUSH_AGE_SECONDS", "45"},
       {"OPENSENSE_LOG_LEVEL", "warn"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->data_dir, "/from/env");
  EXPECT_EQ(r->head_flush_age_seconds, 45);
  EXPECT_EQ(r->log_level, "warn");
  EXPECT_EQ(r->listen, "0.0.0.0:9000");  // file only
  EXPECT_EQ(r->demo_devices, 3);         // file only
}

TEST_F(ConfigTest, FlagsOverrideEnvironmentAndFile) {
  auto r = Load(
      "data_dir = \"/from/file\"\n"
      "listen = \"0.0.0.0:9000\"\n"
      "retention_interval_seconds = 600\n"
      "demo_devices = 3\n",
      {{"OPENSENSE_DATA_DIR", "/from/env"},
       {"OPENSENSE_LISTEN", "127.0.0.1:9001"},
       {"OPENSENSE_RETENTION_INTERVAL_SECONDS", "900"}},
      {{"data_dir", "/from/flag"}, {"retention_interval_seconds", "1200"},
       {"store", "sqlite:///srv/os.db"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->data_dir, "/from/flag");
  EXPECT_EQ(r->retention_interval_seconds, 1200);
  EXPECT_EQ(r->store, "sqlite:///srv/os.db");
  EXPECT_EQ(r->listen, "127.0.0.1:9001");  // env beats file, no flag
  EXPECT_EQ(r->demo_devices, 3);           // file only
}

TEST_F(ConfigTest, FlagsOverrideDefaultsWithoutFileOrEnv) {
  auto r = Load(std::nullopt, {}, {{"listen", "[::1]:0"}, {"demo_devices", "50"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->listen, "[::1]:0");
  EXPECT_EQ(r->demo_devices, 50);
}

TEST_F(ConfigTest, EnvironmentOutsideTheNamespaceIsIgnored) {
  auto r = Load(std::nullopt, {{"PATH", "/usr/bin"}, {"HOME", "/root"}, {"OPENSENSEX", "1"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, Config{});
}

TEST_F(ConfigTest, ConfigPathAndSecretsInEnvironmentAreAllowedAndIgnored) {
  auto r = Load(std::nullopt, {{"OPENSENSE_CONFIG", "/etc/opensense.toml"},
                               {"OPENSENSE_STORE_PASSWORD", "s3cret"},
                               {"OPENSENSE_POSTMARK_TOKEN", "pm"},
                               {"OPENSENSE_TELEGRAM_TOKEN", "tg"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, Config{});
}

TEST_F(ConfigTest, OpensenseEnvironmentKeepsOnlyOurVariables) {
  const char* envp[] = {"PATH=/usr/bin", "OPENSENSE_LISTEN=0.0.0.0:1", "OPENSENSE_STORE=",
                        "OPENSENSE_ODD", "XOPENSENSE_A=1", nullptr};
  EXPECT_EQ(OpensenseEnvironment(envp),
            (std::map<std::string, std::string>{{"OPENSENSE_LISTEN", "0.0.0.0:1"},
                                                {"OPENSENSE_STORE", ""}}));
  EXPECT_TRUE(OpensenseEnvironment(nullptr).empty());
}

// ---------------------------------------------------------------------------------------------
// The file: missing, syntax, unknown keys, types.

TEST_F(ConfigTest, MissingOptionalFileIsSkipped) {
  ConfigSources sources;
  sources.file_path = (dir_.path() / "absent.toml").string();
  sources.file_required = false;
  sources.flags = {{"log_level", "error"}};
  auto r = LoadConfig(sources);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->log_level, "error");
}

TEST_F(ConfigTest, MissingRequiredFileIsAnError) {
  ConfigSources sources;
  sources.file_path = (dir_.path() / "absent.toml").string();
  sources.file_required = true;
  auto r = LoadConfig(sources);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, AllOf(StartsWith(*sources.file_path), HasSubstr("not found")));
}

TEST_F(ConfigTest, DirectoryAsFileIsAnError) {
  ConfigSources sources;
  sources.file_path = dir_.path().string();
  sources.file_required = true;
  auto r = LoadConfig(sources);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("directory"));
}

TEST_F(ConfigTest, TomlSyntaxErrorGivesLineAndColumn) {
  const std::string msg = LoadError("data_dir = \"ok\"\nlisten = \"127.0.0.1:8080\nlog_level = \"info\"\n");
  EXPECT_THAT(msg, AllOf(StartsWith(FilePath() + ":2:"), HasSubstr("TOML syntax error")));
  const std::string msg2 = LoadError("listen 127.0.0.1\n");
  EXPECT_THAT(msg2, AllOf(StartsWith(FilePath() + ":1:"), HasSubstr("TOML syntax error")));
}

TEST_F(ConfigTest, UnknownKeyInFileNamesItAndSuggests) {
  const std::string msg = LoadError("data_dir = \"d\"\nstor = \"sqlite:///x.db\"\n");
  EXPECT_THAT(msg, AllOf(StartsWith(FilePath() + ":2: unknown key 'stor'"),
                         HasSubstr("did you mean 'store'?"), HasSubstr("known keys: data_dir, store")));
  const std::string far = LoadError("colour = \"blue\"\n");
  EXPECT_THAT(far, AllOf(HasSubstr("unknown key 'colour'"), Not(HasSubstr("did you mean")),
                         HasSubstr("demo_history_days")));
}

TEST_F(ConfigTest, TablesInFileAreRefused) {
  EXPECT_THAT(LoadError("[server]\nlisten = \"0.0.0.0:1\"\n"), HasSubstr("unknown key 'server'"));
  EXPECT_THAT(LoadError("[store]\nurl = \"x\"\n"),
              AllOf(HasSubstr(":1: store: expected a string, got a table")));
}

TEST_F(ConfigTest, FileErrorsAreReportedInFileOrder) {
  // "zzz" sorts last but comes first in the file.
  EXPECT_THAT(LoadError("zzz = 1\naaa = 2\n"), HasSubstr("unknown key 'zzz'"));
}

TEST_F(ConfigTest, WrongTomlTypeNamesTheKey) {
  EXPECT_THAT(LoadError("head_flush_readings = \"big\"\n"),
              AllOf(StartsWith(FilePath() + ":1: head_flush_readings:"),
                    HasSubstr("expected an integer, got a string")));
  EXPECT_THAT(LoadError("demo_devices = 6.0\n"),
              HasSubstr("demo_devices: expected an integer, got a floating-point number"));
  EXPECT_THAT(LoadError("listen = 8080\n"), HasSubstr("listen: expected a string, got an integer"));
  EXPECT_THAT(LoadError("log_level = true\n"),
              HasSubstr("log_level: expected a string, got a boolean"));
  EXPECT_THAT(LoadError("data_dir = [\"a\"]\n"), HasSubstr("data_dir: expected a string, got an array"));
}

TEST_F(ConfigTest, BadValueInFileNamesFileLineAndKey) {
  EXPECT_EQ(LoadError("\n\nlisten = \"abc\"\n"),
            FilePath() + ":3: listen: 'abc' is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080)");
  EXPECT_THAT(LoadError("demo_devices = 51\n"),
              HasSubstr(":1: demo_devices: 51 is out of range (allowed: 1..50)"));
}

// A bad value is an error even when a higher layer overrides it.
TEST_F(ConfigTest, OverriddenBadValueIsStillAnError) {
  EXPECT_THAT(LoadError("log_level = \"loud\"\n", {}, {{"log_level", "info"}}),
              HasSubstr("log_level: 'loud' is not one of"));
  EXPECT_THAT(LoadError(std::nullopt, {{"OPENSENSE_DEMO_DEVICES", "0"}}, {{"demo_devices", "5"}}),
              StartsWith("OPENSENSE_DEMO_DEVICES: 0 is out of range"));
}

// ---------------------------------------------------------------------------------------------
// Environment and flags: unknown names, bad values.

TEST_F(ConfigTest, UnknownEnvironmentVariableIsAnError) {
  const std::string msg = LoadError(std::nullopt, {{"OPENSENSE_LISTN", "0.0.0.0:1"}});
  EXPECT_THAT(msg, AllOf(StartsWith("OPENSENSE_LISTN: unknown environment variable"),
                         HasSubstr("did you mean 'OPENSENSE_LISTEN'?"),
                         HasSubstr("OPENSENSE_CONFIG"), HasSubstr("OPENSENSE_STORE_PASSWORD")));
  EXPECT_THAT(LoadError(std::nullopt, {{"OPENSENSE_SMTP_PASSWORD", "x"}}),
              StartsWith("OPENSENSE_SMTP_PASSWORD: unknown environment variable"));
}

TEST_F(ConfigTest, UnknownFlagIsAnError) {
  EXPECT_THAT(LoadError(std::nullopt, {}, {{"data_dri", "x"}}),
              AllOf(StartsWith("--data-dri: unknown flag"), HasSubstr("did you mean '--data-dir'?")));
}

TEST_F(ConfigTest, HostPortValues) {
  for (const char* good : {"127.0.0.1:8080", "0.0.0.0:0", "localhost:65535", "[::1]:443",
                           "[::]:80", "my-host.example.com:1"}) {
    auto r = Load(std::nullopt, {}, {{"listen", good}});
    EXPECT_TRUE(r) << good << ": " << r.error().message;
  }
  EXPECT_EQ(LoadError(std::nullopt, {{"OPENSENSE_LISTEN", "abc"}}),
            "OPENSENSE_LISTEN: 'abc' is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080)");
  for (const char* bad : {"8080", ":8080", "host:", "host:http", "::1:80", "[::1]", "[zz]:80",
                          "a b:80", "host:-1", "host:80 "}) {
    EXPECT_THAT(LoadError(std::nullopt, {}, {{"listen", bad}}),
                StartsWith(std::string("--listen: '") + bad + "' is not HOST:PORT"))
        << bad;
  }
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"listen", "127.0.0.1:65536"}}),
            "--listen: '127.0.0.1:65536': port 65536 is out of range (allowed: 0..65535)");
  EXPECT_THAT(LoadError(std::nullopt, {}, {{"listen", "h:99999999999999999999"}}),
              HasSubstr("out of range"));
}

TEST_F(ConfigTest, EnumValues) {
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"log_level", "loud"}}),
            "--log-level: 'loud' is not one of trace, debug, info, warn, error");
  EXPECT_EQ(LoadError(std::nullopt, {{"OPENSENSE_STORE_SYNCHRONOUS", "off"}}),
            "OPENSENSE_STORE_SYNCHRONOUS: 'off' is not one of full, normal");
  EXPECT_THAT(LoadError(std::nullopt, {}, {{"log_level", "INFO"}}), HasSubstr("is not one of"));
  for (const char* level : {"trace", "debug", "info", "warn", "error"}) {
    auto r = Load(std::nullopt, {{"OPENSENSE_LOG_LEVEL", level}});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->log_level, level);
  }
}

TEST_F(ConfigTest, IntegerValues) {
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"demo_devices", "six"}}),
            "--demo-devices: 'six' is not an integer");
  for (const char* bad : {"", "6x", " 6", "6.0", "0x10", "+", "1e3"}) {
    EXPECT_THAT(LoadError(std::nullopt, {{"OPENSENSE_DEMO_DEVICES", bad}}),
                StartsWith(std::string("OPENSENSE_DEMO_DEVICES: '") + bad + "' is not an integer"))
        << bad;
  }
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"head_flush_readings", "1023"}}),
            "--head-flush-readings: 1023 is out of range (allowed: >= 1024)");
  EXPECT_THAT(LoadError(std::nullopt, {}, {{"head_flush_readings", "99999999999999999999"}}),
              StartsWith("--head-flush-readings: 99999999999999999999 is out of range"));
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"head_flush_age_seconds", "0"}}),
            "--head-flush-age-seconds: 0 is out of range (allowed: 1..86400)");
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"head_flush_age_seconds", "86401"}}),
            "--head-flush-age-seconds: 86401 is out of range (allowed: 1..86400)");
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"retention_interval_seconds", "59"}}),
            "--retention-interval-seconds: 59 is out of range (allowed: 60..604800)");
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"demo_history_days", "-1"}}),
            "--demo-history-days: -1 is out of range (allowed: 0..60)");
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"demo_history_days", "61"}}),
            "--demo-history-days: 61 is out of range (allowed: 0..60)");

  // Bounds are inclusive; a leading '+' is accepted.
  auto r = Load(std::nullopt, {{"OPENSENSE_HEAD_FLUSH_READINGS", "1024"}},
                {{"head_flush_age_seconds", "86400"}, {"retention_interval_seconds", "+60"},
                 {"demo_devices", "1"}, {"demo_history_days", "60"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->head_flush_readings, 1024);
  EXPECT_EQ(r->head_flush_age_seconds, 86400);
  EXPECT_EQ(r->retention_interval_seconds, 60);
  EXPECT_EQ(r->demo_devices, 1);
  EXPECT_EQ(r->demo_history_days, 60);
}

TEST_F(ConfigTest, StringValues) {
  EXPECT_EQ(LoadError(std::nullopt, {}, {{"data_dir", ""}}), "--data-dir: must not be empty");
  EXPECT_THAT(LoadError(std::nullopt, {}, {{"store", "mysql://h/db"}}),
              StartsWith("--store: 'mysql://h/db' is not a store URL"));
  EXPECT_THAT(LoadError(std::nullopt, {}, {{"store", "opensense.db"}}),
              HasSubstr("is not a store URL"));
  EXPECT_THAT(LoadError(std::nullopt, {}, {{"store", "sqlite://"}}), HasSubstr("is not a store URL"));
  for (const char* good : {"", "sqlite:///var/lib/os.db", "sqlite://rel/os.db",
                           "postgres://db.internal:5432/opensense",
                           "postgresql://opensense@db/opensense"}) {
    auto r = Load(std::nullopt, {}, {{"store", good}});
    EXPECT_TRUE(r) << good << ": " << r.error().message;
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets.

TEST_F(ConfigTest, PasswordInStoreUrlIsRefusedFromFlagsAndFile) {
  const std::string flag = LoadError(std::nullopt, {}, {{"store", "postgres://user:secret@host/db"}});
  EXPECT_THAT(flag, AllOf(StartsWith("--store: "), HasSubstr("password"),
                          HasSubstr("OPENSENSE_STORE_PASSWORD"), HasSubstr("secrets file"),
                          Not(HasSubstr("secret@"))));
  const std::string file = LoadError("store = \"postgres://user:secret@host:5432/db\"\n");
  EXPECT_THAT(file, AllOf(StartsWith(FilePath() + ":1: store: "), HasSubstr("OPENSENSE_STORE_PASSWORD"),
                          Not(HasSubstr("secret@"))));
  EXPECT_THAT(LoadError(std::nullopt, {}, {{"store", "postgres://host/db?sslmode=require&password=x"}}),
              HasSubstr("OPENSENSE_STORE_PASSWORD"));
  // A bad URL with a password is not echoed, even from the environment.
  EXPECT_THAT(LoadError(std::nullopt, {{"OPENSENSE_STORE", "mysql://u:pw@h/db"}}),
              AllOf(HasSubstr("is not a store URL"), Not(HasSubstr("pw@"))));
}

TEST_F(ConfigTest, StoreUrlWithoutPasswordOrFromEnvironmentIsAccepted) {
  auto user_only = Load("store = \"postgres://opensense@db:5432/opensense\"\n");
  ASSERT_TRUE(user_only) << user_only.error().message;
  EXPECT_EQ(user_only->store, "postgres://opensense@db:5432/opensense");
  // An '@' or ':' in the path is not a password.
  auto odd_path = Load(std::nullopt, {}, {{"store", "sqlite:///srv/a:b@c/os.db"}});
  EXPECT_TRUE(odd_path) << odd_path.error().message;
  // The environment may carry secrets.
  auto env = Load(std::nullopt, {{"OPENSENSE_STORE", "postgres://u:pw@db/opensense"}});
  ASSERT_TRUE(env) << env.error().message;
  EXPECT_EQ(env->store, "postgres://u:pw@db/opensense");
}

// ---------------------------------------------------------------------------------------------
// StoreUrl.

TEST_F(ConfigTest, StoreUrlDefaultsToAbsoluteSqliteFileInDataDir) {
  Config config;
  config.data_dir = "/var/lib/opensense";
  EXPECT_EQ(config.StoreUrl(), "sqlite:///var/lib/opensense/opensense.db");
  config.data_dir = "/var/lib/opensense/";
  EXPECT_EQ(config.StoreUrl(), "sqlite:///var/lib/opensense/opensense.db");

  config.data_dir = "data";
  const std::string cwd = fs::current_path().lexically_normal().generic_string();
  EXPECT_EQ(config.StoreUrl(), "sqlite://" + cwd + "/data/opensense.db");
  config.data_dir = "./x/../data";
  EXPECT_EQ(config.StoreUrl(), "sqlite://" + cwd + "/data/opensense.db");
  EXPECT_EQ(Config{}.StoreUrl(), "sqlite://" + cwd + "/data/opensense.db");
}

TEST_F(ConfigTest, StoreUrlKeepsAGivenStore) {
  Config config;
  config.data_dir = "/ignored";
  config.store = "postgres://db:5432/opensense";
  EXPECT_EQ(config.StoreUrl(), "postgres://db:5432/opensense");
}

TEST_F(ConfigTest, MqttSettingsAreChecked) {
  auto ok = Load("mqtt_url = \"mqtts://broker.example:8883\"\nmqtt_client_id = \"a,b-2\"\n");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->mqtt_url, "mqtts://broker.example:8883");
  EXPECT_EQ(ok->mqtt_client_id, "a,b-2");
  for (const char* bad : {"mqtt_url = \"http://x:1\"", "mqtt_url = \"mqtt://x\"",
                          "mqtt_url = \"mqtt://u:hunter2@x:1883\"", "mqtt_client_id = \"\"",
                          "mqtt_client_id = \"a,,b\"", "mqtt_shared_group = \"a/b\"",
                          "mqtt_receive_maximum = 0"}) {
    auto r = Load(std::string(bad) + "\n");
    ASSERT_FALSE(r) << bad;
    EXPECT_THAT(r.error().message, Not(HasSubstr("hunter2"))) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// Docs.

TEST(ConfigDocsTest, ConfigurationMdMatchesTheTable) {
  const fs::path doc = fs::path(OPENSENSE_SOURCE_DIR) / "docs" / "configuration.md";
  std::ifstream in(doc, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const std::string expected = ConfigurationMarkdown();
  if (text.str() != expected) {
    const fs::path fresh = fs::temp_directory_path() / "opensense_configuration.md";
    std::ofstream(fresh, std::ios::binary) << expected;
    FAIL() << doc << " does not match ConfigurationMarkdown(); the expected text is in " << fresh
           << ". If the change is intended: cp " << fresh << " " << doc;
  }
}

TEST(ConfigDocsTest, MarkdownListsEverySetting) {
  const std::string md = ConfigurationMarkdown();
  for (const auto& s : Settings()) {
    EXPECT_THAT(md, HasSubstr("| `" + s.name + "` | `" + s.env_var + "` | `" + s.flag + " "))
        << s.name;
  }
  for (auto secret : kSecretEnvVars) EXPECT_THAT(md, HasSubstr(std::string(secret)));
  EXPECT_THAT(md, HasSubstr("OPENSENSE_CONFIG"));
}

// The example file in the docs loads and gives the defaults.
TEST_F(ConfigTest, DocsExampleLoadsToTheDefaults) {
  const std::string md = ConfigurationMarkdown();
  const std::size_t begin = md.find("```toml\n");
  ASSERT_NE(begin, std::string::npos);
  const std::size_t end = md.find("```", begin + 8);
  ASSERT_NE(end, std::string::npos);
  auto r = Load(md.substr(begin + 8, end - begin - 8));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, Config{});
}

}  // namespace
}  // namespace opensense::app
