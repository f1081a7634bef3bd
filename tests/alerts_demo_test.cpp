// `opensense serve --demo`: the failing fridge raises a critical alert, and its e-mail reaches
// the dev mailer (the log), within two minutes of the start (bounded real time; the only such
// test). The outbox row is checked in the store file itself.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <chrono>
#include <regex>
#include <thread>

#include "api/http/client.hpp"
#include "opensense_process.hpp"

namespace {

using json = nlohmann::json;

TEST(AlertsDemo, FailingFridgeRaisesCriticalAlertAndMailWithinTwoMinutes) {
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::minutes(2);
  opensense::testing::OpenSenseProcess os;
  ASSERT_TRUE(os.Start({"--demo", "--demo-history-days", "1"})) << os.Log();
  std::string token;
  const std::regex token_re(R"(owner API token \(shown once\): (osk_[A-Za-z0-9_]+))");
  json critical;
  while (std::chrono::steady_clock::now() < deadline && critical.is_null()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::smatch m;
    const std::string log = os.Log();
    if (token.empty() && std::regex_search(log, m, token_re)) token = m[1];
    if (token.empty()) continue;
    auto r = opensense::http::Fetch(os.address(), "GET", "/api/v1/alerts?limit=100",
                                    {{"Authorization", "Bearer " + token}});
    if (!r || r->status != 200) continue;
    for (const auto& a : json::parse(r->body, nullptr, false)) {
      if (a.is_object() && a.value("severity", "") == "critical") critical = a;
    }
  }
  ASSERT_FALSE(critical.is_null()) << "no critical alert within two minutes:\n" << os.Log();
  EXPECT_EQ(critical["rule_name"], "Fridge above 8 °C");
  // The dev mailer writes the message to the log (no Postmark configured).
  bool mailed = false;
  while (std::chrono::steady_clock::now() < deadline && !mailed) {
    mailed = os.Log().find("Fridge above 8 °C") != std::string::npos &&
             os.Log().find("To: demo@opensense.localhost") != std::string::npos;
    if (!mailed) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  os.Stop();
  EXPECT_TRUE(mailed) << "the dev mailer did not log the alert e-mail:\n" << os.Log();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((os.DataDir() + "/opensense.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT count(*) FROM notification_outbox WHERE alert_id = ? AND "
                               "recipient = 'demo@opensense.localhost' AND channel_kind = 'email' AND channel_id IS NULL",
                               -1, &st, nullptr),
            SQLITE_OK);
  sqlite3_bind_int64(st, 1, critical["id"].get<std::int64_t>());
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_GE(sqlite3_column_int64(st, 0), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

}  // namespace
