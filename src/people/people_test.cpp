// The people module: permission and tier tables, login rules, and magic-link login / sessions /
// members through PeopleService on a real SQLite store with a recording MailQueue.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <regex>

#include "core/tiers.hpp"
#include "people/login.hpp"
#include "people/people_service.hpp"
#include "people/permissions.hpp"
#include "store/test_util.hpp"

namespace opensense::people {
namespace {

constexpr TimestampMs kNow = 1768478400000;

TEST(PermissionTable, EveryPermissionInOrderAndRolesAscend) {
  const auto& t = PermissionTable();
  for (std::size_t i = 0; i < t.size(); ++i) EXPECT_EQ(static_cast<std::size_t>(t[i].permission), i);
  EXPECT_TRUE(Allows(Role::kViewer, Permission::kReadData));
  EXPECT_FALSE(Allows(Role::kViewer, Permission::kAckAlerts));
  EXPECT_TRUE(Allows(Role::kMember, Permission::kAckAlerts));
  EXPECT_FALSE(Allows(Role::kMember, Permission::kManageDevices));
  EXPECT_TRUE(Allows(Role::kAdmin, Permission::kEditRules));
  EXPECT_FALSE(Allows(Role::kAdmin, Permission::kChangeRetention));
  EXPECT_TRUE(Allows(Role::kOwner, Permission::kChangeRetention));
  EXPECT_FALSE(Allows(Role::kOwner, Permission::kIngest)) << "users never ingest";
}

TEST(PermissionTable, RoutesResolveExactlyThenByFamilyFailingClosed) {
  EXPECT_EQ(PermissionForRoute("POST", "/api/v1/devices"), Permission::kManageDevices);
  EXPECT_EQ(PermissionForRoute("POST", "/api/v1/alerts/{id}/ack"), Permission::kAckAlerts);
  EXPECT_EQ(PermissionForRoute("POST", "/api/v1/alerts/{id}/resolve"), Permission::kResolveAlerts);
  EXPECT_EQ(PermissionForRoute("GET", "/api/v1/alerts"), Permission::kReadData);
  EXPECT_EQ(PermissionForRoute("POST", "/api/v1/alerts/{id}/snooze"), Permission::kResolveAlerts);
  EXPECT_EQ(PermissionForRoute("PATCH", "/api/v1/alert-rules/{id}"), Permission::kEditRules);
  EXPECT_EQ(PermissionForRoute("GET", "/api/v1/channels"), Permission::kManageChannels);
  EXPECT_EQ(PermissionForRoute("GET", "/api/v1/notifications"), Permission::kReadData);
  EXPECT_FALSE(PermissionForRoute("GET", "/api/v1/something-new"));
  EXPECT_FALSE(PermissionForRoute("POST", "/api/v1/devices/{id}/explode"));
}

TEST(TierTable, OneRowPerTierAndRetentionFollowsIt) {
  EXPECT_EQ(LimitsOf(Tier::kFree).max_devices, 10);
  EXPECT_FALSE(LimitsOf(Tier::kFree).retention_extension);
  EXPECT_TRUE(LimitsOf(Tier::kTeam).retention_extension);
  EXPECT_FALSE(LimitsOf(Tier::kEnterprise).max_devices);
  auto five_years = *ParseRetentionPeriod("5 years");
  EXPECT_EQ(ValidateRetentionOverride(Tier::kFree, DataClass::kRawReadings, five_years).error().code,
            ErrorCode::kPermissionDenied);
  EXPECT_TRUE(ValidateRetentionOverride(Tier::kTeam, DataClass::kRawReadings, five_years));
  EXPECT_TRUE(ValidateRetentionOverride(Tier::kEnterprise, DataClass::kRawReadings, five_years));
  EXPECT_FALSE(ValidateRetentionOverride(Tier::kTeam, DataClass::kRawReadings, *ParseRetentionPeriod("1 month")));
}

TEST(LoginRules, EmailsCookiesOriginsAndSessions) {
  EXPECT_EQ(*NormaliseEmail("  Ann@Example.COM "), "ann@example.com");
  for (const char* bad : {"", "a", "ann", "@example.com", "ann@", "a@b@c", "ann smith@example.com",
                          "ann@example.com, bob@example.com", "ann\r\n@example.com", "<ann@example.com>"}) {
    EXPECT_FALSE(NormaliseEmail(bad)) << bad;
  }
  EXPECT_FALSE(NormaliseEmail(std::string(300, 'a') + "@example.com"));
  LoginOptions http;
  http.public_url = "http://127.0.0.1:8080";
  LoginOptions https;
  https.public_url = "https://sense.example.com/";
  EXPECT_EQ(SessionCookieName(http), "opensense_session");
  EXPECT_EQ(SessionCookieName(https), "__Host-opensense_session");
  EXPECT_EQ(SessionCookie(https, "abc").find("__Host-opensense_session=abc; Path=/;"), 0u);
  EXPECT_NE(SessionCookie(https, "abc").find("; Secure"), std::string::npos);
  EXPECT_NE(SessionCookie(https, "abc").find("HttpOnly; SameSite=Lax"), std::string::npos);
  EXPECT_EQ(SessionCookie(http, "abc").find("Secure"), std::string::npos);
  EXPECT_EQ(*SessionFromCookieHeader(http, "a=1; opensense_session=xyz; b=2"), "xyz");
  EXPECT_FALSE(SessionFromCookieHeader(https, "opensense_session=xyz"));
  // A value that is not cookie-octets is no session (found by login_input_fuzz: a space inside).
  EXPECT_FALSE(SessionFromCookieHeader(http, "opensense_session=ab cd"));
  EXPECT_FALSE(SessionFromCookieHeader(http, std::string("opensense_session=ab\0cd", 23)));
  EXPECT_FALSE(SessionFromCookieHeader(http, "opensense_session=\xa0xyz"));
  EXPECT_FALSE(SessionFromCookieHeader(http, "opensense_session=\"xyz\""));
  EXPECT_EQ(*SessionFromCookieHeader(http, "opensense_session=Ab9_-.~x  "), "Ab9_-.~x");
  EXPECT_TRUE(SameOrigin(https, "https://sense.example.com", std::nullopt));
  EXPECT_FALSE(SameOrigin(https, "https://sense.example.com.evil.net", std::nullopt));
  EXPECT_FALSE(SameOrigin(https, "http://sense.example.com", std::nullopt));
  EXPECT_FALSE(SameOrigin(https, "null", std::nullopt));
  EXPECT_FALSE(SameOrigin(https, std::nullopt, std::nullopt));
  EXPECT_TRUE(SameOrigin(https, std::nullopt, "https://sense.example.com/app"));
  EXPECT_EQ(MagicLinkUrl(https, "T"), "https://sense.example.com/auth/magic?token=T");
  EXPECT_NE(CsrfToken("a"), CsrfToken("b"));
  EXPECT_GE(NewSecret().size() * 5.95, 128) << "at least 128 bits";
  store::SessionRow s;
  s.last_seen_at = kNow;
  s.expires_at = kNow + http.session_absolute_ms;
  EXPECT_EQ(CheckSession(http, s, kNow + 1), SessionState::kLive);
  EXPECT_EQ(CheckSession(http, s, kNow + http.session_idle_ms), SessionState::kIdle);
  s.last_seen_at = s.expires_at - 1;
  EXPECT_EQ(CheckSession(http, s, s.expires_at), SessionState::kExpired);
}

// Records every queued mail.
class RecordingMail final : public MailQueue {
 public:
  Status Enqueue(const OutgoingEmail& email) override {
    sent.push_back(email);
    return Ok();
  }
  std::vector<OutgoingEmail> sent;
};

std::string TokenIn(const OutgoingEmail& m) {
  std::smatch match;
  std::regex re("token=([A-Za-z0-9]+)");
  return std::regex_search(m.text_body, match, re) ? match[1].str() : std::string();
}

class Service : public testing::Test {
 protected:
  void SetUp() override {
    auto o = store::Backends()[0].options(dir_.path());
    o.clock = &clock_;
    store_ = std::move(*store::OpenStore(o));
    auth::TokenServiceOptions to;
    to.bcrypt_cost = 4;
    tokens_ = std::make_unique<auth::TokenService>(store_.get(), &clock_, to);
    LoginOptions lo;
    lo.public_url = "https://sense.example.com";
    service_ = std::make_unique<PeopleService>(store_.get(), tokens_.get(), &mail_, &clock_, lo);
    org_ = service_->CreateOrganisation({"A", "UTC", Tier::kTeam}, "owner@example.com", {"operator", "cli", ""})->id;
    other_ = service_->CreateOrganisation({"B", "UTC", Tier::kFree}, "owner@example.com", {"operator", "cli", ""})->id;
  }
  std::string LinkFor(const std::string& email) {
    EXPECT_TRUE(service_->RequestLogin(email, "10.0.0.1"));
    return TokenIn(mail_.sent.back());
  }
  store::ScratchDir dir_{"people"};
  ManualClock clock_{kNow};
  RecordingMail mail_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::TokenService> tokens_;
  std::unique_ptr<PeopleService> service_;
  OrgId org_ = 0, other_ = 0;
};

TEST_F(Service, KnownAndUnknownAddressesTakeTheSamePath) {
  ASSERT_TRUE(service_->RequestLogin("owner@example.com", "10.0.0.1"));
  ASSERT_TRUE(service_->RequestLogin("nobody@example.com", "10.0.0.1"));
  ASSERT_EQ(mail_.sent.size(), 2u);
  // The same writes: one magic_links row per request, whatever the address.
  auto known = store_->People().CountMagicLinks("owner@example.com", "10.0.0.1", kNow);
  auto unknown = store_->People().CountMagicLinks("nobody@example.com", "10.0.0.1", kNow);
  EXPECT_EQ(known->first, 1);
  EXPECT_EQ(unknown->first, 1);
  EXPECT_EQ(unknown->second, 2);
  // The same mail, but for the address and the token.
  auto shape = [](OutgoingEmail m) {
    const std::string token = TokenIn(m);
    auto scrub = [&](std::string s) {
      for (const std::string& what : {token, m.to}) {
        for (auto pos = s.find(what); !what.empty() && pos != std::string::npos; pos = s.find(what)) s.replace(pos, what.size(), "X");
      }
      return std::regex_replace(s, std::regex("magic-link:[0-9]+"), "magic-link:N");
    };
    return std::vector<std::string>{m.kind, m.subject, scrub(m.text_body), scrub(m.html_body),
                                    scrub(m.idempotency_key), m.org ? "org" : "none"};
  };
  EXPECT_EQ(shape(mail_.sent[0]), shape(mail_.sent[1]));
  EXPECT_EQ(mail_.sent[0].kind, "magic_link");
  // The link's host is public_url, and it carries >= 128 bits.
  EXPECT_NE(mail_.sent[0].text_body.find("https://sense.example.com/auth/magic?token="), std::string::npos);
  EXPECT_EQ(TokenIn(mail_.sent[0]).size(), 32u);
  // An unknown address's link opens no session.
  auto login = service_->CompleteLogin(TokenIn(mail_.sent[1]), "", "10.0.0.1", std::nullopt);
  ASSERT_FALSE(login);
  EXPECT_EQ(login.error().code, ErrorCode::kPermissionDenied);
}

TEST_F(Service, LinkIsSingleUseBoundToItsAddressAndExpires) {
  std::string token = LinkFor("owner@example.com");
  EXPECT_FALSE(service_->CompleteLogin(token, "other@example.com", "c", std::nullopt)) << "wrong address";
  EXPECT_TRUE(*service_->LinkLive(token)) << "a refused attempt does not burn the link";
  auto login = service_->CompleteLogin(token, "Owner@Example.com", "c", std::nullopt);
  ASSERT_TRUE(login) << login.error().message;
  EXPECT_EQ(login->member.org, org_) << "the first organisation of the address";
  EXPECT_EQ(login->memberships.size(), 2u);
  EXPECT_EQ(service_->CompleteLogin(token, "", "c", std::nullopt).error().code, ErrorCode::kNotFound) << "reuse";

  std::string late = LinkFor("owner@example.com");
  clock_.Advance(15 * kMsPerMinute);
  EXPECT_FALSE(*service_->LinkLive(late));
  EXPECT_EQ(service_->CompleteLogin(late, "", "c", std::nullopt).error().code, ErrorCode::kNotFound) << "expired";
  EXPECT_FALSE(service_->CompleteLogin("", "", "c", std::nullopt));
  EXPECT_FALSE(service_->CompleteLogin(std::string(10000, 'a'), "", "c", std::nullopt));
}

TEST_F(Service, RateLimitsPerAddressAndPerClient) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(service_->RequestLogin("owner@example.com", "10.0.0.1"));
  auto refused = service_->RequestLogin("owner@example.com", "10.0.0.2");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(refused.error().message.find("too many sign-in links for this address"), std::string::npos);
  EXPECT_EQ(mail_.sent.size(), 5u) << "nothing queued when refused";
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(service_->RequestLogin(fmt::format("p{}@example.com", i), "10.0.0.1"));
  auto client = service_->RequestLogin("fresh@example.com", "10.0.0.1");
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().message.find("network address"), std::string::npos);
  clock_.Advance(15 * kMsPerMinute);
  EXPECT_TRUE(service_->RequestLogin("owner@example.com", "10.0.0.1")) << "the window moves on";
}

