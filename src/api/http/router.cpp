// Router: pattern matching of (method, path) to handlers, and the server-side error answers.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <set>

#include "api/http/server.hpp"
#include "api/http/wire.hpp"

namespace opensense::http {
namespace {

// "/a/{id}/b" -> {"a", "{id}", "b"}; "/" -> {""}. The path must start with '/'.
std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  std::size_t start = 1;
  while (true) {
    std::size_t slash = path.find('/', start);
    segments.push_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return segments;
}

bool IsParam(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

[[noreturn]] void BadRoute(const std::string& method, const std::string& pattern, const char* why) {
  std::fprintf(stderr, "http::Router::Add(\"%s\", \"%s\"): %s\n", method.c_str(), pattern.c_str(),
               why);
  std::abort();
}

bool IsMethodToken(std::string_view method) {
  return !method.empty() && wire::IsValidHeaderName(method);
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler) {
  if (!IsMethodToken(method)) BadRoute(method, pattern, "method must be a token such as GET");
  if (pattern.empty() || pattern.front() != '/')
    BadRoute(method, pattern, "pattern must start with '/'");
  if (!handler) BadRoute(method, pattern, "handler is empty");
  Route route;
  std::set<std::string_view> names;
  for (std::string_view segment : SplitPath(pattern)) {
    if (IsParam(segment)) {
      std::string_view name = segment.substr(1, segment.size() - 2);
      if (name.find_first_of("{}/") != std::string_view::npos) {
        BadRoute(method, pattern, "malformed parameter segment");
      }
      if (!names.insert(name).second) BadRoute(method, pattern, "parameter name used twice");
    } else if (segment.find_first_of("{}") != std::string_view::npos) {
      BadRoute(method, pattern, "a parameter must be a whole segment: {name}");
    }
    route.segments.emplace_back(segment);
  }
  for (const Route& other : routes_) {
    if (other.method == method && other.segments == route.segments) {
      BadRoute(method, pattern, "route added twice");
    }
  }
  route.method = std::move(method);
  route.pattern = std::move(pattern);
  route.handler = std::move(handler);
  routes_.push_back(std::move(route));
}

RouteMatch Router::Match(Request& req) const {
  RouteMatch result;
  if (req.path.empty() || req.path.front() != '/') {
    result.status = 400;
    return result;
  }
  std::vector<std::string_view> raw = SplitPath(req.path);
  std::vector<std::string> decoded;
  decoded.reserve(raw.size());
  for (std::string_view segment : raw) {
    auto d = wire::PercentDecode(segment, false);
    if (!d) {
      result.status = 400;
      return result;
    }
    decoded.push_back(std::move(*d));
  }

  // Every route whose pattern matches the path; the best one for the method wins.
  const Route* best = nullptr;
  const Route* best_get = nullptr;  // for HEAD without a HEAD route
  std::set<std::string> allowed;
  auto more_specific = [](const Route& a, const Route& b) {
    for (std::size_t i = 0; i < a.segments.size(); ++i) {
      bool a_lit = !IsParam(a.segments[i]);
      bool b_lit = !IsParam(b.segments[i]);
      if (a_lit != b_lit) return a_lit;
    }
    return false;
  };
  for (const Route& route : routes_) {
    if (route.segments.size() != decoded.size()) continue;
    bool matches = true;
    for (std::size_t i = 0; i < decoded.size() && matches; ++i) {
      const std::string& seg = route.segments[i];
      matches = IsParam(seg) ? !decoded[i].empty() : seg == decoded[i];
    }
    if (!matches) continue;
    allowed.insert(route.method);
    if (route.method == "GET") allowed.insert("HEAD");
    if (route.method == req.method) {
      if (best == nullptr || more_specific(route, *best)) best = &route;
    } else if (req.method == "HEAD" && route.method == "GET") {
      if (best_get == nullptr || more_specific(route, *best_get)) best_get = &route;
    }
  }
  if (best == nullptr) best = best_get;
  if (best == nullptr) {
    if (allowed.empty()) {
      result.status = 404;
      return result;
    }
    result.status = 405;
    for (const std::string& m : allowed) {
      if (!result.allow.empty()) result.allow += ", ";
      result.allow += m;
    }
    return result;
  }
  req.params.clear();
  for (std::size_t i = 0; i < decoded.size(); ++i) {
    const std::string& seg = best->segments[i];
    if (IsParam(seg)) req.params[seg.substr(1, seg.size() - 2)] = std::move(decoded[i]);
  }
  result.handler = &best->handler;
  result.route = best->pattern;
  return result;
}

void Router::SetFallback(std::string route, Handler handler) {
  if (!handler) BadRoute("*", route, "fallback handler is empty");
  fallback_route_ = std::move(route);
  fallback_ = std::move(handler);
}

Response Router::Handle(Request& req, std::string* route) const {
  RouteMatch match = Match(req);
  if (match.status == 404 && fallback_) {
    match.status = 200;
    match.handler = &fallback_;
    match.route = fallback_route_;
  }
  if (route != nullptr) *route = match.route;
  switch (match.status) {
    case 200:
      break;
    case 400:
      return Response::Error(400, "invalid_argument", "malformed request path");
    case 404:
      return Response::Error(404, "not_found", "no such resource: " + req.path);
    case 405: {
      Response res = Response::Error(405, "method_not_allowed",
                                     req.method + " is not allowed here; allowed: " + match.allow);
      res.headers.emplace_back("Allow", match.allow);
      return res;
    }
    default:
      return Response::Error(500, "internal", "routing failed");
  }
  try {
    return (*match.handler)(req);
  } catch (const std::exception& e) {
    spdlog::error("http: handler for {} {} threw: {}", req.method, match.route, e.what());
  } catch (...) {
    spdlog::error("http: handler for {} {} threw a non-standard exception", req.method,
                  match.route);
  }
  return Response::Error(500, "internal", "internal error; the server log has the details");
}

}  // namespace opensense::http
