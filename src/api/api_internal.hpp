// Shared by the API's route groups (api.cpp, and groups that live in their own files such as
// the alert routes): error answers, JSON body parsing, authentication wrappers and the route
// table. Not part of the api module's public interface.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api.hpp"
#include "people/people_service.hpp"
#include "people/permissions.hpp"

namespace opensense::api::internal {

using json = nlohmann::json;

// The HTTP status and JSON error body for an Error (500s are logged, never shown).
http::Response FromError(const Error& e);
http::Response Unauthorized();
http::Response Forbidden(std::string_view why);
// A JSON object body (nesting bounded), or kInvalidArgument.
Result<json> ParseJsonBody(const http::Request& req);
// A positive decimal id, or nullopt.
std::optional<std::int64_t> ParseId(const std::string& text);

// What a route group needs from the API.
struct ApiContext {
  ApiContext(store::Store* s, auth::TokenService* t, MetricsRegistry* m, const Clock* c, ApiOptions o)
      : store(s), tokens(t), metrics(m), clock(c), options(std::move(o)) {}

  store::Store* store;
  auth::TokenService* tokens;
  MetricsRegistry* metrics;
  const Clock* clock;
  ApiOptions options;
  std::vector<RouteInfo> routes;
  // Login, sessions, members and the audit trail (set by the Api).
  people::PeopleService* people = nullptr;
  // Whether the resource a route addresses (by its collection, e.g. "/api/v1/devices", and the
  // {id}) belongs to the organisation: a caller whose role may not use a route gets 404 rather
  // than 403 for ids outside its organisation. Route groups register theirs.
  std::map<std::string, std::function<bool(OrgId, std::int64_t)>> owns;
  // The tier's API rate per organisation (set by the Api); false: refuse with 429.
  std::function<bool(OrgId)> org_rate;
  bool AllowOrgRequest(OrgId org) { return !org_rate || org_rate(org); }

  // The principal of the request's token (Authorization: Bearer; for the InfluxDB routes also
  // Token, Basic and the u/p query parameters); records it for the request log.
  Result<auth::Principal> Authenticate(http::Request& req, bool influx);

  using UserHandler = std::function<http::Response(http::Request&, const auth::Principal&)>;
  // A route for signed-in users: a user API token (Authorization: Bearer osk_...) or the session
  // cookie. `role` must be the minimum role of the route's permission-table entry (checked by the
  // isolation test); what is enforced is the table, in Route().
  struct UserRoute {
    Role role;
    UserHandler fn;
  };
  UserRoute User(Role role, UserHandler fn) { return UserRoute{role, std::move(fn)}; }

  // Registers the route and records it in the route table (docs/api.md is checked against it).
  // A user route is wrapped in the one place that enforces the permission table: 401 without a
  // valid token or session; 403 for device/gateway tokens, missing CSRF token or foreign Origin
  // on a cookie-authenticated write, and a role below the route's permission (404 instead when
  // the addressed {id} is not the caller's organisation's); 429 beyond the tier's API rate.
  void Route(http::Router& r, std::string method, std::string pattern, std::string summary,
             http::Handler h);
  void Route(http::Router& r, std::string method, std::string pattern, std::string summary,
             UserRoute u);

  // The signed-in user of a request (API token or session cookie); kPermissionDenied otherwise.
  // Records the principal for the request log.
  Result<auth::Principal> AuthenticateUser(http::Request& req);
  // The client address of a request (trusted_proxies applied).
  std::string Client(const http::Request& req) const;
  // The client's address without the port: what per-client rate limits count (a new
  // connection has a new port).
  std::string ClientHost(const http::Request& req) const;
  // Who did it, for the audit trail.
  people::Actor ActorOf(const http::Request& req, const auth::Principal& p) const;
  // Appends an audit event (old/new: JSON values, null for none). Never fails the request; a
  // failure is logged at error level.
  void Audit(const http::Request& req, const auth::Principal& p, std::string_view action,
             std::string_view target, const json& old_value, const json& new_value);
};

// Login, sessions, own API tokens, the organisation, members and the audit trail
// (api/people_routes.cpp).
void RegisterPeopleRoutes(ApiContext& ctx, http::Router& r);

}  // namespace opensense::api::internal
