#include "api/alerts_routes.hpp"

#include <fmt/format.h>

#include "alerts/service.hpp"
#include "core/time_zone.hpp"

namespace opensense::api::internal {

using http::Request;
using http::Response;

namespace {

json RuleJson(const alerts::RuleView& v) {
  json j = alerts::RuleToJson(v.rule);
  j["id"] = v.rule.id;
  j["created_at"] = FormatRfc3339(v.rule.created_at);
  j["updated_at"] = FormatRfc3339(v.updated_at);
  return j;
}

json OptTime(const std::optional<TimestampMs>& t) { return t ? json(FormatRfc3339(*t)) : json(nullptr); }

json AlertJson(const store::AlertRecord& a) {
  return {{"id", a.id},
          {"rule", a.rule_id},
          {"rule_name", a.rule_name},
          {"device", a.device},
          {"kind", a.kind},
          {"metric", a.metric},
          {"severity", a.severity},
          {"state", a.state},
          {"late", a.late},
          {"started_at", FormatRfc3339(a.started_at)},
          {"fired_at", FormatRfc3339(a.fired_at)},
          {"raised_at", FormatRfc3339(a.raised_at)},
          {"value", a.trigger_value},
          {"peak", a.peak_value ? json(*a.peak_value) : json(nullptr)},
          {"peak_at", OptTime(a.peak_at)},
          {"out_of_range_seconds", a.out_of_range_ms / 1000},
          {"duration_seconds",
           a.resolved_at ? json((*a.resolved_at - a.started_at) / 1000) : json(nullptr)},
          {"escalation_level", a.escalation_level},
          {"acknowledged", a.acknowledged_at.has_value()},
          {"acknowledged_at", OptTime(a.acknowledged_at)},
          {"acknowledged_by", a.acknowledged_by},
          {"ack_note", a.ack_note},
          {"resolved_at", OptTime(a.resolved_at)},
          {"resolved_by", a.resolved_by},
          {"resolve_note", a.resolve_note},
          // Resolved without anyone acknowledging it: kept for the record and the reports.
          {"unacknowledged", a.state == "resolved" && !a.acknowledged_at}};
}

std::string Actor(const auth::Principal& p) {
  return p.user ? fmt::format("user:{}", *p.user) : fmt::format("token:{}", p.token_id);
}

Response NoService() {
  return Response::Error(503, "unavailable",
                         "alert evaluation does not run in this process; use the process with the alerts role");
}

Result<std::int64_t> IdParam(const Request& req, std::string_view what) {
  auto id = ParseId(req.params.at("id"));
  if (!id) return MakeError(ErrorCode::kNotFound, fmt::format("no such {}", what));
  return *id;
}

// The "note" of an ack/resolve body ({} or {"note": "..."}).
Result<std::string> Note(const Request& req) {
  if (req.body.empty()) return std::string();
  OS_ASSIGN_OR_RETURN(json body, ParseJsonBody(req));
  for (const auto& [k, v] : body.items()) {
    if (k != "note") return MakeError(ErrorCode::kInvalidArgument, fmt::format("unknown field '{}' (allowed: note)", k.substr(0, 64)));
  }
  if (!body.contains("note")) return std::string();
  if (!body["note"].is_string()) return MakeError(ErrorCode::kInvalidArgument, "note must be a string");
  return body["note"].get<std::string>();
}

Result<store::AlertFilter> Filter(const Request& req) {
  store::AlertFilter f;
  if (auto s = req.Query("state")) {
    if (*s != "firing" && *s != "acknowledged" && *s != "resolved" && *s != "open") {
      return MakeError(ErrorCode::kInvalidArgument, "state must be firing, acknowledged, resolved or open");
    }
    f.state = *s;
  }
  if (auto d = req.Query("device")) {
    auto id = ParseId(*d);
    if (!id) return MakeError(ErrorCode::kInvalidArgument, "device must be a device id");
    f.device = *id;
  }
  if (auto d = req.Query("rule")) {
    auto id = ParseId(*d);
    if (!id) return MakeError(ErrorCode::kInvalidArgument, "rule must be a rule id");
    f.rule_id = *id;
  }
  if (auto from = req.Query("from")) { OS_ASSIGN_OR_RETURN(f.from, ParseTimestamp(*from)); }
  if (auto to = req.Query("to")) { OS_ASSIGN_OR_RETURN(f.to, ParseTimestamp(*to)); }
  if (auto limit = req.Query("limit")) {
    auto n = ParseId(*limit);
    if (!n || *n > 1000) return MakeError(ErrorCode::kInvalidArgument, "limit must be 1..1000");
    f.limit = static_cast<int>(*n);
  }
  return f;
}

}  // namespace

void RegisterAlertRoutes(ApiContext& ctx, http::Router& r, alerts::AlertService* service) {
  ApiContext* m = &ctx;
  using P = const auth::Principal&;
  // Another organisation's rule or alert is 404 whatever the caller's role.
  ctx.owns["/api/v1/alert-rules"] = [m](OrgId org, std::int64_t id) {
    return m->store->Alerts().GetRule(org, id).has_value();
  };
  ctx.owns["/api/v1/alerts"] = [m](OrgId org, std::int64_t id) {
    return m->store->Alerts().GetAlert(org, id).has_value();
  };
  auto rules_of = [m, service](OrgId org) -> Result<std::vector<alerts::RuleView>> {
    if (service != nullptr) return service->ListRules(org);
    OS_ASSIGN_OR_RETURN(auto stored, m->store->Alerts().ListRules(org));
    std::vector<alerts::RuleView> out;
    for (const auto& s : stored) {
      auto rule = alerts::ParseRule(s.definition);
      if (!rule) continue;
      rule->id = s.id;
      rule->org = org;
      rule->created_at = s.created_at;
      out.push_back({std::move(*rule), s.updated_at});
    }
    return out;
  };

  m->Route(r, "GET", "/api/v1/alert-rules", "List alert rules", m->User(Role::kViewer, [rules_of](Request&, P p) {
    auto list = rules_of(p.org);
    if (!list) return FromError(list.error());
    json arr = json::array();
    for (const auto& v : *list) arr.push_back(RuleJson(v));
    return Response::Json(200, arr.dump());
  }));
  m->Route(r, "POST", "/api/v1/alert-rules", "Create an alert rule (validated)",
           m->User(Role::kAdmin, [m, service](Request& req, P p) {
             if (service == nullptr) return NoService();
             auto body = ParseJsonBody(req);
             if (!body) return FromError(body.error());
             auto v = service->CreateRule(p.org, req.body);
             if (!v) return FromError(v.error());
             json created = RuleJson(*v);
             m->Audit(req, p, "rule.create", fmt::format("rule:{}", v->rule.id), nullptr, created);
             return Response::Json(201, created.dump());
           }));
  m->Route(r, "GET", "/api/v1/alert-rules/{id}", "One alert rule", m->User(Role::kViewer, [rules_of](Request& req, P p) {
    auto id = IdParam(req, "alert rule");
    if (!id) return FromError(id.error());
    auto list = rules_of(p.org);
    if (!list) return FromError(list.error());
    for (const auto& v : *list) {
      if (v.rule.id == *id) return Response::Json(200, RuleJson(v).dump());
    }
    return Response::Error(404, "not_found", "no such alert rule");
  }));
  m->Route(r, "PATCH", "/api/v1/alert-rules/{id}", "Change an alert rule (JSON merge patch, validated)",
           m->User(Role::kAdmin, [m, service, rules_of](Request& req, P p) {
             if (service == nullptr) return NoService();
             auto id = IdParam(req, "alert rule");
             if (!id) return FromError(id.error());
             auto body = ParseJsonBody(req);
             if (!body) return FromError(body.error());
             json before = nullptr;
             if (auto list = rules_of(p.org)) {
               for (const auto& r : *list) if (r.rule.id == *id) before = RuleJson(r);
             }
             auto v = service->UpdateRule(p.org, *id, req.body);
             if (!v) return FromError(v.error());
             json after = RuleJson(*v);
             m->Audit(req, p, "rule.update", fmt::format("rule:{}", *id), before, after);
             return Response::Json(200, after.dump());
           }));
  m->Route(r, "DELETE", "/api/v1/alert-rules/{id}", "Delete an alert rule (its alerts stay; open ones resolve)",
           m->User(Role::kAdmin, [m, service, rules_of](Request& req, P p) {
             if (service == nullptr) return NoService();
             auto id = IdParam(req, "alert rule");
             if (!id) return FromError(id.error());
             json before = nullptr;
             if (auto list = rules_of(p.org)) {
               for (const auto& r : *list) if (r.rule.id == *id) before = RuleJson(r);
             }
             auto st = service->DeleteRule(p.org, *id);
             if (!st) return FromError(st.error());
             m->Audit(req, p, "rule.delete", fmt::format("rule:{}", *id), before, nullptr);
             return Response::Json(200, json({{"id", *id}, {"deleted", true}}).dump());
           }));

  m->Route(r, "GET", "/api/v1/alerts", "List alerts (state, device, rule, from, to, limit)",
           m->User(Role::kViewer, [m](Request& req, P p) {
             auto f = Filter(req);
             if (!f) return FromError(f.error());
             auto list = m->store->Alerts().ListAlerts(p.org, *f);
             if (!list) return FromError(list.error());
             json arr = json::array();
             for (const auto& a : *list) arr.push_back(AlertJson(a));
             return Response::Json(200, arr.dump());
           }));
  m->Route(r, "GET", "/api/v1/alerts/{id}", "One alert with its events", m->User(Role::kViewer, [m](Request& req, P p) {
    auto id = IdParam(req, "alert");
    if (!id) return FromError(id.error());
    auto a = m->store->Alerts().GetAlert(p.org, *id);
    if (!a) return FromError(a.error());
    auto events = m->store->Alerts().ListEvents(p.org, *id);
    if (!events) return FromError(events.error());
    json j = AlertJson(*a);
    json arr = json::array();
    for (const auto& e : *events) {
      json ev = {{"id", e.id}, {"kind", e.kind}, {"at", FormatRfc3339(e.at)}, {"actor", e.actor}, {"note", e.note}};
      json details = json::parse(e.details.empty() ? "{}" : e.details, nullptr, false);
      ev["details"] = details.is_discarded() ? json::object() : details;
      arr.push_back(std::move(ev));
    }
    j["events"] = arr;
    return Response::Json(200, j.dump());
  }));
  // Acknowledge or resolve: another organisation's alert is 404 before the note is looked at;
  // the change is an audit event with the alert before and after.
  auto transition = [m, service](Request& req, P p, bool resolve) -> Response {
    if (service == nullptr) return NoService();
    auto id = IdParam(req, "alert");
    if (!id) return FromError(id.error());
    auto before = m->store->Alerts().GetAlert(p.org, *id);
    if (!before) return FromError(before.error());
    auto note = Note(req);
    if (!note) return FromError(note.error());
    auto a = resolve ? service->Resolve(p.org, *id, Actor(p), *note)
                     : service->Acknowledge(p.org, *id, Actor(p), *note);
    if (!a) return FromError(a.error());
    json after = AlertJson(*a);
    m->Audit(req, p, resolve ? "alert.resolve" : "alert.ack", fmt::format("alert:{}", *id), AlertJson(*before),
             after);
    return Response::Json(200, after.dump());
  };
  m->Route(r, "POST", "/api/v1/alerts/{id}/ack", "Acknowledge an alert (note: the corrective action)",
           m->User(Role::kMember, [transition](Request& req, P p) { return transition(req, p, false); }));
  m->Route(r, "POST", "/api/v1/alerts/{id}/resolve", "Resolve an alert by hand (admin, with a note)",
           m->User(Role::kAdmin, [transition](Request& req, P p) { return transition(req, p, true); }));
}

}  // namespace opensense::api::internal
