#include "app/log_format.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace opensense::app {
namespace {

TEST(JsonLogLine, EscapesHostileTextAndKeepsOneLine) {
  const std::string line =
      JsonLogLine(1764393600123, "warn", "quote \" backslash \\ newline \n tab \t nul \x01 bad utf8 \xff end",
                  "0123456789abcdef");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto j = nlohmann::json::parse(line, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << line;
  EXPECT_EQ(j["ts"], "2025-11-29T05:20:00.123Z");
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["request_id"], "0123456789abcdef");
  const std::string msg = j["msg"];
  EXPECT_NE(msg.find("quote \" backslash \\ newline \n tab \t nul \x01 bad utf8 "), std::string::npos);
  EXPECT_NE(msg.find("end"), std::string::npos);
}

TEST(JsonLogLine, NoRequestIdOutsideARequest) {
  auto j = nlohmann::json::parse(JsonLogLine(0, "info", "started", ""));
  EXPECT_FALSE(j.contains("request_id"));
  EXPECT_EQ(j["ts"], "1970-01-01T00:00:00.000Z");
}

}  // namespace
}  // namespace opensense::app
