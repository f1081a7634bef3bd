#include "api/mqtt_hooks.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>

#include "mqtt_plugin/acl.hpp"

namespace opensense::api {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

constexpr std::size_t kMaxHookBody = 64 * 1024;
constexpr std::string_view kSecretHeader = "X-OpenSense-Hook-Secret";

bool SameSecret(std::string_view presented, const std::string& secret) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(presented.data()), presented.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

std::optional<std::int64_t> PositiveId(std::string_view text) {
  std::int64_t v = 0;
  if (text.empty() || text.size() > 18 || text.front() == '0') return std::nullopt;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// For logs: the username as sent, cut and without control characters.
std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out.push_back(static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  return out;
}

Response Decision(bool allow) {
  return Response::Json(200, allow ? R"({"result":"allow"})" : R"({"result":"deny"})");
}

}  // namespace

struct MqttHooks::Impl {
  store::Store* store;
  auth::TokenService* tokens;
  MetricsRegistry* metrics;
  const Clock* clock;
  MqttHookOptions options;
  std::atomic<TimestampMs> last_unconfigured_log{0};

  Impl(store::Store* s, auth::TokenService* t, MetricsRegistry* m, const Clock* c, MqttHookOptions o)
      : store(s), tokens(t), metrics(m), clock(c), options(std::move(o)) {}

  // nullopt: the request may go on; else the refusal to answer.
  std::optional<Response> Gate(const Request& req) {
    if (options.secret.empty()) {
      const TimestampMs now = clock->NowMs();
      if (now - last_unconfigured_log.exchange(now) > kMsPerMinute) {
        spdlog::warn("mqtt hooks: a broker called {} but OPENSENSE_MQTT_HOOK_SECRET is not set, so the "
                     "hooks are off; set it (and the same value in the broker's hook secret file)",
                     req.path);
      }
      return Response::Error(503, "not_configured",
                             "the MQTT hooks are off: set OPENSENSE_MQTT_HOOK_SECRET for opensense");
    }
    auto presented = req.Header(kSecretHeader);
    if (!presented || !SameSecret(*presented, options.secret)) {
      metrics->GetCounter("opensense_mqtt_hook_refused_total", "MQTT hook calls without the right secret.").Inc();
      return Response::Error(401, "unauthenticated", "the hook secret is missing or wrong");
    }
    if (req.body.size() > kMaxHookBody) return Response::Error(413, "too_large", "hook bodies are small");
    return std::nullopt;
  }

  void Count(const char* hook, const char* result) {
    metrics->GetCounter(fmt::format("opensense_mqtt_{}_total", hook),
                        fmt::format("MQTT {} hook answers by result.", hook), {{"result", result}})
        .Inc();
  }

  // The rules of a gateway: publish for every live device of its site.
  Result<std::vector<mqtt::AclRule>> SiteRules(OrgId org, SiteId site) {
    OS_ASSIGN_OR_RETURN(auto devices, store->ListDevices(org));
    std::vector<std::int64_t> ids;
    for (const auto& d : devices) {
      if (d.site_id == site && !d.decommissioned) ids.push_back(d.id);
    }
    return mqtt::GatewayRules(ids);
  }

  // The answer for a login; an error only when OpenSense itself cannot decide (store down).
  Result<mqtt::AuthAnswer> Decide(std::string_view username, std::string_view password) {
    mqtt::AuthAnswer deny;
    if (username.empty() || password.empty()) return deny;
    if (!options.service_password.empty() && username == options.service_username) {
      if (!SameSecret(password, options.service_password)) return deny;
      return mqtt::AuthAnswer{true, mqtt::ServiceRules(), std::nullopt};
    }
    if (username == options.service_username) return deny;  // reserved even when unused
    auto principal = tokens->Verify(password);
    if (!principal) {
      if (principal.error().code == ErrorCode::kPermissionDenied) return deny;
      return tl::unexpected(principal.error());
    }
    mqtt::AuthAnswer allow{true, {}, std::nullopt};
    if (principal->kind == TokenKind::kDevice && principal->device) {
      auto device = store->GetDevice(principal->org, *principal->device);
      if (!device) {
        if (device.error().code == ErrorCode::kNotFound) return deny;
        return tl::unexpected(device.error());
      }
      // A numeric username is always the server id (never a serial), so the ACL hook, which sees
      // only the username, can trust it.
      const bool by_id = AllDigits(username) && PositiveId(username) == device->id;
      const bool by_serial = !AllDigits(username) &&
                             username.substr(0, mqtt::kGatewayUsernamePrefix.size()) != mqtt::kGatewayUsernamePrefix &&
                             device->serial && *device->serial == username;
      if (device->decommissioned || !(by_id || by_serial)) return deny;
      allow.acl = mqtt::DeviceRules(device->id);
    } else if (principal->kind == TokenKind::kGateway && principal->site) {
      if (mqtt::GatewaySiteOf(username) != principal->site) return deny;
      OS_ASSIGN_OR_RETURN(allow.acl, SiteRules(principal->org, *principal->site));
    } else {
      return deny;  // user API tokens never log in to the broker
    }
    // A token rotated with a grace period stops at a known time: EMQX disconnects then.
    if (auto record = store->FindToken(mqtt::TokenIdOf(password)); record && record->expires_at) {
      allow.expire_at = *record->expires_at / 1000;
    }
    return allow;
  }

