// /metrics of the real binary: valid Prometheus text exposition (promtool check metrics), counters
// that move with ingest; the shipped alert rules (promtool check rules / test rules).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <string>

#include "api/http/client.hpp"
#include "opensense_process.hpp"
#include "shell_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using opensense::testing::OpenSenseProcess;
using opensense::testing::Shell;

// The value of one series ("name" or "name{labels}" exactly as exposed), or -1 when absent.
double Value(const std::string& text, const std::string& series) {
  std::size_t pos = 0;
  while ((pos = text.find(series + " ", pos)) != std::string::npos) {
    if (pos == 0 || text[pos - 1] == '\n') return std::stod(text.substr(pos + series.size() + 1));
    pos += series.size();
  }
  return -1;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Shell("command -v promtool >/dev/null").code != 0) {
      GTEST_SKIP() << "promtool is missing (apt-get install prometheus; scripts/install-deps.sh)";
    }
    scratch_ = fs::temp_directory_path() /
               ("opensense-metrics-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(scratch_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(scratch_, ec);
  }
  // promtool check metrics on a scrape; returns its output when it fails.
  std::string Promtool(const std::string& scrape) {
    const fs::path f = scratch_ / "scrape.txt";
    std::ofstream(f) << scrape;
    const auto r = Shell("promtool check metrics < " + f.string() + " 2>&1");
    return r.code == 0 ? "" : "promtool: " + r.output;
  }
  fs::path scratch_;
};

TEST_F(MetricsTest, ScrapeParsesAndCountersMoveWithIngest) {
  OpenSenseProcess os;
  const nlohmann::json org = os.Cli({"org", "create", "--name", "Metered", "--owner-email", "o@x"});
  const nlohmann::json dev = os.Cli({"device", "create", "--org", std::to_string(org["id"].get<long>()), "--name", "F"});
  ASSERT_TRUE(dev.contains("token")) << dev;
  ASSERT_TRUE(os.Start({"--roles", "api,ingest,scheduler"})) << os.Log();
  auto scrape = [&] {
    auto r = opensense::http::Fetch(os.address(), "GET", "/metrics");
    EXPECT_TRUE(r && r->status == 200);
    if (r) {
      EXPECT_EQ(r->Header("Content-Type").value_or(""), "text/plain; version=0.0.4; charset=utf-8");
    }
    return r ? r->body : std::string();
  };
  const std::string before = scrape();
  EXPECT_EQ(Promtool(before), "");
  EXPECT_EQ(Value(before, "opensense_build_info{version=\"0.1.0\"}"), 1);
  EXPECT_GT(Value(before, "opensense_start_time_seconds"), 1.7e9);

  const std::string auth = "Bearer " + dev["token"].get<std::string>();
  const long now_ms = static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  std::string body = "[";
  for (int i = 0; i < 3; ++i) {
    body += (i ? "," : "") + nlohmann::json({{"ts", now_ms - 60000 * (i + 1)}, {"temperature", 4 + i}}).dump();
  }
  body += "]";
  auto ok = opensense::http::Fetch(os.address(), "POST", "/api/v1/ingest",
                                   {{"Authorization", auth}, {"Content-Type", "application/json"}}, body);
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  // One reading an hour in the future: rejected, counted by reason.
  auto future = opensense::http::Fetch(
      os.address(), "POST", "/api/v1/ingest", {{"Authorization", auth}, {"Content-Type", "application/json"}},
      nlohmann::json({{"ts", now_ms + 3600000}, {"temperature", 5}}).dump());
  ASSERT_TRUE(future);
  EXPECT_EQ(future->status, 400) << future->body;

  const std::string after = scrape();
  EXPECT_EQ(Promtool(after), "");
  EXPECT_EQ(Value(after, "opensense_ingest_readings_total") - std::max(0.0, Value(before, "opensense_ingest_readings_total")), 3)
      << after;
  EXPECT_EQ(Value(after, "opensense_http_requests_total{route=\"/api/v1/ingest\",status=\"200\"}"), 1) << after;
  EXPECT_EQ(Value(after, "opensense_http_requests_total{route=\"/api/v1/ingest\",status=\"400\"}"), 1) << after;
  EXPECT_GE(Value(after, "opensense_writer_batches_total"), 2) << after;
  EXPECT_GE(Value(after, "opensense_writer_commit_seconds_count"), 1) << after;
  EXPECT_GE(Value(after, "opensense_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/ingest\"}"), 2)
      << after;
  EXPECT_TRUE(std::regex_search(after, std::regex(R"(\nopensense_ingest_rejected_total\{reason="[a-z_]+"\} 1\n)")))
      << after;
  // The scheduler's first retention run comes a second after start.
  std::string later;
  for (int i = 0; i < 50 && Value(later, "opensense_retention_runs_total{result=\"ok\"}") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    later = scrape();
  }
  EXPECT_GE(Value(later, "opensense_retention_runs_total{result=\"ok\"}"), 1) << later;
  EXPECT_GT(Value(later, "opensense_retention_last_success_timestamp_seconds"), 1.7e9);
  EXPECT_EQ(Promtool(later), "");
}

TEST_F(MetricsTest, AlertRulesAreValidAndFireAsTested) {
  const fs::path dir = fs::path(OPENSENSE_SOURCE_DIR) / "deploy" / "prometheus";
  const auto check = Shell("promtool check rules " + (dir / "opensense-alerts.yml").string() + " 2>&1");
  EXPECT_EQ(check.code, 0) << check.output;
  const auto test = Shell("cd " + dir.string() + " && promtool test rules opensense-alerts.test.yml 2>&1");
  EXPECT_EQ(test.code, 0) << test.output;
}

}  // namespace
