// The people routes through the real router on a real SQLite store: the isolation matrix
// generated from the route table, magic-link login over HTTP, sessions, CSRF, retention per tier
// and the audit trail.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <regex>
#include <set>

#include "alerts/service.hpp"
#include "api/api.hpp"
#include "people/login.hpp"
#include "people/permissions.hpp"
#include "store/test_util.hpp"

namespace opensense::api {
namespace {

constexpr TimestampMs kNow = 1768478400000;
constexpr Role kRoles[] = {Role::kViewer, Role::kMember, Role::kAdmin, Role::kOwner};

class RecordingMail final : public MailQueue {
 public:
  Status Enqueue(const OutgoingEmail& email) override {
    sent.push_back(email);
    return Ok();
  }
  std::vector<OutgoingEmail> sent;
};

struct OrgFixture {
  OrgId org = 0;
  std::map<Role, std::string> token;        // a user API token per role
  std::map<Role, std::int64_t> extra_token;  // a second token of that user (rotated/revoked by tests)
  SiteId site = 0;
  DeviceId device = 0;
  std::int64_t device_token = 0;
  UserId spare_member = 0;
  std::int64_t channel = 0;
  std::int64_t rule = 0;
  std::int64_t alert = 0;
};

class PeopleApi : public testing::Test {
 protected:
  void Start(const std::string& public_url) {
    api_.reset();  // a second Start reopens the store: close the first one
    if (alerts_) alerts_->Stop();
    alerts_.reset();
    tokens_.reset();
    store_.reset();
    auto o = store::Backends()[0].options(dir_.path());
    o.clock = &clock_;
    store_ = std::move(*store::OpenStore(o));
    auth::TokenServiceOptions to;
    to.bcrypt_cost = 4;
    tokens_ = std::make_unique<auth::TokenService>(store_.get(), &clock_, to);
    alerts::AlertServiceOptions alert_options;
    alert_options.clock = &clock_;
    alert_options.evaluator_thread = false;  // MakeOrg drains it
    alerts_ = std::make_unique<alerts::AlertService>(store_.get(), alert_options);
    ASSERT_TRUE(alerts_->Start());
    ApiOptions ao;
    ao.login.public_url = public_url;
    ao.mail = &mail_;
    ao.alerts = alerts_.get();
    api_ = std::make_unique<Api>(store_.get(), tokens_.get(), &metrics_, &clock_, ao);
    router_ = api_->BuildRouter();
  }
  void SetUp() override { Start("http://127.0.0.1:8080"); }

  OrgFixture MakeOrg(const std::string& name, Tier tier) {
    OrgFixture f;
    f.org = store_->CreateOrganization({name, "UTC", tier})->id;
    for (Role role : kRoles) {
      auto m = store_->People().AddMember(f.org, fmt::format("{}@{}.example", RoleName(role), name), role);
      f.token[role] = tokens_->IssueUserToken(f.org, m->id, role, "main")->token;
      f.extra_token[role] = tokens_->IssueUserToken(f.org, m->id, role, "extra")->record.id;
    }
    f.site = store_->CreateSite(f.org, "kitchen")->id;
    f.device = store_->CreateDevice({f.org, "fridge", f.site, std::nullopt})->id;
    f.device_token = tokens_->IssueDeviceToken(f.org, f.device)->record.id;
    f.spare_member = store_->People().AddMember(f.org, "spare@" + name + ".example", Role::kViewer)->id;
    store::NotificationChannel c;
    c.org = f.org;
    c.kind = "email";
    c.name = "ops";
    c.target = "ops@" + name + ".example";
    f.channel = store_->Notify().CreateChannel(c)->id;
    // A rule and a firing alert of the organisation (a warm reading after the rule exists).
    auto rule = alerts_->CreateRule(
        f.org, fmt::format(R"({{"name":"Warm","device":{},"above":5,"severity":"critical"}})", f.device),
        clock_.NowMs() - kMsPerHour);
    EXPECT_TRUE(rule) << (rule ? "" : rule.error().message);
    if (rule) f.rule = rule->rule.id;
    EXPECT_TRUE(store_->Ingest(f.org, {Reading{f.device, "temperature", "Cel", clock_.NowMs() - kMsPerMinute, 9}})
                    .get());
    alerts_->Drain();
    auto fired = store_->Alerts().ListAlerts(f.org, {});
    EXPECT_TRUE(fired && fired->size() == 1u);
    if (fired && !fired->empty()) f.alert = fired->front().id;
    return f;
  }