TEST_F(Service, SessionsTimeOutEndAndFollowMembership) {
  auto login = service_->CompleteLogin(LinkFor("owner@example.com"), "", "c", std::nullopt);
  ASSERT_TRUE(login);
  EXPECT_TRUE(service_->ResolveSession(login->secret));
  EXPECT_FALSE(service_->ResolveSession(login->secret + "x"));
  // Idle timeout (server side).
  clock_.Advance(service_->options().session_idle_ms);
  EXPECT_FALSE(service_->ResolveSession(login->secret));
  // Activity keeps a session alive, up to the absolute timeout.
  auto second = service_->CompleteLogin(LinkFor("owner@example.com"), "", "c", std::nullopt);
  ASSERT_TRUE(second);
  for (TimestampMs t = 0; t + service_->options().session_idle_ms / 2 < service_->options().session_absolute_ms;
       t += service_->options().session_idle_ms / 2) {
    ASSERT_TRUE(service_->ResolveSession(second->secret)) << t;
    clock_.Advance(service_->options().session_idle_ms / 2);
  }
  clock_.Advance(service_->options().session_idle_ms / 2);
  EXPECT_FALSE(service_->ResolveSession(second->secret)) << "absolute timeout";
  // Session fixation: the id changes at login and the previous one ends.
  auto third = service_->CompleteLogin(LinkFor("owner@example.com"), "", "c", std::nullopt);
  auto fourth = service_->CompleteLogin(LinkFor("owner@example.com"), "", "c", third->secret);
  ASSERT_TRUE(third && fourth);
  EXPECT_NE(third->secret, fourth->secret);
  EXPECT_FALSE(service_->ResolveSession(third->secret));
  // Switching organisation; removal ends access at once.
  auto switched = service_->SwitchOrganisation(fourth->session, other_);
  ASSERT_TRUE(switched);
  EXPECT_EQ(service_->ResolveSession(fourth->secret)->member.org, other_);
  EXPECT_FALSE(service_->SwitchOrganisation(fourth->session, 9999));
  auto invited = service_->Invite(other_, "second@example.com", Role::kOwner, Role::kOwner, {"t", "t", ""});
  ASSERT_TRUE(invited);
  ASSERT_TRUE(service_->RemoveMember(other_, service_->ResolveSession(fourth->secret)->member.id, Role::kOwner, {"t", "t", ""}));
  EXPECT_FALSE(service_->ResolveSession(fourth->secret));
  // Log out everywhere.
  auto a = service_->CompleteLogin(LinkFor("owner@example.com"), "", "c", std::nullopt);
  auto b = service_->CompleteLogin(LinkFor("owner@example.com"), "", "c", std::nullopt);
  // a, b, and the session in the organisation the address was removed from (still open, useless).
  EXPECT_EQ(*service_->LogoutEverywhere("owner@example.com"), 3);
  EXPECT_FALSE(service_->ResolveSession(a->secret));
  EXPECT_FALSE(service_->ResolveSession(b->secret));
}

