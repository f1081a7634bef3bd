// The rule JSON parser: round trip, defaults, and malformed / hostile definitions refused with
// a message that names the field (never a crash).
#include "alerts/rule.hpp"

#include <gtest/gtest.h>

#include <string>

namespace opensense::alerts {
namespace {

TEST(RuleParse, FullRuleRoundTrips) {
  const std::string text = R"({
    "name": "Walk-in cold room", "kind": "threshold", "site": 3, "metric": "temperature",
    "above": 5, "below": 0, "hysteresis": 0.5, "delay_minutes": 20, "severity": "critical",
    "schedule": {"days": ["mon", "fri"], "from": "06:00", "to": "23:30"},
    "quiet": [{"from": "22:00", "to": "02:00"}, {"start": "2026-02-01T10:00:00Z", "end": "2026-02-01T12:00:00Z"}],
    "require_note": true,
    "notify": [{"email": "chef@example.com"}, {"channel": 4, "kind": "telegram", "to": "-100123"}],
    "escalation": [{"after_minutes": 30, "notify": [{"channel": 5, "kind": "webhook"}]}],
    "reminder_minutes": 60})";
  auto r = ParseRule(text);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->severity, Severity::kCritical);
  EXPECT_EQ(r->delay_ms, 20 * kMsPerMinute);
  EXPECT_EQ(r->schedule->days, (std::vector<int>{0, 4}));
  EXPECT_EQ(r->schedule->to_minute, 23 * 60 + 30);
  ASSERT_EQ(r->notify.size(), 2u);
  EXPECT_EQ(r->notify[1].channel, 4);
  EXPECT_EQ(r->notify[1].to, "-100123");
  auto again = ParseRule(RuleDefinitionJson(*r));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*again, *r);
}

TEST(RuleParse, DefaultsAndKinds) {
  auto battery = ParseRule(R"({"name": "b", "kind": "battery", "below": 15})");
  ASSERT_TRUE(battery) << battery.error().message;
  EXPECT_EQ(battery->metric, "battery");
  auto offline = ParseRule(R"({"name": "o", "kind": "offline", "offline_after_minutes": 30, "device": 7})");
  ASSERT_TRUE(offline) << offline.error().message;
  EXPECT_EQ(offline->offline_after_ms, 30 * kMsPerMinute);
  EXPECT_TRUE(offline->metric.empty());
  EXPECT_TRUE(RuleCovers(*offline, 7, std::nullopt));
  EXPECT_FALSE(RuleCovers(*offline, 8, std::nullopt));
}

struct BadRule {
  const char* json;
  const char* mentions;
};

class RuleRefused : public testing::TestWithParam<BadRule> {};