  http::Response Call(const std::string& method, const std::string& target, const std::string& body = "",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto req = http::Request::FromTarget(method, target, body);
    EXPECT_TRUE(req) << target;
    req->remote_address = "127.0.0.1:40000";
    bool has_type = false;
    for (auto& h : headers) has_type |= h.first == "Content-Type";
    if (!has_type) req->headers.emplace_back("Content-Type", "application/json");
    for (auto& h : headers) req->headers.push_back(h);
    return router_.Handle(*req);
  }
  http::Response As(const std::string& token, const std::string& method, const std::string& target,
                    const std::string& body = "") {
    return Call(method, target, body, {{"Authorization", "Bearer " + token}});
  }

  // Everything of organisation `org` that a request could change.
  std::string Snapshot(OrgId org) {
    std::string s;
    auto devices = *store_->ListDevices(org);
    auto sites = *store_->ListSites(org);
    auto tokens = *store_->ListTokens(org);
    auto members = *store_->People().ListMembers(org);
    auto channels = *store_->Notify().ListChannels(org);
    for (const auto& c : channels) s += fmt::format("c{}:{}:{};", c.id, c.name, c.target);
    const auto rules = *store_->Alerts().ListRules(org);
    for (const auto& r : rules) s += fmt::format("r{}:{}:{};", r.id, r.definition, r.updated_at);
    const auto alert_list = *store_->Alerts().ListAlerts(org, {});
    for (const auto& a : alert_list) {
      s += fmt::format("a{}:{}:{};", a.id, a.state, store_->Alerts().ListEvents(org, a.id)->size());
    }
    for (const auto& d : devices) s += fmt::format("d{}:{}:{}:{};", d.id, d.name, d.decommissioned, d.site_id.value_or(0));
    for (const auto& x : sites) s += fmt::format("s{}:{}:{};", x.id, x.name, x.auto_register);
    for (const auto& t : tokens) s += fmt::format("t{}:{}:{}:{};", t.id, t.label, RoleName(t.role), t.expires_at.value_or(0));
    for (const auto& m : members) s += fmt::format("m{}:{}:{};", m.id, m.email, RoleName(m.role));
    auto policy = store_->GetRetentionPolicy(org);
    for (DataClass c : kAllDataClasses) s += FormatRetentionPeriod(policy->For(c)) + ";";
    store::AuditFilter f;
    f.org = org;
    s += fmt::format("audit{};", store_->People().ListAudit(f)->size());
    auto o = store_->GetOrganization(org);
    s += o->name + std::string(TierName(o->tier));
    return s;
  }

  std::string TokenIn(const OutgoingEmail& m) {
    std::smatch match;
    std::regex re("token=([A-Za-z0-9]+)");
    return std::regex_search(m.text_body, match, re) ? match[1].str() : std::string();
  }

  struct Browser {
    std::string cookie;  // "name=value"
    std::string csrf;
  };
  // Signs in through the API as a browser would: ask for the link, open it, press the button.
  Browser SignIn(const std::string& email) {
    EXPECT_EQ(Call("POST", "/api/v1/auth/magic-link", json_email(email)).status, 202);
    std::string token = TokenIn(mail_.sent.back());
    auto done = Call("POST", "/api/v1/auth/magic-link/complete", nlohmann::json({{"token", token}}).dump());
    EXPECT_EQ(done.status, 200) << done.body;
    Browser b;
    for (const auto& [k, v] : done.headers) {
      if (k == "Set-Cookie") b.cookie = v.substr(0, v.find(';'));
    }
    auto j = nlohmann::json::parse(done.body, nullptr, false);
    if (j.is_object() && j["csrf_token"].is_string()) b.csrf = j["csrf_token"].get<std::string>();
    return b;
  }
  static std::string json_email(const std::string& e) { return nlohmann::json({{"email", e}}).dump(); }
  static std::string HeaderOf(const http::Response& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }

