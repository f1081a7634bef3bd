// The composition root: parses the command line, loads the configuration, opens the store and
// wires the modules together for each command.
#include "app/cli.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <pthread.h>
#include <thread>

#include "app/alert_cmd.hpp"
#include "app/api_client.hpp"
#include "app/backup_cmd.hpp"
#include "app/member_cmd.hpp"
#include "app/report_cmd.hpp"
#include "app/rule_cmd.hpp"
#include "app/channels_cmd.hpp"
#include "alerts/service.hpp"
#include "app/config.hpp"
#include "app/demo.hpp"
#include "app/log_format.hpp"
#include "app/secrets_file.hpp"
#include "app/systemd_notify.hpp"
#include "api/api.hpp"
#include "api/events.hpp"
#include "api/http/server.hpp"
#include "app/simulate.hpp"
#include "app/store_copy.hpp"
#include "app/version.hpp"
#include "auth/token_service.hpp"
#include "core/retention.hpp"
#include "core/time_zone.hpp"
#include "ingest/mqtt/subscriber.hpp"
#include "notify/dispatcher.hpp"
#include "notify/outbox_outbound.hpp"
#include "notify/transport.hpp"
#include "ops/scheduler.hpp"
#include "store/store.hpp"
#include "web/dashboard.hpp"

extern char** environ;

