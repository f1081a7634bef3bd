// The OpenSense authentication plugin for Mosquitto 2.0 (plugin API version 5).
//
// mosquitto.conf:
//   plugin /usr/lib/opensense/opensense_mosquitto_auth.so
//   plugin_opt_url http://127.0.0.1:8080
//   plugin_opt_secret_file /etc/mosquitto/opensense-hook-secret
//   (optional) plugin_opt_timeout_ms 1500, plugin_opt_cache_seconds 30,
//   plugin_opt_deny_cache_seconds 5, plugin_opt_revocation_poll_ms 2000 (0: off),
//   plugin_opt_service_username opensense
//
// Every callback runs on the broker's single thread. The only other thread is the revocation
// poller, which never calls the broker: it queues token ids, and the tick callback (broker
// thread) disconnects their clients.
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mqtt_plugin/acl.hpp"
#include "mqtt_plugin/gatekeeper.hpp"
#include "mqtt_plugin/hook_client.hpp"

#define OPENSENSE_EXPORT extern "C" __attribute__((visibility("default")))

namespace opensense::mqtt {
namespace {

constexpr std::int64_t kRevokedOverlapMs = 10'000;

std::int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Plugin {
  mosquitto_plugin_id_t* id = nullptr;
  std::unique_ptr<HookClient> hooks;
  std::unique_ptr<Gatekeeper> gate;
  std::int64_t poll_ms = 2000;
  std::int64_t last_failure_log_ms = 0;

  // Shared with the poller thread.
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::vector<std::string> revoked;  // token ids waiting for the tick
  std::vector<SiteChange> sites;     // sites with new devices, waiting for the tick
  std::vector<std::string> notes;    // log lines waiting for the tick
  std::atomic<bool> pending{false};
  std::thread poller;
};

void Note(Plugin& p, std::string line) {
  std::lock_guard lock(p.mu);
  if (p.notes.size() < 100) p.notes.push_back(std::move(line));
  p.pending = true;
}

void Poll(Plugin* p) {
  std::optional<std::int64_t> cursor;
  std::string last_error;
  std::unique_lock lock(p->mu);
  while (!p->stop) {
    p->cv.wait_for(lock, std::chrono::milliseconds(p->poll_ms), [p] { return p->stop; });
    if (p->stop) break;
    lock.unlock();
    std::string path = "/internal/mqtt/revoked";
    if (cursor) path += "?since=" + std::to_string(*cursor);
    auto reply = p->hooks->Get(path);
    std::string error;
    if (!reply) {
      error = reply.error().message;
    } else if (reply->status != 200) {
      error = "GET /internal/mqtt/revoked answered " + std::to_string(reply->status);
    } else if (auto answer = ParseRevokedAnswer(reply->body); !answer) {
      error = answer.error().message;
    } else {
      cursor = answer->now_ms - kRevokedOverlapMs;
      if (!answer->token_ids.empty() || !answer->sites.empty()) {
        std::lock_guard inner(p->mu);
        p->revoked.insert(p->revoked.end(), answer->token_ids.begin(), answer->token_ids.end());
        p->sites.insert(p->sites.end(), answer->sites.begin(), answer->sites.end());
        p->pending = true;
      }
    }
    if (error != last_error) {
      Note(*p, error.empty() ? "opensense plugin: revocation feed works again"
                             : "opensense plugin: cannot read the revocation feed (connected clients "
                               "whose token is revoked stay connected until it works): " + error);
      last_error = error;
    }
    lock.lock();
  }
}

Result<AuthAnswer> Ask(Plugin* p, std::string_view username, std::string_view password,
                       std::string_view client_id) {
  nlohmann::json body = {{"username", username}, {"password", password}, {"clientid", client_id}};
  auto reply = p->hooks->Post("/internal/mqtt/auth",
                              body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (!reply) return tl::unexpected(reply.error());
  if (reply->status == 204) return AuthAnswer{true, {}, std::nullopt};
  if (reply->status != 200) {
    return MakeError(ErrorCode::kUnavailable,
                     "POST /internal/mqtt/auth answered " + std::to_string(reply->status) +
                         (reply->status == 401 ? " (the hook secret does not match OPENSENSE_MQTT_HOOK_SECRET)"
                          : reply->status == 503 ? " (OPENSENSE_MQTT_HOOK_SECRET is not set for opensense)"
                                                 : ""));
  }
  return ParseAuthAnswer(reply->body);
}

int OnBasicAuth(int, void* event_data, void* userdata) {
  auto* p = static_cast<Plugin*>(userdata);
  auto* ed = static_cast<mosquitto_evt_basic_auth*>(event_data);
  try {
    if (ed->username == nullptr || ed->password == nullptr) return MOSQ_ERR_AUTH;
    const char* id = mosquitto_client_id(ed->client);
    const bool ok = p->gate->Authenticate(ed->client, id ? id : "", ed->username, ed->password, WallMs());
    const auto failures = p->gate->stats().ask_failures;
    static std::uint64_t logged_failures = 0;
    if (failures != logged_failures) {
      logged_failures = failures;
      const std::int64_t now = WallMs();
      if (now - p->last_failure_log_ms > 10'000) {
        p->last_failure_log_ms = now;
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "opensense plugin: could not check a login with OpenSense (refused); "
                             "check plugin_opt_url, that opensense serve runs, and the hook secret");
      }
    }
    return ok ? MOSQ_ERR_SUCCESS : MOSQ_ERR_AUTH;
  } catch (...) {
    return MOSQ_ERR_AUTH;
  }
}

int OnAclCheck(int, void* event_data, void* userdata) {
  auto* p = static_cast<Plugin*>(userdata);
  auto* ed = static_cast<mosquitto_evt_acl_check*>(event_data);
  try {
    AclRequest request;
    switch (ed->access) {
      case MOSQ_ACL_WRITE: request = AclRequest::kPublish; break;
      case MOSQ_ACL_READ: request = AclRequest::kRead; break;
      case MOSQ_ACL_SUBSCRIBE: request = AclRequest::kSubscribe; break;
      case MOSQ_ACL_UNSUBSCRIBE: return MOSQ_ERR_SUCCESS;
      default: return MOSQ_ERR_ACL_DENIED;
    }
    const char* id = mosquitto_client_id(ed->client);
    const char* user = mosquitto_client_username(ed->client);
    if (ed->topic == nullptr) return MOSQ_ERR_ACL_DENIED;
    return p->gate->Check(id ? id : "", user ? user : "", request, ed->topic) ? MOSQ_ERR_SUCCESS
                                                                          : MOSQ_ERR_ACL_DENIED;
  } catch (...) {
    return MOSQ_ERR_ACL_DENIED;
  }
}

int OnDisconnect(int, void* event_data, void* userdata) {
  auto* p = static_cast<Plugin*>(userdata);
  auto* ed = static_cast<mosquitto_evt_disconnect*>(event_data);
  try {
    const char* id = mosquitto_client_id(ed->client);
    if (id != nullptr) p->gate->Disconnected(ed->client, id, !mosquitto_client_clean_session(ed->client));
  } catch (...) {
  }
  return MOSQ_ERR_SUCCESS;
}

int OnTick(int, void*, void* userdata) {
  auto* p = static_cast<Plugin*>(userdata);
  if (!p->pending.load(std::memory_order_relaxed)) return MOSQ_ERR_SUCCESS;
  std::vector<std::string> revoked, notes;
  std::vector<SiteChange> sites;
  {
    std::lock_guard lock(p->mu);
    revoked.swap(p->revoked);
    sites.swap(p->sites);
    notes.swap(p->notes);
    p->pending = false;
  }
  for (const auto& n : notes) mosquitto_log_printf(MOSQ_LOG_WARNING, "%s", n.c_str());
  try {
    for (const auto& client_id : p->gate->Revoke(revoked, WallMs())) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE,
                           "opensense plugin: disconnecting client %s: its token was revoked or rotated",
                           client_id.c_str());
      mosquitto_kick_client_by_clientid(client_id.c_str(), false);
    }
    for (const auto& client_id : p->gate->SitesChanged(sites)) {
      mosquitto_log_printf(MOSQ_LOG_NOTICE,
                           "opensense plugin: disconnecting gateway %s: its site has new devices, it "
                           "gets them when it reconnects",
                           client_id.c_str());
      mosquitto_kick_client_by_clientid(client_id.c_str(), false);
    }
  } catch (...) {
  }
  return MOSQ_ERR_SUCCESS;
}

