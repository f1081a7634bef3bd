// The configuration of an `opensense` process: one table of settings drives the loader
// (defaults < TOML file < OPENSENSE_* environment < command-line flags), the list of flags the
// CLI offers, and docs/configuration.md (ConfigurationMarkdown(); config_test checks they agree).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace opensense::app {

// The settings of one process. Every field here has a row in the settings table (config.cpp);
// the defaults below are the zero-config defaults and are what docs/configuration.md shows.
struct Config {
  // Directory of the SQLite store and other local state. Default "data".
  std::string data_dir = "data";
  // Store URL: sqlite:///abs/path/opensense.db or postgres://host:port/db. Empty (default) means
  // sqlite://<data_dir>/opensense.db; use StoreUrl() for the resolved URL. Never holds a password
  // unless it came from the environment.
  std::string store;
  // Durability of each commit: "full" (default, survives power loss) or "normal" (survives a
  // process crash). Maps onto store::StoreOptions::synchronous.
  std::string store_synchronous = "full";
  // HTTP listen address, HOST:PORT (IPv6 hosts in brackets), port 0..65535. Default 127.0.0.1:8080.
  std::string listen = "127.0.0.1:8080";
  // Where people reach this server; alert messages link to <public_url>/alerts/<id>. Default ""
  // (messages carry the API path only).
  std::string public_url;
  // Self-service sign-up: "on" lets anyone create a free organisation by magic link.
  std::string self_signup = "off";
  // Rate limits per route class (ingest: ingest_rate_per_token below).
  // Login: magic-link mails per e-mail address and per client address per 15 minutes.
  int login_links_per_address = 5;
  int login_links_per_client = 20;
  // Sessions end after this long without a request, and this long after login.
  int session_idle_minutes = 12 * 60;
  int session_absolute_hours = 7 * 24;
  // User API (tokens and sessions) requests per second and burst per organisation; 0: the
  // organisation's tier decides (core/tiers.hpp).
  int api_rate_per_org = 0;
  int api_burst_per_org = 0;
  // Reports: rendering at once, and waiting for a slot (beyond: 429).
  int reports_running = 2;
  int chart_cache_mb = 64;
  int reports_waiting = 4;
  // IP addresses of reverse proxies (Caddy) whose X-Forwarded-For names the client in the API
  // request log, comma-separated. Default "" (trust no one: the TCP peer is the client).
  std::string trusted_proxies;
  // trace, debug, info (default), warn or error.
  std::string log_level = "info";
  std::string log_format = "text";
  // The head is compacted into chunks once it holds this many readings (>= 1024). Default 262144.
  std::int64_t head_flush_readings = 256 * 1024;
  // ... or once its oldest reading is this old, in seconds (1..86400). Default 600.
  int head_flush_age_seconds = 600;
  // How often the scheduler runs retention, in seconds (60..604800). Default 3600.
  int retention_interval_seconds = 3600;
  // Threads running HTTP handlers (1..256). Each waits for its batch's commit, so more threads
  // let more requests share one group commit. Default 16.
  int http_worker_threads = 16;
  // Ingest requests per second one device or gateway token may make (1..1000000); beyond it
  // 429. Default 50.
  int ingest_rate_per_token = 50;
  // The burst a token may spend at once (1..1000000). Default 200.
  int ingest_burst_per_token = 200;
  // MQTT ingest: the broker to subscribe to, mqtt://HOST:PORT or mqtts://HOST:PORT (TLS). Empty
  // (default) means MQTT ingest is off. The password comes only from OPENSENSE_MQTT_PASSWORD.
  std::string mqtt_url;
  // The subscriber's username at the broker (its service credential). Default "opensense".
  std::string mqtt_username = "opensense";
  // The fixed client id(s) of this process's subscriber sessions, comma-separated. Each id is a
  // persistent session at the broker. Default "opensense-ingest".
  std::string mqtt_client_id = "opensense-ingest";
  // Client ids being retired, comma-separated: each is drained once at start (unsubscribed, its
  // queued readings stored and acknowledged, its session ended). Default "".
  std::string mqtt_retired_client_ids;
  // Shared-subscription group: non-empty subscribes to $share/<group>/devices/+/readings so
  // several ingest processes split the stream. Default "" (plain subscription).
  std::string mqtt_shared_group;
  // CA bundle (PEM) that verifies the broker's certificate for mqtts://. Default "": the system's.
  std::string mqtt_ca_file;
  // MQTT keep-alive in seconds (5..3600). Default 30.
  int mqtt_keepalive_seconds = 30;
  // How long the broker keeps the session (and queues readings) while OpenSense is away, in
  // seconds (60..4294967295). Default 604800 (7 days).
  std::int64_t mqtt_session_expiry_seconds = 7 * 24 * 3600;
  // Readings (QoS 1 messages) the broker may have in flight to the subscriber (1..65535): the
  // window that pending commits may use. Default 10000.
  int mqtt_receive_maximum = 10000;
  // Notifications (src/notify). Postmark API base URL. Default https://api.postmarkapp.com. The
  // server token comes only from OPENSENSE_POSTMARK_TOKEN; without it e-mail goes to the log.
  std::string postmark_base_url = "https://api.postmarkapp.com";
  // The From of every e-mail (a Postmark sender signature). Default "OpenSense <opensense@localhost>".
  std::string mail_from = "OpenSense <opensense@localhost>";
  // Postmark message stream. Default "outbound".
  std::string postmark_message_stream = "outbound";
  // Telegram Bot API base URL. Default https://api.telegram.org. The bot token comes only from
  // OPENSENSE_TELEGRAM_TOKEN.
  std::string telegram_base_url = "https://api.telegram.org";
  // Seconds one delivery request may take (1..120). Default 10.
  int notify_timeout_seconds = 10;
  // Attempts before a notification is given up (1..100). Default 12.
  int notify_max_attempts = 12;
  // The operator channel (backups, disk, delivery failures): an e-mail address, a Telegram chat
  // id and/or a webhook URL (signed with OPENSENSE_OPERATOR_WEBHOOK_SECRET). Default "": logged only.
  std::string operator_email;
  std::string operator_telegram_chat;
  std::string operator_webhook_url;
  // Backups (src/backup). Directory of the encrypted backups and their manifests; must not be
  // inside the data directory. Default "" (no scheduled backups).
  std::string backup_dir;
  // age recipients (public keys, age1...), comma-separated. Default "".
  std::string backup_recipients;
  // A file of age recipients, one per line (`age -R`). Default "".
  std::string backup_recipients_file;
  // "hourly" (default): the scheduler role backs up every hour when backup_dir is set; "off".
  std::string backup_schedule = "hourly";
  // PostgreSQL stores: "logical" (default, pg_dump of the database) or "physical"
  // (pg_basebackup of the whole cluster, restored by unpacking files).
  std::string backup_method = "logical";
  // Hourly backups are kept this many days (1..365). Default 7.
  int backup_hourly_keep_days = 7;
  // The first backup of each day is kept this many days (1..3650). Default 30.
  int backup_daily_keep_days = 30;
  // Off-site target: a directory (a mounted storage box). Default "".
  std::string backup_offsite_dir;
  // ... or commands with {file} and {name}: push, fetch back (for drills), delete (optional).
  std::string backup_offsite_command;
  std::string backup_offsite_fetch_command;
  std::string backup_offsite_delete_command;
  // Weekly off-site copies are kept this many weeks (1..520). Default 12.
  int backup_offsite_keep_weeks = 12;
  // The age identity (private key) for restore drills; only on a machine meant to hold it.
  // Default "": no scheduled drills.
  std::string backup_identity_file;
  // `serve --demo`: number of simulated fridges (1..50). Default 6.
  int demo_devices = 6;
  // `serve --demo`: days of history simulated at start (0..60). Default 14.
  int demo_history_days = 14;