namespace opensense::app {

namespace {

using nlohmann::json;

// A failure that has been reported already; carries the exit status.
struct Exit {
  int code;
};

[[noreturn]] void Fail(const Error& e) {
  fmt::print(stderr, "opensense: error: {}\n", e.message);
  throw Exit{1};
}
[[noreturn]] void UsageError(const std::string& message) {
  fmt::print(stderr, "opensense: {}\n", message);
  throw Exit{2};
}

template <typename T>
T Check(Result<T> r) {
  if (!r) Fail(r.error());
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

// Flags shared by every command: where the configuration and the store are.
struct CommonFlags {
  std::map<std::string, std::string> values;  // setting name -> flag value, when given
  std::string config_file;
  std::string secrets_file;
  bool json = false;
};

void AddSecretsFileFlag(CLI::App* cmd, CommonFlags* flags) {
  cmd->add_option("--secrets-file", flags->secrets_file,
                  fmt::format("Secrets env file, owner-only (default: ${}, systemd's "
                              "$CREDENTIALS_DIRECTORY/{}, {} when it exists)",
                              kSecretsFileEnvVar, kCredentialName, kDefaultSecretsFile))
      ->type_name("FILE");
}

void AddSettingFlags(CLI::App* cmd, CommonFlags* flags, const std::vector<std::string>& only) {
  cmd->add_option("--config", flags->config_file, "Configuration file (default ./opensense.toml)");
  AddSecretsFileFlag(cmd, flags);
  for (const SettingInfo& s : Settings()) {
    if (!only.empty() && std::find(only.begin(), only.end(), s.name) == only.end()) continue;
    std::string desc = fmt::format("{} (default: {}; env {})", s.description,
                                   s.default_value.empty() ? "none" : s.default_value, s.env_var);
    cmd->add_option_function<std::string>(
           s.flag, [flags, name = s.name](const std::string& v) { flags->values[name] = v; }, desc)
        ->type_name(s.value_name);
  }
}

void AddJsonFlag(CLI::App* cmd, CommonFlags* flags) {
  cmd->add_flag("--json", flags->json, "Print machine-readable JSON");
}

Config LoadConfigFor(const CommonFlags& flags) {
  ConfigSources sources;
  sources.env = OpensenseEnvironment(environ);
  sources.flags = flags.values;
  if (!flags.config_file.empty()) {
    sources.file_path = flags.config_file;
    sources.file_required = true;
  } else if (auto it = sources.env.find(std::string(kConfigEnvVar)); it != sources.env.end()) {
    sources.file_path = it->second;
    sources.file_required = true;
  } else {
    sources.file_path = std::string(kDefaultConfigFile);
    sources.file_required = false;
  }
  auto cfg = LoadConfig(sources);
  if (!cfg) UsageError(cfg.error().message);
  return *cfg;
}

void ApplyLogLevel(const Config& cfg) {
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  ApplyLogFormat(cfg.log_format);
}

store::StoreOptions StoreOptionsFor(const Config& cfg, bool writer, MetricsRegistry* metrics = nullptr) {
  store::StoreOptions o;
  o.metrics = metrics;
  o.url = cfg.StoreUrl();
  o.synchronous = cfg.store_synchronous == "normal" ? store::Synchronous::kNormal
                                                    : store::Synchronous::kFull;
  o.writer = writer;
  o.head_flush_readings = static_cast<std::size_t>(cfg.head_flush_readings);
  o.head_flush_age_ms = static_cast<TimestampMs>(cfg.head_flush_age_seconds) * kMsPerSecond;
  return o;
}

std::unique_ptr<store::Store> OpenFor(const Config& cfg, bool writer) {
  return Check(store::OpenStore(StoreOptionsFor(cfg, writer)));
}

void PrintJson(const json& j) { fmt::print("{}\n", j.dump(2)); }

json OrgJson(const Organization& o) {
  return {{"id", o.id}, {"name", o.name}, {"timezone", o.time_zone}, {"tier", TierName(o.tier)},
          {"created_at", FormatRfc3339(o.created_at)}};
}

json DeviceJson(const Device& d) {
  json j = {{"id", d.id},     {"org", d.org_id},
            {"name", d.name}, {"decommissioned", d.decommissioned},
            {"created_at", FormatRfc3339(d.created_at)}};
  j["site"] = d.site_id ? json(*d.site_id) : json(nullptr);
  j["serial"] = d.serial ? json(*d.serial) : json(nullptr);
  return j;
}

TimestampMs ParseTime(const std::string& flag, const std::string& text) {
  auto t = ParseTimestamp(text);
  if (!t) UsageError(fmt::format("{}: {}", flag, t.error().message));
  return *t;
}

// "a,b" -> {"a", "b"} (empty items dropped).
std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const std::size_t comma = std::min(list.find(',', pos), list.size());
    if (comma > pos) out.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

// ---- serve ----------------------------------------------------------------------------------

struct ServeFlags {
  bool demo = false;
  std::string roles = "api,ingest,alerts,scheduler";
};

// Reads the secrets file (secrets_file.hpp) into the environment, before any thread starts.
// Returns a line for the log (no values).
std::string LoadSecretsFor(const CommonFlags& flags, bool serving) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry = *e;
    const std::size_t eq = entry.find('=');
    const std::string_view name = entry.substr(0, eq);
    if (name == kSecretsFileEnvVar || name == "CREDENTIALS_DIRECTORY") {
      env.emplace(std::string(name), std::string(entry.substr(eq + 1)));
    }
  }
  const SecretsFileChoice choice = ChooseSecretsFile(flags.secrets_file, env, [](const std::string& p) {
    std::error_code ec;
    return std::filesystem::exists(p, ec);
  });
  const LoadedSecrets loaded = Check(LoadSecrets(choice, /*must_read_default=*/serving));
  if (loaded.path.empty()) return loaded.note;
  std::string names;
  for (const auto& [name, value] : loaded.values) names += (names.empty() ? "" : ", ") + name;
  std::string line = fmt::format("secrets from {} ({}): {}", loaded.path, choice.origin,
                                 names.empty() ? "none" : names);
  const auto overridden = ExportSecrets(loaded);
  for (const auto& name : overridden) {
    line += fmt::format("; {} is also set in the environment, which wins", name);
  }
  return line;
}

int RunServe(const CommonFlags& flags, const ServeFlags& serve) {
  Config cfg = LoadConfigFor(flags);
  ApplyLogLevel(cfg);
  if (auto backups = BackupOptionsFor(cfg, nullptr); !backups) UsageError(backups.error().message);
  if (const std::string line = LoadSecretsFor(flags, /*serving=*/true); !line.empty()) {
    spdlog::info("{}", line);
  }
  bool scheduler_role = false;
  bool http_role = false;
  bool ingest_role = false;
  bool alerts_role = false;
  {
    std::string roles = serve.roles;
    std::size_t pos = 0;
    while (pos <= roles.size()) {
      std::size_t comma = roles.find(',', pos);
      std::string role = roles.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      if (role == "ingest") ingest_role = true;
      if (role == "alerts") alerts_role = true;
      if (role == "scheduler") scheduler_role = true;
      else if (role == "api" || role == "ingest") http_role = true;
      else if (role != "alerts") {
        UsageError(fmt::format("--roles: unknown role '{}': use api, ingest, alerts, scheduler", role));
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
  }
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  SystemClock clock;
  MetricsRegistry metrics;
  auto store = Check(store::OpenStore(StoreOptionsFor(cfg, /*writer=*/true, &metrics)));
  metrics.GetGauge("opensense_build_info", "The running version (value 1).", {{"version", std::string(kVersion)}}).Set(1);
  metrics.GetGauge("opensense_start_time_seconds", "When this process started (Unix time).")
      .Set(static_cast<double>(clock.NowMs()) / 1000.0);
  spdlog::info("opensense {} serving store {} (schema {})", kVersion, cfg.StoreUrl(),
               store->SchemaVersion());
  auth::TokenService tokens(store.get(), &clock);
  api::ApiOptions api_options;
  api_options.ingest_rate_per_token = cfg.ingest_rate_per_token;
  api_options.ingest_burst_per_token = cfg.ingest_burst_per_token;
  // The broker hooks (/internal/mqtt/*): secrets come from the environment only.
  if (const char* s = std::getenv("OPENSENSE_MQTT_HOOK_SECRET")) api_options.mqtt_hooks.secret = s;
  if (const char* s = std::getenv("OPENSENSE_MQTT_PASSWORD")) api_options.mqtt_hooks.service_password = s;
  api_options.mqtt_hooks.service_username = cfg.mqtt_username;
  api_options.trusted_proxies = Check(api::TrustedProxies::Parse(cfg.trusted_proxies));
  // Notifications (src/notify): the outbox dispatcher (every serve process runs one; claims keep
  // them from sending a message twice), and operator alerts and queued mail on the same outbox.
  auto notify_transport = notify::MakeCurlTransport();
  notify::DispatcherOptions notify_options = NotifyOptionsFor(cfg);
  notify_options.clock = &clock;
  notify_options.metrics = &metrics;
  std::unique_ptr<notify::Dispatcher> dispatcher;
  const std::function<void()> notify_wake = [&dispatcher] {
    if (dispatcher) dispatcher->Wake();
  };
  notify::OutboxOperatorAlerts operator_alerts(&store->Notify(), notify_options.operator_channel, &clock,
                                               notify_wake);
  notify::OutboxMailQueue mail_queue(&store->Notify(), &clock, notify_wake);
  notify_options.operator_alerts = &operator_alerts;
  dispatcher = std::make_unique<notify::Dispatcher>(&store->Notify(), notify_transport.get(), notify_options);
  dispatcher->Start();
  spdlog::info("notifications: e-mail {}, Telegram {}, operator channel {}",
               notify_options.postmark_token.empty() ? "to the log (dev mailer: no OPENSENSE_POSTMARK_TOKEN)"
                                                     : "via Postmark at " + notify_options.postmark_base_url,
               notify_options.telegram_token.empty() ? "off (no OPENSENSE_TELEGRAM_TOKEN)"
                                                     : "via " + notify_options.telegram_base_url,
               notify_options.operator_channel.empty() ? "not configured (operator alerts are logged)"
                                                       : "configured");
  api_options.notification_queued = notify_wake;
  // Sign-in (src/people): links name public_url, never the request's Host; mail goes through the
  // outbox (Postmark, or the dev mailer's log line).
  api_options.login = LoginOptionsFor(cfg);
  api_options.api_rate_per_org = cfg.api_rate_per_org;
  api_options.api_burst_per_org = cfg.api_burst_per_org;
  api_options.reports_running = cfg.reports_running;
  api_options.chart_cache_bytes = static_cast<std::size_t>(cfg.chart_cache_mb) << 20;
  api_options.reports_waiting = cfg.reports_waiting;
  api_options.mail = &mail_queue;
  // Alerts (src/alerts): every commit's readings are judged as they are stored; the scheduler's
  // alert job judges time (offline, delays running out, escalation, reminders).
  // Live updates for the dashboard (GET /api/v1/events): committed readings from the store,
  // alert changes from the alert service (api/events.hpp).
  api::EventHub events;
  events.Attach(store.get());
  api_options.events = &events;
  std::unique_ptr<alerts::AlertService> alert_service;
  if (alerts_role) {
    alerts::AlertServiceOptions ao;
    ao.clock = &clock;
    ao.public_url = cfg.public_url;
    ao.metrics = &metrics;
    ao.outbox_written = notify_wake;
    ao.alert_changed = [&events](OrgId org, const store::AlertRecord& alert, std::string_view event) {
      events.OnAlertChanged(org, alert, event);
    };
    alert_service = std::make_unique<alerts::AlertService>(store.get(), ao);
    Check(alert_service->Start());
    api_options.alerts = alert_service.get();
  }
  api::Api api(store.get(), &tokens, &metrics, &clock, api_options);
  std::unique_ptr<http::Server> server;
  if (http_role) {
    http::ServerOptions hopts;
    hopts.listen = cfg.listen;
    hopts.worker_threads = cfg.http_worker_threads;
    hopts.default_headers = api::SecurityHeaders();
    hopts.on_complete = [&api](const http::Request& req, const std::string& route, int status,
                               std::chrono::microseconds duration) {
      api.OnComplete(req, route, status, duration);
    };
    // Port 0 without a public_url: sign-in links and the Origin check name the bound port.
    hopts.on_listening = [&api, &cfg](const std::string& address) {
      if (cfg.public_url.empty()) api.SetPublicUrl("http://" + address);
    };
    http::Router router = api.BuildRouter();
    web::Dashboard::Install(router);  // the dashboard at / (src/web), for paths no route matches
    server = Check(http::Server::Start(hopts, std::move(router)));
    spdlog::info("HTTP API listening on http://{}", server->address());
  }

  std::unique_ptr<ops::Scheduler> scheduler;
  if (scheduler_role) {
    ops::SchedulerOptions so;
    so.retention_interval_ms = static_cast<TimestampMs>(cfg.retention_interval_seconds) * kMsPerSecond;
    so.metrics = &metrics;
    scheduler = std::make_unique<ops::Scheduler>(store.get(), &clock, so);
  }
  // Backups (src/backup): the placement check always; the jobs with the scheduler role.
  // operator_alerts: the notify module's, on the outbox (above).
  auto backup_jobs = ScheduleBackups(cfg, scheduler.get(), &operator_alerts, &metrics, &clock);
  if (!backup_jobs) UsageError(backup_jobs.error().message);
  if (scheduler && alert_service) {
    scheduler->AddJob("alerts", 15 * kMsPerSecond,
                      [&alert_service](TimestampMs now) { alert_service->Tick(now); });
  }
  if (scheduler) {
    scheduler->Start();
  }

  // MQTT ingest: our own subscriber, acknowledging each message after its commit.
  std::unique_ptr<mqtt::Subscriber> subscriber;
  if (ingest_role && !cfg.mqtt_url.empty()) {
    mqtt::SubscriberOptions mo;
    mo.url = cfg.mqtt_url;
    mo.username = cfg.mqtt_username;
    if (const char* pw = std::getenv("OPENSENSE_MQTT_PASSWORD")) mo.password = pw;
    mo.client_ids = SplitList(cfg.mqtt_client_id);
    mo.retired_client_ids = SplitList(cfg.mqtt_retired_client_ids);
    mo.shared_group = cfg.mqtt_shared_group;
    mo.ca_file = cfg.mqtt_ca_file;
    mo.keepalive_seconds = cfg.mqtt_keepalive_seconds;
    mo.session_expiry_seconds = static_cast<std::uint32_t>(cfg.mqtt_session_expiry_seconds);
    mo.receive_maximum = static_cast<std::uint16_t>(cfg.mqtt_receive_maximum);
    mo.clock = &clock;
    subscriber = Check(mqtt::StartSubscriber(mo, store.get(), &metrics));
    spdlog::info("MQTT ingest from {} as '{}' (client ids {})", cfg.mqtt_url, cfg.mqtt_username,
                 cfg.mqtt_client_id);
  }

  std::atomic<bool> stop{false};
  std::thread demo_thread;
  if (serve.demo) {
    DemoOptions demo_options;
    demo_options.devices = cfg.demo_devices;
    demo_options.history_days = cfg.demo_history_days;
    // The failing fridge's rule judges the last 8 hours of back-filled history (there is always an
    // excursion in them), so a critical alert and its e-mail come within the first minutes.
    demo_options.before_backfill = [&](const DemoHandle& d) {
      return CreateDemoAlertRules(alert_service.get(), d, clock.NowMs() - 8 * kMsPerHour);
    };
    int last = -1;
    auto demo = Check(SetUpDemo(store.get(), &clock, demo_options, [&](int percent) {
      if (percent / 10 != last / 10) {
        spdlog::info("demo: back-filling {} days of history: {}%", demo_options.history_days, percent);
        last = percent;
      }
    }));
    spdlog::info("demo: organisation '{}' (id {}) with {} simulated fridges{}; live readings every "
                 "minute",
                 kDemoOrgName, demo.org, demo.devices.size(), demo.created ? "" : " (reused)");
    if (demo.created) {
      // The demo's owner token is printed once, so a newcomer can query the API at once.
      auto owner = store->CreateUser(demo.org, kDemoOwnerEmail, Role::kOwner);
      auto token = owner ? tokens.IssueUserToken(demo.org, owner->id, Role::kOwner, "demo")
                         : Result<auth::IssuedToken>(tl::unexpected(owner.error()));
      if (token) {
        spdlog::info("demo: owner API token (shown once): {}", token->token);
        if (server) {
          spdlog::info("demo: try  curl -H 'Authorization: Bearer {}' http://{}/api/v1/devices",
                       token->token, server->address());
        }
      } else {
        spdlog::warn("demo: no owner token: {}", token.error().message);
      }
    }
    if (server) {
      spdlog::info("demo: the dashboard is at http://{}/ : sign in as {} (the dev mailer writes the sign-in link "
                   "to this log)",
                   server->address(), kDemoOwnerEmail);
    }
    demo_thread = std::thread([&, demo, demo_options] {
      RunDemoLive(store.get(), &clock, demo_options, demo, stop);
    });
  }
  spdlog::info("ready; stop with Ctrl-C or SIGTERM");
  // systemd (Type=notify): ready now that the listener and the store are up; the watchdog is
  // fed only while the store answers Ready(), so a stuck writer gets the service restarted.
  if (auto st = Notify("READY=1\nSTATUS=serving"); !st) spdlog::warn("{}", st.error().message);
  std::mutex watchdog_mu;
  std::condition_variable watchdog_cv;
  bool watchdog_stop = false;
  std::thread watchdog_thread;
  if (auto interval = WatchdogPingInterval(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"),
                                           ::getpid())) {
    spdlog::info("systemd watchdog: a ping every {} ms while the store is ready", interval->count() / 1000);
    watchdog_thread = std::thread([&, interval = *interval] {
      std::unique_lock lock(watchdog_mu);
      while (!watchdog_cv.wait_for(lock, interval, [&] { return watchdog_stop; })) {
        if (auto ready = store->Ready(); !ready) {
          spdlog::warn("systemd watchdog: not pinging, the store is not ready: {}", ready.error().message);
          continue;
        }
        if (auto st = Notify("WATCHDOG=1"); !st) spdlog::warn("{}", st.error().message);
      }
    });
  }
  int sig = 0;
  sigwait(&signals, &sig);
  if (auto st = Notify("STOPPING=1\nSTATUS=stopping: finishing queued writes"); !st) {
    spdlog::warn("{}", st.error().message);
  }
  if (watchdog_thread.joinable()) {
    {
      std::lock_guard lock(watchdog_mu);
      watchdog_stop = true;
    }
    watchdog_cv.notify_all();
    watchdog_thread.join();
  }
  spdlog::info("received {}, stopping: finishing queued writes", sig == SIGINT ? "SIGINT" : "SIGTERM");
  stop = true;
  if (server) server->Shutdown();  // finishes in-flight requests first
  if (subscriber) subscriber->Stop();  // acknowledges what was committed; the broker keeps the rest
  if (demo_thread.joinable()) demo_thread.join();
  if (scheduler) scheduler->Stop();
  if (alert_service) alert_service->Stop();  // judges what is still queued
  dispatcher->Stop();  // an in-flight request finishes or times out first
  events.Detach();
  store->Close();
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"OpenSense: cold-chain monitoring for fridges, freezers and cold rooms", "opensense"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  CommonFlags flags;
  const std::vector<std::string> kStoreFlags = {"data_dir", "store", "store_synchronous", "log_level"};

  // serve
  ServeFlags serve;
  auto* serve_cmd = app.add_subcommand("serve", "Run OpenSense: the store, the writer and the scheduler");
  AddSettingFlags(serve_cmd, &flags, {});
  serve_cmd->add_flag("--demo", serve.demo,
                      "Create a demo organisation with simulated fridges (history + live readings)");
  serve_cmd->add_option("--roles", serve.roles, "Roles this process runs: api,ingest,alerts,scheduler")
      ->capture_default_str();

  // migrate
  auto* migrate_cmd = app.add_subcommand("migrate", "Apply pending schema migrations to the store");
  AddSettingFlags(migrate_cmd, &flags, kStoreFlags);
  AddJsonFlag(migrate_cmd, &flags);

  // version
  auto* version_cmd = app.add_subcommand("version", "Print the version");
  AddJsonFlag(version_cmd, &flags);

  // org
  auto* org_cmd = app.add_subcommand("org", "Organisations");
  org_cmd->require_subcommand(1);
  store::NewOrganization new_org;
  std::string tier_name = "free";
  auto* org_create = org_cmd->add_subcommand("create", "Create an organisation");
  org_create->add_option("--name", new_org.name, "Name")->required();
  org_create->add_option("--timezone", new_org.time_zone, "IANA time zone (1-day rollups follow it)")
      ->capture_default_str();
  org_create->add_option("--tier", tier_name, "free, team or enterprise")->capture_default_str();
  std::string owner_email = "owner@localhost";
  org_create->add_option("--owner-email", owner_email,
                         "The owner's email; an owner API token (osk_...) is printed once")
      ->capture_default_str();
  AddSettingFlags(org_create, &flags, kStoreFlags);
  AddJsonFlag(org_create, &flags);
  auto* org_list = org_cmd->add_subcommand("list", "List organisations");
  AddSettingFlags(org_list, &flags, kStoreFlags);
  AddJsonFlag(org_list, &flags);
  OrgId org_id = 0;
  std::string new_zone, new_tier;
  auto* org_set = org_cmd->add_subcommand(
      "set", "Change an organisation's time zone (rebuilds its 1-day rollups) or tier");
  org_set->add_option("--org", org_id, "Organisation id")->required();
  org_set->add_option("--timezone", new_zone, "New IANA time zone");
  org_set->add_option("--tier", new_tier, "New tier: free, team or enterprise");
  AddSettingFlags(org_set, &flags, kStoreFlags);

  // site
  auto* site_cmd = app.add_subcommand("site", "Sites (a kitchen, a store room, a pharmacy)");
  site_cmd->require_subcommand(1);
  std::string site_name;
  auto* site_create = site_cmd->add_subcommand("create", "Create a site");
  site_create->add_option("--org", org_id, "Organisation id")->required();
  site_create->add_option("--name", site_name, "Name")->required();
  AddSettingFlags(site_create, &flags, kStoreFlags);
  AddJsonFlag(site_create, &flags);

  // device
  auto* device_cmd = app.add_subcommand("device", "Devices (sensors)");
  device_cmd->require_subcommand(1);
  store::NewDevice new_device;
  DeviceId device_id_flag = 0;
  SiteId site_id = 0;
  std::string serial;
  auto* device_create = device_cmd->add_subcommand("create", "Register a device");
  device_create->add_option("--org", new_device.org, "Organisation id")->required();
  device_create->add_option("--name", new_device.name, "Name, e.g. 'Walk-in cold room'")->required();
  device_create->add_option("--site", site_id, "Site id");
  device_create->add_option("--serial", serial, "Serial or MAC, unique in the organisation");
  AddSettingFlags(device_create, &flags, kStoreFlags);
  AddJsonFlag(device_create, &flags);
  TimestampMs grace_seconds = 0;
  auto* device_rotate = device_cmd->add_subcommand(
      "rotate-token", "Issue a new ingest token; the old one stops now or after --grace seconds");
  device_rotate->add_option("--org", org_id, "Organisation id")->required();
  device_rotate->add_option("--device", device_id_flag, "Device id")->required();
  device_rotate->add_option("--grace", grace_seconds, "Seconds the old token keeps working")
      ->capture_default_str();
  AddSettingFlags(device_rotate, &flags, kStoreFlags);
  AddJsonFlag(device_rotate, &flags);
  auto* device_list = device_cmd->add_subcommand("list", "List the devices of an organisation");
  device_list->add_option("--org", org_id, "Organisation id")->required();
  AddSettingFlags(device_list, &flags, kStoreFlags);
  AddJsonFlag(device_list, &flags);
  // device profile and report (report_cmd.cpp)
  DeviceProfileFlags profile_flags;
  auto* device_profile = AddDeviceProfileCommand(device_cmd, &profile_flags);
  AddSettingFlags(device_profile, &flags, kStoreFlags);
  AddJsonFlag(device_profile, &flags);
  ReportFlags report_flags;
  auto* report_cmd = AddReportCommand(app, &report_flags);
  AddSettingFlags(report_cmd, &flags, kStoreFlags);
  AddJsonFlag(report_cmd, &flags);

  // retention
  auto* retention_cmd = app.add_subcommand("retention", "Data retention");
  retention_cmd->require_subcommand(1);
  bool dry_run = false;
  auto* retention_run = retention_cmd->add_subcommand("run", "Delete data older than retention");
  retention_run->add_flag("--dry-run", dry_run, "Only count what would be deleted");
  AddSettingFlags(retention_run, &flags, kStoreFlags);
  AddJsonFlag(retention_run, &flags);
  auto* retention_show = retention_cmd->add_subcommand("show", "Show an organisation's retention");
  retention_show->add_option("--org", org_id, "Organisation id")->required();
  AddSettingFlags(retention_show, &flags, kStoreFlags);
  AddJsonFlag(retention_show, &flags);
  std::string class_name, period_text;
  auto* retention_set = retention_cmd->add_subcommand(
      "set", "Extend the retention of a data class (Team and Enterprise tiers)");
  retention_set->add_option("--org", org_id, "Organisation id")->required();
  retention_set->add_option("--class", class_name, "raw_readings, rollup_5m, rollup_1h, ...")->required();
  retention_set->add_option("--period", period_text, "e.g. '24 months', '10 years', forever")->required();
  AddSettingFlags(retention_set, &flags, kStoreFlags);

  // rollup
  auto* rollup_cmd = app.add_subcommand("rollup", "Rollups (5-minute, 1-hour, 1-day aggregates)");
  rollup_cmd->require_subcommand(1);
  DeviceId device_id = 0;
  std::string from_text, to_text;
  auto* rollup_rebuild = rollup_cmd->add_subcommand("rebuild", "Recompute rollups from finer data");
  rollup_rebuild->add_option("--device", device_id, "Device id")->required();
  rollup_rebuild->add_option("--from", from_text, "Start (RFC 3339 or epoch ms)")->required();
  rollup_rebuild->add_option("--to", to_text, "End, exclusive (RFC 3339 or epoch ms)")->required();
  AddSettingFlags(rollup_rebuild, &flags, kStoreFlags);

  // simulate
  SimulateOptions sim;
  auto* simulate_cmd = app.add_subcommand(
      "simulate", "Post simulated fridge readings to an OpenSense server, as real devices would");
  std::string sim_devices;
  auto* sim_url = simulate_cmd->add_option("--url", sim.url, "Server, e.g. http://127.0.0.1:8080");
  auto* sim_mqtt = simulate_cmd->add_option(
      "--mqtt", sim.mqtt, "Publish over MQTT instead, e.g. mqtt://127.0.0.1:1883 (QoS 1, SenML)");
  sim_url->excludes(sim_mqtt);
  simulate_cmd->add_option("--device", sim_devices,
                           "MQTT: the device id (device token) or ids, comma-separated (gateway token)");
  simulate_cmd->add_option("--site", sim.site, "MQTT with a gateway token: its site id");
  simulate_cmd->add_option("--ca-file", sim.ca_file, "MQTT over TLS: CA bundle (default: the system's)");
  simulate_cmd->add_option("--token", sim.token,
                           "Device token (one device) or gateway token (devices sim-1..sim-N)")
      ->required();
  simulate_cmd->add_option("--devices", sim.devices, "Simulated devices (gateway token)")->capture_default_str();
  simulate_cmd->add_option("--rate", sim.rate, "Posts per second in all")->capture_default_str();
  simulate_cmd->add_option("--duration", sim.duration_seconds, "Stop after this many seconds (0: never)")
      ->capture_default_str();
  simulate_cmd->add_option("--step", sim.step_seconds, "Simulated seconds between readings of a device")
      ->capture_default_str();
  simulate_cmd->add_option("--backfill", sim.backfill_seconds,
                           "Readings start this many seconds back and catch up with the clock")
      ->capture_default_str();

  // compact
  auto* compact_cmd = app.add_subcommand(
      "compact", "Compact recent readings into chunks and checkpoint the store");
  AddSettingFlags(compact_cmd, &flags, kStoreFlags);
  AddJsonFlag(compact_cmd, &flags);

  // store copy
  StoreCopyFlags copy_flags;
  auto* store_copy_cmd = AddStoreCommand(app, &copy_flags);
  AddSecretsFileFlag(store_copy_cmd, &flags);

  // backup run|verify|restore|list (backup_cmd.cpp)
  BackupFlags backup_flags;
  const BackupCommands backup_cmds = AddBackupCommand(app, &backup_flags);
  for (auto* cmd : backup_cmds.all()) AddSettingFlags(cmd, &flags, BackupSettingNames());

  // channel list|create|delete|test (channels_cmd.cpp)
  ChannelFlags channel_flags;
  const ChannelCommands channel_cmds = AddChannelCommand(app, &channel_flags);
  for (auto* cmd : channel_cmds.all()) AddSettingFlags(cmd, &flags, kStoreFlags);

  // rule list|show|create|update|delete and alert list|show|ack|resolve: through the running
  // server's API (api_client.hpp); the listen setting gives the default URL.
  RuleFlags rule_flags;
  const RuleCommands rule_cmds = AddRuleCommand(app, &rule_flags);
  AlertFlags alert_flags;
  const AlertCommands alert_cmds = AddAlertCommand(app, &alert_flags);
  for (auto* cmd : rule_cmds.all()) AddSettingFlags(cmd, &flags, {"listen", "log_level"});
  for (auto* cmd : alert_cmds.all()) AddSettingFlags(cmd, &flags, {"listen", "log_level"});

  // member list|invite|role|remove (member_cmd.cpp): invitation links name public_url.
  MemberFlags member_flags;
  const MemberCommands member_cmds = AddMemberCommand(app, &member_flags);
  std::vector<std::string> member_settings = kStoreFlags;
  member_settings.insert(member_settings.end(), {"public_url", "listen"});
  for (auto* cmd : member_cmds.all()) AddSettingFlags(cmd, &flags, member_settings);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  try {
    if (*serve_cmd) return RunServe(flags, serve);
    if (*store_copy_cmd) {
      if (const std::string line = LoadSecretsFor(flags, false); !line.empty()) {
        fmt::print(stderr, "opensense: {}\n", line);
      }
      return RunStoreCopy(copy_flags);
    }

    if (*simulate_cmd) {
      if (sim.url.empty() && sim.mqtt.empty()) UsageError("simulate: give --url http://HOST:PORT or --mqtt mqtt://HOST:PORT");
      for (const auto& id : SplitList(sim_devices)) {
        char* end = nullptr;
        const long v = std::strtol(id.c_str(), &end, 10);
        if (end == id.c_str() || *end != '\0' || v <= 0) UsageError(fmt::format("--device: '{}' is not a device id", id));
        sim.device_ids.push_back(v);
      }
      return RunSimulate(sim);
    }

    if (*version_cmd) {
      if (flags.json) PrintJson({{"version", kVersion}, {"schema", store::LatestSchemaVersion()}});
      else fmt::print("opensense {} (schema version {})\n", kVersion, store::LatestSchemaVersion());
      return 0;
    }

    Config cfg = LoadConfigFor(flags);
    ApplyLogLevel(cfg);
    // Commands beside serve need a secret only for PostgreSQL; say where it came from on stderr
    // only when something is odd (a default file we may not read, an override).
    if (const std::string line = LoadSecretsFor(flags, false);
        !line.empty() && line.find("secrets from") != 0) {
      fmt::print(stderr, "opensense: {}\n", line);
    }
    if (*backup_cmds.root) return RunBackupCommand(backup_cmds, backup_flags, cfg);
    if (*report_cmd) return RunReportCommand(report_flags, *OpenFor(cfg, false), flags.json);
    if (*device_profile) return RunDeviceProfileCommand(profile_flags, *OpenFor(cfg, false), flags.json);
    if (*channel_cmds.root) {
      auto store = OpenFor(cfg, /*writer=*/false);
      const int rc = RunChannelCommand(channel_cmds, channel_flags, store.get());
      store->Close();
      return rc;
    }
    if (*rule_cmds.root || *alert_cmds.root) {
      const ApiClientFlags& client_flags = *rule_cmds.root ? rule_flags.client : alert_flags.client;
      auto client = ApiClientFor(client_flags, cfg.listen, OpensenseEnvironment(environ));
      if (!client) return ReportClientError(client.error());
      return *rule_cmds.root ? RunRuleCommand(rule_cmds, rule_flags, *client)
                             : RunAlertCommand(alert_cmds, alert_flags, *client);
    }
    if (*member_cmds.root) {
      auto store = OpenFor(cfg, /*writer=*/false);
      const int rc = RunMemberCommand(member_cmds, member_flags, store.get(), cfg);
      store->Close();
      return rc;
    }
    if (*migrate_cmd) {
      auto store = OpenFor(cfg, /*writer=*/false);
      if (flags.json) PrintJson({{"store", cfg.StoreUrl()}, {"schema", store->SchemaVersion()}});
      else fmt::print("{} is at schema version {}\n", cfg.StoreUrl(), store->SchemaVersion());
      return 0;
    }
    if (*org_create) {
      new_org.tier = Check(ParseTier(tier_name));
      auto store = OpenFor(cfg, false);
      SystemClock clock;
      auth::TokenService tokens(store.get(), &clock);
      // Through the people service: the organisation and its owner are audit events of it.
      people::PeopleService people_service(store.get(), &tokens, nullptr, &clock, LoginOptionsFor(cfg));
      auto org = Check(people_service.CreateOrganisation(new_org, owner_email, OperatorActor()));
      const auto owner = Check(store->People().ListMembers(org.id)).at(0);
      auto token = Check(tokens.IssueUserToken(org.id, owner.id, Role::kOwner, "created by org create"));
      Check(people_service.Record(org.id, OperatorActor(), "token.create", fmt::format("token:{}", token.record.id), "",
                                  json({{"label", token.record.label}, {"role", RoleName(token.record.role)},
                                        {"member", owner.id}}).dump()));
      if (flags.json) {
        json j = OrgJson(org);
        j["owner"] = {{"id", owner.id}, {"email", owner.email}};
        j["token"] = token.token;
        PrintJson(j);
      } else {
        fmt::print("created organisation {} '{}' (time zone {}, tier {})\n", org.id, org.name,
                   org.time_zone, TierName(org.tier));
        fmt::print("owner {} API token (shown once, keep it safe):\n  {}\n", owner.email, token.token);
      }
      return 0;
    }
    if (*org_list) {
      auto store = OpenFor(cfg, false);
      auto orgs = Check(store->ListOrganizations());
      if (flags.json) {
        json arr = json::array();
        for (const auto& o : orgs) arr.push_back(OrgJson(o));
        PrintJson(arr);
      } else {
        fmt::print("{:>6}  {:<32} {:<24} {}\n", "ID", "NAME", "TIME ZONE", "TIER");
        for (const auto& o : orgs) {
          fmt::print("{:>6}  {:<32} {:<24} {}\n", o.id, o.name, o.time_zone, TierName(o.tier));
        }
      }
      return 0;
    }
    if (*org_set) {
      if (new_zone.empty() && new_tier.empty()) UsageError("org set: give --timezone and/or --tier");
      bool needs_writer = !new_zone.empty();
      auto store = OpenFor(cfg, needs_writer);
      if (!new_tier.empty()) Check(store->SetOrganizationTier(org_id, Check(ParseTier(new_tier))));
      if (!new_zone.empty()) {
        fmt::print(stderr, "rebuilding 1-day rollups in {} ...\n", new_zone);
        Check(store->SetOrganizationTimeZone(org_id, new_zone));
      }
      auto org = Check(store->GetOrganization(org_id));
      fmt::print("organisation {}: time zone {}, tier {}\n", org.id, org.time_zone, TierName(org.tier));
      store->Close();
      return 0;
    }
    if (*site_create) {
      auto store = OpenFor(cfg, false);
      auto site = Check(store->CreateSite(org_id, site_name));
      if (flags.json) PrintJson({{"id", site.id}, {"org", site.org_id}, {"name", site.name}});
      else fmt::print("created site {} '{}'\n", site.id, site.name);
      return 0;
    }
    if (*device_create) {
      if (site_id != 0) new_device.site = site_id;
      if (!serial.empty()) new_device.serial = serial;
      auto store = OpenFor(cfg, false);
      auto dev = Check(store->CreateDevice(new_device));
      SystemClock clock;
      auth::TokenService tokens(store.get(), &clock);
      auto token = Check(tokens.IssueDeviceToken(dev.org_id, dev.id));
      if (flags.json) {
        json j = DeviceJson(dev);
        j["token"] = token.token;
        PrintJson(j);
      } else {
        fmt::print("created device {} '{}' in organisation {}\n", dev.id, dev.name, dev.org_id);
        fmt::print("ingest token (shown once, keep it safe):\n  {}\n", token.token);
      }
      return 0;
    }
    if (*device_rotate) {
      auto store = OpenFor(cfg, false);
      SystemClock clock;
      auth::TokenService tokens(store.get(), &clock);
      auto token = Check(tokens.RotateDeviceToken(org_id, device_id_flag, grace_seconds * kMsPerSecond));
      if (flags.json) {
        PrintJson({{"id", device_id_flag}, {"token", token.token}, {"grace_seconds", grace_seconds}});
      } else {
        fmt::print("new ingest token for device {} (shown once):\n  {}\n", device_id_flag, token.token);
        if (grace_seconds > 0) {
          fmt::print("the old token keeps working for {} seconds\n", grace_seconds);
        } else {
          fmt::print("the old token no longer works\n");
        }
      }
      return 0;
    }
    if (*device_list) {
      auto store = OpenFor(cfg, false);
      Check(store->GetOrganization(org_id));
      auto devices = Check(store->ListDevices(org_id));
      if (flags.json) {
        json arr = json::array();
        for (const auto& d : devices) arr.push_back(DeviceJson(d));
        PrintJson(arr);
      } else {
        fmt::print("{:>6}  {:<32} {:<20} {}\n", "ID", "NAME", "SERIAL", "STATE");
        for (const auto& d : devices) {
          fmt::print("{:>6}  {:<32} {:<20} {}\n", d.id, d.name, d.serial.value_or("-"),
                     d.decommissioned ? "decommissioned" : "active");
        }
      }
      return 0;
    }
    if (*retention_run) {
      auto store = OpenFor(cfg, /*writer=*/!dry_run);
      auto report = Check(store->RunRetention(dry_run));
      store->Close();
      if (flags.json) {
        json classes = json::object();
        for (const auto& c : report.classes) classes[std::string(DataClassName(c.data_class))] = c.rows;
        PrintJson({{"dry_run", report.dry_run}, {"deleted", classes}});
      } else {
        fmt::print("{}\n", dry_run ? "would delete:" : "deleted:");
        for (const auto& c : report.classes) {
          fmt::print("  {:<20} {:>12} {}\n", DataClassName(c.data_class), c.rows,
                     c.data_class == DataClass::kRawReadings ? "readings" : "rows");
        }
      }
      return 0;
    }
    if (*retention_show) {
      auto store = OpenFor(cfg, false);
      auto policy = Check(store->GetRetentionPolicy(org_id));
      if (flags.json) {
        json j = json::object();
        for (DataClass c : kAllDataClasses) {
          j[std::string(DataClassName(c))] = FormatRetentionPeriod(policy.For(c));
        }
        PrintJson(j);
      } else {
        for (DataClass c : kAllDataClasses) {
          fmt::print("  {:<20} {}\n", DataClassName(c), FormatRetentionPeriod(policy.For(c)));
        }
      }
      return 0;
    }
    if (*retention_set) {
      DataClass c = Check(ParseDataClass(class_name));
      RetentionPeriod p = Check(ParseRetentionPeriod(period_text));
      auto store = OpenFor(cfg, false);
      Check(store->SetRetention(org_id, c, p));
      fmt::print("organisation {} keeps {} for {}\n", org_id, DataClassName(c), FormatRetentionPeriod(p));
      return 0;
    }
    if (*rollup_rebuild) {
      TimestampMs from = ParseTime("--from", from_text), to = ParseTime("--to", to_text);
      auto store = OpenFor(cfg, true);
      OrgId owner = 0;
      for (const auto& o : Check(store->ListOrganizations())) {
        if (store->GetDevice(o.id, device_id)) owner = o.id;
      }
      if (owner == 0) Fail(Error{ErrorCode::kNotFound, fmt::format("no device {}", device_id)});
      Check(store->RebuildRollups(owner, device_id, from, to));
      store->Close();
      fmt::print("rebuilt rollups of device {} for [{}, {})\n", device_id, FormatRfc3339(from),
                 FormatRfc3339(to));
      return 0;
    }
    if (*compact_cmd) {
      auto store = OpenFor(cfg, true);
      Check(store->Compact());
      auto stats = Check(store->Stats());
      store->Close();
      if (flags.json) {
        PrintJson({{"chunks", stats.chunks}, {"readings", stats.chunk_readings},
                   {"file_bytes", stats.file_bytes}});
      } else {
        fmt::print("{} readings in {} chunks; {} bytes on disk\n", stats.chunk_readings, stats.chunks,
                   stats.file_bytes);
      }
      return 0;
    }
  } catch (const Exit& e) {
    return e.code;
  }
  return 2;
}

}  // namespace opensense::app
