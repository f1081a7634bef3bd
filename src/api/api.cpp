#include "api/api.hpp"
#include "api/alerts_routes.hpp"
#include "api/api_internal.hpp"
#include "api/device_profile_json.hpp"
#include "api/reports_routes.hpp"
#include "api/channels_routes.hpp"
#include "api/chart_cache.hpp"
#include "api/events.hpp"
#include "api/json_number.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <mutex>
#include <shared_mutex>
#include <map>
#include <unordered_map>

#include "core/tiers.hpp"
#include "core/time_zone.hpp"
#include "core/validation.hpp"
#include "ingest/payload.hpp"

namespace opensense::api {

using http::Request;
using http::Response;
using nlohmann::json;

namespace {

constexpr int kMaxJsonDepth = 32;

int StatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kAlreadyExists: return 409;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kFailedPrecondition: return 409;
    case ErrorCode::kResourceExhausted: return 429;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kConflict: return 409;
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

}  // namespace

namespace internal {

Response FromError(const Error& e) {
  int status = StatusFor(e.code);
  if (status == 500) {
    spdlog::error("api: internal error: {}", e.message);
    return Response::Error(500, "internal", "internal error; see the server log");
  }
  Response r = Response::Error(status, ErrorCodeName(e.code), e.message);
  if (status == 429 || status == 503) r.SetHeader("Retry-After", "1");
  return r;
}

Response Unauthorized() {
  Response r = Response::Error(401, "unauthenticated", "a valid token is required");
  r.SetHeader("WWW-Authenticate", "Bearer");
  return r;
}

Response Forbidden(std::string_view why) { return Response::Error(403, "permission_denied", why); }

// Refuses JSON nested deeper than `max` before a recursive parser sees it.
static bool NestingWithin(std::string_view s, int max) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : s) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

Result<json> ParseJsonBody(const Request& req) {
  if (!NestingWithin(req.body, kMaxJsonDepth)) {
    return MakeError(ErrorCode::kInvalidArgument, "the JSON body is nested too deeply");
  }
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "the body must be a JSON object");
  }
  return j;
}

std::optional<std::int64_t> ParseId(const std::string& text) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v <= 0) return std::nullopt;
  return v;
}

}  // namespace internal

using namespace internal;

namespace {

std::string Base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0, acc = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = val(c);
    if (v < 0) return {};
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Bearer everywhere; InfluxDB's forms (Token, Basic with the token as password, ?p=) on the
// InfluxDB-compatible endpoints.
std::optional<std::string> PresentedToken(const Request& req, bool influx) {
  if (auto h = req.Header("Authorization")) {
    std::string_view v = Trim(*h);
    auto starts = [&](std::string_view p) {
      return v.size() > p.size() && std::equal(p.begin(), p.end(), v.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
             });
    };
    if (starts("Bearer ")) return std::string(Trim(v.substr(7)));
    if (influx && starts("Token ")) return std::string(Trim(v.substr(6)));
    if (influx && starts("Basic ")) {
      std::string decoded = Base64Decode(Trim(v.substr(6)));
      auto colon = decoded.find(':');
      if (colon != std::string::npos) return decoded.substr(colon + 1);
    }
    return std::string();  // present but unusable: refuse rather than fall back
  }
  if (influx) {
    if (auto p = req.Query("p")) return *p;
  }
  return std::nullopt;
}

json DeviceJson(const Device& d) {
  json j = {{"id", d.id},     {"org", d.org_id},
            {"name", d.name}, {"decommissioned", d.decommissioned},
            {"created_at", FormatRfc3339(d.created_at)}};
  j["site"] = d.site_id ? json(*d.site_id) : json(nullptr);
  j["serial"] = d.serial ? json(*d.serial) : json(nullptr);
  j.update(DeviceProfileJson(d.profile));
  return j;
}

json SiteJson(const Site& s) {
  return {{"id", s.id}, {"org", s.org_id}, {"name", s.name}, {"auto_register", s.auto_register}};
}

std::string Num(double v) {
  std::string out;
  AppendNumber(out, v);
  return out;
}

// Token bucket per token id.
class RateLimiter {
 public:
  RateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}
  bool Allow(std::int64_t key, TimestampMs now) { return Allow(key, now, rate_, burst_); }
  bool Allow(std::int64_t key, TimestampMs now, double rate, double burst) {
    std::lock_guard lock(mu_);
    auto& b = buckets_[key];
    if (b.last == 0) b = {burst, now};
    b.tokens = std::min(burst, b.tokens + rate * static_cast<double>(now - b.last) / 1000.0);
    b.last = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

 private:
  struct Bucket {
    double tokens = 0;
    TimestampMs last = 0;
  };
  double rate_, burst_;
  std::mutex mu_;
  std::unordered_map<std::int64_t, Bucket> buckets_;
};

}  // namespace

Result<auth::Principal> internal::ApiContext::Authenticate(Request& req, bool influx) {
  auto presented = PresentedToken(req, influx);
  if (!presented || presented->empty()) {
    return MakeError(ErrorCode::kPermissionDenied, "unauthenticated");
  }
  auto p = tokens->Verify(*presented);
  if (!p) return tl::unexpected(p.error());
  req.params["__principal"] = p->Describe();
  req.params["__org"] = std::to_string(p->org);
  return p;
}

Result<auth::Principal> internal::ApiContext::AuthenticateUser(Request& req) {
  if (req.Header("Authorization")) {
    auto p = Authenticate(req, false);
    if (!p) return p;
    if (p->kind != TokenKind::kUser) {
      return MakeError(ErrorCode::kFailedPrecondition, "this route needs a user API token (osk_...)");
    }
    // The member may have been removed or demoted since the token was made: the token never
    // holds more than the member does now.
    auto member = store->People().GetMember(p->org, p->user.value_or(0));
    if (!member) {
      if (member.error().code == ErrorCode::kNotFound) return MakeError(ErrorCode::kPermissionDenied, "unauthenticated");
      return tl::unexpected(member.error());
    }
    if (member->removed_at) return MakeError(ErrorCode::kPermissionDenied, "unauthenticated");
    p->role = std::min(p->role, member->role);
    p->email = member->email;
    return p;
  }
  auto cookie = req.Header("Cookie");
  std::optional<std::string> secret;
  if (cookie) secret = people::SessionFromCookieHeader(people->options(), *cookie);
  if (!secret) return MakeError(ErrorCode::kPermissionDenied, "unauthenticated");
  auto current = people->ResolveSession(*secret);
  if (!current) return tl::unexpected(current.error());
  auth::Principal p;
  p.kind = TokenKind::kUser;
  p.org = current->member.org;
  p.user = current->member.id;
  p.role = current->member.role;
  p.session = current->session.id;
  p.email = current->member.email;
  req.params["__principal"] = p.Describe();
  req.params["__org"] = std::to_string(p.org);
  req.params["__session_secret"] = *secret;
  return p;
}

