// The HTTP API (`/api/v1/...`, InfluxDB-compatible `/write` and `/api/v2/write`, `/healthz`,
// `/readyz`, `/metrics`): request -> principal -> store, and the JSON shapes of ARCHITECTURE.md
// section 4. Handlers are written against opensense::http's own Request/Response types.
//
// Threads: handlers run on the HTTP server's worker threads; Api is thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/http/server.hpp"
#include "api/client_address.hpp"
#include "api/mqtt_hooks.hpp"
#include "auth/token_service.hpp"
#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/outbound.hpp"
#include "people/login.hpp"
#include "store/store.hpp"

namespace opensense::alerts {
class AlertService;
}  // namespace opensense::alerts

namespace opensense::api {

class EventHub;

struct ApiOptions {
  // Requests per second and burst a device (or gateway) token may spend on ingest; beyond
  // that 429 with Retry-After.
  double ingest_rate_per_token = 50;
  double ingest_burst_per_token = 200;
  // Records in one ingest document.
  std::size_t max_records = 100'000;
  // Notification channels (api/channels_routes.hpp): also accept http:// webhook URLs to
  // loopback addresses (tests only; default false: https only).
  bool webhook_allow_http_loopback = false;
  // Called after a channel's test message was queued, so the dispatcher looks at once.
  std::function<void()> notification_queued;
  // The broker hooks under /internal/mqtt/ (secret, service credential).
  MqttHookOptions mqtt_hooks;
  // Peers whose X-Forwarded-For names the client in the request log (setting trusted_proxies);
  // empty (default): the TCP peer is the client.
  TrustedProxies trusted_proxies;
  // Alert rules, acknowledge and resolve (not owned); null: the alert routes read from the store
  // and refuse writes with 503 (a process without the alerts role).
  alerts::AlertService* alerts = nullptr;
  // Magic-link login, sessions and sign-up (settings public_url, self_signup).
  people::LoginOptions login;
  // Where magic-link and invitation mail is queued (not owned); null: the log (LoggingMailQueue).
  MailQueue* mail = nullptr;
  // User API requests per second and burst per organisation; 0: the tier's (core/tiers.hpp).
  double api_rate_per_org = 0;
  double api_burst_per_org = 0;
  // Compliance reports rendering at once, requests that may wait for a slot (beyond: 429 with
  // Retry-After), and how long one waits before 503 with Retry-After.
  int reports_running = 2;
  int reports_waiting = 4;
  std::chrono::milliseconds reports_max_wait{20'000};
  // The live updates of GET /api/v1/events (api/events.hpp; not owned), fed by the caller (the
  // store's commit listener, the alert service); null: the Api makes its own, fed by the store
  // only (no alert events).
  EventHub* events = nullptr;
  // Memory for answers of GET /api/v1/devices/{id}/series kept until the device's data changes
  // (api/chart_cache.hpp; setting chart_cache_mb); 0: every request is computed.
  std::size_t chart_cache_bytes = 64u << 20;
};

// One route of the API table (also what docs/api.md must list).
struct RouteInfo {
  std::string method;
  std::string pattern;
  std::string summary;
  // The route's entry in the permission table (people/permissions.hpp): its name, "" when the
  // route has none (a test fails); and the role the route declared with ctx.User(role, ...),
  // which must be the permission's minimum role.
  std::string permission;
  std::optional<Role> declared_role;
};

// The headers every response carries (http::ServerOptions::default_headers): no MIME sniffing,
// no referrer, never framed, and a Content-Security-Policy that lets an API answer load nothing.
// A response that sets one of them itself (the dashboard, later) keeps its own.
std::vector<std::pair<std::string, std::string>> SecurityHeaders();

class Api {
 public:
  Api(store::Store* store, auth::TokenService* tokens, MetricsRegistry* metrics, const Clock* clock,
      ApiOptions options = {});
  ~Api();

  // The router with every route registered.
  http::Router BuildRouter();
  const std::vector<RouteInfo>& routes() const;
  // The address people reach the API at (login links, cookie security, the Origin check), when
  // it is known only once the server is bound (port 0). Call before requests are served
  // (http::ServerOptions::on_listening).
  void SetPublicUrl(std::string url);
  // For ServerOptions::on_complete: request log and HTTP metrics.
  void OnComplete(const http::Request& req, const std::string& route, int status,
                  std::chrono::microseconds duration);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace opensense::api