  // The rules for a username alone (EMQX's authorisation request has no password): valid only
  // because Decide refused every login whose username does not belong to its token.
  Result<std::vector<mqtt::AclRule>> RulesForUsername(std::string_view username) {
    if (!options.service_password.empty() && username == options.service_username) return mqtt::ServiceRules();
    if (auto id = PositiveId(username)) return mqtt::DeviceRules(*id);
    if (auto site = mqtt::GatewaySiteOf(username)) {
      OS_ASSIGN_OR_RETURN(auto orgs, store->ListOrganizations());
      for (const auto& org : orgs) {
        if (store->GetSite(org.id, *site)) return SiteRules(org.id, *site);
      }
    }
    return std::vector<mqtt::AclRule>{};  // serials are resolved only with the acl list of auth
  }
};

MqttHooks::MqttHooks(store::Store* store, auth::TokenService* tokens, MetricsRegistry* metrics,
                     const Clock* clock, MqttHookOptions options)
    : impl_(std::make_unique<Impl>(store, tokens, metrics, clock, std::move(options))) {
  if (impl_->options.secret.empty()) {
    spdlog::info("mqtt hooks (/internal/mqtt/*) are off: set OPENSENSE_MQTT_HOOK_SECRET to let a broker "
                 "check device logins with opensense");
  }
}

MqttHooks::~MqttHooks() = default;

Response MqttHooks::Auth(Request& req) {
  if (auto refused = impl_->Gate(req)) return *refused;
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("username") || !body.contains("password") ||
      !body["username"].is_string() || !body["password"].is_string()) {
    return Response::Error(400, "invalid_argument", "the body must be {\"username\": \"...\", \"password\": \"...\"}");
  }
  const std::string& username = body["username"].get_ref<const std::string&>();
  auto answer = impl_->Decide(username, body["password"].get_ref<const std::string&>());
  if (!answer) {
    impl_->Count("auth", "error");
    spdlog::warn("mqtt hooks: cannot check the login of '{}': {}", Shown(username), answer.error().message);
    return Response::Error(503, "unavailable", "cannot check the login now; retry");
  }
  impl_->Count("auth", answer->allow ? "allow" : "deny");
  spdlog::debug("mqtt hooks: login of '{}' {}", Shown(username), answer->allow ? "allowed" : "refused");
  return Response::Json(200, mqtt::FormatAuthAnswer(*answer));
}

Response MqttHooks::Acl(Request& req) {
  if (auto refused = impl_->Gate(req)) return *refused;
  json body = json::parse(req.body, nullptr, false);
  auto str = [&](const char* key) -> const std::string* {
    if (body.is_discarded() || !body.is_object()) return nullptr;
    auto it = body.find(key);
    return it != body.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
  };
  const std::string* username = str("username");
  const std::string* topic = str("topic");
  const std::string* action = str("action");
  if (username == nullptr || topic == nullptr || action == nullptr) {
    return Response::Error(400, "invalid_argument",
                           "the body must be {\"username\": \"...\", \"topic\": \"...\", \"action\": \"publish|subscribe\"}");
  }
  mqtt::AclRequest request;
  if (*action == "publish") request = mqtt::AclRequest::kPublish;
  else if (*action == "subscribe") request = mqtt::AclRequest::kSubscribe;
  else {
    impl_->Count("acl", "deny");
    return Decision(false);
  }
  auto rules = impl_->RulesForUsername(*username);
  if (!rules) {
    impl_->Count("acl", "error");
    return Response::Error(503, "unavailable", "cannot decide now; retry");
  }
  const bool allow = mqtt::Allowed(*rules, request, *topic);
  impl_->Count("acl", allow ? "allow" : "deny");
  return Decision(allow);
}

Response MqttHooks::Revoked(Request& req) {
  if (auto refused = impl_->Gate(req)) return *refused;
  const TimestampMs now = impl_->clock->NowMs();
  mqtt::RevokedAnswer answer;
  answer.now_ms = now;
  auto since_text = req.Query("since");
  if (!since_text) return Response::Json(200, mqtt::FormatRevokedAnswer(answer));  // a starting point
  TimestampMs since = 0;
  auto [p, ec] = std::from_chars(since_text->data(), since_text->data() + since_text->size(), since);
  if (ec != std::errc() || p != since_text->data() + since_text->size()) {
    return Response::Error(400, "invalid_argument", "'since' is epoch milliseconds");
  }
  since = std::max(since, now - kMsPerDay);
  auto orgs = impl_->store->ListOrganizations();
  if (!orgs) return Response::Error(503, "unavailable", "cannot read tokens now; retry");
  for (const auto& org : *orgs) {
    auto list = impl_->store->ListTokens(org.id);
    if (!list) return Response::Error(503, "unavailable", "cannot read tokens now; retry");
    for (const auto& t : *list) {
      if (t.kind == TokenKind::kUser || !t.expires_at) continue;
      if (*t.expires_at > since && *t.expires_at <= now) answer.token_ids.push_back(t.public_id);
    }
    auto devices = impl_->store->ListDevices(org.id);
    if (!devices) return Response::Error(503, "unavailable", "cannot read devices now; retry");
    for (const auto& d : *devices) {
      if (!d.site_id || d.created_at <= since || d.created_at > now) continue;
      auto same = std::find_if(answer.sites.begin(), answer.sites.end(),
                               [&](const mqtt::SiteChange& s) { return s.site_id == *d.site_id; });
      if (same == answer.sites.end()) answer.sites.push_back({*d.site_id, d.created_at});
      else same->changed_at_ms = std::max(same->changed_at_ms, d.created_at);
    }
  }
  return Response::Json(200, mqtt::FormatRevokedAnswer(answer));
}

}  // namespace opensense::api
