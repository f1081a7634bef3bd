// OpenSense's side of broker authentication (issue 4): the EMQX 5 HTTP authentication and
// authorisation hooks, which the Mosquitto plugin (src/mqtt_plugin) calls too, and the feed of
// revoked tokens the plugin polls to disconnect their clients.
//
//   POST /internal/mqtt/auth     {"username","password","clientid"}
//        -> {"result":"allow"|"deny","is_superuser":false,"acl":[...],"expire_at":<unix s>}
//   POST /internal/mqtt/acl      {"username","topic","action"} -> {"result":"allow"|"deny"}
//   GET  /internal/mqtt/revoked?since=<ms> -> {"now":<ms>,"tokens":["<token id>",...],"sites":[...]}
//
// Every request must carry the shared secret in X-OpenSense-Hook-Secret (compared in constant
// time); behind a reverse proxy every request comes from 127.0.0.1, so the address proves
// nothing. Without a configured secret the hooks answer 503. These routes are not organisation
// API routes: user tokens are not looked at.
//
// Credentials: username = device id (or its serial, when the serial is not all digits),
// password = the device token; username = "site:<site id>", password = the site's gateway
// token; username = the service user (config mqtt_username), password = OPENSENSE_MQTT_PASSWORD.
//
// Threads: handlers run on the HTTP workers; MqttHooks is thread-safe.
#pragma once

#include <memory>
#include <string>

#include "api/http/server.hpp"
#include "auth/token_service.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "store/store.hpp"

namespace opensense::api {

struct MqttHookOptions {
  // The shared secret of the hooks (OPENSENSE_MQTT_HOOK_SECRET). Empty: the hooks answer 503.
  std::string secret;
  // The OpenSense subscriber's MQTT login (config mqtt_username and OPENSENSE_MQTT_PASSWORD).
  // An empty password disables the service login.
  std::string service_username = "opensense";
  std::string service_password;
};

class MqttHooks {
 public:
  MqttHooks(store::Store* store, auth::TokenService* tokens, MetricsRegistry* metrics, const Clock* clock,
            MqttHookOptions options);
  ~MqttHooks();

  http::Response Auth(http::Request& req);
  http::Response Acl(http::Request& req);
  http::Response Revoked(http::Request& req);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace opensense::api