std::string internal::ApiContext::Client(const Request& req) const {
  return ClientAddress(req.remote_address, req.Header("X-Forwarded-For"), options.trusted_proxies);
}

std::string internal::ApiContext::ClientHost(const Request& req) const {
  return std::string(PeerHost(Client(req)));
}

people::Actor internal::ApiContext::ActorOf(const Request& req, const auth::Principal& p) const {
  return people::Actor{fmt::format("user:{} <{}>", p.user.value_or(0), p.email),
                       p.session ? std::string("session") : fmt::format("token:{}", p.token_id),
                       Client(req)};
}

void internal::ApiContext::Audit(const Request& req, const auth::Principal& p, std::string_view action,
                                 std::string_view target, const json& old_value, const json& new_value) {
  (void)people->Record(p.org, ActorOf(req, p), action, target, old_value.is_null() ? "" : old_value.dump(),
                       new_value.is_null() ? "" : new_value.dump());
}

namespace {

bool SafeMethod(std::string_view method) { return method == "GET" || method == "HEAD" || method == "OPTIONS"; }

// "/api/v1/devices/{id}/token" -> "/api/v1/devices": the collection an {id} addresses.
std::string CollectionOf(std::string_view pattern) {
  auto pos = pattern.find("/{id}");
  return pos == std::string_view::npos ? std::string() : std::string(pattern.substr(0, pos));
}

}  // namespace

void internal::ApiContext::Route(http::Router& r, std::string method, std::string pattern,
                                 std::string summary, http::Handler h) {
  auto perm = people::PermissionForRoute(method, pattern);
  routes.push_back({method, pattern, std::move(summary),
                    perm ? std::string(people::InfoOf(*perm).name) : std::string(), std::nullopt});
  r.Add(std::move(method), std::move(pattern), std::move(h));
}

void internal::ApiContext::Route(http::Router& r, std::string method, std::string pattern,
                                 std::string summary, UserRoute u) {
  auto perm = people::PermissionForRoute(method, pattern);
  routes.push_back({method, pattern, std::move(summary),
                    perm ? std::string(people::InfoOf(*perm).name) : std::string(), u.role});
  const std::string collection = CollectionOf(pattern);
  const bool safe = SafeMethod(method);
  auto handler = [this, perm, collection, safe, fn = std::move(u.fn)](Request& req) -> Response {
    if (!perm || !people::InfoOf(*perm).min_role) {
      spdlog::error("api: route {} has no user permission in people/permissions.cpp", req.path);
      return Response::Error(500, "internal", "this route has no permission entry");
    }
    auto p = AuthenticateUser(req);
    if (!p) {
      if (p.error().code == ErrorCode::kPermissionDenied) return Unauthorized();
      if (p.error().code == ErrorCode::kFailedPrecondition) return Forbidden(p.error().message);
      return FromError(p.error());
    }
    if (p->session && !safe) {
      // Cookie-authenticated write: the request must come from our own pages (Origin) and carry
      // the session's CSRF token. API tokens are not sent by browsers on their own, so they skip it.
      const auto& lo = people->options();
      if (!people::SameOrigin(lo, req.Header("Origin"), req.Header("Referer"))) {
        return Response::Error(403, "csrf", "cross-origin request refused: the Origin header must be " +
                                                people::OriginOf(lo.public_url));
      }
      auto presented = req.Header("X-CSRF-Token");
      if (!presented || !people::ConstantTimeEquals(*presented, people::CsrfToken(req.params["__session_secret"]))) {
        return Response::Error(403, "csrf", "missing or wrong X-CSRF-Token header (GET /api/v1/auth/session gives it)");
      }
    }
    if (!people::Allows(p->role, *perm)) {
      if (!collection.empty()) {
        auto it = owns.find(collection);
        auto id = ParseId(req.params.count("id") ? req.params.at("id") : std::string());
        if (it != owns.end() && (!id || !it->second(p->org, *id))) {
          return Response::Error(404, "not_found", "no such resource in your organisation");
        }
      }
      return Forbidden(fmt::format("this needs the {} role ({})", RoleName(*people::InfoOf(*perm).min_role),
                                   people::InfoOf(*perm).name));
    }
    if (!AllowOrgRequest(p->org)) {
      Response resp = Response::Error(429, "rate_limited",
                                      "your organisation's tier allows fewer API requests per second; retry shortly");
      resp.SetHeader("Retry-After", "1");
      return resp;
    }
    return fn(req, *p);
  };
  r.Add(std::move(method), std::move(pattern), std::move(handler));
}

struct Api::Impl : internal::ApiContext {
  RateLimiter limiter;
  RateLimiter org_limiter{1, 1};  // rate and burst from the tier table, per call
  // Gateway device names already resolved: (site, name) -> device. Dropped whenever this process
  // changes a device, and after a minute (changes made by another process).
  std::shared_mutex names_mu;
  std::unordered_map<SiteId, std::unordered_map<std::string, DeviceId>> names;
  std::size_t names_count = 0;
  TimestampMs names_since = 0;
  MqttHooks mqtt_hooks;
  std::unique_ptr<people::PeopleService> people_service;
  // GET /api/v1/events: the caller's hub, else our own fed by the store.
  std::unique_ptr<EventHub> own_events;
  EventHub* events = nullptr;
  // Each organisation's tier for the per-organisation request rate, re-read after 10 s (a tier
  // changes by `opensense org`, in another process) instead of one store read per request.
  std::mutex tiers_mu;
  std::unordered_map<OrgId, std::pair<Tier, TimestampMs>> tiers;
  // Chart answers (GET .../series) while the store says the device's data stands.
  ChartCache chart_cache{options.chart_cache_bytes};
  Counter* chart_hits = nullptr;    // looked up once, not per request
  Counter* chart_misses = nullptr;
  Gauge* chart_bytes = nullptr;

