// Structured logs: with log_format=json every line the real binary writes is one JSON object,
// and the lines written while a request is handled carry its request id, which is also the
// answer's X-Request-Id and the request's row in the API request log.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "api/http/client.hpp"
#include "opensense_process.hpp"

namespace {

using opensense::testing::OpenSenseProcess;

// The route recorded for `request_id` in the API request log of the store file, or "".
std::string LoggedRoute(const std::string& db_path, const std::string& request_id) {
  sqlite3* db = nullptr;
  std::string route;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT route FROM api_requests WHERE request_id=?", -1, &st, nullptr) ==
        SQLITE_OK) {
      sqlite3_bind_text(st, 1, request_id.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st) == SQLITE_ROW) route = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return route;
}

TEST(JsonLogs, EveryLineIsJsonAndRequestIdsMatchTheAnswerAndTheRequestLog) {
  OpenSenseProcess os;
  const nlohmann::json org = os.Cli({"org", "create", "--name", "Logs", "--owner-email", "o@x"});
  ASSERT_TRUE(org.contains("token")) << org;
  ASSERT_TRUE(os.Start({"--roles", "api", "--log-format", "json", "--log-level", "debug"})) << os.Log();
  const std::string owner = "Bearer " + org["token"].get<std::string>();

  auto r = opensense::http::Fetch(os.address(), "GET", "/api/v1/devices", {{"Authorization", owner}}, "");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->status, 200);
  const std::string id = std::string(r->Header("X-Request-Id").value_or(""));
  ASSERT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{16}"))) << id;
  // A refused request has its own id too.
  auto refused = opensense::http::Fetch(os.address(), "GET", "/api/v1/devices", {}, "");
  ASSERT_TRUE(refused);
  const std::string refused_id = std::string(refused->Header("X-Request-Id").value_or(""));
  EXPECT_EQ(refused->status, 401);
  EXPECT_TRUE(std::regex_match(refused_id, std::regex("[0-9a-f]{16}"))) << refused_id;
  EXPECT_NE(refused_id, id);
  os.Stop();  // flushes the request log

  std::istringstream in(os.Log());
  std::string line;
  int lines = 0;
  bool found = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++lines;
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << line;
    EXPECT_TRUE(std::regex_match(j["ts"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
        << line;
    if (j.value("request_id", "") == id) {
      found = true;
      EXPECT_NE(j["msg"].get<std::string>().find("GET /api/v1/devices -> 200"), std::string::npos) << line;
    }
  }
  EXPECT_GT(lines, 2);
  EXPECT_TRUE(found) << os.Log();
  EXPECT_EQ(LoggedRoute(os.DataDir() + "/opensense.db", id), "/api/v1/devices");
  EXPECT_EQ(LoggedRoute(os.DataDir() + "/opensense.db", refused_id), "/api/v1/devices");
}

}  // namespace
