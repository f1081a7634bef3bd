// Reports: parsing, the pure computations (days across DST, excursions, gaps, MKT), and whole
// reports rendered from a real SQLite store filled with known data, checked with poppler's
// pdftotext / pdfinfo / pdftoppm.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "core/clock.hpp"
#include "reports/report.hpp"
#include "shell_helpers.hpp"
#include "sim/fridge_model.hpp"
#include "store/alert_store.hpp"
#include "store/store.hpp"
#include "store/test_util.hpp"

namespace opensense::reports {
namespace {

using Query = std::multimap<std::string, std::string>;

TimeZone Berlin() { return *TimeZone::Load("Europe/Berlin"); }
TimestampMs T(const char* rfc3339) { return *ParseTimestamp(rfc3339); }

// ---- parsing ----------------------------------------------------------------------------------

TEST(ReportQuery, LocalDatesAreWholeDaysInTheOrganisationsZone) {
  auto r = ParseReportQuery({{"devices", "3,1,3"}, {"from", "2026-10-25"}, {"to", "2026-10-25"}, {"paper", "letter"}},
                            Berlin(), T("2026-11-15T00:00:00Z"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->devices, (std::vector<DeviceId>{3, 1}));
  EXPECT_EQ(r->from, T("2026-10-24T22:00:00Z"));  // CEST midnight
  EXPECT_EQ(r->to, T("2026-10-25T23:00:00Z"));    // CET midnight: the day has 25 hours
  EXPECT_EQ(r->paper, Paper::kLetter);
  EXPECT_EQ(r->metric, "temperature");
  EXPECT_DOUBLE_EQ(r->activation_energy_kj_mol, 83.144);
  auto rfc = ParseReportQuery({{"site", "2"}, {"from", "2026-10-01T00:00:00Z"}, {"to", "1793491200000"}, {"ea", "90.5"}},
                              Berlin(), T("2026-11-15T00:00:00Z"));
  ASSERT_TRUE(rfc) << rfc.error().message;
  EXPECT_EQ(rfc->site, 2);
  EXPECT_DOUBLE_EQ(rfc->activation_energy_kj_mol, 90.5);
}

TEST(ReportQuery, MalformedAndHostileQueriesAreClearErrors) {
  const TimestampMs now = T("2026-11-15T00:00:00Z");
  struct Case {
    Query q;
    const char* message_part;
  };
  const std::string huge(100000, '1');
  std::vector<Case> cases = {
      {{{"from", "2026-10-10"}, {"to", "2026-10-01"}}, "must be before"},
      {{{"from", "2026-10-10"}, {"to", "2026-10-09"}}, "must be before"},
      {{{"from", "2016-01-01"}, {"to", "2026-01-01"}}, "at most 1096 days"},
      {{{"from", "2027-01-01"}, {"to", "2027-02-01"}}, "in the future"},
      {{{"from", "2026-10-01"}}, "required"},
      {{}, "required"},
      {{{"from", "2026-02-30"}, {"to", "2026-03-01"}}, "'from'"},
      {{{"from", "yesterday"}, {"to", "2026-03-01"}}, "'from'"},
      {{{"from", "2026-10-01"}, {"to", "2026-10-02T25:00:00Z"}}, "'to'"},
      {{{"devices", "1,x"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "positive id"},
      {{{"devices", "1,,2"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "positive id"},
      {{{"devices", "-1"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "positive id"},
      {{{"devices", "0"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "positive id"},
      {{{"devices", "99999999999999999999999"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "positive id"},
      {{{"devices", huge}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "too long"},
      {{{"devices", "1"}, {"site", "1"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "not both"},
      {{{"devices", "1"}, {"devices", "2"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "more than once"},
      {{{"device", "1"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "unknown parameter"},
      {{{"paper", "a3"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "a4 or letter"},
      {{{"metric", "Temp'; DROP TABLE"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "'metric'"},
      {{{"ea", "nan"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "activation energy"},
      {{{"ea", "1e308"}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "activation energy"},
      {{{"from", std::string("2026-10-01\0x", 12)}, {"to", "2026-10-02"}}, "'from'"},
  };
  std::string many;
  for (int i = 1; i <= 51; ++i) many += (i > 1 ? "," : "") + std::to_string(i);
  cases.push_back({{{"devices", many}, {"from", "2026-10-01"}, {"to", "2026-10-02"}}, "at most 50 devices"});
  for (const auto& c : cases) {
    auto r = ParseReportQuery(c.q, Berlin(), now);
    ASSERT_FALSE(r) << c.message_part;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.message_part), std::string::npos) << r.error().message;
  }
}

TEST(ReportQuery, LocalDateStartAroundDstAndInFarZones) {
  EXPECT_EQ(*LocalDateStart("2026-03-29", Berlin()), T("2026-03-28T23:00:00Z"));
  EXPECT_EQ(*LocalDateStart("2026-03-30", Berlin()), T("2026-03-29T22:00:00Z"));
  auto kiritimati = *TimeZone::Load("Pacific/Kiritimati");  // UTC+14
  EXPECT_EQ(*LocalDateStart("2026-01-02", kiritimati), T("2026-01-01T10:00:00Z"));
  auto niue = *TimeZone::Load("Pacific/Niue");  // UTC-11
  EXPECT_EQ(*LocalDateStart("2026-01-02", niue), T("2026-01-02T11:00:00Z"));
}

// ---- pure computations -------------------------------------------------------------------------

TEST(MeanKineticTemperature, GoldenWorkedExample) {
  // Worked independently: MKT = (Ea/R) / -ln( sum(exp(-Ea/(R T_i))) / n ), T in kelvin,
  // Ea = 83.144 kJ/mol, R = 8.3144626 J/(mol K) so Ea/R is 10000.0 K (to 6 digits).
  // Two equal periods at 20 °C and 30 °C: exp(-10000/293.15) = 1.5454e-15 and
  // exp(-10000/303.15) = 4.7985e-15, mean 3.1720e-15, -ln = 33.3844, 10000/33.3844 = 299.54 K.
  EXPECT_NEAR(*MeanKineticTemperature({{20, 1}, {30, 1}}, 83.144), 26.26, 0.01);
  // A medicine fridge at 2 and 8 °C half of the time each: 5.54 °C (mean 5.0: MKT weighs warm).
  EXPECT_NEAR(*MeanKineticTemperature({{2, 5}, {8, 5}}, 83.144), 5.54, 0.01);
  // 10 hours at 5 °C and 2 hours at 25 °C.
  EXPECT_NEAR(*MeanKineticTemperature({{5, 10}, {25, 2}}, 83.144), 12.88, 0.01);
  // Computed here a second way, from the definition with the weights spelt out.
  const double e_over_r = 83144.0 / 8.314462618;
  std::vector<std::pair<double, double>> series;
  double sum = 0, n = 0;
  for (int i = 0; i < 1000; ++i) {
    double c = 4 + 3 * std::sin(i / 37.0);
    series.emplace_back(c, 1);
    sum += std::exp(-e_over_r / (c + 273.15));
    n += 1;
  }
  EXPECT_NEAR(*MeanKineticTemperature(series, 83.144), e_over_r / -std::log(sum / n) - 273.15, 1e-6);
  EXPECT_DOUBLE_EQ(*MeanKineticTemperature({{25, 3}}, 83.144), 25.0);
  EXPECT_FALSE(MeanKineticTemperature({}, 83.144));
  // A higher activation energy weighs warm periods more.
  EXPECT_GT(*MeanKineticTemperature({{20, 1}, {30, 1}}, 120), *MeanKineticTemperature({{20, 1}, {30, 1}}, 83.144));
}

SeriesPoint Bucket(TimestampMs t, double v) { return {t, v, v, v, 5}; }

TEST(ComputeDevice, DaysFollowDstExcursionsMergeAndGapsAreListed) {
  const TimeZone zone = Berlin();
  const TimestampMs from = *LocalDateStart("2026-10-24", zone), to = *LocalDateStart("2026-10-27", zone);
  DeviceReport d;
  d.level = Resolution::k5m;
  d.device.profile.target_min = 2;
  d.device.profile.target_max = 8;
  d.device.profile.expected_interval_s = 60;
  d.device.profile.calibration_due = "2026-11-01";
  std::vector<SeriesPoint> pts;
  for (TimestampMs t = from; t < to; t += 5 * kMsPerMinute) {
    if (t >= T("2026-10-25T12:00:00Z") && t < T("2026-10-25T13:00:00Z")) continue;  // a 1 h gap
    double v = 5;
    if (t >= T("2026-10-24T10:00:00Z") && t < T("2026-10-24T10:30:00Z")) v = 9 + static_cast<double>((t / (5 * kMsPerMinute)) % 3);
    if (t >= T("2026-10-26T03:00:00Z") && t < T("2026-10-26T03:10:00Z")) v = 1;
    pts.push_back(Bucket(t, v));
  }
  ComputeDevice(pts, from, to, T("2026-11-15T00:00:00Z"), zone, 83.144, &d);
  ASSERT_EQ(d.days.size(), 3u);
  EXPECT_EQ(d.days[1].date, "2026-10-25");
  EXPECT_EQ(d.days[1].end - d.days[1].start, 25 * kMsPerHour);
  EXPECT_EQ(*d.days[1].expected, 1500);
  EXPECT_EQ(d.days[1].received, (25 - 1) * 12 * 5);
  EXPECT_EQ(d.days[1].flags, std::vector<std::string>{"gap"});
  EXPECT_EQ(d.days[0].above_ms, 30 * kMsPerMinute);
  EXPECT_EQ(d.days[2].below_ms, 10 * kMsPerMinute);
  ASSERT_EQ(d.excursions.size(), 2u);
  EXPECT_TRUE(d.excursions[0].above);
  EXPECT_EQ(d.excursions[0].start, T("2026-10-24T10:00:00Z"));
  EXPECT_EQ(d.excursions[0].end, T("2026-10-24T10:30:00Z"));
  EXPECT_DOUBLE_EQ(d.excursions[0].peak, 11);
  EXPECT_FALSE(d.excursions[1].above);
  ASSERT_EQ(d.gaps.size(), 1u);
  EXPECT_EQ(d.gaps[0].start, T("2026-10-25T12:00:00Z"));
  EXPECT_EQ(d.gaps[0].end, T("2026-10-25T13:00:00Z"));
  EXPECT_EQ(d.compliant, false);
  EXPECT_TRUE(d.calibration_overdue);
  EXPECT_FALSE(d.mkt);  // not a medicine store

  // Nothing expected after now: no trailing gap, the expected count stops at now.
  DeviceReport live = d;
  ComputeDevice(pts, from, to, T("2026-10-26T12:00:00Z"), zone, 83.144, &live);
  EXPECT_EQ(live.gaps.size(), 1u);
  EXPECT_EQ(*live.days[2].expected, 13 * 60);
}

TEST(ComputeDevice, NoDataIsOneGapAndNotCompliant) {
  const TimeZone zone = Berlin();
  DeviceReport d;
  d.device.profile.target_max = -18;
  ComputeDevice({}, T("2026-10-01T00:00:00Z"), T("2026-10-02T00:00:00Z"), T("2026-11-01T00:00:00Z"), zone, 83.144, &d);
  EXPECT_FALSE(d.has_data);
  ASSERT_EQ(d.gaps.size(), 1u);
  EXPECT_EQ(d.compliant, false);
  EXPECT_EQ(FormatDuration(90 * kMsPerMinute), "1:30");
  EXPECT_EQ(FormatDuration(100 * kMsPerHour), "100:00");
}

TEST(ReportGate, BoundsRunningAndWaitingRequests) {
  ReportGate gate(2, 1, std::chrono::milliseconds(50));
  auto a = gate.Acquire(), b = gate.Acquire();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(gate.running(), 2);
  // A waiter gets the slot that is released.
  std::thread waiter([&] {
    auto c = gate.Acquire();
    EXPECT_TRUE(c || c.error().code == ErrorCode::kUnavailable);
  });
  // While it waits (or after it gave up), a further request is refused or waits; never a third
  // running report.
  EXPECT_LE(gate.running(), 2);
  waiter.join();
  ReportGate full(1, 0, std::chrono::milliseconds(0));
  auto only = full.Acquire();
  ASSERT_TRUE(only);
  auto refused = full.Acquire();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kResourceExhausted);
  only->Release();
  EXPECT_TRUE(full.Acquire());
  ReportGate slow(1, 1, std::chrono::milliseconds(1));
  auto held = slow.Acquire();
  auto timed_out = slow.Acquire();
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().code, ErrorCode::kUnavailable);
}

// ---- whole reports from a real store -----------------------------------------------------------

std::string Shell(const std::string& command) { return opensense::testing::Shell(command).output; }

std::string Squeeze(const std::string& text) {
  return std::regex_replace(text, std::regex("[ \\t]+"), " ");
}

class FakeAlerts final : public AlertHistory {
 public:
  Result<std::vector<AlertRecord>> AlertsInPeriod(OrgId, DeviceId device, TimestampMs from, TimestampMs to) override {
    std::vector<AlertRecord> out;
    for (const auto& a : alerts)
      if (a.device == device && a.start < to && a.end.value_or(to) > from) out.push_back(a);
    return out;
  }
  std::vector<AlertRecord> alerts;
};

// 2026-10-20 .. 2026-10-29 in Berlin (the clocks go back on 25 October): a vaccine fridge at
// exactly 5.0 °C every minute with a hand-made excursion (12.0 °C, 23 Oct 10:00-11:30) and a gap
// (26 Oct 02:00-05:00 local), and a simulated fridge (seed 42).
class ReportFromStore : public ::testing::Test {
 protected:
  static constexpr TimestampMs kNow = 1794744000000;  // 2026-11-15T12:00:00Z
  void SetUp() override {
    auto o = store::Backends()[0].options(dir_.path());
    o.clock = &clock_;
    store_ = std::move(*store::OpenStore(o));
    org_ = store_->CreateOrganization({"Apotheke am Markt", "Europe/Berlin", Tier::kFree})->id;
    other_org_ = store_->CreateOrganization({"Other", "UTC", Tier::kFree})->id;
    site_ = store_->CreateSite(org_, "Dispensary")->id;
    DeviceProfile vaccine;
    vaccine.target_min = 2;
    vaccine.target_max = 8;
    vaccine.expected_interval_s = 60;
    vaccine.medicine_storage = true;
    vaccine.calibration_date = "2025-01-10";
    vaccine.calibration_due = "2026-01-10";  // overdue on 2026-11-15
    vaccine_ = store_->CreateDevice({org_, "Vaccine fridge", site_, "VF-1", vaccine})->id;
    DeviceProfile fridge;
    fridge.target_min = 0;
    fridge.target_max = 10;
    fridge.calibration_date = "2026-06-01";
    fridge.calibration_due = "2027-06-01";
    sim_ = store_->CreateDevice({org_, "Stock fridge", site_, "SF-2", fridge})->id;
    foreign_ = store_->CreateDevice({other_org_, "Foreign", std::nullopt, std::nullopt})->id;
    from_ = *LocalDateStart("2026-10-20", Berlin());
    to_ = *LocalDateStart("2026-10-30", Berlin());

    std::vector<Reading> batch;
    auto flush = [&] {
      auto r = store_->Ingest(org_, std::move(batch)).get();
      ASSERT_TRUE(r) << r.error().message;
      ASSERT_TRUE(r->rejected.empty()) << r->rejected.front().message;
      batch.clear();
    };
    const TimestampMs exc_from = T("2026-10-23T08:00:00Z"), exc_to = T("2026-10-23T09:30:00Z");
    const TimestampMs gap_from = T("2026-10-26T01:00:00Z"), gap_to = T("2026-10-26T04:00:00Z");
    for (TimestampMs t = from_; t < to_; t += kMsPerMinute) {
      if (t >= gap_from && t < gap_to) continue;
      batch.push_back({vaccine_, "temperature", "Cel", t, (t >= exc_from && t < exc_to) ? 12.0 : 5.0});
      if (batch.size() >= 20000) flush();
    }
    sim::FridgeModel model({"Stock fridge", sim::UnitKind::kFridge, 4.0, false, 42}, from_ - kMsPerMinute, Berlin());
    for (const auto& s : model.AdvanceTo(to_ - 1)) {
      if (s.metric == "temperature") batch.push_back({sim_, s.metric, s.unit, s.ts, s.value});
      if (batch.size() >= 20000) flush();
    }
    flush();
    alerts_.alerts.push_back({1, vaccine_, "above 8 °C", T("2026-10-23T08:05:00Z"), T("2026-10-23T09:35:00Z"), 12.0,
                              "ana@example.com", T("2026-10-23T08:40:00Z"),
                              "Door left open after delivery", false});
    alerts_.alerts.push_back({2, vaccine_, "offline", T("2026-10-26T01:10:00Z"), T("2026-10-26T04:00:00Z"),
                              std::nullopt, "ben@example.com", T("2026-10-26T07:30:00Z"),
                              "Gateway power restored", true});
  }
  void TearDown() override { store_->Close(); }

  ReportRequest Request(Paper paper = Paper::kA4) {
    ReportRequest r;
    r.org = org_;
    r.devices = {vaccine_, sim_};
    r.from = from_;
    r.to = to_;
    r.paper = paper;
    r.generated_by = "user:1 ana@example.com";
    r.software_version = "0.1.0";
    return r;
  }
  std::string WritePdf(const std::string& bytes, const std::string& name) {
    std::string path = dir_.path() + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    // To look at the reports: REPORTS_TEST_KEEP=/some/dir keeps a copy.
    if (const char* keep = std::getenv("REPORTS_TEST_KEEP")) {
      std::filesystem::copy_file(path, std::string(keep) + "/" + name,
                                 std::filesystem::copy_options::overwrite_existing);
    }
    return path;
  }

  store::ScratchDir dir_{"reports"};
  ManualClock clock_{kNow};
  std::unique_ptr<store::Store> store_;
  FakeAlerts alerts_;
  OrgId org_ = 0, other_org_ = 0;
  SiteId site_ = 0;
  DeviceId vaccine_ = 0, sim_ = 0, foreign_ = 0;
  TimestampMs from_ = 0, to_ = 0;
};

TEST_F(ReportFromStore, PdfShowsTheDailyTableExcursionsAlertsGapsAndDigest) {
  auto data = BuildReport(*store_, alerts_, Request(), kNow);
  ASSERT_TRUE(data) << data.error().message;
  ASSERT_EQ(data->devices.size(), 2u);
  EXPECT_EQ(data->devices[0].level, Resolution::k5m);
  EXPECT_EQ(data->digest.size(), 64u);
  auto pdf = RenderPdf(*data);
  ASSERT_TRUE(pdf) << pdf.error().message;
  ASSERT_EQ(pdf->rfind("%PDF-", 0), 0u);
  const std::string path = WritePdf(*pdf, "report.pdf");
  const std::string text = Squeeze(Shell("pdftotext -layout " + path + " -"));

  // Cover.
  EXPECT_NE(text.find("Apotheke am Markt"), std::string::npos);
  EXPECT_NE(text.find("Dispensary"), std::string::npos);
  EXPECT_NE(text.find("2026-10-20 00:00 to 2026-10-30 00:00 (Europe/Berlin)"), std::string::npos) << text.substr(0, 2000);
  EXPECT_NE(text.find("by user:1 ana@example.com"), std::string::npos);
  EXPECT_NE(text.find("OpenSense 0.1.0"), std::string::npos);
  // Summary: the vaccine fridge is not compliant (1:30 above range, a gap), 1 excursion, 2 alerts.
  EXPECT_NE(text.find("Vaccine fridge Dispensary 2.0 to 8.0 °C NO 1:30 1 2 1"), std::string::npos) << text.substr(0, 3000);
  // Calibration: overdue.
  EXPECT_NE(text.find("VF-1 2025-01-10 2026-01-10 OVERDUE"), std::string::npos);
  EXPECT_NE(text.find("SF-2 2026-06-01 2027-06-01 valid"), std::string::npos);
  // Daily table: exact numbers; 25 October has 25 hours and 1500 expected readings.
  EXPECT_NE(text.find("2026-10-22 5.0 5.0 5.0 1440 / 1440 0:00 0:00"), std::string::npos);
  EXPECT_NE(text.find("2026-10-23 5.0 12.0 5.4 1440 / 1440 1:30 0:00 above"), std::string::npos);
  EXPECT_NE(text.find("2026-10-25 (25 h) 5.0 5.0 5.0 1500 / 1500 0:00 0:00"), std::string::npos);
  EXPECT_NE(text.find("2026-10-26 5.0 5.0 5.0 1260 / 1440 0:00 0:00 gap"), std::string::npos);
  // Excursion rows from the data, alerts with who acknowledged and the note, gaps.
  EXPECT_NE(text.find("2026-10-23 10:00 2026-10-23 11:30 1:30 above range 12.0 °C"), std::string::npos);
  EXPECT_NE(text.find("ana@example.com"), std::string::npos);
  EXPECT_NE(text.find("Door left open"), std::string::npos);
  EXPECT_NE(text.find("Gateway power"), std::string::npos);
  EXPECT_NE(text.find("2026-10-26 02:00 2026-10-26 05:00 3:00 no data (offline)"), std::string::npos);
  // MKT of the vaccine fridge, computed here from the readings themselves (every minute).
  {
    const double e_over_r = 83144.0 / 8.314462618;
    double sum = 0, n = 0;
    for (TimestampMs t = from_; t < to_; t += kMsPerMinute) {
      if (t >= T("2026-10-26T01:00:00Z") && t < T("2026-10-26T04:00:00Z")) continue;
      double c = (t >= T("2026-10-23T08:00:00Z") && t < T("2026-10-23T09:30:00Z")) ? 12.0 : 5.0;
      sum += std::exp(-e_over_r / (c + 273.15));
      n += 1;
    }
    double mkt = e_over_r / -std::log(sum / n) - 273.15;
    EXPECT_NEAR(*data->devices[0].mkt, mkt, 1e-6);
    EXPECT_NE(text.find(fmt::format("Mean kinetic temperature: {:.2f} °C", mkt)), std::string::npos);
  }
  // Sign-off and footer with page n of m and the digest on every page.
  EXPECT_NE(text.find("Signature"), std::string::npos);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, std::regex("Page 1 of (\\d+)")));
  const int pages = std::stoi(m[1]);
  EXPECT_GE(pages, 3);  // cover, one device each (and more for long tables)
  for (int p = 1; p <= pages; ++p) {
    EXPECT_NE(text.find(fmt::format("Page {} of {}", p, pages)), std::string::npos) << p;
  }
  std::size_t digests = 0;
  for (std::size_t at = text.find(data->digest); at != std::string::npos; at = text.find(data->digest, at + 1)) ++digests;
  EXPECT_GE(digests, static_cast<std::size_t>(pages));
  const std::string info = Squeeze(Shell("pdfinfo " + path));
  EXPECT_NE(info.find(fmt::format("Pages: {}\n", pages)), std::string::npos) << info;
  EXPECT_NE(info.find("595.276 x 841.89 pts (A4)"), std::string::npos) << info;
  // Every page renders.
  const std::string prefix = dir_.path() + "/page";
  Shell(fmt::format("pdftoppm -r 20 -png {} {} 2>&1", path, prefix));
  int rendered = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    if (e.path().filename().string().rfind("page", 0) == 0 && e.file_size() > 100) ++rendered;
  }
  EXPECT_EQ(rendered, pages);
}

TEST_F(ReportFromStore, DigestIsStableAndChangesWithTheData) {
  auto a = BuildReport(*store_, alerts_, Request(), kNow);
  auto b = BuildReport(*store_, alerts_, Request(Paper::kLetter), kNow + kMsPerHour);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->digest, b->digest) << "a re-render from the same stored data proves it did not change";
  auto letter = RenderPdf(*b);
  ASSERT_TRUE(letter);
  const std::string path = WritePdf(*letter, "letter.pdf");
  EXPECT_NE(Squeeze(Shell("pdfinfo " + path)).find("612 x 792 pts (letter)"), std::string::npos);
  EXPECT_NE(Shell("pdftotext " + path + " -").find(a->digest), std::string::npos);

  alerts_.alerts[0].corrective_action = "edited later";
  auto edited = BuildReport(*store_, alerts_, Request(), kNow);
  EXPECT_NE(edited->digest, a->digest);
  alerts_.alerts[0].corrective_action = "Door left open after delivery";
  auto r = store_->Ingest(org_, {{vaccine_, "temperature", "Cel", T("2026-10-26T02:00:00Z"), 5.0}}).get();
  ASSERT_TRUE(r && r->accepted == 1);
  auto more = BuildReport(*store_, alerts_, Request(), kNow);
  EXPECT_NE(more->digest, a->digest);
}

TEST_F(ReportFromStore, DailyCsvHasOneRowPerDeviceAndLocalDay) {
  auto data = BuildReport(*store_, alerts_, Request(), kNow);
  ASSERT_TRUE(data);
  std::string csv;
  WriteDailyCsv(*data, [&](std::string_view chunk) {
    csv += chunk;
    return true;
  });
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 2 * 10);
  EXPECT_NE(csv.find(fmt::format("{},\"Vaccine fridge\",2026-10-25,25,5.0,5.0,5.00,1500,1500,0,0,\"\",5m,Cel", vaccine_)),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find(",2026-10-23,24,5.0,12.0,5.44,1440,1440,90,0,\"above\",5m,Cel"), std::string::npos);
  EXPECT_NE(csv.find(",2026-10-26,24,5.0,5.0,5.00,1260,1440,0,0,\"gap\",5m,Cel"), std::string::npos);
}

TEST_F(ReportFromStore, AlertsComeFromTheAlertStoreOfTheSameOrganisationOnly) {
  auto rule = store_->Alerts().CreateRule(org_, "vaccines above 8", "{}", kNow);
  ASSERT_TRUE(rule) << rule.error().message;
  auto insert = [&](OrgId org, std::int64_t rule_id, DeviceId device, TimestampMs start, std::optional<TimestampMs> end) {
    store::AlertRecord a;
    a.org = org;
    a.rule_id = rule_id;
    a.rule_name = "vaccines above 8";
    a.device = device;
    a.kind = "threshold";
    a.metric = "temperature";
    a.severity = "critical";
    a.state = end ? "resolved" : "acknowledged";
    a.started_at = start;
    a.fired_at = start + 15 * kMsPerMinute;
    a.raised_at = a.fired_at;
    a.trigger_value = 8.5;
    a.peak_value = 12.0;
    a.acknowledged_at = start + 40 * kMsPerMinute;
    a.acknowledged_by = "user:1 ana@example.com";
    a.ack_note = "Door closed, stock checked";
    a.resolved_at = end;
    auto st = store_->Alerts().Transact(org, [&](store::AlertTxn& txn) -> Status {
      OS_ASSIGN_OR_RETURN(std::int64_t id, txn.InsertAlert(a));
      (void)id;
      return Ok();
    });
    ASSERT_TRUE(st) << st.error().message;
  };
  insert(org_, rule->id, vaccine_, T("2026-10-23T08:00:00Z"), T("2026-10-23T09:30:00Z"));
  insert(org_, rule->id, vaccine_, T("2026-10-01T08:00:00Z"), T("2026-10-01T09:00:00Z"));  // before the period
  insert(org_, rule->id, vaccine_, T("2026-10-19T20:00:00Z"), std::nullopt);  // still open: overlaps
  auto other_rule = store_->Alerts().CreateRule(other_org_, "x", "{}", kNow);
  ASSERT_TRUE(other_rule);
  insert(other_org_, other_rule->id, foreign_, T("2026-10-23T08:00:00Z"), std::nullopt);

  auto history = MakeStoreAlertHistory(&store_->Alerts());
  auto data = BuildReport(*store_, *history, Request(), kNow);
  ASSERT_TRUE(data) << data.error().message;
  ASSERT_EQ(data->devices[0].alerts.size(), 2u);
  EXPECT_EQ(data->devices[0].alerts[0].start, T("2026-10-19T20:00:00Z"));
  EXPECT_FALSE(data->devices[0].alerts[0].end);
  EXPECT_EQ(data->devices[0].alerts[1].corrective_action, "Door closed, stock checked");
  EXPECT_EQ(*data->devices[0].alerts[1].acknowledged_by, "user:1 ana@example.com");
  EXPECT_TRUE(data->devices[1].alerts.empty());
  auto pdf = RenderPdf(*data);
  ASSERT_TRUE(pdf);
  const std::string text = Squeeze(Shell("pdftotext -layout " + WritePdf(*pdf, "alerts.pdf") + " -"));
  EXPECT_NE(text.find("Door closed, stock"), std::string::npos);
  EXPECT_NE(text.find("open"), std::string::npos);
}

TEST_F(ReportFromStore, BadRequestsAreClearErrors) {
  ReportRequest r = Request();
  r.devices = {vaccine_, 9999};
  auto unknown = BuildReport(*store_, alerts_, r, kNow);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
  EXPECT_NE(unknown.error().message.find("no device 9999"), std::string::npos);

  r.devices = {foreign_};  // another organisation's device: not found, never shown
  auto foreign = BuildReport(*store_, alerts_, r, kNow);
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, ErrorCode::kNotFound);

  r = Request();
  r.org = other_org_;  // the other organisation asks for our devices
  EXPECT_EQ(BuildReport(*store_, alerts_, r, kNow).error().code, ErrorCode::kNotFound);

  r = Request();
  r.from = *LocalDateStart("2025-01-01", Berlin());
  r.to = *LocalDateStart("2025-02-01", Berlin());
  auto empty = BuildReport(*store_, alerts_, r, kNow);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, ErrorCode::kNotFound);
  EXPECT_NE(empty.error().message.find("at any level"), std::string::npos);

  r = Request();
  std::swap(r.from, r.to);
  EXPECT_EQ(BuildReport(*store_, alerts_, r, kNow).error().code, ErrorCode::kInvalidArgument);
  r = Request();
  r.from = r.to - 3650 * kMsPerDay;
  auto ten_years = BuildReport(*store_, alerts_, r, kNow);
  ASSERT_FALSE(ten_years);
  EXPECT_NE(ten_years.error().message.find("at most 1096 days"), std::string::npos);

  r = Request();
  r.devices.clear();
  r.site = 4242;
  EXPECT_EQ(BuildReport(*store_, alerts_, r, kNow).error().code, ErrorCode::kNotFound);
  r.site = site_;  // every device of the site
  auto by_site = BuildReport(*store_, alerts_, r, kNow);
  ASSERT_TRUE(by_site);
  EXPECT_EQ(by_site->devices.size(), 2u);
}

TEST_F(ReportFromStore, AnOldPeriodFallsBackToCoarserRollupsAndSaysSo) {
  // Six years later the 5-minute and 1-hour rollups (kept five years) are past retention.
  const TimestampMs later = kNow + 6 * 366 * kMsPerDay;
  ReportRequest r = Request();
  auto data = BuildReport(*store_, alerts_, r, later);
  ASSERT_TRUE(data) << data.error().message;
  EXPECT_EQ(data->devices[0].level, Resolution::k1d);
  EXPECT_NE(data->level_note.find("1-day rollups"), std::string::npos) << data->level_note;
  EXPECT_EQ(data->devices[0].days[5].date, "2026-10-25");
  EXPECT_EQ(data->devices[0].days[5].received, 1500);
  auto pdf = RenderPdf(*data);
  ASSERT_TRUE(pdf);
  const std::string text = Squeeze(Shell("pdftotext -layout " + WritePdf(*pdf, "old.pdf") + " -"));
  EXPECT_NE(text.find("Data level: 5-minute rollups are kept for"), std::string::npos);
}

}  // namespace
}  // namespace opensense::reports