  std::optional<Tier> TierOf(OrgId org) {
    const TimestampMs now = clock->NowMs();
    {
      std::lock_guard lock(tiers_mu);
      auto it = tiers.find(org);
      if (it != tiers.end() && now >= it->second.second && now - it->second.second < 10 * kMsPerSecond) {
        return it->second.first;
      }
    }
    auto o = store->GetOrganization(org);
    if (!o) return std::nullopt;
    std::lock_guard lock(tiers_mu);
    if (tiers.size() > 100'000) tiers.clear();
    tiers[org] = {o->tier, now};
    return o->tier;
  }

  Impl(store::Store* s, auth::TokenService* t, MetricsRegistry* m, const Clock* c, ApiOptions o)
      : ApiContext(s, t, m, c, o),
        limiter(o.ingest_rate_per_token, o.ingest_burst_per_token),
        mqtt_hooks(s, t, m, c, o.mqtt_hooks),
        people_service(std::make_unique<people::PeopleService>(s, t, o.mail, c, o.login)) {
    people = people_service.get();
    chart_hits = &metrics->GetCounter("opensense_api_chart_cache_hits_total", "Chart answers served from the chart cache.");
    chart_misses = &metrics->GetCounter("opensense_api_chart_cache_misses_total",
                                        "Chart answers computed (not in the chart cache).");
    chart_bytes = &metrics->GetGauge("opensense_api_chart_cache_bytes", "Memory held by the chart cache.");
    events = o.events;
    if (events == nullptr) {
      own_events = std::make_unique<EventHub>();
      own_events->Attach(s);
      events = own_events.get();
    }
    org_rate = [this](OrgId org) {
      auto tier = TierOf(org);
      if (!tier) return true;  // the handler reports the store's trouble
      const auto& limits = LimitsOf(*tier);
      const double rate = options.api_rate_per_org > 0 ? options.api_rate_per_org : limits.api_rate_per_second;
      const double burst = options.api_burst_per_org > 0 ? options.api_burst_per_org : limits.api_burst;
      return org_limiter.Allow(org, clock->NowMs(), rate, burst);
    };
    owns["/api/v1/devices"] = [this](OrgId org, std::int64_t id) { return store->GetDevice(org, id).has_value(); };
    owns["/api/v1/sites"] = [this](OrgId org, std::int64_t id) { return store->GetSite(org, id).has_value(); };
    owns["/api/v1/members"] = [this](OrgId org, std::int64_t id) {
      auto m = store->People().GetMember(org, id);
      return m && !m->removed_at;
    };
    auto token_of_org = [this](OrgId org, std::int64_t id) {
      auto list = store->ListTokens(org);
      return list && std::any_of(list->begin(), list->end(), [&](const TokenRecord& t) { return t.id == id; });
    };
    owns["/api/v1/tokens"] = token_of_org;
    owns["/api/v1/auth/tokens"] = token_of_org;
    owns["/api/v1/channels"] = [this](OrgId org, std::int64_t id) { return store->Notify().GetChannel(org, id).has_value(); };
  }

  // ---- ingest -------------------------------------------------------------------------------

  Response Ingest(Request& req, bool influx, bool v2) {
    auto p = Authenticate(req, influx);
    if (!p) return p.error().code == ErrorCode::kPermissionDenied ? Unauthorized() : FromError(p.error());
    if (p->kind == TokenKind::kUser) {
      return Forbidden("readings are posted with a device (osd_) or gateway (osg_) token");
    }
    const TimestampMs now = clock->NowMs();
    if (!limiter.Allow(p->token_id, now)) {
      metrics->GetCounter("opensense_ingest_throttled_total", "Ingest requests refused by the rate limit.").Inc();
      Response r = Response::Error(429, "rate_limited", "too many requests for this token; retry later");
      r.SetHeader("Retry-After", "1");
      return r;
    }
    ingest::PayloadFormat format = ingest::PayloadFormat::kLineProtocol;
    if (!influx) {
      auto ct = req.Header("Content-Type");
      auto f = ingest::FormatFromContentType(ct ? *ct : std::string_view());
      if (!f) return Response::Error(415, "unsupported_media_type", f.error().message);
      format = *f;
    }
    ingest::ParseOptions po;
    po.gateway = p->kind == TokenKind::kGateway;
    po.now_ms = now;
    po.max_records = options.max_records;
    std::string precision = req.Query("precision").value_or(influx ? "ns" : "ns");
    if (influx && !v2 && precision == "n") precision = "ns";
    if (precision == "h" || precision == "m") {
      return Response::Error(400, "invalid_argument", "precision must be ns, us, ms or s");
    }
    po.lp_precision = precision;
    auto parsed = ingest::Parse(format, req.body, po);
    if (!parsed) {
      metrics->GetCounter("opensense_ingest_documents_refused_total", "Ingest documents that could not be parsed.").Inc();
      return FromError(parsed.error());
    }
    // Resolve devices and build readings.
    std::vector<Reading> readings;
    std::vector<std::size_t> record_index;
    readings.reserve(parsed->records.size());
    record_index.reserve(parsed->records.size());
    std::vector<std::pair<std::size_t, std::string>> rejected;
    for (const auto& e : parsed->errors) rejected.emplace_back(e.index, e.reason);
    // Names that did not resolve in this request (each is looked up once); consecutive records
    // usually name the same device, so the last resolved name is kept too.
    std::unordered_map<std::string, std::string> failed;
    const std::string* last_name = nullptr;
    DeviceId last_device = 0;
    for (auto& rec : parsed->records) {
      DeviceId device = 0;
      if (p->kind == TokenKind::kDevice) {
        device = *p->device;
      } else {
        static const std::string kNone;
        const std::string& name = rec.device ? *rec.device : kNone;
        if (last_name == nullptr || *last_name != name) {
          auto f = failed.find(name);
          if (f != failed.end()) {
            rejected.emplace_back(rec.index, f->second);
            continue;
          }
          auto id = ResolveGatewayDevice(*p, name, now);
          if (!id) {
            rejected.emplace_back(rec.index, id.error().message);
            failed.emplace(name, id.error().message);
            continue;
          }
          last_name = &name;  // stays valid: records are not moved while we read them
          last_device = *id;
        }
        device = last_device;
      }
      readings.push_back(
          Reading{device, std::move(rec.metric), std::move(rec.unit), rec.ts.value_or(now), rec.value});
      record_index.push_back(rec.index);
    }
    std::size_t submitted = readings.size();
    auto result = store->Ingest(p->org, std::move(readings)).get();
    if (!result) return FromError(result.error());
    for (const auto& r : result->rejected) {
      rejected.emplace_back(record_index[r.index], fmt::format("{}: {}", RejectReasonName(r.reason), r.message));
      metrics->GetCounter("opensense_ingest_rejected_total", "Readings rejected, by reason.",
                          {{"reason", std::string(RejectReasonName(r.reason))}}).Inc();
    }
    metrics->GetCounter("opensense_ingest_readings_total", "Readings accepted.").Inc(result->accepted);
    metrics->GetCounter("opensense_ingest_duplicates_total", "Readings that were stored already.").Inc(result->duplicates);
    if (!parsed->errors.empty()) {
      metrics->GetCounter("opensense_ingest_rejected_total", "Readings rejected, by reason.",
                          {{"reason", "invalid_record"}}).Inc(parsed->errors.size());
    }
    (void)submitted;
    if (rejected.empty()) {
      if (influx) return Response{204, {}, {}, {}};
      return Response::Json(200, fmt::format(R"({{"accepted":{},"duplicates":{}}})", result->accepted,
                                             result->duplicates));
    }
    std::stable_sort(rejected.begin(), rejected.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    json body;
    body["error"] = {{"code", "partial_write"},
                     {"message", fmt::format("{} record(s) rejected; the others were stored", rejected.size())}};
    body["accepted"] = result->accepted;
    body["duplicates"] = result->duplicates;
    json list = json::array();
    for (const auto& [index, reason] : rejected) list.push_back({{"index", index}, {"reason", reason}});
    body["rejected"] = std::move(list);
    return Response::Json(400, body.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void ForgetDeviceNames() {
    std::lock_guard lock(names_mu);
    names.clear();
    names_count = 0;
  }

  Result<DeviceId> ResolveGatewayDevice(const auth::Principal& p, const std::string& name,
                                        TimestampMs now) {
    {
      std::shared_lock lock(names_mu);
      const bool fresh = now >= names_since && now - names_since <= kMsPerMinute;
      if (fresh) {
        if (auto site = names.find(*p.site); site != names.end()) {
          if (auto it = site->second.find(name); it != site->second.end()) return it->second;
        }
      }
    }
    auto id = ResolveGatewayDeviceUncached(p, name);
    if (id) {
      std::unique_lock lock(names_mu);
      if (now - names_since > kMsPerMinute || now < names_since || names_count > 1'000'000) {
        names.clear();
        names_count = 0;
        names_since = now;
      }
      if (names[*p.site].insert_or_assign(name, *id).second) ++names_count;
    }
    return id;
  }

  Result<DeviceId> ResolveGatewayDeviceUncached(const auth::Principal& p, const std::string& name) {
    if (name.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "a gateway record must name its device");
    }
    auto in_site = [&](const Device& d) -> Result<DeviceId> {
      if (d.site_id != p.site) {
        return MakeError(ErrorCode::kNotFound, fmt::format("device '{}' does not belong to this gateway's site", name.substr(0, 64)));
      }
      return d.id;
    };
    if (auto id = ParseId(name)) {
      if (auto d = store->GetDevice(p.org, *id)) return in_site(*d);
    }
    if (auto d = store->FindDeviceBySerial(p.org, name)) return in_site(*d);
    OS_ASSIGN_OR_RETURN(Site site, store->GetSite(p.org, *p.site));
    if (!site.auto_register) {
      return MakeError(ErrorCode::kNotFound, fmt::format("unknown device '{}'", name.substr(0, 64)));
    }
    if (name.size() > 128) return MakeError(ErrorCode::kInvalidArgument, "a device name has at most 128 characters");
    auto created = store->CreateDevice({p.org, name, site.id, name});
    if (!created) {
      // Another request may have registered it a moment ago.
      if (auto d = store->FindDeviceBySerial(p.org, name)) return in_site(*d);
      return tl::unexpected(created.error());
    }
    spdlog::info("api: gateway of site {} registered device {} '{}'", site.id, created->id, name);
    return created->id;
  }

  // ---- devices and sites --------------------------------------------------------------------

  Result<Device> DeviceParam(const Request& req, const auth::Principal& p) {
    auto id = ParseId(req.params.at("id"));
    if (!id) return MakeError(ErrorCode::kNotFound, "no such device");
    return store->GetDevice(p.org, *id);
  }

  Result<Site> SiteParam(const Request& req, const auth::Principal& p) {
    auto id = ParseId(req.params.at("id"));
    if (!id) return MakeError(ErrorCode::kNotFound, "no such site");
    return store->GetSite(p.org, *id);
  }

  static Result<std::optional<std::int64_t>> OptionalId(const json& j, const char* key) {
    if (!j.contains(key) || j[key].is_null()) return std::optional<std::int64_t>();
    if (!j[key].is_number_integer()) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' must be an integer id", key));
    }
    return std::optional<std::int64_t>(j[key].get<std::int64_t>());
  }

  static Result<std::optional<std::string>> OptionalString(const json& j, const char* key) {
    if (!j.contains(key) || j[key].is_null()) return std::optional<std::string>();
    if (!j[key].is_string()) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' must be a string", key));
    return std::optional<std::string>(j[key].get<std::string>());
  }

  // The tier table's device limit (decommissioned devices do not count).
  Status WithinDeviceLimit(OrgId org) {
    OS_ASSIGN_OR_RETURN(auto o, store->GetOrganization(org));
    const auto& limits = LimitsOf(o.tier);
    if (!limits.max_devices) return Ok();
    OS_ASSIGN_OR_RETURN(auto list, store->ListDevices(org));
    auto active = std::count_if(list.begin(), list.end(), [](const Device& d) { return !d.decommissioned; });
    if (active >= *limits.max_devices) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       fmt::format("the {} tier allows {} devices; decommission one or upgrade",
                                   TierName(o.tier), *limits.max_devices));
    }
    return Ok();
  }