std::optional<std::int64_t> Number(const std::string& text, std::int64_t min, std::int64_t max) {
  try {
    std::size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used != text.size() || v < min || v > max) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace
}  // namespace opensense::mqtt

using opensense::mqtt::Plugin;

OPENSENSE_EXPORT int mosquitto_plugin_version(int supported_version_count, const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

OPENSENSE_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier, void** userdata,
                                           struct mosquitto_opt* options, int option_count) {
  using namespace opensense::mqtt;
  auto fail = [](const std::string& why) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "opensense plugin: %s", why.c_str());
    return MOSQ_ERR_INVAL;
  };
  try {
    std::string url, secret_file;
    std::int64_t timeout_ms = 1500, poll_ms = 2000;
    GatekeeperOptions go;
    for (int i = 0; i < option_count; ++i) {
      const std::string key = options[i].key ? options[i].key : "";
      const std::string value = options[i].value ? options[i].value : "";
      auto number = [&](std::int64_t min, std::int64_t max) -> std::optional<std::int64_t> {
        auto v = Number(value, min, max);
        if (!v) fail("plugin_opt_" + key + ": '" + value + "' is not a number in " + std::to_string(min) + ".." + std::to_string(max));
        return v;
      };
      if (key == "url") {
        url = value;
      } else if (key == "secret_file") {
        secret_file = value;
      } else if (key == "timeout_ms") {
        auto v = number(50, 30'000);
        if (!v) return MOSQ_ERR_INVAL;
        timeout_ms = *v;
      } else if (key == "cache_seconds") {
        auto v = number(0, 3600);
        if (!v) return MOSQ_ERR_INVAL;
        go.allow_ttl_ms = *v * 1000;
      } else if (key == "deny_cache_seconds") {
        auto v = number(0, 3600);
        if (!v) return MOSQ_ERR_INVAL;
        go.deny_ttl_ms = *v * 1000;
      } else if (key == "revocation_poll_ms") {
        auto v = number(0, 3'600'000);
        if (!v) return MOSQ_ERR_INVAL;
        poll_ms = *v;
      } else if (key == "service_username") {
        go.service_username = value;
      } else {
        return fail("unknown option plugin_opt_" + key +
                    " (known: url, secret_file, timeout_ms, cache_seconds, deny_cache_seconds, "
                    "revocation_poll_ms, service_username)");
      }
    }
    auto target = ParseHookUrl(url);
    if (!target) return fail(target.error().message);
    if (secret_file.empty()) {
      return fail("plugin_opt_secret_file is required: a file holding OpenSense's "
                  "OPENSENSE_MQTT_HOOK_SECRET, readable by the mosquitto user");
    }
    std::ifstream in(secret_file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string secret = ss.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' || secret.back() == ' ')) {
      secret.pop_back();
    }
    if (!in || secret.empty()) {
      return fail("cannot read the hook secret from " + secret_file +
                  " (it must exist, be readable by the mosquitto user and not be empty)");
    }
    auto p = std::make_unique<Plugin>();
    p->id = identifier;
    p->poll_ms = poll_ms;
    p->hooks = std::make_unique<HookClient>(*target, std::move(secret), std::chrono::milliseconds(timeout_ms));
    Plugin* raw = p.get();
    p->gate = std::make_unique<Gatekeeper>(go, [raw](std::string_view u, std::string_view pw, std::string_view c) {
      return Ask(raw, u, pw, c);
    });
    if (mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, OnBasicAuth, nullptr, raw) != MOSQ_ERR_SUCCESS ||
        mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, OnAclCheck, nullptr, raw) != MOSQ_ERR_SUCCESS ||
        mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, OnDisconnect, nullptr, raw) != MOSQ_ERR_SUCCESS ||
        mosquitto_callback_register(identifier, MOSQ_EVT_TICK, OnTick, nullptr, raw) != MOSQ_ERR_SUCCESS) {
      return fail("cannot register the callbacks");
    }
    if (poll_ms > 0) p->poller = std::thread(Poll, raw);
    mosquitto_log_printf(MOSQ_LOG_INFO, "opensense plugin: checking logins with %s (timeout %lld ms)",
                         url.c_str(), static_cast<long long>(timeout_ms));
    *userdata = p.release();
    return MOSQ_ERR_SUCCESS;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

OPENSENSE_EXPORT int mosquitto_plugin_cleanup(void* userdata, struct mosquitto_opt*, int) {
  auto* p = static_cast<Plugin*>(userdata);
  if (p == nullptr) return MOSQ_ERR_SUCCESS;
  {
    std::lock_guard lock(p->mu);
    p->stop = true;
  }
  p->cv.notify_all();
  if (p->poller.joinable()) p->poller.join();
  mosquitto_callback_unregister(p->id, MOSQ_EVT_BASIC_AUTH, opensense::mqtt::OnBasicAuth, nullptr);
  mosquitto_callback_unregister(p->id, MOSQ_EVT_ACL_CHECK, opensense::mqtt::OnAclCheck, nullptr);
  mosquitto_callback_unregister(p->id, MOSQ_EVT_DISCONNECT, opensense::mqtt::OnDisconnect, nullptr);
  mosquitto_callback_unregister(p->id, MOSQ_EVT_TICK, opensense::mqtt::OnTick, nullptr);
  delete p;
  return MOSQ_ERR_SUCCESS;
}
