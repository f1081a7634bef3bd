// Login (magic links), sessions, own API tokens, the organisation (tier, limits, usage,
// retention), members and the audit trail. docs/api.md and docs/security.md describe them.
#include <fmt/format.h>

#include <algorithm>

#include "api/api_internal.hpp"
#include "core/tiers.hpp"
#include "core/time_zone.hpp"

namespace opensense::api {

using http::Request;
using http::Response;
using internal::ApiContext;
using internal::FromError;
using internal::ParseId;
using internal::ParseJsonBody;
using json = nlohmann::json;
using P = const auth::Principal&;

namespace {

constexpr std::size_t kMaxFormBody = 4096;

json OptTime(const std::optional<TimestampMs>& t) { return t ? json(FormatRfc3339(*t)) : json(nullptr); }

json MemberJson(const store::Member& m) {
  return {{"id", m.id}, {"email", m.email}, {"role", RoleName(m.role)}, {"created_at", FormatRfc3339(m.created_at)}};
}

json TokenJson(const TokenRecord& t, TimestampMs now) {
  return {{"id", t.id},
          {"label", t.label},
          {"role", RoleName(t.role)},
          {"created_at", FormatRfc3339(t.created_at)},
          {"expires_at", OptTime(t.expires_at)},
          {"last_used_at", OptTime(t.last_used_at)},
          {"active", !t.expires_at || now < *t.expires_at}};
}

// Fields of a JSON body or an application/x-www-form-urlencoded one (the confirmation page).
Result<json> BodyFields(const Request& req) {
  auto ct = req.Header("Content-Type");
  if (ct && ct->rfind("application/x-www-form-urlencoded", 0) == 0) {
    if (req.body.size() > kMaxFormBody) return MakeError(ErrorCode::kInvalidArgument, "the form is too large");
    auto parsed = Request::FromTarget("POST", "/?" + req.body);
    if (!parsed) return MakeError(ErrorCode::kInvalidArgument, "malformed form body");
    json j = json::object();
    for (const auto& [k, v] : parsed->query) {
      if (!j.contains(k)) j[k] = v;
    }
    return j;
  }
  return ParseJsonBody(req);
}

std::string StringField(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool IsForm(const Request& req) {
  auto ct = req.Header("Content-Type");
  return ct && ct->rfind("application/x-www-form-urlencoded", 0) == 0;
}

// An HTML page with its own Content-Security-Policy: no script at all, a form may post only to
// this origin. The link's token is in the address bar, so the referrer is the origin only
// (strict-origin). Not no-referrer: with it browsers send `Origin: null` on the button's POST,
// which the login CSRF check (Login) refuses, so the link could not be used in a browser.
Response Page(int status, std::string_view title, std::string_view body_html) {
  Response r = Response::Text(status,
                              fmt::format("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                                          "<meta name=\"viewport\" content=\"width=device-width\">"
                                          "<title>{}</title></head><body>{}</body></html>",
                                          title, body_html),
                              "text/html; charset=utf-8");
  r.SetHeader("Content-Security-Policy",
              "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  r.SetHeader("Referrer-Policy", "strict-origin");
  r.SetHeader("Cache-Control", "no-store");
  return r;
}

bool Base62(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

json SessionJson(ApiContext& ctx, P p, const std::vector<store::Member>& memberships, const std::string& secret) {
  json orgs = json::array();
  for (const auto& m : memberships) {
    auto o = ctx.store->GetOrganization(m.org);
    orgs.push_back({{"org", m.org}, {"name", o ? o->name : std::string()}, {"role", RoleName(m.role)}});
  }
  json j = {{"email", p.email}, {"org", p.org}, {"role", RoleName(p.role)}, {"user", p.user.value_or(0)},
            {"organisations", orgs}, {"via", p.session ? "session" : "token"}};
  j["csrf_token"] = secret.empty() ? json(nullptr) : json(people::CsrfToken(secret));
  return j;
}

Response Accepted() {
  // The same answer whatever the address (and whether or not it is a member).
  return Response::Json(202, json({{"status", "queued"},
                                   {"message", "if this address may sign in, a link is on its way; it works "
                                               "once, within 15 minutes"}}).dump());
}

std::optional<std::string> PresentedSession(ApiContext& ctx, const Request& req) {
  auto cookie = req.Header("Cookie");
  if (!cookie) return std::nullopt;
  return people::SessionFromCookieHeader(ctx.people->options(), *cookie);
}

Response Login(ApiContext& ctx, Request& req) {
  const auto& lo = ctx.people->options();
  // Login CSRF: a browser posting the form from another site is refused.
  if (auto origin = req.Header("Origin"); origin && !people::SameOrigin(lo, origin, std::nullopt)) {
    return Response::Error(403, "csrf", "cross-origin request refused");
  }
  auto fields = BodyFields(req);
  if (!fields) return FromError(fields.error());
  const std::string token = StringField(*fields, "token");
  const std::string email = StringField(*fields, "email");
  auto previous = PresentedSession(ctx, req);
  auto login = ctx.people->CompleteLogin(token, email, ctx.Client(req),
                                         previous ? std::optional<std::string_view>(*previous) : std::nullopt);
  if (!login) {
    const bool form = IsForm(req);
    std::string message = login.error().code == ErrorCode::kNotFound
                              ? "this link is unknown, used or expired; ask for a new one"
                              : login.error().message;
    if (login.error().code == ErrorCode::kInternal || login.error().code == ErrorCode::kUnavailable) {
      return FromError(login.error());
    }
    if (form) return Page(400, "Sign-in failed", fmt::format("<h1>Sign-in failed</h1><p>{}</p>", message));
    return Response::Error(login.error().code == ErrorCode::kNotFound ? 400 : 403,
                           login.error().code == ErrorCode::kNotFound ? "invalid_link" : "no_organisation", message);
  }
  Response r;
  if (IsForm(req)) {
    std::string base = lo.public_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    r = Response::Text(303, "signed in\n", "text/plain; charset=utf-8");
    r.SetHeader("Location", base + "/");
  } else {
    auth::Principal p;
    p.org = login->member.org;
    p.user = login->member.id;
    p.role = login->member.role;
    p.session = login->session.id;
    p.email = login->member.email;
    r = Response::Json(200, SessionJson(ctx, p, login->memberships, login->secret).dump());
  }
  r.SetHeader("Set-Cookie", people::SessionCookie(lo, login->secret));
  return r;
}

Response ConfirmationPage(ApiContext& ctx, Request& req) {
  // Reads only: a mail scanner that fetches the link neither uses nor burns it.
  std::string token = req.Query("token").value_or("");
  if (!Base62(token)) {
    return Page(400, "Sign-in link", "<h1>This sign-in link is incomplete</h1><p>Open the whole link from the mail, or ask for a new one.</p>");
  }
  auto live = ctx.people->LinkLive(token);
  if (!live) return FromError(live.error());
  if (!*live) {
    return Page(410, "Sign-in link", "<h1>This sign-in link is used or expired</h1><p>Ask for a new one.</p>");
  }
  return Page(200, "Sign in to OpenSense",
              fmt::format("<h1>Sign in to OpenSense</h1><form method=\"post\" "
                          "action=\"/api/v1/auth/magic-link/complete\"><input type=\"hidden\" name=\"token\" "
                          "value=\"{}\"><button type=\"submit\">Sign in</button></form>",
                          token));
}

Response OwnToken(ApiContext& ctx, Request& req, P p, TokenRecord* out) {
  auto id = ParseId(req.params.at("id"));
  auto list = ctx.store->ListTokens(p.org);
  if (!list) return FromError(list.error());
  for (const auto& t : *list) {
    if (id && t.id == *id && t.kind == TokenKind::kUser && t.user == p.user) {
      *out = t;
      return Response{};
    }
  }
  return Response::Error(404, "not_found", "no such token of yours");
}

Response CreateToken(ApiContext& ctx, Request& req, P p) {
  auto body = ParseJsonBody(req);
  if (!body) return FromError(body.error());
  std::string label;
  Role role = p.role;
  std::optional<std::int64_t> days;
  for (auto& [key, value] : body->items()) {
    if (key == "label" && value.is_string() && value.get<std::string>().size() <= 100) {
      label = value.get<std::string>();
    } else if (key == "role" && value.is_string()) {
      auto r = ParseRole(value.get<std::string>());
      if (!r) return FromError(r.error());
      role = *r;
    } else if (key == "expires_in_days" && value.is_number_integer() && value.get<std::int64_t>() > 0 &&
               value.get<std::int64_t>() <= 3650) {
      days = value.get<std::int64_t>();
    } else {
      return Response::Error(400, "invalid_argument",
                             fmt::format("bad field '{}' (label: text, role: viewer..owner, expires_in_days: 1-3650)",
                                         key.substr(0, 64)));
    }
  }
  if (role > p.role) {
    return Response::Error(400, "invalid_argument",
                           fmt::format("a token cannot hold more than your role ({})", RoleName(p.role)));
  }
  auto issued = ctx.tokens->IssueUserToken(p.org, p.user.value_or(0), role, label);
  if (!issued) return FromError(issued.error());
  const TimestampMs now = ctx.clock->NowMs();
  if (days) {
    issued->record.expires_at = now + *days * kMsPerDay;
    if (auto st = ctx.store->ExpireToken(p.org, issued->record.id, *issued->record.expires_at); !st) {
      return FromError(st.error());
    }
  }
  json j = TokenJson(issued->record, now);
  ctx.Audit(req, p, "token.create", fmt::format("token:{}", issued->record.id), nullptr, j);
  j["token"] = issued->token;
  return Response::Json(201, j.dump());
}

Response RotateToken(ApiContext& ctx, Request& req, P p) {
  TokenRecord old;
  if (auto r = OwnToken(ctx, req, p, &old); r.status != 200) return r;
  const TimestampMs now = ctx.clock->NowMs();
  if (old.expires_at && *old.expires_at <= now) return Response::Error(409, "failed_precondition", "the token is revoked already");
  Role role = std::min(old.role, p.role);
  auto issued = ctx.tokens->IssueUserToken(p.org, p.user.value_or(0), role, old.label);
  if (!issued) return FromError(issued.error());
  if (old.expires_at) {  // the new token keeps the old one's expiry
    issued->record.expires_at = old.expires_at;
    if (auto st = ctx.store->ExpireToken(p.org, issued->record.id, *old.expires_at); !st) return FromError(st.error());
  }
  if (auto st = ctx.tokens->Revoke(p.org, old.id); !st) return FromError(st.error());
  json j = TokenJson(issued->record, now);
  ctx.Audit(req, p, "token.rotate", fmt::format("token:{}", old.id), TokenJson(old, now), j);
  j["token"] = issued->token;
  return Response::Json(200, j.dump());
}

Response RevokeOwnToken(ApiContext& ctx, Request& req, P p) {
  TokenRecord old;
  if (auto r = OwnToken(ctx, req, p, &old); r.status != 200) return r;
  if (auto st = ctx.tokens->Revoke(p.org, old.id); !st) return FromError(st.error());
  const TimestampMs now = ctx.clock->NowMs();
  ctx.Audit(req, p, "token.revoke", fmt::format("token:{}", old.id), TokenJson(old, now), json({{"active", false}}));
  return Response::Json(200, json({{"id", old.id}, {"active", false}}).dump());
}

json LimitsJson(const TierLimits& l) {
  return {{"tier", TierName(l.tier)},
          {"max_devices", l.max_devices ? json(*l.max_devices) : json(nullptr)},
          {"max_members", l.max_members ? json(*l.max_members) : json(nullptr)},
          {"retention_extension", l.retention_extension},
          {"api_rate_per_second", l.api_rate_per_second}};
}

Response GetOrg(ApiContext& ctx, P p) {
  auto org = ctx.store->GetOrganization(p.org);
  if (!org) return FromError(org.error());
  auto devices = ctx.store->ListDevices(p.org);
  if (!devices) return FromError(devices.error());
  auto members = ctx.store->People().ListMembers(p.org);
  if (!members) return FromError(members.error());
  auto policy = ctx.store->GetRetentionPolicy(p.org);
  if (!policy) return FromError(policy.error());
  json retention = json::object();
  for (DataClass c : kAllDataClasses) {
    retention[std::string(DataClassName(c))] = {{"effective", FormatRetentionPeriod(policy->For(c))},
                                                {"default", FormatRetentionPeriod(DefaultRetention(c))},
                                                {"extended", policy->overrides.count(c) > 0}};
  }
  auto active = std::count_if(devices->begin(), devices->end(), [](const Device& d) { return !d.decommissioned; });
  json j = {{"id", org->id}, {"name", org->name}, {"time_zone", org->time_zone},
            {"tier", TierName(org->tier)}, {"created_at", FormatRfc3339(org->created_at)},
            {"limits", LimitsJson(LimitsOf(org->tier))},
            {"usage", {{"devices", active}, {"members", members->size()}}},
            {"retention", retention}};
  return Response::Json(200, j.dump());
}

Response PatchRetention(ApiContext& ctx, Request& req, P p) {
  auto body = ParseJsonBody(req);
  if (!body) return FromError(body.error());
  auto org = ctx.store->GetOrganization(p.org);
  if (!org) return FromError(org.error());
  auto policy = ctx.store->GetRetentionPolicy(p.org);
  if (!policy) return FromError(policy.error());
  if (body->empty()) return Response::Error(400, "invalid_argument", "name at least one data class, e.g. {\"raw_readings\": \"5 years\"}");
  // Everything is checked before anything is written.
  std::vector<std::pair<DataClass, RetentionPeriod>> changes;
  for (auto& [key, value] : body->items()) {
    auto c = ParseDataClass(key);
    if (!c) return FromError(c.error());
    if (!value.is_string()) return Response::Error(400, "invalid_argument", fmt::format("give {} as text, e.g. \"5 years\"", key.substr(0, 64)));
    auto period = ParseRetentionPeriod(value.get<std::string>());
    if (!period) return FromError(period.error());
    if (auto st = ValidateRetentionOverride(org->tier, *c, *period); !st) {
      if (st.error().code == ErrorCode::kPermissionDenied) {
        return Response::Error(409, "tier_limit", st.error().message);
      }
      return FromError(st.error());
    }
    changes.emplace_back(*c, *period);
  }
  for (const auto& [c, period] : changes) {
    const std::string before = FormatRetentionPeriod(policy->For(c));
    if (auto st = ctx.store->SetRetention(p.org, c, period); !st) return FromError(st.error());
    ctx.Audit(req, p, "retention.change", fmt::format("retention:{}", DataClassName(c)), json(before),
              json(FormatRetentionPeriod(period)));
  }
  return GetOrg(ctx, p);
}

Response Invite(ApiContext& ctx, Request& req, P p) {
  auto body = ParseJsonBody(req);
  if (!body) return FromError(body.error());
  std::string email = StringField(*body, "email");
  auto role = ParseRole(StringField(*body, "role").empty() ? "viewer" : StringField(*body, "role"));
  if (!role) return FromError(role.error());
  auto m = ctx.people->Invite(p.org, email, *role, p.role, ctx.ActorOf(req, p));
  if (!m) return FromError(m.error());
  return Response::Json(201, MemberJson(*m).dump());
}

Response PatchMember(ApiContext& ctx, Request& req, P p) {
  auto id = ParseId(req.params.at("id"));
  if (!id) return Response::Error(404, "not_found", "no such member");
  auto existing = ctx.store->People().GetMember(p.org, *id);
  if (!existing || existing->removed_at) return Response::Error(404, "not_found", "no such member");
  auto body = ParseJsonBody(req);
  if (!body) return FromError(body.error());
  auto role = ParseRole(StringField(*body, "role"));
  if (!role) return FromError(role.error());
  auto m = ctx.people->ChangeRole(p.org, *id, *role, p.role, ctx.ActorOf(req, p));
  if (!m) return FromError(m.error());
  return Response::Json(200, MemberJson(*m).dump());
}

Response DeleteMember(ApiContext& ctx, Request& req, P p) {
  auto id = ParseId(req.params.at("id"));
  if (!id) return Response::Error(404, "not_found", "no such member");
  if (auto st = ctx.people->RemoveMember(p.org, *id, p.role, ctx.ActorOf(req, p)); !st) return FromError(st.error());
  return Response::Json(200, json({{"id", *id}, {"removed", true}}).dump());
}

Result<store::AuditFilter> AuditFilterFrom(const Request& req, OrgId org) {
  store::AuditFilter f;
  f.org = org;
  if (auto v = req.Query("from")) {
    OS_ASSIGN_OR_RETURN(f.from, ParseTimestamp(*v));
  }
  if (auto v = req.Query("to")) {
    OS_ASSIGN_OR_RETURN(f.to, ParseTimestamp(*v));
  }
  if (auto v = req.Query("action"); v && !v->empty()) f.action_prefix = v->substr(0, 64);
  if (auto v = req.Query("target"); v && !v->empty()) f.target = v->substr(0, 128);
  if (auto v = req.Query("actor"); v && !v->empty()) f.actor_contains = v->substr(0, 128);
  if (auto v = req.Query("before")) {
    auto id = ParseId(*v);
    if (!id) return MakeError(ErrorCode::kInvalidArgument, "'before' is an event id");
    f.before_id = *id;
  }
  if (auto v = req.Query("limit")) {
    auto n = ParseId(*v);
    if (!n || *n > 10000) return MakeError(ErrorCode::kInvalidArgument, "'limit' is 1-10000");
    f.limit = static_cast<int>(*n);
  }
  return f;
}

json ValueJson(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json(text) : j;
}

std::string CsvField(std::string_view s) {
  // Quoted; a leading = + - @ is prefixed with ' so a spreadsheet does not run it as a formula.
  std::string out = "\"";
  if (!s.empty() && (s.front() == '=' || s.front() == '+' || s.front() == '-' || s.front() == '@')) out += '\'';
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Response ListAudit(ApiContext& ctx, Request& req, P p, bool csv) {
  auto f = AuditFilterFrom(req, p.org);
  if (!f) return FromError(f.error());
  auto events = ctx.store->People().ListAudit(*f);
  if (!events) return FromError(events.error());
  if (csv) {
    std::string out = "id,at,actor,via,client,action,target,old_value,new_value\r\n";
    for (const auto& e : *events) {
      out += fmt::format("{},{},{},{},{},{},{},{},{}\r\n", e.id, FormatRfc3339(e.at), CsvField(e.actor),
                         CsvField(e.via), CsvField(e.client), CsvField(e.action), CsvField(e.target),
                         CsvField(e.old_value), CsvField(e.new_value));
    }
    Response r = Response::Text(200, std::move(out), "text/csv; charset=utf-8");
    r.SetHeader("Content-Disposition", "attachment; filename=\"audit.csv\"");
    return r;
  }
  json arr = json::array();
  for (const auto& e : *events) {
    arr.push_back({{"id", e.id}, {"at", FormatRfc3339(e.at)}, {"actor", e.actor}, {"via", e.via},
                   {"client", e.client}, {"action", e.action}, {"target", e.target},
                   {"old", ValueJson(e.old_value)}, {"new", ValueJson(e.new_value)}});
  }
  return Response::Json(200, json({{"events", arr}}).dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

void internal::RegisterPeopleRoutes(ApiContext& ctx, http::Router& r) {
  ApiContext* c = &ctx;

  c->Route(r, "POST", "/api/v1/auth/magic-link", "Ask for a sign-in link by e-mail (same answer for every address)",
           [c](Request& req) {
             auto body = ParseJsonBody(req);
             if (!body) return FromError(body.error());
             auto st = c->people->RequestLogin(StringField(*body, "email"), c->ClientHost(req));
             return st ? Accepted() : FromError(st.error());
           });
  c->Route(r, "GET", "/auth/magic", "The sign-in link's confirmation page (its button signs in; GET uses nothing)",
           [c](Request& req) { return ConfirmationPage(*c, req); });
  c->Route(r, "POST", "/api/v1/auth/magic-link/complete", "Use a sign-in link: opens a session (cookie)",
           [c](Request& req) { return Login(*c, req); });
  c->Route(r, "POST", "/api/v1/auth/signup", "Self-service sign-up, when enabled: mails a link that creates the organisation",
           [c](Request& req) {
             auto body = ParseJsonBody(req);
             if (!body) return FromError(body.error());
             auto st = c->people->RequestSignup(StringField(*body, "email"), StringField(*body, "organisation"),
                                                c->ClientHost(req));
             return st ? Accepted() : FromError(st.error());
           });

  c->Route(r, "GET", "/api/v1/auth/session", "Who is signed in, the organisations, the CSRF token",
           c->User(Role::kViewer, [c](Request& req, P p) {
             auto memberships = c->store->People().MembershipsOf(p.email);
             if (!memberships) return FromError(memberships.error());
             std::string secret = p.session ? req.params["__session_secret"] : std::string();
             return Response::Json(200, SessionJson(*c, p, *memberships, secret).dump());
           }));
  c->Route(r, "POST", "/api/v1/auth/session/org", "Switch the session to another of the user's organisations",
           c->User(Role::kViewer, [c](Request& req, P p) {
             if (!p.session) return Response::Error(400, "invalid_argument", "an API token belongs to one organisation; sign in to switch");
             auto body = ParseJsonBody(req);
             if (!body) return FromError(body.error());
             auto org = body->contains("org") && (*body)["org"].is_number_integer() ? (*body)["org"].get<std::int64_t>() : 0;
             auto s = c->store->People().FindSession(people::Sha256Hex(req.params["__session_secret"]));
             if (!s) return FromError(s.error());
             auto m = c->people->SwitchOrganisation(*s, org);
             if (!m) return FromError(m.error());
             return Response::Json(200, json({{"org", m->org}, {"role", RoleName(m->role)}}).dump());
           }));
  c->Route(r, "POST", "/api/v1/auth/logout", "End this session on the server",
           c->User(Role::kViewer, [c](Request& req, P p) {
             if (!p.session) return Response::Error(400, "invalid_argument", "API tokens are revoked with DELETE /api/v1/auth/tokens/{id}");
             if (auto st = c->people->Logout(req.params["__session_secret"]); !st) return FromError(st.error());
             Response resp = Response::Json(200, R"({"signed_out":true})");
             resp.SetHeader("Set-Cookie", people::ClearedSessionCookie(c->people->options()));
             return resp;
           }));
  c->Route(r, "POST", "/api/v1/auth/logout-everywhere", "End every session of this address, on every device",
           c->User(Role::kViewer, [c](Request&, P p) {
             auto n = c->people->LogoutEverywhere(p.email);
             if (!n) return FromError(n.error());
             Response resp = Response::Json(200, json({{"sessions_ended", *n}}).dump());
             if (p.session) resp.SetHeader("Set-Cookie", people::ClearedSessionCookie(c->people->options()));
             return resp;
           }));

  c->Route(r, "GET", "/api/v1/auth/tokens", "Your API tokens (last use, creation, expiry; never the secret)",
           c->User(Role::kViewer, [c](Request&, P p) {
             auto list = c->store->ListTokens(p.org);
             if (!list) return FromError(list.error());
             json arr = json::array();
             const TimestampMs now = c->clock->NowMs();
             for (const auto& t : *list) {
               if (t.kind == TokenKind::kUser && t.user == p.user) arr.push_back(TokenJson(t, now));
             }
             return Response::Json(200, arr.dump());
           }));
  c->Route(r, "POST", "/api/v1/auth/tokens", "Create an API token (role up to yours, optional expiry)",
           c->User(Role::kViewer, [c](Request& req, P p) { return CreateToken(*c, req, p); }));
  c->Route(r, "POST", "/api/v1/auth/tokens/{id}/rotate", "Replace one of your API tokens (the old one stops now)",
           c->User(Role::kViewer, [c](Request& req, P p) { return RotateToken(*c, req, p); }));
  c->Route(r, "DELETE", "/api/v1/auth/tokens/{id}", "Revoke one of your API tokens",
           c->User(Role::kViewer, [c](Request& req, P p) { return RevokeOwnToken(*c, req, p); }));

  c->Route(r, "GET", "/api/v1/org", "The organisation: tier, limits, usage, effective retention per data class",
           c->User(Role::kViewer, [c](Request&, P p) { return GetOrg(*c, p); }));
  c->Route(r, "PATCH", "/api/v1/org/retention", "Extend retention (Team/Enterprise; never below the defaults)",
           c->User(Role::kOwner, [c](Request& req, P p) { return PatchRetention(*c, req, p); }));

  c->Route(r, "GET", "/api/v1/members", "Members and their roles",
           c->User(Role::kViewer, [c](Request&, P p) {
             auto list = c->store->People().ListMembers(p.org);
             if (!list) return FromError(list.error());
             json arr = json::array();
             for (const auto& m : *list) arr.push_back(MemberJson(m));
             return Response::Json(200, arr.dump());
           }));
  c->Route(r, "POST", "/api/v1/members", "Invite a member by e-mail (the invitation is a sign-in link)",
           c->User(Role::kAdmin, [c](Request& req, P p) { return Invite(*c, req, p); }));
  c->Route(r, "PATCH", "/api/v1/members/{id}", "Change a member's role",
           c->User(Role::kAdmin, [c](Request& req, P p) { return PatchMember(*c, req, p); }));
  c->Route(r, "DELETE", "/api/v1/members/{id}", "Remove a member (their API tokens stop)",
           c->User(Role::kAdmin, [c](Request& req, P p) { return DeleteMember(*c, req, p); }));

  c->Route(r, "GET", "/api/v1/audit", "The audit trail, newest first (filters: from, to, action, target, actor, before, limit)",
           c->User(Role::kAdmin, [c](Request& req, P p) { return ListAudit(*c, req, p, false); }));
  c->Route(r, "GET", "/api/v1/audit.csv", "The audit trail as CSV (same filters)",
           c->User(Role::kAdmin, [c](Request& req, P p) { return ListAudit(*c, req, p, true); }));
}

}  // namespace opensense::api