  // The store URL to open: `store`, or when it is empty sqlite://<absolute data_dir>/opensense.db
  // (relative data_dir is resolved against the current directory), e.g.
  // sqlite:///var/lib/opensense/opensense.db.
  std::string StoreUrl() const;

  bool operator==(const Config&) const = default;
};

enum class SettingType { kString, kInteger };

// One row of the settings table, for the CLI (to add a flag per setting) and for docs.
struct SettingInfo {
  std::string name;           // TOML key and key of ConfigSources::flags: "head_flush_readings"
  SettingType type = SettingType::kString;
  std::string env_var;        // "OPENSENSE_HEAD_FLUSH_READINGS"
  std::string flag;           // "--head-flush-readings"
  std::string value_name;     // placeholder for --help: "N", "DIR", "URL", "HOST:PORT", ...
  std::string default_value;  // the default as the docs show it ("262144", "127.0.0.1:8080")
  std::string allowed;        // the values accepted, in words: "1..86400", "full, normal"
  std::string description;    // one sentence or two, Markdown
};

// Every setting, in the order of the docs.
std::vector<SettingInfo> Settings();

// docs/configuration.md, exactly.
std::string ConfigurationMarkdown();

// Names the config file (a required one). The --config flag wins over it; both are the CLI's job.
inline constexpr std::string_view kConfigEnvVar = "OPENSENSE_CONFIG";
// Read from the current directory when present (not required).
inline constexpr std::string_view kDefaultConfigFile = "opensense.toml";
// Reserved for secrets: allowed in the environment, read by the modules that need them, ignored
// by LoadConfig. Secrets never come from flags or the config file.
inline constexpr std::array<std::string_view, 6> kSecretEnvVars = {
    "OPENSENSE_STORE_PASSWORD", "OPENSENSE_POSTMARK_TOKEN", "OPENSENSE_TELEGRAM_TOKEN",
    "OPENSENSE_MQTT_PASSWORD", "OPENSENSE_MQTT_HOOK_SECRET", "OPENSENSE_OPERATOR_WEBHOOK_SECRET"};

// Read by the CLI's client of a running server (`rule`, `alert`: app/api_client.hpp): the server's
// URL and a user API token. Not settings: allowed in the environment, ignored by LoadConfig.
inline constexpr std::string_view kUrlEnvVar = "OPENSENSE_URL";
inline constexpr std::string_view kTokenEnvVar = "OPENSENSE_TOKEN";

struct ConfigSources {
  // The TOML file to read, if any.
  std::optional<std::string> file_path;
  // true: a missing file is an error (--config, OPENSENSE_CONFIG); false: it is skipped
  // (./opensense.toml looked up by default).
  bool file_required = false;
  // The process environment; only OPENSENSE_* entries are looked at, others are ignored.
  // An OPENSENSE_* name that is neither a setting, kConfigEnvVar, a secret nor one of the API
  // client's is an error.
  std::map<std::string, std::string> env;
  // Command-line values keyed by setting name ("data_dir", not "--data-dir").
  std::map<std::string, std::string> flags;
};

// The OPENSENSE_* entries of a NAME=VALUE array such as `environ` (nullptr: none).
std::map<std::string, std::string> OpensenseEnvironment(const char* const* envp);

// Defaults, overridden by the file, then the environment, then the flags. Every value from
// every layer is checked, even one a higher layer overrides. Errors are kInvalidArgument and
// start with where the bad value came from: "opensense.toml:3: listen: ...",
// "OPENSENSE_LISTEN: ...", "--log-level: ...".
Result<Config> LoadConfig(const ConfigSources& sources);

}  // namespace opensense::app
