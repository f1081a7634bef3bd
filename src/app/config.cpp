#include "app/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <system_error>
#include <utility>
#include <variant>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "app/secrets_file.hpp"

#include <arpa/inet.h>

namespace opensense::app {
namespace {

// ---------------------------------------------------------------------------------------------
// Values, layers and validators.

using Value = std::variant<std::string, std::int64_t>;

// Where a value came from; secrets are refused from every layer but the environment.
enum class Layer { kFile, kEnvironment, kFlag };

// Returns the problem with a value ("'abc' is not HOST:PORT"), or nullopt when it is fine.
using CheckFn = std::function<std::optional<std::string>(const Value&, Layer)>;

struct Validator {
  std::string allowed;  // in words, for the docs
  CheckFn check;
};

Validator IntRange(std::int64_t min, std::int64_t max) {
  const bool unbounded = max == std::numeric_limits<std::int64_t>::max();
  std::string allowed = unbounded ? fmt::format(">= {}", min) : fmt::format("{}..{}", min, max);
  return {allowed, [min, max, allowed](const Value& v, Layer) -> std::optional<std::string> {
            const std::int64_t n = std::get<std::int64_t>(v);
            if (n < min || n > max) return fmt::format("{} is out of range (allowed: {})", n, allowed);
            return std::nullopt;
          }};
}

Validator OneOf(std::vector<std::string> choices) {
  std::string allowed;
  for (const auto& c : choices) allowed += (allowed.empty() ? "" : ", ") + c;
  return {allowed,
          [choices = std::move(choices), allowed](const Value& v, Layer) -> std::optional<std::string> {
            const auto& s = std::get<std::string>(v);
            if (std::find(choices.begin(), choices.end(), s) != choices.end()) return std::nullopt;
            return fmt::format("'{}' is not one of {}", s, allowed);
          }};
}

Validator NonEmpty(std::string allowed) {
  return {std::move(allowed), [](const Value& v, Layer) -> std::optional<std::string> {
            if (std::get<std::string>(v).empty()) return "must not be empty";
            return std::nullopt;
          }};
}

bool AllDigits(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<std::string> CheckHostPort(std::string_view v) {
  const std::string bad = fmt::format("'{}' is not HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080)", v);
  const std::size_t colon = v.rfind(':');
  if (colon == std::string_view::npos) return bad;
  const std::string_view host = v.substr(0, colon);
  const std::string_view port = v.substr(colon + 1);
  if (host.empty() || !AllDigits(port)) return bad;
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad;
    const std::string_view inner = host.substr(1, host.size() - 2);
    const bool ok = std::all_of(inner.begin(), inner.end(), [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    });
    if (!ok) return bad;
  } else {
    const bool ok = std::all_of(host.begin(), host.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    });
    if (!ok) return bad;
  }
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (ec != std::errc() || end != port.data() + port.size() || n > 65535) {
    return fmt::format("'{}': port {} is out of range (allowed: 0..65535)", v, port);
  }
  return std::nullopt;
}

// A password in the userinfo (scheme://user:secret@host) or in the query (?password=secret).
bool UrlHasPassword(std::string_view url) {
  const std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) return false;
  const std::string_view rest = url.substr(sep + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    const std::size_t colon = userinfo.find(':');
    if (colon != std::string_view::npos && colon + 1 < userinfo.size()) return true;
  }
  const std::size_t q = rest.find('?');
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    query = query.substr(0, query.find('#'));
    while (!query.empty()) {
      const std::size_t amp = query.find('&');
      const std::string_view param = query.substr(0, amp);
      if (param.substr(0, param.find('=')) == "password") return true;
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  return false;
}

Validator StoreUrlValidator() {
  return {"empty, sqlite://PATH or postgres://HOST:PORT/DB",
          [](const Value& v, Layer layer) -> std::optional<std::string> {
            const auto& url = std::get<std::string>(v);
            if (url.empty()) return std::nullopt;
            const bool has_password = UrlHasPassword(url);
            if (has_password && layer != Layer::kEnvironment) {
              return "the store URL contains a password; secrets never come from flags or the "
                     "config file: set OPENSENSE_STORE_PASSWORD in the environment or the "
                     "secrets file instead";
            }
            // Never echo a URL that carries a password.
            const std::string shown = has_password ? "the store URL" : fmt::format("'{}'", url);
            const std::size_t sep = url.find("://");
            const std::string_view scheme =
                sep == std::string::npos ? std::string_view() : std::string_view(url).substr(0, sep);
            const bool known = scheme == "sqlite" || scheme == "postgres" || scheme == "postgresql";
            if (!known || url.size() == sep + 3) {
              return fmt::format(
                  "{} is not a store URL (sqlite:///path/opensense.db or postgres://host:port/db)",
                  shown);
            }
            return std::nullopt;
          }};
}

// Comma-separated IPv4/IPv6 addresses (no names, no ranges).
Validator IpListValidator() {
  return {"empty or comma-separated IP addresses",
          [](const Value& v, Layer) -> std::optional<std::string> {
            std::string_view list = std::get<std::string>(v);
            while (!list.empty()) {
              const std::size_t comma = std::min(list.find(','), list.size());
              std::string item(list.substr(0, comma));
              item.erase(0, item.find_first_not_of(' '));
              item.erase(item.find_last_not_of(' ') + 1);
              unsigned char buf[16];
              if (::inet_pton(AF_INET, item.c_str(), buf) != 1 &&
                  ::inet_pton(AF_INET6, item.c_str(), buf) != 1) {
                return fmt::format("'{}' is not an IP address (e.g. 127.0.0.1 or ::1)", item);
              }
              list.remove_prefix(std::min(comma + 1, list.size()));
            }
            return std::nullopt;
          }};
}

Validator HostPortValidator() {
  return {"HOST:PORT, port 0..65535", [](const Value& v, Layer) {
            return CheckHostPort(std::get<std::string>(v));
          }};
}

Validator MqttUrlValidator() {
  return {"empty, mqtt://HOST:PORT or mqtts://HOST:PORT",
          [](const Value& v, Layer) -> std::optional<std::string> {
            const auto& url = std::get<std::string>(v);
            if (url.empty()) return std::nullopt;
            if (UrlHasPassword(url)) {
              return "the MQTT URL contains a password; secrets never come from flags or the "
                     "config file: set OPENSENSE_MQTT_PASSWORD in the environment or the secrets "
                     "file instead";
            }
            std::string_view rest = url;
            if (rest.rfind("mqtt://", 0) == 0) {
              rest.remove_prefix(7);
            } else if (rest.rfind("mqtts://", 0) == 0) {
              rest.remove_prefix(8);
            } else {
              return fmt::format("'{}' is not an MQTT URL (mqtt://HOST:PORT or mqtts://HOST:PORT)",
                                 url);
            }
            if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
            if (auto problem = CheckHostPort(rest)) return fmt::format("'{}': {}", url, *problem);
            return std::nullopt;
          }};
}

// Comma-separated MQTT client ids, each 1-64 characters of A-Z a-z 0-9 _ . -
Validator ClientIdsValidator(bool allow_empty) {
  return {allow_empty ? "empty or a comma-separated list of ids (1-64 of A-Z a-z 0-9 _ . -)"
                      : "a comma-separated list of ids (1-64 of A-Z a-z 0-9 _ . -)",
          [allow_empty](const Value& v, Layer) -> std::optional<std::string> {
            const auto& list = std::get<std::string>(v);
            if (list.empty()) {
              if (allow_empty) return std::nullopt;
              return "must name at least one client id";
            }
            std::size_t pos = 0;
            while (pos <= list.size()) {
              const std::size_t comma = std::min(list.find(',', pos), list.size());
              const std::string_view id = std::string_view(list).substr(pos, comma - pos);
              const bool ok = !id.empty() && id.size() <= 64 &&
                              std::all_of(id.begin(), id.end(), [](char c) {
                                return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                                       c == '.' || c == '-';
                              });
              if (!ok) {
                return fmt::format("'{}' is not a client id (1-64 of A-Z a-z 0-9 _ . -)", id);
              }
              pos = comma + 1;
            }
            return std::nullopt;
          }};
}

// A provider's base URL: https://, or http:// to a loopback address (a local fake or Bot API
// server); a token is sent to it, so never plain http over a network.
Validator ProviderUrl() {
  return {"an https:// URL (http:// only to 127.0.0.1, localhost or [::1])",
          [](const Value& v, Layer) -> std::optional<std::string> {
            const auto& url = std::get<std::string>(v);
            if (url.rfind("https://", 0) == 0 && url.size() > 8) return std::nullopt;
            for (const char* loopback : {"http://127.0.0.1", "http://localhost", "http://[::1]"}) {
              const std::string_view l(loopback);
              if (url.rfind(l, 0) == 0 && (url.size() == l.size() || url[l.size()] == ':' || url[l.size()] == '/')) {
                return std::nullopt;
              }
            }
            return fmt::format("'{}' is not an https:// URL (plain http:// only to a loopback address)", url);
          }};
}

Validator AnyText(std::string allowed) {
  return {std::move(allowed), [](const Value&, Layer) { return std::optional<std::string>(); }};
}

// Empty, or a command holding every one of `tokens`.
Validator Placeholders(std::vector<std::string> tokens) {
  std::string names;
  for (const auto& t : tokens) names += (names.empty() ? "" : " and ") + ("`" + t + "`");
  return {"empty or a command with " + names,
          [tokens, names](const Value& v, Layer) -> std::optional<std::string> {
            const auto& cmd = std::get<std::string>(v);
            if (cmd.empty()) return std::nullopt;
            for (const auto& t : tokens) {
              if (cmd.find(t) == std::string::npos) return fmt::format("the command must contain {}", names);
            }
            return std::nullopt;
          }};
}

// ---------------------------------------------------------------------------------------------
// The settings table: the one place a setting is declared.

struct Setting {
  std::string_view name;
  SettingType type;
  std::string_view value_name;
  std::string_view description;
  // Shown in the docs instead of the default value, when the value alone would not say it.
  std::string_view default_note;
  Validator validator;
  std::function<void(Config&, const Value&)> set;
  std::function<Value(const Config&)> get;
};

template <typename Field>
Setting StringSetting(std::string_view name, std::string_view value_name,
                      std::string_view description, Validator validator, Field Config::*field,
                      std::string_view default_note = {}) {
  return {name,
          SettingType::kString,
          value_name,
          description,
          default_note,
          std::move(validator),
          [field](Config& c, const Value& v) { c.*field = std::get<std::string>(v); },
          [field](const Config& c) { return Value(c.*field); }};
}

template <typename Field>
Setting IntSetting(std::string_view name, std::string_view value_name, std::string_view description,
                   std::int64_t min, std::int64_t max, Field Config::*field) {
  return {name,
          SettingType::kInteger,
          value_name,
          description,
          {},
          IntRange(min, max),
          // Validated before it is set, so the narrowing is safe.
          [field](Config& c, const Value& v) { c.*field = static_cast<Field>(std::get<std::int64_t>(v)); },
          [field](const Config& c) { return Value(static_cast<std::int64_t>(c.*field)); }};
}

const std::vector<Setting>& Table() {
  static const std::vector<Setting> table = {
      StringSetting("data_dir", "DIR",
                    "Directory of the SQLite store and other local state.",
                    NonEmpty("a non-empty path"), &Config::data_dir),
      StringSetting("store", "URL",
                    "Where readings and metadata are stored. A URL with a password is refused from "
                    "flags and the config file: set `OPENSENSE_STORE_PASSWORD` instead.",
                    StoreUrlValidator(), &Config::store, "`sqlite://<data_dir>/opensense.db`"),
      StringSetting("store_synchronous", "MODE",
                    "Durability of each commit: `full` survives a power loss, `normal` only a "
                    "process crash (faster).",
                    OneOf({"full", "normal"}), &Config::store_synchronous),
      StringSetting("listen", "HOST:PORT",
                    "HTTP listen address (API and dashboard). Use brackets for IPv6: `[::1]:8080`.",
                    HostPortValidator(), &Config::listen),
      StringSetting("log_level", "LEVEL", "Least severe log message written.",
                    OneOf({"trace", "debug", "info", "warn", "error"}), &Config::log_level),
      StringSetting("log_format", "FORMAT",
                    "`text` (human-readable) or `json`: one JSON object per line with `ts`, "
                    "`level`, `msg` and, while an HTTP request is handled, its `request_id` (the "
                    "answer's `X-Request-Id` and the request's row in the API request log).",
                    OneOf({"text", "json"}), &Config::log_format),
      IntSetting("head_flush_readings", "N",
                 "Recent readings are kept in memory (the head) and compacted into chunks once "
                 "the head holds this many readings.",
                 1024, std::numeric_limits<std::int64_t>::max(), &Config::head_flush_readings),
      IntSetting("head_flush_age_seconds", "SECONDS",
                 "The head is also compacted once its oldest reading is this many seconds old.",
                 1, 86400,
                 &Config::head_flush_age_seconds),
      IntSetting("retention_interval_seconds", "SECONDS",
                 "How often the scheduler deletes readings and rollups past their retention.", 60,
                 604800, &Config::retention_interval_seconds),
      IntSetting("http_worker_threads", "N",
                 "Threads running HTTP handlers. Each waits for its batch's commit, so more threads "
                 "let more requests share one group commit.",
                 1, 256, &Config::http_worker_threads),
      IntSetting("ingest_rate_per_token", "N",
                 "Ingest requests per second that one device or gateway token may make; beyond it "
                 "the answer is 429 with Retry-After.",
                 1, 1000000, &Config::ingest_rate_per_token),
      IntSetting("ingest_burst_per_token", "N",
                 "Ingest requests one token may make at once before the rate applies.", 1, 1000000,
                 &Config::ingest_burst_per_token),
      StringSetting("trusted_proxies", "ADDRS",
                    "IP addresses of reverse proxies (e.g. Caddy on `127.0.0.1`) whose "
                    "`X-Forwarded-For` names the client in the API request log, comma-separated. "
                    "Empty: the header is never believed; the TCP peer is the client.",
                    IpListValidator(), &Config::trusted_proxies),
      StringSetting("mqtt_url", "URL",
                    "MQTT broker to take readings from (`mqtt://HOST:PORT`, or `mqtts://HOST:PORT` "
                    "for TLS). Empty: MQTT ingest is off. The password comes only from "
                    "`OPENSENSE_MQTT_PASSWORD`.",
                    MqttUrlValidator(), &Config::mqtt_url),
      StringSetting("mqtt_username", "NAME",
                    "The subscriber's username at the broker (OpenSense's service credential).",
                    NonEmpty("a non-empty name"), &Config::mqtt_username),
      StringSetting("mqtt_client_id", "IDS",
                    "Fixed client id(s) of this process's subscriber sessions, comma-separated; "
                    "each is a persistent session the broker queues for while OpenSense is away. "
                    "Every process sharing a subscription needs ids of its own.",
                    ClientIdsValidator(false), &Config::mqtt_client_id),
      StringSetting("mqtt_retired_client_ids", "IDS",
                    "Client ids being retired from a shared subscription: at start each is "
                    "drained (unsubscribed, its queued readings stored and acknowledged) and its "
                    "session ended. See src/ingest/mqtt/README.md.",
                    ClientIdsValidator(true), &Config::mqtt_retired_client_ids),
      StringSetting("mqtt_shared_group", "GROUP",
                    "Non-empty: subscribe to `$share/<group>/devices/+/readings`, so several "
                    "ingest processes split the readings.",
                    {"empty or a group name without / + #",
                     [](const Value& v, Layer) -> std::optional<std::string> {
                       const auto& g = std::get<std::string>(v);
                       if (g.find_first_of("/+#") != std::string::npos) {
                         return fmt::format("'{}' must not contain / + or #", g);
                       }
                       return std::nullopt;
                     }},
                    &Config::mqtt_shared_group),
      StringSetting("mqtt_ca_file", "FILE",
                    "PEM file of the CA that signed the broker's certificate (`mqtts://`); empty: "
                    "the system's CAs.",
                    {"a path or empty", [](const Value&, Layer) { return std::optional<std::string>(); }},
                    &Config::mqtt_ca_file),
      IntSetting("mqtt_keepalive_seconds", "SECONDS",
                 "MQTT keep-alive: a ping when the connection has been quiet this long.", 5, 3600,
                 &Config::mqtt_keepalive_seconds),
      IntSetting("mqtt_session_expiry_seconds", "SECONDS",
                 "How long the broker keeps the session and queues readings while OpenSense is "
                 "away.",
                 60, 4294967295LL, &Config::mqtt_session_expiry_seconds),
      IntSetting("mqtt_receive_maximum", "N",
                 "Readings the broker may send before OpenSense acknowledges (after the commit).",
                 1, 65535, &Config::mqtt_receive_maximum),
      StringSetting("postmark_base_url", "URL",
                    "Postmark API base URL (e-mail). The server token comes only from "
                    "`OPENSENSE_POSTMARK_TOKEN`; without it the dev mailer writes e-mail to the log.",
                    ProviderUrl(), &Config::postmark_base_url),
      StringSetting("mail_from", "ADDRESS",
                    "The From of every e-mail, e.g. `OpenSense <alerts@example.com>` (a Postmark "
                    "sender signature).",
                    NonEmpty("a non-empty address"), &Config::mail_from),
      StringSetting("postmark_message_stream", "STREAM", "Postmark message stream of every e-mail.",
                    NonEmpty("a non-empty stream id"), &Config::postmark_message_stream),
      StringSetting("telegram_base_url", "URL",
                    "Telegram Bot API base URL (a local Bot API server works too). The bot token "
                    "comes only from `OPENSENSE_TELEGRAM_TOKEN`.",
                    ProviderUrl(), &Config::telegram_base_url),
      IntSetting("notify_timeout_seconds", "SECONDS",
                 "How long one delivery request (Postmark, Telegram, webhook) may take; a hanging "
                 "provider holds the dispatcher at most this long per message.",
                 1, 120, &Config::notify_timeout_seconds),
      IntSetting("notify_max_attempts", "N",
                 "Delivery attempts (with exponential back-off, 30 s doubling up to 1 h) before a "
                 "notification is given up and the operator told.",
                 1, 100, &Config::notify_max_attempts),
      StringSetting("operator_email", "ADDRESS",
                    "Where operator notifications (backups, disk, delivery failures) are e-mailed. "
                    "Never an organisation's channels. Empty: not by e-mail.",
                    {"empty or an e-mail address",
                     [](const Value& v, Layer) -> std::optional<std::string> {
                       const auto& a = std::get<std::string>(v);
                       const std::size_t at = a.find('@');
                       if (a.empty()) return std::nullopt;
                       if (at == 0 || at == std::string::npos || a.find_first_of(" ,<>\t\r\n") != std::string::npos ||
                           a.find('.', at) == std::string::npos) {
                         return fmt::format("'{}' is not an e-mail address (name@example.com)", a);
                       }
                       return std::nullopt;
                     }},
                    &Config::operator_email),
      StringSetting("operator_telegram_chat", "CHAT",
                    "Telegram chat id for operator notifications (e.g. `-1001234567890`). Empty: "
                    "not by Telegram.",
                    {"empty, an integer chat id or @channelname",
                     [](const Value& v, Layer) -> std::optional<std::string> {
                       const auto& c = std::get<std::string>(v);
                       if (c.empty()) return std::nullopt;
                       std::string_view digits = c;
                       if (digits.front() == '@') return digits.size() > 5 ? std::nullopt : std::optional<std::string>("'" + c + "' is too short for a @channelname");
                       if (digits.front() == '-') digits.remove_prefix(1);
                       if (!AllDigits(digits)) return fmt::format("'{}' is not a chat id (an integer or @channelname)", c);
                       return std::nullopt;
                     }},
                    &Config::operator_telegram_chat),
      StringSetting("operator_webhook_url", "URL",
                    "Webhook for operator notifications, signed like a channel's with "
                    "`OPENSENSE_OPERATOR_WEBHOOK_SECRET` (see docs/security.md). Empty: none.",
                    {"empty or an https:// URL",
                     [](const Value& v, Layer) -> std::optional<std::string> {
                       const auto& u = std::get<std::string>(v);
                       if (u.empty() || u.rfind("https://", 0) == 0) return std::nullopt;
                       return fmt::format("'{}' is not an https:// URL", u);
                     }},
                    &Config::operator_webhook_url),
      StringSetting("backup_dir", "DIR",
                    "Where encrypted backups and their manifests go (another disk or mount: a "
                    "directory inside the data directory is refused at start-up). Empty: no "
                    "scheduled backups.",
                    AnyText("a path or empty"), &Config::backup_dir),
      StringSetting("backup_recipients", "KEYS",
                    "age recipients (public keys `age1...`) backups are encrypted to, "
                    "comma-separated. The private key never needs to be on this host.",
                    {"empty or comma-separated age1... public keys",
                     [](const Value& v, Layer) -> std::optional<std::string> {
                       std::string_view list = std::get<std::string>(v);
                       while (!list.empty()) {
                         const std::size_t comma = std::min(list.find(','), list.size());
                         std::string_view item = list.substr(0, comma);
                         while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
                         while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
                         if (item.rfind("AGE-SECRET-KEY-", 0) == 0) {
                           return std::string("a private key (AGE-SECRET-KEY-...) is not a recipient: "
                                              "configure its public key (age1...) only");
                         }
                         if (item.rfind("age1", 0) != 0 || item.size() < 10) {
                           return fmt::format("'{}' is not an age public key (age1...)", item);
                         }
                         list.remove_prefix(std::min(comma + 1, list.size()));
                       }
                       return std::nullopt;
                     }},
                    &Config::backup_recipients),
      StringSetting("backup_recipients_file", "FILE",
                    "A file of age recipients, one per line (`age -R`; `#` comments, ssh-ed25519 "
                    "keys allowed), used with or instead of `backup_recipients`.",
                    AnyText("a path or empty"), &Config::backup_recipients_file),
      StringSetting("backup_schedule", "SCHEDULE",
                    "`hourly`: with `backup_dir` set, the scheduler role backs up every hour "
                    "(hourly ones kept `backup_hourly_keep_days`, the first of each day "
                    "`backup_daily_keep_days`, the first of each week copied off-site); `off`: "
                    "only `opensense backup run`.",
                    OneOf({"hourly", "off"}), &Config::backup_schedule),
      StringSetting("backup_method", "METHOD",
                    "PostgreSQL stores: `logical` is `pg_dump` of the store's database (restore "
                    "re-inserts every row and rebuilds the indexes: fine for small stores, and the "
                    "way to move one database to another server); `physical` is `pg_basebackup` of "
                    "the whole cluster (restore unpacks files into an empty data directory: what "
                    "keeps a large store's restore within the 30-minute budget; needs the "
                    "REPLICATION attribute and a pg_hba.conf `replication` line, see "
                    "docs/operations.md). SQLite stores are always copied as a compacted file.",
                    OneOf({"logical", "physical"}), &Config::backup_method),
      IntSetting("backup_hourly_keep_days", "DAYS", "Days an hourly backup is kept.", 1, 365,
                 &Config::backup_hourly_keep_days),
      IntSetting("backup_daily_keep_days", "DAYS",
                 "Days the first backup of each day is kept (the newest verified backup is never "
                 "pruned).",
                 1, 3650, &Config::backup_daily_keep_days),
      StringSetting("backup_offsite_dir", "DIR",
                    "Off-site target as a directory (a mounted storage box): the first backup of "
                    "each week is copied there. For EU customers the target must be in the EU.",
                    AnyText("a path or empty"), &Config::backup_offsite_dir),
      StringSetting("backup_offsite_command", "CMD",
                    "Off-site target as a shell command instead, with `{file}` and `{name}` "
                    "replaced (quoted), e.g. `rclone copyto {file} box:opensense/{name}`.",
                    Placeholders({"{file}", "{name}"}), &Config::backup_offsite_command),
      StringSetting("backup_offsite_fetch_command", "CMD",
                    "Fetches a copy back for the off-site restore drill, e.g. `rclone copyto "
                    "box:opensense/{name} {file}`.",
                    Placeholders({"{file}", "{name}"}), &Config::backup_offsite_fetch_command),
      StringSetting("backup_offsite_delete_command", "CMD",
                    "Deletes an expired off-site copy, e.g. `rclone deletefile box:opensense/{name}`. "
                    "Empty with a command target: the target's own retention applies.",
                    Placeholders({"{name}"}), &Config::backup_offsite_delete_command),
      IntSetting("backup_offsite_keep_weeks", "WEEKS", "Weeks an off-site copy is kept.", 1, 520,
                 &Config::backup_offsite_keep_weeks),
      StringSetting("backup_identity_file", "FILE",
                    "The age identity (private key) for restore drills: set it only on a machine "
                    "meant to hold the key. With it the scheduler drills the newest backup daily "
                    "and the newest off-site copy, fetched back, weekly.",
                    AnyText("a path or empty"), &Config::backup_identity_file),
      IntSetting("demo_devices", "N", "With `serve --demo`: number of simulated fridges.", 1, 50,
                 &Config::demo_devices),
      IntSetting("demo_history_days", "DAYS",
                 "With `serve --demo`: days of history simulated at start.", 0, 60,
                 &Config::demo_history_days),
      StringSetting("public_url", "URL",
                    "Where people reach this server (https://opensense.example.com): the host of "
                    "sign-in links (never the request's Host header), the origin cookie-authenticated "
                    "writes must come from (https makes session cookies Secure), and alert messages "
                    "link to PUBLIC_URL/alerts/ID. Empty: http://LISTEN, and messages carry the API "
                    "path only.",
                    {"empty or an http(s):// URL without a trailing slash",
                     [](const Value& v, Layer) -> std::optional<std::string> {
                       const auto& s = std::get<std::string>(v);
                       if (s.empty()) return std::nullopt;
                       if ((s.rfind("https://", 0) != 0 && s.rfind("http://", 0) != 0) || s.back() == '/' ||
                           s.find_first_of(" \t\r\n") != std::string::npos) {
                         return fmt::format("'{}' is not an http(s):// URL without a trailing slash", s);
                       }
                       return std::nullopt;
                     }},
                    &Config::public_url),
      StringSetting("self_signup", "MODE",
                    "`on`: anyone may create a free organisation by e-mail (a magic link). `off`: "
                    "the operator creates organisations with `opensense org create`.",
                    OneOf({"off", "on"}), &Config::self_signup),
      IntSetting("login_links_per_address", "N",
                 "Sign-in, invitation and sign-up links one e-mail address may be sent per 15 "
                 "minutes; beyond it the answer is 429 with Retry-After.",
                 1, 1000, &Config::login_links_per_address),
      IntSetting("login_links_per_client", "N",
                 "Links that one client address may ask for per 15 minutes (any e-mail "
                 "addresses); beyond it 429 with Retry-After.",
                 1, 100000, &Config::login_links_per_client),
      IntSetting("session_idle_minutes", "MINUTES",
                 "A session ends after this many minutes without a request (checked on the "
                 "server).",
                 5, 10080, &Config::session_idle_minutes),
      IntSetting("session_absolute_hours", "HOURS",
                 "A session ends this many hours after sign-in, however active.", 1, 2160,
                 &Config::session_absolute_hours),
      IntSetting("api_rate_per_org", "N",
                 "User API requests per second (API tokens and sessions) per organisation; "
                 "beyond it 429 with Retry-After. 0: the organisation's tier decides "
                 "(docs/api.md, tiers).",
                 0, 1000000, &Config::api_rate_per_org),
      IntSetting("api_burst_per_org", "N",
                 "User API requests an organisation may make at once before the rate applies. "
                 "0: the tier decides.",
                 0, 1000000, &Config::api_burst_per_org),
      IntSetting("reports_running", "N",
                 "Compliance reports and CSV exports rendered at once by this process.", 1, 64,
                 &Config::reports_running),
      IntSetting("chart_cache_mb", "MIB",
                 "Memory for chart answers (GET /api/v1/devices/{id}/series with an explicit 'to') "
                 "kept until the device's data changes; embedded store only. 0: none kept.",
                 0, 65536, &Config::chart_cache_mb),
      IntSetting("reports_waiting", "N",
                 "Report requests that may wait for a slot (up to 20 s, then 503); beyond it "
                 "429 with Retry-After.",
                 0, 1000, &Config::reports_waiting),
  };
  return table;
}

std::string EnvVarName(std::string_view name) {
  std::string out = "OPENSENSE_";
  for (char c : name) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string FlagName(std::string_view name) {
  std::string out = "--";
  for (char c : name) out += c == '_' ? '-' : c;
  return out;
}

std::string Render(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return std::to_string(std::get<std::int64_t>(v));
}

const Setting* FindSetting(std::string_view name) {
  for (const auto& s : Table()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Loading.

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "(did you mean 'store'? known keys: data_dir, store, ...)"
std::string KnownNamesHint(std::string_view unknown, const std::function<std::string(std::string_view)>& spell,
                           std::string_view what) {
  std::string known;
  std::string best;
  std::size_t best_distance = 3;  // suggest only close misspellings
  for (const auto& s : Table()) {
    const std::string spelled = spell(s.name);
    known += (known.empty() ? "" : ", ") + spelled;
    const std::size_t d = EditDistance(unknown, spelled);
    if (d < best_distance) {
      best_distance = d;
      best = spelled;
    }
  }
  if (best.empty()) return fmt::format("(known {}: {})", what, known);
  return fmt::format("(did you mean '{}'? known {}: {})", best, what, known);
}

// Text from the environment or a flag: a string as is, an integer parsed strictly.
Result<Value> ParseText(const Setting& setting, const std::string& text, std::string_view origin) {
  if (setting.type == SettingType::kString) return Value(text);
  std::int64_t n = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  if (first != last && *first == '+') ++first;  // from_chars refuses a leading '+'
  const auto [end, ec] = std::from_chars(first, last, n);
  if (text.empty() || first == last || end != last || ec == std::errc::invalid_argument) {
    return Invalid(fmt::format("{}: '{}' is not an integer", origin, text));
  }
  if (ec == std::errc::result_out_of_range) {
    return Invalid(fmt::format("{}: {} is out of range (allowed: {})", origin, text,
                               setting.validator.allowed));
  }
  return Value(n);
}

Status Apply(const Setting& setting, const Value& value, Layer layer, std::string_view origin,
             Config& config) {
  if (auto problem = setting.validator.check(value, layer)) {
    return Invalid(fmt::format("{}: {}", origin, *problem));
  }
  setting.set(config, value);
  return Ok();
}

std::string_view NodeTypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::none: break;
  }
  return "nothing";
}

Status ApplyFile(const std::string& path, bool required, Config& config) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (!exists && !ec && !required) return Ok();
  if (!exists) {
    return Invalid(fmt::format("{}: config file not found{}", path,
                               ec ? fmt::format(" ({})", ec.message()) : std::string()));
  }
  if (std::filesystem::is_directory(path, ec)) {
    return Invalid(fmt::format("{}: the config file is a directory", path));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in || in.bad()) return Invalid(fmt::format("{}: cannot read the config file", path));

  toml::table root;
  try {
    root = toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return Invalid(fmt::format("{}:{}:{}: TOML syntax error: {}", path, where.line, where.column,
                               e.description()));
  }

  // Report in file order, so the first error the user sees is the first one in the file.
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (const auto& [key, node] : root) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first->source().begin < b.first->source().begin;
  });

  for (const auto& [key, node] : entries) {
    const auto line = key->source().begin.line;
    const Setting* setting = FindSetting(key->str());
    if (setting == nullptr) {
      return Invalid(fmt::format("{}:{}: unknown key '{}' {}", path, line, key->str(),
                                 KnownNamesHint(key->str(), [](std::string_view n) { return std::string(n); },
                                                "keys")));
    }
    const std::string origin = fmt::format("{}:{}: {}", path, line, setting->name);
    Value value;
    if (setting->type == SettingType::kString && node->is_string()) {
      value = node->as_string()->get();
    } else if (setting->type == SettingType::kInteger && node->is_integer()) {
      value = node->as_integer()->get();
    } else {
      return Invalid(fmt::format("{}: expected {}, got {}", origin,
                                 setting->type == SettingType::kString ? "a string" : "an integer",
                                 NodeTypeName(node->type())));
    }
    OS_RETURN_IF_ERROR(Apply(*setting, value, Layer::kFile, origin, config));
  }
  return Ok();
}