  Response CreateDevice(Request& req, const auth::Principal& p) {
    auto body = ParseJsonBody(req);
    if (!body) return FromError(body.error());
    auto name = OptionalString(*body, "name");
    auto site = OptionalId(*body, "site");
    auto serial = OptionalString(*body, "serial");
    for (const Status& st : {Status(name ? Ok() : tl::unexpected(name.error())),
                             Status(site ? Ok() : tl::unexpected(site.error())),
                             Status(serial ? Ok() : tl::unexpected(serial.error()))}) {
      if (!st) return FromError(st.error());
    }
    if (!*name) return Response::Error(400, "invalid_argument", "'name' is required");
    if (auto st = WithinDeviceLimit(p.org); !st) return FromError(st.error());
    store::NewDevice nd{p.org, **name, *site, *serial};
    if (auto st = ApplyDeviceProfileJson(*body, &nd.profile); !st) return FromError(st.error());
    auto dev = store->CreateDevice(nd);
    if (!dev) return FromError(dev.error());
    auto token = tokens->IssueDeviceToken(p.org, dev->id);
    if (!token) return FromError(token.error());
    Audit(req, p, "device.create", fmt::format("device:{}", dev->id), nullptr, DeviceJson(*dev));
    json j = DeviceJson(*dev);
    j["token"] = token->token;
    return Response::Json(201, j.dump());
  }