  store::ScratchDir dir_{"people-api"};
  ManualClock clock_{kNow};
  MetricsRegistry metrics_;
  RecordingMail mail_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::TokenService> tokens_;
  std::unique_ptr<alerts::AlertService> alerts_;
  std::unique_ptr<Api> api_;
  http::Router router_;
};

// The id a route's {id} takes for an organisation's resources.
std::int64_t IdFor(const std::string& pattern, const OrgFixture& f, Role caller) {
  if (pattern.rfind("/api/v1/sites/", 0) == 0) return f.site;
  if (pattern.rfind("/api/v1/members/", 0) == 0) return f.spare_member;
  if (pattern.rfind("/api/v1/tokens/", 0) == 0) return f.device_token;
  if (pattern.rfind("/api/v1/auth/tokens/", 0) == 0) return f.extra_token.at(caller);
  if (pattern.rfind("/api/v1/channels/", 0) == 0) return f.channel;
  if (pattern.rfind("/api/v1/alert-rules/", 0) == 0) return f.rule;
  if (pattern.rfind("/api/v1/alerts/", 0) == 0) return f.alert;
  return f.device;  // devices, and any other family: some id of f
}

// A body a permitted caller's request is valid with (others: "{}", which may be a 400).
std::string BodyFor(const std::string& pattern) {
  if (pattern == "/api/v1/members/{id}") return R"({"role":"viewer"})";
  return "{}";
}

std::string Fill(const std::string& pattern, std::int64_t id) {
  std::string out = pattern;
  auto pos = out.find("{id}");
  if (pos != std::string::npos) out.replace(pos, 4, std::to_string(id));
  return out;
}

TEST_F(PeopleApi, EveryRouteHasAPermissionEntryAndDeclaresItsRole) {
  std::set<std::string> non_user;
  for (const auto& r : api_->routes()) {
    SCOPED_TRACE(r.method + " " + r.pattern);
    ASSERT_FALSE(r.permission.empty()) << "add the route to people/permissions.cpp RoutePermissions()";
    auto perm = people::PermissionForRoute(r.method, r.pattern);
    ASSERT_TRUE(perm);
    const auto& min = people::InfoOf(*perm).min_role;
    if (min) {
      ASSERT_TRUE(r.declared_role) << "a user permission needs a ctx.User(...) route";
      EXPECT_EQ(*r.declared_role, *min) << "ctx.User(role) disagrees with the permission table";
    } else {
      EXPECT_FALSE(r.declared_role) << "a public/ingest/hook route must not be a user route";
      non_user.insert(r.method + " " + r.pattern);
    }
  }
  // The routes anyone (or only a device, or only the broker) may call, spelled out.
  EXPECT_EQ(non_user, (std::set<std::string>{
                          "GET /healthz", "GET /readyz", "GET /metrics", "POST /api/v1/ingest", "POST /write",
                          "POST /api/v2/write", "POST /internal/mqtt/auth", "POST /internal/mqtt/acl",
                          "GET /internal/mqtt/revoked", "POST /api/v1/auth/magic-link", "GET /auth/magic",
                          "POST /api/v1/auth/magic-link/complete", "POST /api/v1/auth/signup"}));
}

TEST_F(PeopleApi, IsolationMatrixFromTheRouteTable) {
  OrgFixture a = MakeOrg("a", Tier::kEnterprise);
  OrgFixture b = MakeOrg("b", Tier::kEnterprise);
  const std::string before_b = Snapshot(b.org);
  int checked = 0;
  // Deletions last, so the resources the other routes address still exist.
  std::vector<RouteInfo> routes = api_->routes();
  std::stable_partition(routes.begin(), routes.end(), [](const RouteInfo& r) { return r.method != "DELETE"; });
  for (const auto& r : routes) {
    if (!r.declared_role) continue;  // public, ingest and broker routes: not a user's
    auto perm = *people::PermissionForRoute(r.method, r.pattern);
    const bool addressed = r.pattern.find("{id}") != std::string::npos;
    for (Role role : kRoles) {
      SCOPED_TRACE(fmt::format("{} {} as {}", r.method, r.pattern, RoleName(role)));
      clock_.Advance(kMsPerSecond);  // stays within the tier's API rate
      // Organisation A's caller against organisation B's resource: 404, whatever the role.
      if (addressed) {
        auto resp = As(a.token[role], r.method, Fill(r.pattern, IdFor(r.pattern, b, role)), "{}");
        EXPECT_EQ(resp.status, 404) << resp.body;
        ++checked;
      }
      // In its own organisation: exactly what the permission table says.
      auto own = As(a.token[role], r.method, Fill(r.pattern, IdFor(r.pattern, a, role)), BodyFor(r.pattern));
      if (people::Allows(role, perm)) {
        EXPECT_NE(own.status, 403) << own.body;
        EXPECT_NE(own.status, 401) << own.body;
        EXPECT_LT(own.status, 500) << own.body;
      } else {
        EXPECT_EQ(own.status, 403) << own.body;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 150);
  EXPECT_EQ(Snapshot(b.org), before_b) << "organisation A changed something of organisation B";
}

TEST_F(PeopleApi, ListsShowOnlyTheCallersOrganisation) {
  OrgFixture a = MakeOrg("a", Tier::kTeam);
  OrgFixture b = MakeOrg("b", Tier::kTeam);
  for (const char* list : {"/api/v1/devices", "/api/v1/sites", "/api/v1/tokens", "/api/v1/members",
                           "/api/v1/audit", "/api/v1/auth/tokens", "/api/v1/org", "/api/v1/latest"}) {
    auto resp = As(a.token[Role::kOwner], "GET", list);
    ASSERT_EQ(resp.status, 200) << list;
    EXPECT_EQ(resp.body.find("@b.example"), std::string::npos) << list;
    EXPECT_EQ(resp.body.find(fmt::format("\"org\":{}", b.org)), std::string::npos) << list;
  }
}

TEST_F(PeopleApi, MagicLinkOverHttp) {
  OrgFixture a = MakeOrg("a", Tier::kTeam);
  // Known and unknown addresses: the same answer.
  auto known = Call("POST", "/api/v1/auth/magic-link", json_email("owner@a.example"));
  auto unknown = Call("POST", "/api/v1/auth/magic-link", json_email("stranger@a.example"));
  EXPECT_EQ(known.status, 202);
  EXPECT_EQ(known.status, unknown.status);
  EXPECT_EQ(known.body, unknown.body);
  EXPECT_EQ(Call("POST", "/api/v1/auth/magic-link", json_email("not an address")).status, 400);
  std::string token = TokenIn(mail_.sent[0]);
  ASSERT_EQ(token.size(), 32u);
  EXPECT_NE(mail_.sent[0].text_body.find("http://127.0.0.1:8080/auth/magic?token="), std::string::npos)
      << "the host comes from public_url";
  // A prefetching GET (mail scanner) shows the page and neither uses nor burns the link.
  auto page = Call("GET", "/auth/magic?token=" + token, "", {{"Host", "evil.example"}});
  EXPECT_EQ(page.status, 200);
  // The origin only: the token stays out of Referer, and the button's POST carries a real Origin
  // (with no-referrer browsers send `Origin: null`, which the login CSRF check refuses).
  EXPECT_EQ(HeaderOf(page, "Referrer-Policy"), "strict-origin");
  EXPECT_EQ(HeaderOf(page, "Set-Cookie"), "");
  EXPECT_EQ(page.body.find("<script"), std::string::npos);
  EXPECT_NE(HeaderOf(page, "Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  EXPECT_NE(page.body.find("method=\"post\""), std::string::npos);
  EXPECT_EQ(page.body.find("evil.example"), std::string::npos);
  EXPECT_EQ(Call("GET", "/auth/magic?token=" + token).status, 200) << "still live after the GET";
  // The button: a form post, answered with the cookie and a redirect to public_url.
  auto form = Call("POST", "/api/v1/auth/magic-link/complete", "token=" + token,
                   {{"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", "opensense_session=planted"},
                    {"Origin", "http://127.0.0.1:8080"}});
  ASSERT_EQ(form.status, 303) << form.body;
  EXPECT_EQ(HeaderOf(form, "Location"), "http://127.0.0.1:8080/");
  std::string cookie = HeaderOf(form, "Set-Cookie");
  EXPECT_EQ(cookie.find("opensense_session="), 0u);
  EXPECT_NE(cookie.find("; Path=/"), std::string::npos);
  EXPECT_NE(cookie.find("; HttpOnly; SameSite=Lax"), std::string::npos);
  EXPECT_EQ(cookie.find("Secure"), std::string::npos) << "plain http: no Secure (the browser would drop it)";
  std::string session = cookie.substr(0, cookie.find(';'));
  EXPECT_NE(session, "opensense_session=planted") << "session fixation: a fresh id at login";
  EXPECT_EQ(Call("GET", "/api/v1/auth/session", "", {{"Cookie", "opensense_session=planted"}}).status, 401);
  auto who = Call("GET", "/api/v1/auth/session", "", {{"Cookie", session}});
  ASSERT_EQ(who.status, 200) << who.body;
  EXPECT_NE(who.body.find("\"email\":\"owner@a.example\""), std::string::npos);
  // Reuse: refused.
  EXPECT_EQ(Call("POST", "/api/v1/auth/magic-link/complete", nlohmann::json({{"token", token}}).dump()).status, 400);
  EXPECT_EQ(Call("GET", "/auth/magic?token=" + token).status, 410);
  // Wrong address: refused.
  ASSERT_EQ(Call("POST", "/api/v1/auth/magic-link", json_email("admin@a.example")).status, 202);
  auto wrong = Call("POST", "/api/v1/auth/magic-link/complete",
                    nlohmann::json({{"token", TokenIn(mail_.sent.back())}, {"email", "owner@a.example"}}).dump());
  EXPECT_EQ(wrong.status, 400);
  // Expiry.
  clock_.Advance(15 * kMsPerMinute);
  EXPECT_EQ(Call("POST", "/api/v1/auth/magic-link/complete",
                 nlohmann::json({{"token", TokenIn(mail_.sent.back())}}).dump()).status, 400);
  // Login from another site's form: refused.
  ASSERT_EQ(Call("POST", "/api/v1/auth/magic-link", json_email("admin@a.example")).status, 202);
  EXPECT_EQ(Call("POST", "/api/v1/auth/magic-link/complete", "token=" + TokenIn(mail_.sent.back()),
                 {{"Content-Type", "application/x-www-form-urlencoded"}, {"Origin", "https://evil.example"}}).status, 403);
  (void)a;
}

TEST_F(PeopleApi, RateLimitAnswers429WithAClearMessage) {
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Call("POST", "/api/v1/auth/magic-link", json_email("x@a.example")).status, 202);
  auto refused = Call("POST", "/api/v1/auth/magic-link", json_email("x@a.example"));
  EXPECT_EQ(refused.status, 429);
  EXPECT_NE(refused.body.find("too many sign-in links"), std::string::npos);
  EXPECT_EQ(HeaderOf(refused, "Retry-After"), "1");
}

TEST_F(PeopleApi, LogoutEndsTheSessionOnTheServer) {
  MakeOrg("a", Tier::kTeam);
  Browser b = SignIn("admin@a.example");
  Browser other = SignIn("admin@a.example");
  ASSERT_FALSE(b.cookie.empty());
  ASSERT_EQ(b.csrf.size(), 64u);
  const std::vector<std::pair<std::string, std::string>> h = {
      {"Cookie", b.cookie}, {"Origin", "http://127.0.0.1:8080"}, {"X-CSRF-Token", b.csrf}};
  auto out = Call("POST", "/api/v1/auth/logout", "", h);
  ASSERT_EQ(out.status, 200) << out.body;
  EXPECT_NE(HeaderOf(out, "Set-Cookie").find("Max-Age=0"), std::string::npos);
  // The old cookie, replayed, is dead on the server (not only deleted in the browser).
  EXPECT_EQ(Call("GET", "/api/v1/devices", "", {{"Cookie", b.cookie}}).status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/devices", "", {{"Cookie", other.cookie}}).status, 200);
  auto everywhere = Call("POST", "/api/v1/auth/logout-everywhere", "",
                         {{"Cookie", other.cookie}, {"Origin", "http://127.0.0.1:8080"}, {"X-CSRF-Token", other.csrf}});
  EXPECT_EQ(everywhere.status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/devices", "", {{"Cookie", other.cookie}}).status, 401);
  // Idle timeout, enforced by the server.
  Browser idle = SignIn("admin@a.example");
  clock_.Advance(12 * kMsPerHour);
  EXPECT_EQ(Call("GET", "/api/v1/devices", "", {{"Cookie", idle.cookie}}).status, 401);
}

TEST_F(PeopleApi, CrossOriginFormPostWithTheCookieIsRefused) {
  OrgFixture a = MakeOrg("a", Tier::kTeam);
  Browser b = SignIn("admin@a.example");
  const std::string before = Snapshot(a.org);
  // What a hostile page's auto-submitting form sends: the cookie (SameSite=Lax still sends it on
  // some top-level posts and from same-site subdomains), a foreign Origin, no CSRF token.
  auto forged = Call("POST", "/api/v1/devices", "name=evil",
                     {{"Cookie", b.cookie}, {"Origin", "https://evil.example"},
                      {"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(forged.status, 403);
  EXPECT_NE(forged.body.find("csrf"), std::string::npos);
  // The right origin without the token, or a wrong token: refused too.
  EXPECT_EQ(Call("POST", "/api/v1/devices", R"({"name":"x"})", {{"Cookie", b.cookie}, {"Origin", "http://127.0.0.1:8080"}}).status, 403);
  EXPECT_EQ(Call("POST", "/api/v1/devices", R"({"name":"x"})",
                 {{"Cookie", b.cookie}, {"Origin", "http://127.0.0.1:8080"}, {"X-CSRF-Token", std::string(64, '0')}}).status, 403);
  EXPECT_EQ(Call("POST", "/api/v1/devices", R"({"name":"x"})", {{"Cookie", b.cookie}, {"X-CSRF-Token", b.csrf}}).status, 403)
      << "no Origin and no Referer";
  EXPECT_EQ(Snapshot(a.org), before);
  // Our own page: accepted. Reads need no token. API tokens are not subject to it.
  EXPECT_EQ(Call("POST", "/api/v1/devices", R"({"name":"x"})",
                 {{"Cookie", b.cookie}, {"Origin", "http://127.0.0.1:8080"}, {"X-CSRF-Token", b.csrf}}).status, 201);
  EXPECT_EQ(Call("GET", "/api/v1/devices", "", {{"Cookie", b.cookie}}).status, 200);
  EXPECT_EQ(As(a.token[Role::kAdmin], "POST", "/api/v1/devices", R"({"name":"y"})").status, 201);
}

TEST_F(PeopleApi, SecureCookieWhenPublicUrlIsHttps) {
  Start("https://sense.example.com");
  MakeOrg("a", Tier::kTeam);
  ASSERT_EQ(Call("POST", "/api/v1/auth/magic-link", json_email("viewer@a.example")).status, 202);
  auto done = Call("POST", "/api/v1/auth/magic-link/complete", nlohmann::json({{"token", TokenIn(mail_.sent.back())}}).dump());
  ASSERT_EQ(done.status, 200);
  std::string cookie = HeaderOf(done, "Set-Cookie");
  EXPECT_EQ(cookie.find("__Host-opensense_session="), 0u);
  EXPECT_NE(cookie.find("; Secure"), std::string::npos);
  EXPECT_NE(cookie.find("; Path=/"), std::string::npos);
  EXPECT_EQ(cookie.find("Domain"), std::string::npos);
}

TEST_F(PeopleApi, RetentionPerTier) {
  OrgFixture free_org = MakeOrg("f", Tier::kFree);
  OrgFixture team = MakeOrg("t", Tier::kTeam);
  OrgFixture ent = MakeOrg("e", Tier::kEnterprise);
  auto refused = As(free_org.token[Role::kOwner], "PATCH", "/api/v1/org/retention", R"({"raw_readings":"5 years"})");
  EXPECT_EQ(refused.status, 409);
  EXPECT_NE(refused.body.find("upgrade to Team or Enterprise"), std::string::npos);
  auto below = As(team.token[Role::kOwner], "PATCH", "/api/v1/org/retention", R"({"raw_readings":"1 month"})");
  EXPECT_EQ(below.status, 400);
  EXPECT_NE(below.body.find("default is also the minimum"), std::string::npos);
  // Nothing half-written: one bad class refuses the whole request.
  EXPECT_EQ(As(team.token[Role::kOwner], "PATCH", "/api/v1/org/retention",
               R"({"rollup_1d":"forever","raw_readings":"1 month"})").status, 400);
  EXPECT_EQ(As(team.token[Role::kOwner], "PATCH", "/api/v1/org/retention", R"({"bogus":"5 years"})").status, 400);
  EXPECT_EQ(As(team.token[Role::kAdmin], "PATCH", "/api/v1/org/retention", R"({"raw_readings":"5 years"})").status, 403);
  for (const auto* o : {&team, &ent}) {
    auto ok = As(o->token.at(Role::kOwner), "PATCH", "/api/v1/org/retention", R"({"raw_readings":"5 years"})");
    ASSERT_EQ(ok.status, 200) << ok.body;
    auto org = nlohmann::json::parse(As(o->token.at(Role::kViewer), "GET", "/api/v1/org").body);
    EXPECT_EQ(org["retention"]["raw_readings"]["effective"], "5 years");
    EXPECT_EQ(org["retention"]["rollup_1d"]["extended"], false);
  }
  auto org = nlohmann::json::parse(As(free_org.token[Role::kViewer], "GET", "/api/v1/org").body);
  EXPECT_EQ(org["tier"], "free");
  EXPECT_EQ(org["limits"]["max_devices"], 10);
  EXPECT_EQ(org["limits"]["retention_extension"], false);
  EXPECT_EQ(org["usage"]["devices"], 1);
  EXPECT_EQ(org["usage"]["members"], 5);
  EXPECT_EQ(org["retention"]["raw_readings"]["effective"], org["retention"]["raw_readings"]["default"]);
  auto audit = nlohmann::json::parse(As(team.token[Role::kAdmin], "GET", "/api/v1/audit?action=retention").body);
  ASSERT_EQ(audit["events"].size(), 1u);
  EXPECT_EQ(audit["events"][0]["new"], "5 years");
  EXPECT_EQ(audit["events"][0]["old"], org["retention"]["raw_readings"]["default"]);
}

TEST_F(PeopleApi, AuditRecordsEveryChangeWithOldAndNewValues) {
  OrgFixture a = MakeOrg("a", Tier::kTeam);
  const std::string admin = a.token[Role::kAdmin];
  auto created = nlohmann::json::parse(As(admin, "POST", "/api/v1/devices", R"({"name":"freezer"})").body);
  const std::string dev = fmt::format("/api/v1/devices/{}", created["id"].get<std::int64_t>());
  ASSERT_EQ(As(admin, "PATCH", dev, R"({"name":"freezer 2"})").status, 200);
  ASSERT_EQ(As(admin, "POST", dev + "/token", "{}").status, 200);
  ASSERT_EQ(As(admin, "DELETE", dev).status, 200);
  ASSERT_EQ(As(admin, "PATCH", fmt::format("/api/v1/sites/{}", a.site), R"({"name":"cellar"})").status, 200);
  ASSERT_EQ(As(admin, "DELETE", fmt::format("/api/v1/tokens/{}", a.device_token)).status, 200);
  ASSERT_EQ(As(admin, "POST", "/api/v1/members", R"({"email":"new@a.example","role":"member"})").status, 201);
  ASSERT_EQ(As(admin, "PATCH", fmt::format("/api/v1/members/{}", a.spare_member), R"({"role":"member"})").status, 200);
  auto mine = As(a.token[Role::kViewer], "POST", "/api/v1/auth/tokens", R"({"label":"ci","expires_in_days":30})");
  ASSERT_EQ(mine.status, 201) << mine.body;
  EXPECT_EQ(As(a.token[Role::kViewer], "POST", "/api/v1/auth/tokens", R"({"role":"admin"})").status, 400)
      << "no higher than the creator's role";

  auto events = nlohmann::json::parse(As(admin, "GET", "/api/v1/audit").body)["events"];
  std::map<std::string, nlohmann::json> by_action;
  for (const auto& e : events) by_action.emplace(e["action"].get<std::string>(), e);  // newest first
  for (const char* action : {"device.create", "device.update", "token.rotate", "device.decommission",
                             "site.update", "token.revoke", "member.invite", "member.role", "token.create"}) {
    ASSERT_TRUE(by_action.count(action)) << action;
    EXPECT_EQ(by_action[action]["client"].get<std::string>().rfind("127.0.0.1", 0), 0u) << action;
  }
  EXPECT_EQ(by_action["device.update"]["old"]["name"], "freezer");
  EXPECT_EQ(by_action["device.update"]["new"]["name"], "freezer 2");
  EXPECT_TRUE(by_action["device.create"]["old"].is_null());
  EXPECT_EQ(by_action["device.decommission"]["new"]["decommissioned"], true);
  EXPECT_EQ(by_action["member.role"]["old"]["role"], "viewer");
  EXPECT_EQ(by_action["member.role"]["new"]["role"], "member");
  EXPECT_EQ(by_action["member.role"]["actor"], "user:" + std::to_string(store_->People().MembershipsOf("admin@a.example")->front().id) + " <admin@a.example>");
  EXPECT_EQ(by_action["token.create"]["new"].dump().find("osk_"), std::string::npos) << "never the secret";
  // Filters, CSV, and who may read it.
  auto devices_only = nlohmann::json::parse(As(admin, "GET", "/api/v1/audit?action=device").body)["events"];
  EXPECT_EQ(devices_only.size(), 3u);
  auto csv = As(admin, "GET", "/api/v1/audit.csv?action=member");
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.body.find("id,at,actor,via,client,action,target,old_value,new_value\r\n"), 0u);
  EXPECT_NE(csv.body.find("\"member.role\""), std::string::npos);
  EXPECT_EQ(As(a.token[Role::kMember], "GET", "/api/v1/audit").status, 403);
  EXPECT_EQ(As(admin, "GET", "/api/v1/audit?limit=0").status, 400);
  EXPECT_EQ(As(admin, "GET", "/api/v1/audit?from=yesterday").status, 400);
}

TEST_F(PeopleApi, OwnTokensListRotateRevokeAndFollowTheMember) {
  OrgFixture a = MakeOrg("a", Tier::kTeam);
  const std::string member = a.token[Role::kMember];
  auto list = nlohmann::json::parse(As(member, "GET", "/api/v1/auth/tokens").body);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_TRUE(list[0].contains("last_used_at"));
  EXPECT_TRUE(list[0].contains("created_at"));
  EXPECT_EQ(list.dump().find("$2b$"), std::string::npos);
  auto rotated = As(member, "POST", fmt::format("/api/v1/auth/tokens/{}/rotate", a.extra_token[Role::kMember]));
  ASSERT_EQ(rotated.status, 200) << rotated.body;
  std::string fresh = nlohmann::json::parse(rotated.body)["token"];
  EXPECT_EQ(As(fresh, "GET", "/api/v1/devices").status, 200);
  EXPECT_EQ(As(member, "DELETE", fmt::format("/api/v1/auth/tokens/{}", a.extra_token[Role::kAdmin])).status, 404)
      << "another user's token";
  // Demoting the member caps their tokens at once; removing them stops the tokens.
  auto me = store_->People().MembershipsOf("member@a.example")->front();
  ASSERT_EQ(As(a.token[Role::kOwner], "PATCH", fmt::format("/api/v1/members/{}", me.id), R"({"role":"viewer"})").status, 200);
  EXPECT_EQ(As(member, "GET", "/api/v1/reports/daily.csv").status, 403) << "download_reports needs member";
  auto removed = As(a.token[Role::kOwner], "DELETE", fmt::format("/api/v1/members/{}", me.id));
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_EQ(As(member, "GET", "/api/v1/devices").status, 401);
  EXPECT_EQ(As(fresh, "GET", "/api/v1/devices").status, 401);
}

}  // namespace
}  // namespace opensense::api