bool IsSecretEnvVar(std::string_view name) {
  return std::find(kSecretEnvVars.begin(), kSecretEnvVars.end(), name) != kSecretEnvVars.end();
}

Status ApplyEnvironment(const std::map<std::string, std::string>& env, Config& config) {
  constexpr std::string_view kPrefix = "OPENSENSE_";
  for (const auto& [name, text] : env) {
    if (name.rfind(kPrefix, 0) != 0) continue;
    if (name == kConfigEnvVar || name == kSecretsFileEnvVar || IsSecretEnvVar(name)) continue;
    if (name == kUrlEnvVar || name == kTokenEnvVar) continue;
    // Test hooks (OPENSENSE_TEST_HOLD_COMMIT): read by the module that has them, never settings.
    if (name.rfind("OPENSENSE_TEST_", 0) == 0) continue;
    const Setting* setting = nullptr;
    for (const auto& s : Table()) {
      if (EnvVarName(s.name) == name) setting = &s;
    }
    if (setting == nullptr) {
      std::string also = fmt::format("{}, {}, {}, {}", kConfigEnvVar, kSecretsFileEnvVar, kUrlEnvVar, kTokenEnvVar);
      for (auto secret : kSecretEnvVars) also += fmt::format(", {}", secret);
      return Invalid(fmt::format(
          "{}: unknown environment variable {}; also allowed: {}", name,
          KnownNamesHint(name, [](std::string_view n) { return EnvVarName(n); }, "variables"),
          also));
    }
    OS_ASSIGN_OR_RETURN(Value value, ParseText(*setting, text, name));
    OS_RETURN_IF_ERROR(Apply(*setting, value, Layer::kEnvironment, name, config));
  }
  return Ok();
}