  Response PatchDevice(Request& req, const auth::Principal& p) {
    auto dev = DeviceParam(req, p);
    if (!dev) return FromError(dev.error());
    auto body = ParseJsonBody(req);
    if (!body) return FromError(body.error());
    store::DeviceUpdate up;
    for (auto& [key, value] : body->items()) {
      if (key != "name" && key != "site" && key != "serial" && !IsDeviceProfileKey(key)) {
        return Response::Error(400, "invalid_argument", fmt::format("unknown field '{}'", key.substr(0, 64)));
      }
    }
    if (body->contains("name")) {
      auto n = OptionalString(*body, "name");
      if (!n || !*n) return Response::Error(400, "invalid_argument", "'name' must be a string");
      up.name = **n;
    }
    if (body->contains("site")) {
      auto s = OptionalId(*body, "site");
      if (!s) return FromError(s.error());
      up.site = *s;
    }
    if (body->contains("serial")) {
      auto s = OptionalString(*body, "serial");
      if (!s) return FromError(s.error());
      up.serial = *s;
    }
    DeviceProfile profile = dev->profile;
    if (auto st = ApplyDeviceProfileJson(*body, &profile); !st) return FromError(st.error());
    if (profile != dev->profile) up.profile = profile;
    auto updated = store->UpdateDevice(p.org, dev->id, up);
    ForgetDeviceNames();
    if (!updated) return FromError(updated.error());
    Audit(req, p, "device.update", fmt::format("device:{}", dev->id), DeviceJson(*dev), DeviceJson(*updated));
    return Response::Json(200, DeviceJson(*updated).dump());
  }

  Response DeleteDevice(Request& req, const auth::Principal& p) {
    auto dev = DeviceParam(req, p);
    if (!dev) return FromError(dev.error());
    ForgetDeviceNames();
    if (auto st = tokens->RevokeDeviceTokens(p.org, dev->id); !st) return FromError(st.error());
    if (auto st = store->DecommissionDevice(p.org, dev->id); !st) return FromError(st.error());
    auto after = store->GetDevice(p.org, dev->id);
    if (!after) return FromError(after.error());
    Audit(req, p, "device.decommission", fmt::format("device:{}", dev->id), DeviceJson(*dev), DeviceJson(*after));
    return Response::Json(200, DeviceJson(*after).dump());
  }

  static TimestampMs GraceFrom(const Request& req) {
    json j = json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
    if (j.is_object() && j.contains("grace_seconds") && j["grace_seconds"].is_number_integer()) {
      return j["grace_seconds"].get<std::int64_t>() * kMsPerSecond;
    }
    return 0;
  }

  Response RotateDevice(Request& req, const auth::Principal& p) {
    auto dev = DeviceParam(req, p);
    if (!dev) return FromError(dev.error());
    if (!NestingWithin(req.body, kMaxJsonDepth)) return Response::Error(400, "invalid_argument", "bad body");
    auto token = tokens->RotateDeviceToken(p.org, dev->id, GraceFrom(req));
    if (!token) return FromError(token.error());
    Audit(req, p, "token.rotate", fmt::format("device:{}", dev->id), nullptr,
          json({{"token", token->record.id}, {"grace_seconds", GraceFrom(req) / kMsPerSecond}}));
    return Response::Json(200, json({{"device", dev->id}, {"token", token->token}}).dump());
  }

  // {"device", "metrics": [{"metric", "unit", "t", "v"}], "last_seen"[, "name"]} of one device,
  // appended to `out` (the one writer of this shape, for one device and for all).
  static void AppendLatest(std::string& out, DeviceId device, const std::vector<store::LatestValue>& latest,
                           const std::string* name) {
    out += R"({"device":)";
    AppendInt(out, device);
    out += R"(,"metrics":[)";
    TimestampMs last_seen = 0;
    for (std::size_t i = 0; i < latest.size(); ++i) {
      const auto& l = latest[i];
      if (i > 0) out.push_back(',');
      out += R"({"metric":)";
      out += json(l.metric).dump();
      out += R"(,"unit":)";
      out += json(l.unit).dump();
      out += R"(,"t":)";
      AppendInt(out, l.ts);
      out += R"(,"v":)";
      AppendNumber(out, l.value);
      out.push_back('}');
      last_seen = std::max(last_seen, l.ts);
    }
    out += R"(],"last_seen":)";
    if (last_seen > 0) {
      AppendInt(out, last_seen);
    } else {
      out += "null";
    }
    if (name != nullptr) {
      out += R"(,"name":)";
      out += json(*name).dump();
    }
    out.push_back('}');
  }

  Response Latest(Request& req, const auth::Principal& p) {
    auto dev = DeviceParam(req, p);
    if (!dev) return FromError(dev.error());
    auto latest = store->Latest(p.org, dev->id);
    if (!latest) return FromError(latest.error());
    std::string out;
    AppendLatest(out, dev->id, *latest, nullptr);
    return Response::Json(200, std::move(out));
  }

  // The latest values of every device of the caller's organisation (decommissioned ones too):
  // one store read for the organisation, the answer written in place.
  Response LatestAll(const auth::Principal& p) {
    auto list = store->ListDevices(p.org);
    if (!list) return FromError(list.error());
    auto latest = store->LatestOfOrganization(p.org);
    if (!latest) return FromError(latest.error());
    std::unordered_map<DeviceId, const std::vector<store::LatestValue>*> by_device;
    for (const auto& l : *latest) by_device.emplace(l.device, &l.values);
    static const std::vector<store::LatestValue> kNone;
    std::string out = R"({"devices":[)";
    out.reserve(out.size() + list->size() * 160);
    for (std::size_t i = 0; i < list->size(); ++i) {
      const Device& d = (*list)[i];
      if (i > 0) out.push_back(',');
      auto it = by_device.find(d.id);
      AppendLatest(out, d.id, it == by_device.end() ? kNone : *it->second, &d.name);
    }
    out += "]}";
    return Response::Json(200, std::move(out));
  }

