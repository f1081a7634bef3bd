// `opensense report` and `opensense device profile` against a real SQLite store filled with
// known data: the PDF and CSV are written, errors are clear and leave no file behind.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "core/time_zone.hpp"
#include "shell_helpers.hpp"
#include "store/store.hpp"
#include "store/test_util.hpp"

namespace opensense {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using opensense::testing::ReadFile;
using opensense::testing::Shell;

class ReportCli : public ::testing::Test {
 protected:
  void SetUp() override {
    store::StoreOptions o;
    o.url = "sqlite://" + dir_.path() + "/opensense.db";
    auto s = store::OpenStore(o);
    ASSERT_TRUE(s) << s.error().message;
    org_ = (*s)->CreateOrganization({"Bakery", "Europe/Berlin", Tier::kFree})->id;
    DeviceProfile p;
    p.target_min = 0;
    p.target_max = 7;
    p.expected_interval_s = 300;
    device_ = (*s)->CreateDevice({org_, "Cake fridge", std::nullopt, std::nullopt, p})->id;
    std::vector<Reading> readings;
    const TimestampMs from = *ParseTimestamp("2026-10-23T22:00:00Z"), until = *ParseTimestamp("2026-10-25T23:00:00Z");
    for (TimestampMs t = from; t < until; t += 5 * kMsPerMinute) readings.push_back({device_, "temperature", "Cel", t, 3.5});
    auto r = (*s)->Ingest(org_, std::move(readings)).get();
    ASSERT_TRUE(r && r->rejected.empty());
    (*s)->Close();
  }
  opensense::testing::ShellRun Run(const std::string& args) {
    return Shell(fmt::format("cd {} && TZ=UTC {} {} --data-dir {} 2>&1", dir_.path(), OPENSENSE_BINARY, args, dir_.path()));
  }

  store::ScratchDir dir_{"report-cli"};
  OrgId org_ = 0;
  DeviceId device_ = 0;
};

TEST_F(ReportCli, WritesThePdfAndTheCsv) {
  const std::string pdf = dir_.path() + "/report.pdf";
  auto r = Run(fmt::format("report --org {} --devices {} --from 2026-10-24 --to 2026-10-25 -o {} --by auditor --json",
                           org_, device_, pdf));
  ASSERT_EQ(r.code, 0) << r.output;
  auto j = json::parse(r.output);
  EXPECT_EQ(j["format"], "pdf");
  EXPECT_EQ(j["digest"].get<std::string>().size(), 64u);
  EXPECT_EQ(ReadFile(pdf).rfind("%PDF-", 0), 0u);
  std::string text = Shell("pdftotext -layout " + pdf + " -").output;
  EXPECT_NE(text.find("cli:auditor"), std::string::npos);
  EXPECT_NE(text.find(j["digest"].get<std::string>()), std::string::npos);

  const std::string csv = dir_.path() + "/daily.csv";
  auto c = Run(fmt::format("report --org {} --from 2026-10-24 --to 2026-10-25 --csv -o {}", org_, csv));
  ASSERT_EQ(c.code, 0) << c.output;
  EXPECT_NE(c.output.find("wrote " + csv), std::string::npos);
  std::string body = ReadFile(csv);
  EXPECT_NE(body.find(",2026-10-25,25,3.5,3.5,3.50,300,300,0,0,"), std::string::npos) << body;
}

TEST_F(ReportCli, ErrorsAreClearAndLeaveNoFile) {
  const std::string pdf = dir_.path() + "/nothing.pdf";
  auto unknown = Run(fmt::format("report --org {} --devices 999 --from 2026-10-24 --to 2026-10-25 -o {}", org_, pdf));
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.output.find("no device 999"), std::string::npos) << unknown.output;
  auto backwards = Run(fmt::format("report --org {} --from 2026-10-25 --to 2026-10-24 -o {}", org_, pdf));
  EXPECT_EQ(backwards.code, 1);
  EXPECT_NE(backwards.output.find("must be before"), std::string::npos);
  auto empty = Run(fmt::format("report --org {} --from 2025-10-01 --to 2025-10-31 -o {}", org_, pdf));
  EXPECT_EQ(empty.code, 1);
  EXPECT_NE(empty.output.find("at any level"), std::string::npos);
  EXPECT_FALSE(fs::exists(pdf));
  EXPECT_FALSE(fs::exists(pdf + ".part"));
  auto missing = Run("report --org 1 --from 2026-10-24 -o x.pdf");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.output.find("--to"), std::string::npos);
}

TEST_F(ReportCli, DeviceProfileIsShownAndSet) {
  auto set = Run(fmt::format("device profile --org {} --device {} --target-max 6 --medicine true "
                             "--calibration-date 2026-01-01 --calibration-due 2027-01-01 --json",
                             org_, device_));
  ASSERT_EQ(set.code, 0) << set.output;
  auto j = json::parse(set.output);
  EXPECT_EQ(j["target_max"], 6);
  EXPECT_EQ(j["target_min"], 0);
  EXPECT_EQ(j["medicine_storage"], true);
  auto bad = Run(fmt::format("device profile --org {} --device {} --calibration-due 2027-02-30", org_, device_));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("calibration_due"), std::string::npos) << bad.output;
  auto shown = Run(fmt::format("device profile --org {} --device {}", org_, device_));
  EXPECT_NE(shown.output.find("0 .. 6 °C"), std::string::npos) << shown.output;
}

}  // namespace
}  // namespace opensense