Status ApplyFlags(const std::map<std::string, std::string>& flags, Config& config) {
  for (const auto& [name, text] : flags) {
    const Setting* setting = FindSetting(name);
    if (setting == nullptr) {
      return Invalid(fmt::format(
          "{}: unknown flag {}", FlagName(name),
          KnownNamesHint(FlagName(name), [](std::string_view n) { return FlagName(n); }, "flags")));
    }
    const std::string origin = FlagName(name);
    OS_ASSIGN_OR_RETURN(Value value, ParseText(*setting, text, origin));
    OS_RETURN_IF_ERROR(Apply(*setting, value, Layer::kFlag, origin, config));
  }
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// Docs.

std::string MarkdownCell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string TomlLiteral(const Value& v) {
  if (const auto* n = std::get_if<std::int64_t>(&v)) return std::to_string(*n);
  std::string out = "\"";
  for (char c : std::get<std::string>(v)) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string Config::StoreUrl() const {
  if (!store.empty()) return store;
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = fs::absolute(fs::path(data_dir), ec);
  if (ec) dir = fs::path(data_dir);
  dir = dir.lexically_normal();
  // "sqlite://" + "/abs/path/opensense.db" = sqlite:///abs/path/opensense.db
  return "sqlite://" + (dir / "opensense.db").generic_string();
}

std::vector<SettingInfo> Settings() {
  const Config defaults;
  std::vector<SettingInfo> out;
  for (const auto& s : Table()) {
    out.push_back(SettingInfo{std::string(s.name), s.type, EnvVarName(s.name), FlagName(s.name),
                              std::string(s.value_name), Render(s.get(defaults)),
                              s.validator.allowed, std::string(s.description)});
  }
  return out;
}

std::map<std::string, std::string> OpensenseEnvironment(const char* const* envp) {
  std::map<std::string, std::string> out;
  if (envp == nullptr) return out;
  for (; *envp != nullptr; ++envp) {
    const std::string_view entry = *envp;
    if (entry.rfind("OPENSENSE_", 0) != 0) continue;
    const std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    out.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return out;
}

Result<Config> LoadConfig(const ConfigSources& sources) {
  Config config;
  if (sources.file_path) {
    OS_RETURN_IF_ERROR(ApplyFile(*sources.file_path, sources.file_required, config));
  }
  OS_RETURN_IF_ERROR(ApplyEnvironment(sources.env, config));
  OS_RETURN_IF_ERROR(ApplyFlags(sources.flags, config));
  return config;
}

std::string ConfigurationMarkdown() {
  const Config defaults;
  std::string md;
  auto add = [&md](std::string_view line) {
    md += line;
    md += '\n';
  };
  add("# Configuration");
  add("");
  add("<!-- Generated from the settings table in src/app/config.cpp (ConfigurationMarkdown()).");
  add("     Edit the table, not this file; config_test fails until the two agree. -->");
  add("");
  add("`opensense` needs no configuration: with nothing set, `opensense serve` keeps a SQLite");
  add("store in `./data` and serves HTTP on `127.0.0.1:8080`. Every setting below can be");
  add("changed in a config file, in the environment or with a command-line flag.");
  add("");
  add("## Where settings come from");
  add("");
  add("A setting takes the value of the first of these that sets it:");
  add("");
  add("1. a command-line flag, e.g. `--listen 0.0.0.0:8080`;");
  add("2. an environment variable, e.g. `OPENSENSE_LISTEN=0.0.0.0:8080`;");
  add("3. the config file, e.g. `listen = \"0.0.0.0:8080\"`;");
  add("4. the default.");
  add("");
  add("The config file is TOML, one `key = value` line per setting, no tables.");
  add(fmt::format("`./{}` is read when it exists. `--config FILE` names another file, which", kDefaultConfigFile));
  add(fmt::format("must then exist; without `--config`, `{}=FILE` does the same.", kConfigEnvVar));
  add("");
  add("Configuration is checked at start-up, every layer in full, even values that a higher layer");
  add("overrides. An unknown key in the file, an unknown `OPENSENSE_*` variable, a value of the");
  add("wrong type or out of range stops `opensense` with a message that names the setting and");
  add("where it came from, e.g. `opensense.toml:3: listen: 'abc' is not HOST:PORT` or");
  add("`--log-level: 'loud' is not one of trace, debug, info, warn, error`.");
  add("");
  add("## Settings");
  add("");
  add("| key | environment | flag | default | allowed | description |");
  add("|---|---|---|---|---|---|");
  for (const auto& s : Table()) {
    const std::string def = s.default_note.empty()
                                ? fmt::format("`{}`", Render(s.get(defaults)))
                                : std::string(s.default_note);
    add(fmt::format("| `{}` | `{}` | `{} {}` | {} | {} | {} |", s.name, EnvVarName(s.name),
                    FlagName(s.name), s.value_name, MarkdownCell(def), MarkdownCell(s.validator.allowed),
                    MarkdownCell(s.description)));
  }
  add("");
  add("## Secrets");
  add("");
  add("Secrets never come from flags or the config file; a store URL with a password in it");
  add("(`postgres://user:secret@host/db`) is refused there. They come from the environment or");
  add("from the secrets file (an environment file readable by its owner only). These names are");
  add("reserved for them:");
  add("");
  for (auto name : kSecretEnvVars) add(fmt::format("- `{}`", name));
  add("");
  add(fmt::format("The secrets file is `--secrets-file PATH`, else `{}`, else", kSecretsFileEnvVar));
  add(fmt::format("`$CREDENTIALS_DIRECTORY/{}` (systemd `LoadCredential=`), else `{}` when it", kCredentialName,
                  kDefaultSecretsFile));
  add("exists. It holds `NAME=VALUE` lines of the names above only (`#` comments, `'single'` or");
  add("`\"double\"` quotes). OpenSense refuses to start when the file is owned by anyone but root");
  add("or the user it runs as, or when group or others have any permission on it; the message");
  add("gives the command to run (`chown root:root PATH && chmod 0400 PATH`). A secret set in the");
  add("environment as well wins over the file (the log names it, never its value).");
  add("");
  add("## The command line's client");
  add("");
  add("`opensense rule ...` and `opensense alert ...` talk to a running server's HTTP API (its");
  add("alert service holds the rules). They read two more variables, which are not settings:");
  add("");
  add(fmt::format("- `{}`: the server, e.g. `https://opensense.example.com` (`--url` wins; default:", kUrlEnvVar));
  add("  `http://` and the `listen` setting, a wildcard address replaced by the loopback one);");
  add(fmt::format("- `{}`: a user API token (`osk_...`) of the organisation (`--token-file PATH` wins).", kTokenEnvVar));
  add("  There is no flag for the token itself: it would stay in the shell history and show in `ps`.");
  add("");
  add("## Example");
  add("");
  add(fmt::format("An `{}` that sets every setting to its default:", kDefaultConfigFile));
  add("");
  add("```toml");
  for (const auto& s : Table()) {
    add(fmt::format("{} = {}", s.name, TomlLiteral(s.get(defaults))));
  }
  add("```");
  return md;
}

}  // namespace opensense::app