  // The overview's sparklines: hourly means of one metric of every device over the last hours.
  Response Sparklines(Request& req, const auth::Principal& p) {
    const std::string metric = req.Query("metric").value_or("temperature");
    std::int64_t hours = 24;
    if (auto h = req.Query("hours")) {
      auto n = ParseId(*h);
      if (!n || *n > 24 * 31) return Response::Error(400, "invalid_argument", "'hours' is 1-744");
      hours = *n;
    }
    auto list = store->ListDevices(p.org);
    if (!list) return FromError(list.error());
    const TimestampMs now = clock->NowMs();
    std::string out = fmt::format(R"({{"metric":{},"resolution":"1h","from":{},"to":{},"devices":[)",
                                  json(metric).dump(), now - hours * kMsPerHour, now);
    bool first = true;
    for (const auto& d : *list) {
      if (d.decommissioned) continue;
      SeriesQuery q{p.org, d.id, metric, now - hours * kMsPerHour, now, Resolution::k1h};
      auto result = store->QuerySeries(q);
      if (!result) {
        if (result.error().code == ErrorCode::kNotFound) continue;  // no such series
        return FromError(result.error());
      }
      if (!first) out.push_back(',');
      first = false;
      fmt::format_to(std::back_inserter(out), R"({{"device":{},"unit":{},"points":[)", d.id, json(result->unit).dump());
      for (std::size_t i = 0; i < result->points.size(); ++i) {
        const auto& pt = result->points[i];
        if (i > 0) out.push_back(',');
        out.push_back('[');
        AppendInt(out, pt.t);
        out.push_back(',');
        AppendNumber(out, pt.v);
        out.push_back(']');
      }
      out += "]}";
    }
    out += "]}";
    return Response::Json(200, std::move(out));
  }

  Result<SeriesQuery> SeriesQueryFrom(const Request& req, const auth::Principal& p, DeviceId device) {
    SeriesQuery q;
    q.org = p.org;
    q.device = device;
    auto metric = req.Query("metric");
    if (!metric || metric->empty()) return MakeError(ErrorCode::kInvalidArgument, "'metric' is required");
    q.metric = *metric;
    TimestampMs now = clock->NowMs();
    q.to = now;
    if (auto to = req.Query("to")) {
      OS_ASSIGN_OR_RETURN(q.to, ParseTimestamp(*to));
    }
    q.from = q.to - kMsPerDay;
    if (auto from = req.Query("from")) {
      OS_ASSIGN_OR_RETURN(q.from, ParseTimestamp(*from));
    }
    if (auto res = req.Query("resolution")) {
      OS_ASSIGN_OR_RETURN(q.resolution, ParseResolution(*res));
    }
    return q;
  }

  Response Series(Request& req, const auth::Principal& p) {
    auto dev = DeviceParam(req, p);
    if (!dev) return FromError(dev.error());
    auto q = SeriesQueryFrom(req, p, dev->id);
    if (!q) return FromError(q.error());
    // Cached only for an explicit 'to' (one that defaults to now is never asked for again), and
    // only where the store can tell when the device's data changes (read before the query).
    std::optional<std::uint64_t> version;
    std::string key;
    if (options.chart_cache_bytes > 0 && req.Query("to")) version = store->SeriesDataVersion(dev->id);
    if (version) {
      key = ChartCache::KeyOf(q->org, q->device, q->metric, q->from, q->to, q->resolution);
      if (auto hit = chart_cache.Find(key, *version)) {
        chart_hits->Inc();
        return Response::Json(200, std::string(*hit));
      }
      chart_misses->Inc();
    }
    auto result = store->QuerySeries(*q);
    if (!result) return FromError(result.error());
    std::string out = fmt::format(R"({{"device":{},"metric":{},"unit":{},"resolution":"{}","points":[)",
                                  result->device, json(result->metric).dump(), json(result->unit).dump(),
                                  ResolutionName(result->resolution));
    out.reserve(out.size() + result->points.size() * 64);
    bool raw = result->resolution == Resolution::kRaw;
    for (std::size_t i = 0; i < result->points.size(); ++i) {
      const auto& pt = result->points[i];
      if (i > 0) out.push_back(',');
      out += R"({"t":)";
      AppendInt(out, pt.t);
      out += R"(,"v":)";
      AppendNumber(out, pt.v);
      if (!raw) {
        out += R"(,"min":)";
        AppendNumber(out, pt.min);
        out += R"(,"max":)";
        AppendNumber(out, pt.max);
        out += R"(,"count":)";
        AppendInt(out, pt.count);
      }
      out.push_back('}');
    }
    out += "]}";
    if (version) {
      auto body = std::make_shared<const std::string>(std::move(out));
      chart_cache.Put(key, *version, body);
      chart_bytes->Set(static_cast<double>(chart_cache.bytes()));
      return Response::Json(200, std::string(*body));
    }
    return Response::Json(200, std::move(out));
  }

  Response SeriesCsv(Request& req, const auth::Principal& p) {
    auto dev = DeviceParam(req, p);
    if (!dev) return FromError(dev.error());
    auto q = SeriesQueryFrom(req, p, dev->id);
    if (!q) return FromError(q.error());
    auto org = store->GetOrganization(p.org);
    if (!org) return FromError(org.error());
    auto zone = TimeZone::Load(req.Query("tz").value_or(org->time_zone));
    if (!zone) return FromError(zone.error());
    auto result = store->QuerySeries(*q);
    if (!result) return FromError(result.error());
    auto shared = std::make_shared<SeriesResult>(std::move(*result));
    auto next = std::make_shared<std::size_t>(0);
    auto header_done = std::make_shared<bool>(false);
    TimeZone tz = *zone;
    Response r;
    r.status = 200;
    r.SetHeader("Content-Type", "text/csv; charset=utf-8");
    r.SetHeader("Content-Disposition",
                fmt::format("attachment; filename=\"device-{}-{}.csv\"", dev->id, result->metric.empty() ? "series" : shared->metric));
    r.stream = [shared, next, header_done, tz](std::string& chunk) {
      if (!*header_done) {
        chunk += fmt::format("time,{},min,max,count,unit\n", shared->metric);
        *header_done = true;
      }
      std::size_t end = std::min(shared->points.size(), *next + 2000);
      for (; *next < end; ++*next) {
        const auto& pt = shared->points[*next];
        chunk += fmt::format("{},{},{},{},{},{}\n", tz.FormatLocal(pt.t, "%Y-%m-%dT%H:%M:%E3S%Ez"), Num(pt.v),
                             Num(pt.min), Num(pt.max), pt.count, shared->unit);
      }
      return *next < shared->points.size();
    };
    return r;
  }

