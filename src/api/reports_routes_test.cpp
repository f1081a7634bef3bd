// The report routes without a socket: answers, streamed CSV, bad requests and organisation
// isolation (another organisation's device is 404, never a report).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>
#include <nlohmann/json.hpp>

#include "api/api.hpp"
#include "core/time_zone.hpp"
#include "store/test_util.hpp"

namespace opensense::api {
namespace {

constexpr TimestampMs kNow = 1794744000000;  // 2026-11-15T12:00:00Z

class ReportRoutes : public ::testing::TestWithParam<store::Backend> {
 protected:
  void SetUp() override {
    auto o = GetParam().options(dir_.path());
    o.clock = &clock_;
    store_ = std::move(*store::OpenStore(o));
    auth::TokenServiceOptions to;
    to.bcrypt_cost = 4;
    tokens_ = std::make_unique<auth::TokenService>(store_.get(), &clock_, to);
    api_ = std::make_unique<Api>(store_.get(), tokens_.get(), &metrics_, &clock_);
    router_ = api_->BuildRouter();
    org_ = store_->CreateOrganization({"A", "Europe/Berlin", Tier::kFree})->id;
    other_ = store_->CreateOrganization({"B", "UTC", Tier::kFree})->id;
    DeviceProfile p;
    p.target_min = 2;
    p.target_max = 8;
    p.expected_interval_s = 300;
    device_ = store_->CreateDevice({org_, "Fridge", std::nullopt, std::nullopt, p})->id;
    empty_device_ = store_->CreateDevice({org_, "Empty", std::nullopt, std::nullopt})->id;
    foreign_ = store_->CreateDevice({other_, "Theirs", std::nullopt, std::nullopt, p})->id;
    // 2026-10-24 .. 2026-10-26 (Berlin), every 5 minutes; 25 October has 25 hours.
    std::vector<Reading> readings;
    const TimestampMs from = *ParseTimestamp("2026-10-23T22:00:00Z"), until = *ParseTimestamp("2026-10-26T23:00:00Z");
    for (TimestampMs t = from; t < until; t += 5 * kMsPerMinute) readings.push_back({device_, "temperature", "Cel", t, 4.5});
    for (DeviceId d : {foreign_}) {
      auto r = store_->Ingest(other_, {{d, "temperature", "Cel", from, 4.0}}).get();
      ASSERT_TRUE(r && r->accepted == 1);
    }
    auto r = store_->Ingest(org_, std::move(readings)).get();
    ASSERT_TRUE(r && r->rejected.empty());
    viewer_ = Token(org_, Role::kMember, "member@example.com");  // download_reports: member
    other_viewer_ = Token(other_, Role::kMember, "them@example.com");
  }
  void TearDown() override { store_->Close(); }

  std::string Token(OrgId org, Role role, const std::string& email) {
    auto u = store_->CreateUser(org, email, role);
    return tokens_->IssueUserToken(org, u->id, role, "")->token;
  }
  http::Response Get(const std::string& target, const std::string& token, std::string method = "GET",
                     std::string body = "") {
    auto req = http::Request::FromTarget(std::move(method), target, std::move(body));
    req->headers.emplace_back("Content-Type", "application/json");
    EXPECT_TRUE(req);
    if (!token.empty()) req->headers.emplace_back("Authorization", "Bearer " + token);
    return router_.Handle(*req);
  }
  static std::string Drain(http::Response& r) {
    std::string body = r.body;
    if (!r.stream) return body;
    for (int i = 0; i < 100000; ++i) {
      std::string chunk;
      bool more = r.stream(chunk);
      body += chunk;
      if (!more) break;
    }
    return body;
  }
  static std::string Header(const http::Response& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
      if (k == name) return v;
    return "";
  }

