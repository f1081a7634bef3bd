// Data-driven tests of the rule engine: every tests/data/alerts/*.json is one case, a rule plus
// a timed series of readings, ticks and user actions, and the exact alert events expected. A new
// case is a new file. Times in a case are minutes after its "start".
//
// {
//   "description": "...", "time_zone": "Europe/Berlin", "start": "2026-01-05T00:00:00Z",
//   "max_tick_gap_minutes": 0,                 // ticks further apart are a clock jump (0: off)
//   "rule": { ...the API's rule JSON... },
//   "steps": [
//     {"device": 1, "metric": "temperature", "now": 12,    // now: server time (default: newest)
//      "readings": [[0, 4.1], [1, 4.3]],                   // [minute, value]; without "now"
//                                                          // each is judged as it arrives
//      "series": [{"from": 2, "to": 30, "every": 1, "value": 9}]},  // generated readings
//     {"tick": 45},                                        // time-based conditions at minute 45
//     {"ack": 1}, {"resolve": 1}                           // user actions on device 1's alert
//   ],
//   "expect": [{"event": "fired", "device": 1, "at": 16, "late": false, "since": 1,
//               "peak": 9, "level": 0, "out_minutes": 15}]   // device/late default 1/false;
// }                                                          // since/peak/level/out optional
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "alerts/engine.hpp"

namespace opensense::alerts {
namespace {

using json = nlohmann::json;

std::vector<std::string> CaseFiles() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(OPENSENSE_ALERT_CASES)) {
    if (e.path().extension() == ".json") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TimestampMs Minute(const json& j, TimestampMs start) {
  return start + static_cast<TimestampMs>(std::llround(j.get<double>() * kMsPerMinute));
}

std::string Describe(const Transition& t, TimestampMs start) {
  return fmt::format("{} device={} at={} late={} since={} peak={} level={} out_minutes={}",
                     TransitionName(t.kind), t.device,
                     static_cast<double>(t.at - start) / kMsPerMinute, t.late,
                     static_cast<double>(t.since - start) / kMsPerMinute, t.peak, t.level,
                     static_cast<double>(t.out_ms) / kMsPerMinute);
}

// Runs one case; returns the transitions in order.
std::vector<Transition> RunCase(const json& c, const Rule& rule, TimestampMs start) {
  auto zone = TimeZone::Load(c.value("time_zone", "UTC"));
  EXPECT_TRUE(zone) << "bad time_zone";
  ActiveCalendar calendar(zone ? *zone : TimeZone::Utc());
  std::map<DeviceId, RuleState> states;
  std::vector<Transition> out;
  EvalContext ctx;
  ctx.calendar = &calendar;
  ctx.max_tick_gap_ms = c.value("max_tick_gap_minutes", 0) * kMsPerMinute;
  for (const auto& step : c.at("steps")) {
    if (step.contains("tick")) {
      ctx.now = Minute(step["tick"], start);
      for (DeviceId d : step.value("devices", std::vector<DeviceId>{1})) {
        Tick(rule, states[d], d, ctx, &out);
      }
      continue;
    }
    if (step.contains("ack")) {
      Acknowledge(states[step["ack"].get<DeviceId>()]);
      continue;
    }
    if (step.contains("resolve")) {
      ResolveManually(states[step["resolve"].get<DeviceId>()]);
      continue;
    }
    const DeviceId device = step.value("device", DeviceId{1});
    const std::string metric = step.value("metric", rule.metric.empty() ? "temperature" : rule.metric);
    std::vector<Sample> samples;
    for (const auto& r : step.value("readings", json::array())) {
      samples.push_back({Minute(r.at(0), start), r.at(1).get<double>()});
    }
    for (const auto& s : step.value("series", json::array())) {
      for (double m = s.at("from").get<double>(); m <= s.at("to").get<double>(); m += s.value("every", 1.0)) {
        samples.push_back({Minute(json(m), start), s.at("value").get<double>()});
      }
    }
    // The service hands the engine each batch sorted by time (stable: the writer's order).
    std::stable_sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) { return a.ts < b.ts; });
    // A metric the rule does not watch is not handed to it (offline rules see every metric).
    if (rule.kind != RuleKind::kOffline && metric != rule.metric) continue;
    if (step.contains("now")) {  // one batch, judged at that server time (an upload)
      ctx.now = Minute(step["now"], start);
      Evaluate(rule, states[device], device, samples, ctx, &out);
      continue;
    }
    for (const Sample& s : samples) {  // live: each reading judged as it arrives
      ctx.now = s.ts;
      Evaluate(rule, states[device], device, std::span<const Sample>(&s, 1), ctx, &out);
    }
  }
  return out;
}

class EngineCase : public testing::TestWithParam<std::string> {};

TEST_P(EngineCase, ProducesExactlyTheExpectedEvents) {
  std::ifstream in(GetParam());
  ASSERT_TRUE(in) << GetParam();
  std::stringstream ss;
  ss << in.rdbuf();
  json c = json::parse(ss.str(), nullptr, false);
  ASSERT_FALSE(c.is_discarded()) << GetParam() << " is not JSON";
  ASSERT_TRUE(c.contains("description") && c.contains("rule") && c.contains("steps") && c.contains("expect"))
      << GetParam() << ": a case needs description, rule, steps and expect";
  auto start = ParseTimestamp(c.value("start", "2026-01-05T00:00:00Z"));
  ASSERT_TRUE(start);
  auto rule = ParseRuleJson(c["rule"]);
  ASSERT_TRUE(rule) << rule.error().message;
  rule->created_at = c.contains("rule_created") ? Minute(c["rule_created"], *start) : 0;

  std::vector<Transition> got = RunCase(c, *rule, *start);
  std::string got_text;
  for (const auto& t : got) got_text += "  " + Describe(t, *start) + "\n";
  const auto& expect = c["expect"];
  ASSERT_EQ(got.size(), expect.size()) << c["description"].get<std::string>() << "\ngot:\n" << got_text;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const auto& e = expect[i];
    const Transition& t = got[i];
    SCOPED_TRACE(fmt::format("event {}: {}", i, Describe(t, *start)));
    EXPECT_EQ(TransitionName(t.kind), e.at("event").get<std::string>());
    EXPECT_EQ(t.device, e.value("device", DeviceId{1}));
    EXPECT_EQ(t.at, Minute(e.at("at"), *start));
    EXPECT_EQ(t.late, e.value("late", false));
    if (e.contains("since")) {
      EXPECT_EQ(t.since, Minute(e["since"], *start));
    }
    if (e.contains("peak")) {
      EXPECT_DOUBLE_EQ(t.peak, e["peak"].get<double>());
    }
    if (e.contains("level")) {
      EXPECT_EQ(t.level, e["level"].get<int>());
    }
    if (e.contains("out_minutes")) {
      EXPECT_EQ(t.out_ms, Minute(e["out_minutes"], 0));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, EngineCase, testing::ValuesIn(CaseFiles()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string name = std::filesystem::path(info.param).stem().string();
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

TEST(EngineCases, FolderIsNotEmpty) { EXPECT_GE(CaseFiles().size(), 10u); }

}  // namespace
}  // namespace opensense::alerts