TEST_F(Service, InvitationIsAMagicLinkAndRolesAreBounded) {
  auto m = service_->Invite(org_, "new@example.com", Role::kMember, Role::kAdmin, {"user:1", "session", "c"});
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(mail_.sent.back().kind, "invitation");
  EXPECT_EQ(*mail_.sent.back().org, org_);
  auto login = service_->CompleteLogin(TokenIn(mail_.sent.back()), "new@example.com", "c", std::nullopt);
  ASSERT_TRUE(login);
  EXPECT_EQ(login->member.role, Role::kMember);
  EXPECT_EQ(service_->Invite(org_, "x@example.com", Role::kOwner, Role::kAdmin, {}).error().code,
            ErrorCode::kPermissionDenied);
  EXPECT_EQ(service_->Invite(org_, "new@example.com", Role::kMember, Role::kAdmin, {}).error().code,
            ErrorCode::kAlreadyExists);
  auto owner = store_->People().MembershipsOf("owner@example.com")->front();
  EXPECT_EQ(service_->ChangeRole(org_, owner.id, Role::kViewer, Role::kAdmin, {}).error().code,
            ErrorCode::kPermissionDenied) << "only an owner touches owners";
  EXPECT_EQ(service_->ChangeRole(org_, owner.id, Role::kViewer, Role::kOwner, {}).error().code,
            ErrorCode::kFailedPrecondition) << "the last owner stays";
  // The free tier's member limit.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(service_->Invite(other_, fmt::format("f{}@example.com", i), Role::kViewer, Role::kOwner, {}));
  auto full = service_->Invite(other_, "f9@example.com", Role::kViewer, Role::kOwner, {});
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kFailedPrecondition);
}

TEST_F(Service, SignupOnlyWhenEnabled) {
  EXPECT_EQ(service_->RequestSignup("founder@example.com", "Cold Ltd", "c").error().code, ErrorCode::kNotFound);
  LoginOptions lo = service_->options();
  lo.self_signup = true;
  PeopleService open(store_.get(), tokens_.get(), &mail_, &clock_, lo);
  ASSERT_TRUE(open.RequestSignup("founder@example.com", "Cold Ltd", "c"));
  auto login = open.CompleteLogin(TokenIn(mail_.sent.back()), "", "c", std::nullopt);
  ASSERT_TRUE(login) << login.error().message;
  EXPECT_EQ(login->member.role, Role::kOwner);
  EXPECT_EQ(store_->GetOrganization(login->member.org)->name, "Cold Ltd");
  EXPECT_EQ(store_->GetOrganization(login->member.org)->tier, Tier::kFree);
}

}  // namespace
}  // namespace opensense::people