TEST_P(RuleRefused, WithAClearMessage) {
  auto r = ParseRule(GetParam().json);
  ASSERT_FALSE(r) << GetParam().json;
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find(GetParam().mentions), std::string::npos) << r.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, RuleRefused,
    testing::Values(
        BadRule{"", "not valid JSON"}, BadRule{"{", "not valid JSON"}, BadRule{"[]", "object"},
        BadRule{"null", "object"}, BadRule{R"({"above": 8})", "name is required"},
        BadRule{R"({"name": "", "above": 8})", "name"},
        BadRule{R"({"name": "a\nb", "above": 8})", "one non-empty line"},
        BadRule{R"({"name": "x"})", "above, below"},
        BadRule{R"({"name": "x", "above": "8"})", "above must be a number"},
        BadRule{R"({"name": "x", "above": 1e300})", "above is out of range"},
        BadRule{R"({"name": "x", "above": 2, "below": 8})", "below must be less than above"},
        BadRule{R"({"name": "x", "above": 8, "below": 2, "hysteresis": 3})", "hysteresis"},
        BadRule{R"({"name": "x", "above": 8, "hysteresis": -1})", "hysteresis must not be negative"},
        BadRule{R"({"name": "x", "above": 8, "delay_minutes": -5})", "delay_minutes must be between"},
        BadRule{R"({"name": "x", "above": 8, "delay_minutes": 1.5})", "whole number"},
        BadRule{R"({"name": "x", "above": 8, "delay_minutes": 18446744073709551615})", "delay_minutes"},
        BadRule{R"({"name": "x", "above": 8, "delay_minutes": 99999999})", "delay_minutes"},
        BadRule{R"({"name": "x", "above": 8, "severity": "fatal"})", "severity"},
        BadRule{R"({"name": "x", "above": 8, "kind": "magic"})", "kind"},
        BadRule{R"({"name": "x", "above": 8, "colour": "red"})", "unknown field 'colour'"},
        BadRule{R"({"name": "x", "above": 8, "device": 1, "site": 2})", "not both"},
        BadRule{R"({"name": "x", "above": 8, "device": 0})", "device"},
        BadRule{R"({"name": "x", "above": 8, "metric": "Temp!"})", "metric"},
        BadRule{R"({"name": "x", "kind": "offline"})", "offline_after_minutes"},
        BadRule{R"({"name": "x", "kind": "offline", "offline_after_minutes": 5, "above": 3})", "offline rule"},
        BadRule{R"({"name": "x", "kind": "battery", "above": 3})", "battery rule"},
        BadRule{R"({"name": "x", "above": 8, "schedule": {"from": "25:00"}})", "schedule.from"},
        BadRule{R"({"name": "x", "above": 8, "schedule": {"from": "8:00"}})", "HH:MM"},
        BadRule{R"({"name": "x", "above": 8, "schedule": {"from": "08:00", "to": "08:00"}})", "same time"},
        BadRule{R"({"name": "x", "above": 8, "schedule": {"days": ["monday"]}})", "schedule.days"},
        BadRule{R"({"name": "x", "above": 8, "schedule": {"days": []}})", "at least one day"},
        BadRule{R"({"name": "x", "above": 8, "quiet": [{"start": "2026-01-01T00:00:00Z"}]})", "start and end"},
        BadRule{R"({"name": "x", "above": 8, "quiet": [{"start": "b", "end": "a"}]})", "RFC 3339"},
        BadRule{R"({"name": "x", "above": 8, "quiet": [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]})", "end must be after start"},
        BadRule{R"({"name": "x", "above": 8, "notify": [{"email": "nobody"}]})", "e-mail address"},
        BadRule{R"({"name": "x", "above": 8, "notify": [{"email": "a@b.c\r\nBcc: x@y.z"}]})", "e-mail address"},
        BadRule{R"({"name": "x", "above": 8, "notify": [{"channel": 3}]})", "kind is required"},
        BadRule{R"({"name": "x", "above": 8, "notify": [{"channel": 3, "kind": "sms", "to": "1"}]})", "kind must be"},
        BadRule{R"({"name": "x", "above": 8, "notify": [{"channel": 3, "kind": "telegram"}]})", "to is required"},
        BadRule{R"({"name": "x", "above": 8, "notify": {"email": "a@b.c"}})", "list of recipients"},
        BadRule{R"({"name": "x", "above": 8, "escalation": [{"after_minutes": 30}]})", "needs after_minutes and notify"},
        BadRule{R"({"name": "x", "above": 8, "escalation": [{"after_minutes": 30, "notify": []}, {"after_minutes": 20, "notify": []}]})", "later than the step before"},
        BadRule{R"({"name": "x", "above": 8, "reminder_minutes": 1})", "reminder_minutes"},
        BadRule{R"({"name": "x", "above": 8, "enabled": "yes"})", "enabled"},
        BadRule{R"({"name": "x", "above": 8, "quiet": [[[[[[[[[[1]]]]]]]]]]})", "nested too deeply"}));

TEST(RuleParse, HugeInputsAreBounded) {
  std::string long_name(10'000, 'a');
  auto r = ParseRule(R"({"name": ")" + long_name + R"(", "above": 8})");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("longer than"), std::string::npos);
  std::string many = R"({"name": "x", "above": 8, "notify": [)";
  for (int i = 0; i < 1000; ++i) many += std::string(i ? "," : "") + R"({"email": "a@b.c"})";
  many += "]}";
  r = ParseRule(many);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("more than"), std::string::npos);
  std::string deep(100'000, '[');
  EXPECT_FALSE(ParseRule(deep));
}

TEST(ActiveCalendar, WindowsWrapPastMidnightInLocalTime) {
  auto rule = ParseRule(R"({"name": "x", "above": 8, "schedule": {"days": ["mon"], "from": "22:00", "to": "06:00"}})");
  ASSERT_TRUE(rule);
  auto zone = TimeZone::Load("Europe/Berlin");
  ASSERT_TRUE(zone);
  ActiveCalendar cal(*zone);
  // Monday 5 January 2026, 23:30 Berlin = 22:30 UTC: inside.
  EXPECT_TRUE(cal.Active(*rule, *ParseTimestamp("2026-01-05T22:30:00Z")));
  // Tuesday 03:00 Berlin (after Monday's window wrapped): inside.
  EXPECT_TRUE(cal.Active(*rule, *ParseTimestamp("2026-01-06T02:00:00Z")));
  // Tuesday 23:00 Berlin: Tuesday is not a scheduled day.
  EXPECT_FALSE(cal.Active(*rule, *ParseTimestamp("2026-01-06T22:00:00Z")));
  // Monday 21:59 Berlin: before the window.
  EXPECT_FALSE(cal.Active(*rule, *ParseTimestamp("2026-01-05T20:59:00Z")));
}

}  // namespace
}  // namespace opensense::alerts
