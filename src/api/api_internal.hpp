// Shared by the API's route groups (api.cpp, and groups that live in their own files such as
// the alert routes): error answers, JSON body parsing, authentication wrappers and the route
// table. Not part of the api module's public interface.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api.hpp"

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

  // The principal of the request's token (Authorization: Bearer; for the InfluxDB routes also
  // Token, Basic and the u/p query parameters); records it for the request log.
  Result<auth::Principal> Authenticate(http::Request& req, bool influx);

  using UserHandler = std::function<http::Response(http::Request&, const auth::Principal&)>;
  // A route for user API tokens holding at least `role`: 401 without a valid token, 403 for a
  // device/gateway token or a lower role.
  http::Handler User(Role role, UserHandler fn);

  // Registers the route and records it in the route table (docs/api.md is checked against it).
  void Route(http::Router& r, std::string method, std::string pattern, std::string summary,
             http::Handler h);
};

}  // namespace opensense::api::internal