  store::ScratchDir dir_{"report-routes"};
  ManualClock clock_{kNow};
  MetricsRegistry metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::TokenService> tokens_;
  std::unique_ptr<Api> api_;
  http::Router router_;
  OrgId org_ = 0, other_ = 0;
  DeviceId device_ = 0, empty_device_ = 0, foreign_ = 0;
  std::string viewer_, other_viewer_;
};

TEST_P(ReportRoutes, PdfAndDailyCsvForAViewer) {
  auto pdf = Get(fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-24&to=2026-10-26&paper=letter",
                             device_),
                 viewer_);
  ASSERT_EQ(pdf.status, 200) << pdf.body;
  EXPECT_EQ(Header(pdf, "Content-Type"), "application/pdf");
  EXPECT_EQ(pdf.body.rfind("%PDF-", 0), 0u);
  EXPECT_EQ(Header(pdf, "X-Report-Digest").size(), 64u);
  EXPECT_NE(Header(pdf, "Content-Disposition").find("compliance-2026-10-24-2026-10-26.pdf"), std::string::npos);

  auto csv = Get(fmt::format("/api/v1/reports/daily.csv?devices={}&from=2026-10-24&to=2026-10-26", device_), viewer_);
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(Header(csv, "X-Report-Digest"), Header(pdf, "X-Report-Digest")) << "same data, same digest";
  std::string body = Drain(csv);
  EXPECT_NE(body.find(fmt::format("{},\"Fridge\",2026-10-25,25,4.5,4.5,4.50,300,300,0,0,\"\",5m,Cel", device_)),
            std::string::npos)
      << body;
  EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 4);

  // By site: the device must be in the site.
  auto site = store_->CreateSite(org_, "Kitchen");
  store::DeviceUpdate up;
  up.site = site->id;
  ASSERT_TRUE(store_->UpdateDevice(org_, device_, up));
  EXPECT_EQ(Get(fmt::format("/api/v1/reports/compliance.pdf?site={}&from=2026-10-24&to=2026-10-26", site->id), viewer_)
                .status,
            200);

  // Every download is an audit event of the organisation: who, which report, devices and period.
  store::AuditFilter filter;
  filter.org = org_;
  filter.action_prefix = "report";
  auto audit = store_->People().ListAudit(filter);
  ASSERT_TRUE(audit);
  std::multiset<std::string> actions;
  for (const auto& e : *audit) {
    actions.insert(e.action + " " + e.target);
    EXPECT_NE(e.new_value.find("2026-10-24"), std::string::npos) << e.new_value;
    EXPECT_NE(e.actor.find("user:"), std::string::npos) << e.actor;
  }
  EXPECT_EQ(actions, (std::multiset<std::string>{"report.compliance_pdf report:compliance_pdf",
                                                 "report.compliance_pdf report:compliance_pdf",
                                                 "report.daily_csv report:daily_csv"}));
}

TEST_P(ReportRoutes, ReadingsCsvStreamsEveryReadingOfThePeriod) {
  auto r = Get(fmt::format("/api/v1/reports/readings.csv?devices={}&from=2026-10-25&to=2026-10-25", device_), viewer_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Header(r, "X-Readings-Level"), "raw");
  std::string body = Drain(r);
  EXPECT_EQ(std::count(body.begin(), body.end(), '\n'), 1 + 25 * 12) << body.substr(0, 500);
  EXPECT_NE(body.find(fmt::format("{},Fridge,2026-10-25T02:55:00.000+02:00,4.5,4.5,4.5,1,Cel,raw", device_)),
            std::string::npos);
  EXPECT_NE(body.find(fmt::format("{},Fridge,2026-10-25T02:00:00.000+01:00,4.5", device_)), std::string::npos);
  auto hourly = Get(fmt::format("/api/v1/reports/readings.csv?devices={}&from=2026-10-25&to=2026-10-25&resolution=1h",
                                device_),
                    viewer_);
  std::string hb = Drain(hourly);
  EXPECT_EQ(std::count(hb.begin(), hb.end(), '\n'), 1 + 25);
  EXPECT_EQ(Get(fmt::format("/api/v1/reports/readings.csv?devices={}&from=2026-10-25&to=2026-10-25&resolution=auto",
                            device_),
                viewer_)
                .status,
            400);
}