  Response CreateSite(Request& req, const auth::Principal& p) {
    auto body = ParseJsonBody(req);
    if (!body) return FromError(body.error());
    auto name = OptionalString(*body, "name");
    if (!name || !*name) return Response::Error(400, "invalid_argument", "'name' is required");
    auto site = store->CreateSite(p.org, **name);
    if (!site) return FromError(site.error());
    if (body->contains("auto_register") && (*body)["auto_register"].is_boolean()) {
      site = store->UpdateSite(p.org, site->id, std::nullopt, (*body)["auto_register"].get<bool>());
      if (!site) return FromError(site.error());
    }
    Audit(req, p, "site.create", fmt::format("site:{}", site->id), nullptr, SiteJson(*site));
    return Response::Json(201, SiteJson(*site).dump());
  }

  Response PatchSite(Request& req, const auth::Principal& p) {
    auto site = SiteParam(req, p);
    if (!site) return FromError(site.error());
    auto body = ParseJsonBody(req);
    if (!body) return FromError(body.error());
    std::optional<std::string> name;
    std::optional<bool> auto_register;
    for (auto& [key, value] : body->items()) {
      if (key == "name" && value.is_string()) name = value.get<std::string>();
      else if (key == "auto_register" && value.is_boolean()) auto_register = value.get<bool>();
      else return Response::Error(400, "invalid_argument", fmt::format("bad field '{}'", key.substr(0, 64)));
    }
    auto updated = store->UpdateSite(p.org, site->id, name, auto_register);
    if (!updated) return FromError(updated.error());
    Audit(req, p, "site.update", fmt::format("site:{}", site->id), SiteJson(*site), SiteJson(*updated));
    return Response::Json(200, SiteJson(*updated).dump());
  }

  Response RotateSite(Request& req, const auth::Principal& p) {
    auto site = SiteParam(req, p);
    if (!site) return FromError(site.error());
    if (!NestingWithin(req.body, kMaxJsonDepth)) return Response::Error(400, "invalid_argument", "bad body");
    auto token = tokens->RotateGatewayToken(p.org, site->id, GraceFrom(req));
    if (!token) return FromError(token.error());
    Audit(req, p, "token.rotate", fmt::format("site:{}", site->id), nullptr,
          json({{"token", token->record.id}, {"grace_seconds", GraceFrom(req) / kMsPerSecond}}));
    return Response::Json(200, json({{"site", site->id}, {"token", token->token}}).dump());
  }

  Response ListTokens(Request&, const auth::Principal& p) {
    auto list = store->ListTokens(p.org);
    if (!list) return FromError(list.error());
    json arr = json::array();
    TimestampMs now = clock->NowMs();
    for (const auto& t : *list) {
      json j = {{"id", t.id}, {"kind", TokenKindName(t.kind)}, {"label", t.label},
                {"created_at", FormatRfc3339(t.created_at)},
                {"active", !t.expires_at || now < *t.expires_at}};
      j["device"] = t.device ? json(*t.device) : json(nullptr);
      j["site"] = t.site ? json(*t.site) : json(nullptr);
      j["user"] = t.user ? json(*t.user) : json(nullptr);
      j["expires_at"] = t.expires_at ? json(FormatRfc3339(*t.expires_at)) : json(nullptr);
      j["last_used_at"] = t.last_used_at ? json(FormatRfc3339(*t.last_used_at)) : json(nullptr);
      arr.push_back(std::move(j));
    }
    return Response::Json(200, arr.dump());
  }

  Response RevokeToken(Request& req, const auth::Principal& p) {
    auto id = ParseId(req.params.at("id"));
    if (!id) return Response::Error(404, "not_found", "no such token");
    if (auto st = tokens->Revoke(p.org, *id); !st) return FromError(st.error());
    Audit(req, p, "token.revoke", fmt::format("token:{}", *id), json({{"active", true}}), json({{"active", false}}));
    return Response::Json(200, json({{"id", *id}, {"active", false}}).dump());
  }
};

Api::Api(store::Store* store, auth::TokenService* tokens, MetricsRegistry* metrics, const Clock* clock,
         ApiOptions options)
    : impl_(std::make_unique<Impl>(store, tokens, metrics, clock, options)) {}

Api::~Api() = default;