TEST_P(ReportRoutes, BadRequestsAreClearErrors) {
  struct Case {
    std::string target;
    int status;
    const char* message_part;
  };
  std::vector<Case> cases = {
      {fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-26&to=2026-10-24", device_), 400,
       "must be before"},
      {fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2016-10-01&to=2026-10-01", device_), 400,
       "three years"},
      {fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-01-01&to=2026-01-31", device_), 404,
       "at any level"},
      {fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-24&to=2026-10-26", empty_device_), 404,
       "at any level"},
      {"/api/v1/reports/compliance.pdf?devices=999999&from=2026-10-24&to=2026-10-26", 404, "no device 999999"},
      {fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-24&to=2026-10-26", foreign_), 404,
       "no device"},
      {fmt::format("/api/v1/reports/daily.csv?devices={},{}&from=2026-10-24&to=2026-10-26", device_, foreign_), 404,
       "no device"},
      {fmt::format("/api/v1/reports/readings.csv?devices={}&from=2026-10-24&to=2026-10-26", foreign_), 404,
       "no device"},
      {"/api/v1/reports/compliance.pdf?site=77&from=2026-10-24&to=2026-10-26", 404, "no site 77"},
      {fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-24", device_), 400, "required"},
      {fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-24&to=2026-10-26&paper=a5", device_), 400,
       "a4 or letter"},
      {"/api/v1/reports/compliance.pdf?devices=1;2&from=2026-10-24&to=2026-10-26", 400, "positive id"},
      {"/api/v1/reports/compliance.pdf?devices=1&from=2026-10-24&to=2026-10-26&devices=2", 400, "more than once"},
      {"/api/v1/reports/readings.csv?devices=1&from=2026-10-24&to=2026-10-26&resolution=2m", 400, "resolution"},
  };
  for (const auto& c : cases) {
    auto r = Get(c.target, viewer_);
    EXPECT_EQ(r.status, c.status) << c.target << " " << r.body;
    EXPECT_NE(r.body.find(c.message_part), std::string::npos) << c.target << " " << r.body;
  }
  // Authentication: none is 401; the other organisation's viewer never sees our device.
  EXPECT_EQ(Get(fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-24&to=2026-10-26", device_), "")
                .status,
            401);
  auto theirs = Get(fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-24&to=2026-10-26", device_),
                    other_viewer_);
  EXPECT_EQ(theirs.status, 404) << theirs.body;
  EXPECT_EQ(theirs.body.find("Fridge"), std::string::npos);
  // Downloading reports needs the member role (permission download_reports).
  EXPECT_EQ(Get(fmt::format("/api/v1/reports/compliance.pdf?devices={}&from=2026-10-24&to=2026-10-26", device_),
                Token(org_, Role::kViewer, "viewer@example.com"))
                .status,
            403);
}

// The gate's bounds reach the client as 429 (queue full) and 503 (waited too long), each with
// Retry-After and a JSON error, for every report route; nothing is rendered or audited.
TEST_P(ReportRoutes, BusyReportsAreRefusedWith429Or503AndRetryAfter) {
  const std::string period = "&from=2026-10-24&to=2026-10-27";
  const std::vector<std::string> targets = {
      fmt::format("/api/v1/reports/compliance.pdf?devices={}{}", device_, period),
      fmt::format("/api/v1/reports/daily.csv?devices={}{}", device_, period),
      fmt::format("/api/v1/reports/readings.csv?devices={}{}", device_, period)};
  auto with = [&](int running, int waiting, std::chrono::milliseconds wait) {
    ApiOptions o;
    o.reports_running = running;
    o.reports_waiting = waiting;
    o.reports_max_wait = wait;
    api_ = std::make_unique<Api>(store_.get(), tokens_.get(), &metrics_, &clock_, o);
    router_ = api_->BuildRouter();
  };
  with(0, 0, std::chrono::milliseconds(0));  // every slot taken, no room to wait
  for (const auto& t : targets) {
    auto r = Get(t, viewer_);
    EXPECT_EQ(r.status, 429) << t << " " << r.body;
    EXPECT_EQ(Header(r, "Retry-After"), "5") << t;
    auto body = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_EQ(body["error"].value("code", ""), "resource_exhausted") << r.body;
    EXPECT_NE(body["error"].value("message", "").find("try again"), std::string::npos) << r.body;
  }
  with(0, 1, std::chrono::milliseconds(5));  // room to wait, but no slot frees up in time
  for (const auto& t : targets) {
    auto r = Get(t, viewer_);
    EXPECT_EQ(r.status, 503) << t << " " << r.body;
    EXPECT_EQ(Header(r, "Retry-After"), "5") << t;
  }
  store::AuditFilter filter;
  filter.org = org_;
  auto audit = store_->People().ListAudit(filter);
  ASSERT_TRUE(audit);
  for (const auto& e : *audit) EXPECT_EQ(e.action.rfind("report.", 0), std::string::npos) << e.action;
  with(2, 4, std::chrono::milliseconds(20'000));  // the defaults: served
  EXPECT_EQ(Get(targets[0], viewer_).status, 200);
}

TEST_P(ReportRoutes, DeviceProfileFieldsInTheDeviceJson) {
  std::string admin = Token(org_, Role::kAdmin, "admin@example.com");
  auto patched = Get(fmt::format("/api/v1/devices/{}", empty_device_), admin, "PATCH",
                     R"({"target_min": 2, "target_max": 8, "expected_interval_s": 60, "medicine_storage": true,
                         "calibration_date": "2026-01-05", "calibration_due": "2027-01-05"})");
  ASSERT_EQ(patched.status, 200) << patched.body;
  auto got = nlohmann::json::parse(Get(fmt::format("/api/v1/devices/{}", empty_device_), viewer_).body);
  EXPECT_EQ(got["target_max"], 8);
  EXPECT_EQ(got["expected_interval_s"], 60);
  EXPECT_EQ(got["medicine_storage"], true);
  EXPECT_EQ(got["calibration_due"], "2027-01-05");
  EXPECT_EQ(got["name"], "Empty");
  auto cleared = Get(fmt::format("/api/v1/devices/{}", empty_device_), admin, "PATCH", R"({"target_min": null})");
  ASSERT_EQ(cleared.status, 200);
  EXPECT_TRUE(nlohmann::json::parse(cleared.body)["target_min"].is_null());
  auto created = Get("/api/v1/devices", admin, "POST", R"({"name": "Freezer", "target_max": -18})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(nlohmann::json::parse(created.body)["target_max"], -18);
  for (const char* bad : {R"({"target_min": "cold"})", R"({"target_min": 9})", R"({"expected_interval_s": 0})",
                          R"({"expected_interval_s": 1.5})", R"({"medicine_storage": "yes"})",
                          R"({"calibration_due": "2027-13-01"})", R"({"calibration_due": "2025-01-01"})"}) {
    auto r = Get(fmt::format("/api/v1/devices/{}", empty_device_), admin, "PATCH", bad);
    EXPECT_EQ(r.status, 400) << bad << " " << r.body;
  }
  EXPECT_EQ(Get("/api/v1/devices", admin, "POST", R"({"name": "X", "target_min": 5, "target_max": 1})").status, 400);
  EXPECT_EQ(nlohmann::json::parse(Get(fmt::format("/api/v1/devices/{}", empty_device_), viewer_).body)["target_max"], 8)
      << "a refused change leaves the device as it was";
}

// Both stores: the reports read rollups, alerts and device profiles through the Store interface.
INSTANTIATE_TEST_SUITE_P(Backends, ReportRoutes, testing::ValuesIn(store::Backends()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace opensense::api