std::vector<std::pair<std::string, std::string>> SecurityHeaders() {
  return {{"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "no-referrer"},
          {"X-Frame-Options", "DENY"},
          {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
          {"Cross-Origin-Resource-Policy", "same-origin"},
          {"Cache-Control", "no-store"}};
}

const std::vector<RouteInfo>& Api::routes() const { return impl_->routes; }

void Api::SetPublicUrl(std::string url) {
  impl_->options.login.public_url = url;
  impl_->people_service->SetPublicUrl(std::move(url));
}

http::Router Api::BuildRouter() {
  Impl* m = impl_.get();
  m->routes.clear();
  http::Router r;
  using P = const auth::Principal&;

  m->Route(r, "GET", "/healthz", "The process is up", [](Request&) {
    return Response::Json(200, R"({"status":"ok"})");
  });
  m->Route(r, "GET", "/readyz", "The store is writable and the writer keeps up", [m](Request&) {
    auto st = m->store->Ready();
    if (!st) return Response::Error(503, "not_ready", st.error().message);
    return Response::Json(200, R"({"status":"ready"})");
  });
  m->Route(r, "GET", "/metrics", "Prometheus metrics", [m](Request&) {
    return Response::Text(200, m->metrics->RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8");
  });

  m->Route(r, "POST", "/api/v1/ingest", "Post readings (SenML, OpenSense JSON, line protocol)",
           [m](Request& req) { return m->Ingest(req, false, false); });
  m->Route(r, "POST", "/write", "InfluxDB 1.x write endpoint (line protocol)",
           [m](Request& req) { return m->Ingest(req, true, false); });
  m->Route(r, "POST", "/api/v2/write", "InfluxDB 2.x write endpoint (line protocol)",
           [m](Request& req) { return m->Ingest(req, true, true); });

  m->Route(r, "GET", "/api/v1/devices", "List devices", m->User(Role::kViewer, [m](Request&, P p) {
    auto list = m->store->ListDevices(p.org);
    if (!list) return FromError(list.error());
    json arr = json::array();
    for (const auto& d : *list) arr.push_back(DeviceJson(d));
    return Response::Json(200, arr.dump());
  }));
  m->Route(r, "POST", "/api/v1/devices", "Register a device (its token is in the answer, once)",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->CreateDevice(req, p); }));
  m->Route(r, "GET", "/api/v1/devices/{id}", "One device", m->User(Role::kViewer, [m](Request& req, P p) {
    auto d = m->DeviceParam(req, p);
    return d ? Response::Json(200, DeviceJson(*d).dump()) : FromError(d.error());
  }));
  m->Route(r, "PATCH", "/api/v1/devices/{id}", "Rename, move or re-serial a device",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->PatchDevice(req, p); }));
  m->Route(r, "DELETE", "/api/v1/devices/{id}", "Decommission a device (history stays)",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->DeleteDevice(req, p); }));
  m->Route(r, "POST", "/api/v1/devices/{id}/token", "Rotate a device's ingest token",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->RotateDevice(req, p); }));
  m->Route(r, "GET", "/api/v1/devices/{id}/latest", "Last value per metric and last-seen time",
           m->User(Role::kViewer, [m](Request& req, P p) { return m->Latest(req, p); }));
  m->Route(r, "GET", "/api/v1/latest", "Last value per metric of every device",
           m->User(Role::kViewer, [m](Request&, P p) { return m->LatestAll(p); }));
  m->Route(r, "GET", "/api/v1/sparklines", "Hourly means of a metric of every device over the last hours (the dashboard's overview)",
           m->User(Role::kViewer, [m](Request& req, P p) { return m->Sparklines(req, p); }));
  m->Route(r, "GET", "/api/v1/events", "Live updates of your organisation (Server-Sent Events: readings, alert changes)",
           m->User(Role::kViewer, [m](Request&, P p) {
             auto stream = m->events->Open(p.org);
             if (!stream) {
               Response busy = Response::Error(503, "unavailable", stream.error().message);
               busy.SetHeader("Retry-After", "10");
               return busy;
             }
             return std::move(*stream);
           }));
  m->Route(r, "GET", "/api/v1/devices/{id}/series", "A series at raw, 5m, 1h, 1d or auto resolution",
           m->User(Role::kViewer, [m](Request& req, P p) { return m->Series(req, p); }));
  m->Route(r, "GET", "/api/v1/devices/{id}/series.csv", "The same as CSV, in the organisation's time zone",
           m->User(Role::kViewer, [m](Request& req, P p) { return m->SeriesCsv(req, p); }));
  ReportRouteOptions report_options;
  report_options.max_running = m->options.reports_running;
  report_options.max_waiting = m->options.reports_waiting;
  report_options.max_wait = m->options.reports_max_wait;
  RegisterReportRoutes(*m, r, std::move(report_options));  // compliance PDF, daily CSV, readings CSV (api/reports_routes.cpp)

  internal::RegisterAlertRoutes(*m, r, m->options.alerts);  // api/alerts_routes.cpp
  m->Route(r, "GET", "/api/v1/sites", "List sites", m->User(Role::kViewer, [m](Request&, P p) {
    auto list = m->store->ListSites(p.org);
    if (!list) return FromError(list.error());
    json arr = json::array();
    for (const auto& s : *list) arr.push_back(SiteJson(s));
    return Response::Json(200, arr.dump());
  }));
  m->Route(r, "POST", "/api/v1/sites", "Create a site",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->CreateSite(req, p); }));
  m->Route(r, "GET", "/api/v1/sites/{id}", "One site", m->User(Role::kViewer, [m](Request& req, P p) {
    auto s = m->SiteParam(req, p);
    return s ? Response::Json(200, SiteJson(*s).dump()) : FromError(s.error());
  }));
  m->Route(r, "PATCH", "/api/v1/sites/{id}", "Rename a site or switch device auto-registration",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->PatchSite(req, p); }));
  m->Route(r, "DELETE", "/api/v1/sites/{id}", "Delete an empty site",
           m->User(Role::kAdmin, [m](Request& req, P p) {
             auto s = m->SiteParam(req, p);
             if (!s) return FromError(s.error());
             auto st = m->store->DeleteSite(p.org, s->id);
             if (st) m->Audit(req, p, "site.delete", fmt::format("site:{}", s->id), SiteJson(*s), nullptr);
             return st ? Response::Json(200, json({{"id", s->id}, {"deleted", true}}).dump()) : FromError(st.error());
           }));
  m->Route(r, "POST", "/api/v1/sites/{id}/token", "Issue (rotate) the site's gateway token",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->RotateSite(req, p); }));

  m->Route(r, "GET", "/api/v1/tokens", "List the organisation's tokens (never their secrets)",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->ListTokens(req, p); }));
  m->Route(r, "DELETE", "/api/v1/tokens/{id}", "Revoke a token",
           m->User(Role::kAdmin, [m](Request& req, P p) { return m->RevokeToken(req, p); }));

  RegisterChannelRoutes(*m, r);

  // Broker hooks (api/mqtt_hooks.hpp): the hook secret, never a user token.
  m->Route(r, "POST", "/internal/mqtt/auth", "Broker login check (EMQX 5 HTTP authn; the Mosquitto plugin)",
           [m](Request& req) { return m->mqtt_hooks.Auth(req); });
  m->Route(r, "POST", "/internal/mqtt/acl", "Broker publish/subscribe check (EMQX 5 HTTP authz)",
           [m](Request& req) { return m->mqtt_hooks.Acl(req); });
  m->Route(r, "GET", "/internal/mqtt/revoked", "Device and gateway tokens that stopped working since a time",
           [m](Request& req) { return m->mqtt_hooks.Revoked(req); });

  RegisterPeopleRoutes(*m, r);
  return r;
}

void Api::OnComplete(const http::Request& req, const std::string& route, int status,
                     std::chrono::microseconds duration) {
  const std::string route_label = route.empty() ? "unmatched" : route;
  impl_->metrics->GetHistogram("opensense_http_request_duration_seconds", "HTTP request latency.",
                               {{"route", route_label}, {"method", req.method}})
      .Observe(static_cast<double>(duration.count()) / 1e6);
  impl_->metrics->GetCounter("opensense_http_requests_total", "HTTP requests by route and status.",
                             {{"route", route_label}, {"status", std::to_string(status)}})
      .Inc();
  spdlog::debug("http: {} {} -> {} in {} us", req.method, route_label, status, duration.count());
  if (route == "/healthz" || route == "/readyz" || route == "/metrics") return;
  if (route.rfind("/internal/", 0) == 0) return;  // broker hooks: counted above, not API requests
  store::ApiRequestLog row;
  row.at = impl_->clock->NowMs();
  auto org = req.params.find("__org");
  if (org != req.params.end()) row.org = ParseId(org->second);
  auto principal = req.params.find("__principal");
  if (principal != req.params.end()) row.principal = principal->second;
  row.method = req.method.substr(0, 16);
  row.request_id = req.id;
  row.route = route_label;
  row.status = status;
  row.duration_us = duration.count();
  row.client = ClientAddress(req.remote_address, req.Header("X-Forwarded-For"),
                             impl_->options.trusted_proxies);
  impl_->store->LogRequests({std::move(row)});
}

}  // namespace opensense::api
