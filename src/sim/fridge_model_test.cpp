#include "sim/fridge_model.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/time_zone.hpp"

namespace opensense::sim {
namespace {

// 2024-03-20T00:00:00Z: fourteen days from here cross the Berlin DST change of 31 March.
constexpr TimestampMs kStart = 1710892800000;
constexpr TimestampMs kTwoWeeks = 14 * kMsPerDay;

struct Series {
  std::vector<TimestampMs> ts;
  std::vector<double> v;
};

std::map<std::string, Series> ByMetric(const std::vector<SimReading>& readings) {
  std::map<std::string, Series> out;
  for (const SimReading& r : readings) {
    out[r.metric].ts.push_back(r.ts);
    out[r.metric].v.push_back(r.value);
  }
  return out;
}

std::vector<SimReading> Simulate(const UnitSpec& spec, TimestampMs duration,
                                 TimeZone zone = TimeZone::Utc(), TimestampMs step = kMsPerMinute) {
  FridgeModel model(spec, kStart, std::move(zone), step);
  return model.AdvanceTo(kStart + duration);
}

UnitSpec Fridge(std::uint64_t seed, bool failing = false) {
  return UnitSpec{"Test fridge", UnitKind::kFridge, 4.0, failing, seed};
}

// Runs of consecutive readings strictly above `threshold`: [first index, last index].
std::vector<std::pair<std::size_t, std::size_t>> RunsAbove(const std::vector<double>& v,
                                                           double threshold) {
  std::vector<std::pair<std::size_t, std::size_t>> runs;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] <= threshold) continue;
    std::size_t j = i;
    while (j + 1 < v.size() && v[j + 1] > threshold) ++j;
    runs.emplace_back(i, j);
    i = j;
  }
  return runs;
}

// The longest stretch of time (ms, from the first to the last reading of a run) above threshold.
TimestampMs LongestAbove(const Series& s, double threshold) {
  TimestampMs longest = 0;
  for (auto [a, b] : RunsAbove(s.v, threshold)) longest = std::max(longest, s.ts[b] - s.ts[a]);
  return longest;
}

bool SameReadings(const std::vector<SimReading>& a, const std::vector<SimReading>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].ts != b[i].ts || a[i].metric != b[i].metric || a[i].unit != b[i].unit ||
        a[i].value != b[i].value) {
      return false;
    }
  }
  return true;
}

TEST(FridgeModelTest, SameSeedGivesIdenticalReadings) {
  auto zone = TimeZone::Load("Europe/Berlin");
  ASSERT_TRUE(zone);
  for (const UnitSpec& unit : DemoUnits(7)) {
    EXPECT_TRUE(
        SameReadings(Simulate(unit, 2 * kMsPerDay, *zone), Simulate(unit, 2 * kMsPerDay, *zone)))
        << unit.name;
  }
}

TEST(FridgeModelTest, DifferentSeedsGiveDifferentReadings) {
  auto a = ByMetric(Simulate(Fridge(1), kMsPerDay));
  auto b = ByMetric(Simulate(Fridge(2), kMsPerDay));
  EXPECT_NE(a["temperature"].v, b["temperature"].v);
  EXPECT_NE(a["humidity"].v, b["humidity"].v);
  EXPECT_NE(a["door"].v, b["door"].v);
}

TEST(FridgeModelTest, ReadingsAreOneStepApartInTimeOrder) {
  for (TimestampMs step : {kMsPerMinute, 5 * kMsPerMinute, 30 * kMsPerSecond}) {
    auto readings = Simulate(Fridge(3), kMsPerDay, TimeZone::Utc(), step);
    ASSERT_EQ(readings.size(), static_cast<std::size_t>(kMsPerDay / step) * 4) << step;
    for (std::size_t i = 0; i < readings.size(); ++i) {
      EXPECT_EQ(readings[i].ts, kStart + static_cast<TimestampMs>(i / 4 + 1) * step);
    }
    for (const auto& [metric, series] : ByMetric(readings)) {
      for (std::size_t i = 1; i < series.ts.size(); ++i) {
        ASSERT_EQ(series.ts[i] - series.ts[i - 1], step) << metric;
      }
    }
  }
}

TEST(FridgeModelTest, EachStepEmitsTheFourMetricsWithTheirUnits) {
  auto readings = Simulate(Fridge(4), kMsPerHour);
  ASSERT_EQ(readings.size(), 60u * 4);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"temperature", "Cel"}, {"humidity", "%RH"}, {"battery", "%EL"}, {"door", "/"}};
  for (std::size_t i = 0; i < readings.size(); ++i) {
    EXPECT_EQ(readings[i].metric, expected[i % 4].first);
    EXPECT_EQ(readings[i].unit, expected[i % 4].second);
  }
}

TEST(FridgeModelTest, ManySmallAdvancesEqualOneBigAdvance) {
  for (const UnitSpec& unit : DemoUnits(11)) {
    FridgeModel whole(unit, kStart, TimeZone::Utc());
    auto expected = whole.AdvanceTo(kStart + 3 * kMsPerDay);

    FridgeModel pieces(unit, kStart, TimeZone::Utc());
    std::vector<SimReading> got;
    TimestampMs t = kStart;
    std::uint64_t k = 1;
    while (t < kStart + 3 * kMsPerDay) {
      // Irregular pieces: not aligned to steps, sometimes shorter than a step, sometimes hours.
      k = k * 6364136223846793005ULL + 1442695040888963407ULL;
      t = std::min(kStart + 3 * kMsPerDay, t + static_cast<TimestampMs>((k >> 33) % 400'000));
      auto part = pieces.AdvanceTo(t);
      got.insert(got.end(), part.begin(), part.end());
    }
    EXPECT_TRUE(SameReadings(expected, got)) << unit.name;
    EXPECT_EQ(whole.last(), pieces.last());
  }
}

TEST(FridgeModelTest, AdvancingToThePastOrWithinAStepEmitsNothing) {
  FridgeModel model(Fridge(5), kStart, TimeZone::Utc());
  EXPECT_TRUE(model.AdvanceTo(kStart - kMsPerDay).empty());
  EXPECT_TRUE(model.AdvanceTo(kStart + kMsPerMinute - 1).empty());
  EXPECT_EQ(model.AdvanceTo(kStart + kMsPerMinute).size(), 4u);
  EXPECT_TRUE(model.AdvanceTo(kStart + kMsPerMinute).empty());
  EXPECT_TRUE(model.AdvanceTo(kStart).empty());
  EXPECT_EQ(model.last(), kStart + kMsPerMinute);
}

TEST(FridgeModelTest, CopyContinuesExactlyAsTheOriginal) {
  FridgeModel model(Fridge(6, /*failing=*/true), kStart, TimeZone::Utc());
  model.AdvanceTo(kStart + 5 * kMsPerHour + 17);
  FridgeModel copy = model;
  EXPECT_TRUE(
      SameReadings(model.AdvanceTo(kStart + kMsPerDay), copy.AdvanceTo(kStart + kMsPerDay)));
  EXPECT_EQ(copy.spec().name, "Test fridge");
  EXPECT_TRUE(copy.spec().failing);
}

TEST(FridgeModelTest, HealthyUnitsStayNearTheirSetPointOutsideDefrost) {
  for (const UnitSpec& unit : DemoUnits(21)) {
    if (unit.failing) continue;
    auto temperature = ByMetric(Simulate(unit, kTwoWeeks))["temperature"];
    std::size_t within = 0;
    for (double v : temperature.v) {
      if (std::abs(v - unit.set_point_c) <= 3.0) ++within;
      // No undershoot; the warmest moment is a defrost peak, a few degrees up.
      EXPECT_GE(v, unit.set_point_c - 3.0) << unit.name;
      EXPECT_LE(v, unit.set_point_c + 12.0) << unit.name;
    }
    const double share = static_cast<double>(within) / static_cast<double>(temperature.v.size());
    // Fridges and cold rooms leave the band only in short defrost spikes; freezer defrosts rise
    // further, so they spend a little longer outside.
    EXPECT_GE(share, unit.kind == UnitKind::kFreezer ? 0.85 : 0.94) << unit.name;
  }
}

TEST(FridgeModelTest, HealthyFridgeCyclesItsCompressorWithHysteresis) {
  auto temperature = ByMetric(Simulate(Fridge(22), kMsPerDay))["temperature"];
  // The thermostat swings between about set - 1.5 and set + 1.5: both ends are visited often.
  std::size_t cold = 0, warm = 0;
  for (double v : temperature.v) {
    if (v < 3.0) ++cold;
    if (v > 5.0) ++warm;
  }
  EXPECT_GT(cold, 100u);
  EXPECT_GT(warm, 100u);
  // Crossings of the set point, one up and one down per cycle of roughly 30-60 minutes.
  std::size_t crossings = 0;
  bool above = temperature.v[0] > 4.0;
  for (double v : temperature.v) {
    if (v > 4.5 && !above) above = true, ++crossings;
    if (v < 3.5 && above) above = false, ++crossings;
  }
  EXPECT_GE(crossings, 2u * 24);
  EXPECT_LE(crossings, 2u * 24 * 3);
}

TEST(FridgeModelTest, HealthyFridgeDefrostsEvery6To8Hours) {
  for (std::uint64_t seed : {31u, 32u, 33u}) {
    auto temperature = ByMetric(Simulate(Fridge(seed), kTwoWeeks))["temperature"];
    // A defrost spike: at least 8 consecutive minutes above set point + 3. Door openings warm the
    // air only for a minute or two.
    std::vector<TimestampMs> spikes;
    for (auto [a, b] : RunsAbove(temperature.v, 7.0)) {
      if (b - a + 1 >= 8) spikes.push_back(temperature.ts[a]);
    }
    ASSERT_GE(spikes.size(), 40u) << seed;  // 14 days / 7 h = 48
    EXPECT_LE(spikes.size(), 56u) << seed;
    for (std::size_t i = 1; i < spikes.size(); ++i) {
      TimestampMs gap = spikes[i] - spikes[i - 1];
      EXPECT_GE(gap, 6 * kMsPerHour) << seed << " spike " << i;
      EXPECT_LE(gap, 8 * kMsPerHour) << seed << " spike " << i;
    }
    // The first defrost comes within the first 8 hours.
    EXPECT_LT(spikes.front() - kStart, 8 * kMsPerHour) << seed;
  }
}

TEST(FridgeModelTest, DoorOpensOnlyDuringLocalBusinessHours) {
  auto berlin = TimeZone::Load("Europe/Berlin");
  ASSERT_TRUE(berlin);
  for (const UnitSpec& unit : DemoUnits(41)) {
    auto door = ByMetric(Simulate(unit, kTwoWeeks, *berlin))["door"];
    std::set<std::string> days_with_openings;
    std::size_t openings = 0;
    for (std::size_t i = 0; i < door.v.size(); ++i) {
      ASSERT_TRUE(door.v[i] == 0.0 || door.v[i] == 1.0);
      if (door.v[i] == 0.0) continue;
      ++openings;
      std::string hhmm = berlin->FormatLocal(door.ts[i], "%H:%M");
      EXPECT_GE(hhmm, "08:00") << unit.name << " " << FormatRfc3339(door.ts[i]);
      EXPECT_LT(hhmm, "22:00") << unit.name << " " << FormatRfc3339(door.ts[i]);
      days_with_openings.insert(berlin->FormatLocal(door.ts[i], "%Y-%m-%d"));
    }
    // Every unit is used every day, including across the DST change.
    EXPECT_GE(days_with_openings.size(), 14u) << unit.name;
    EXPECT_GE(openings, 14u * 10) << unit.name;
  }
}

TEST(FridgeModelTest, BusinessHoursFollowTheZone) {
  // The same instants are business hours in one zone and night in another.
  auto berlin = TimeZone::Load("Europe/Berlin");
  auto new_york = TimeZone::Load("America/New_York");
  ASSERT_TRUE(berlin && new_york);
  auto door_opens_between = [](const TimeZone& zone, int from_minute, int to_minute) {
    auto door = ByMetric(Simulate(Fridge(42), kTwoWeeks, zone))["door"];
    std::size_t count = 0;
    for (std::size_t i = 0; i < door.v.size(); ++i) {
      int minute = static_cast<int>((door.ts[i] % kMsPerDay) / kMsPerMinute);
      if (door.v[i] == 1.0 && minute >= from_minute && minute < to_minute) ++count;
    }
    return count;
  };
  // 07:00-09:00 UTC is 08:00-10:00 or 09:00-11:00 in Berlin but 03:00-05:00 in New York.
  EXPECT_GT(door_opens_between(*berlin, 7 * 60, 9 * 60), 0u);
  EXPECT_EQ(door_opens_between(*new_york, 7 * 60, 9 * 60), 0u);
}

TEST(FridgeModelTest, DoorOpeningsWarmTheAirAndRaiseHumidity) {
  auto series = ByMetric(Simulate(Fridge(43), kTwoWeeks));
  const Series& door = series["door"];
  const Series& temperature = series["temperature"];
  const Series& humidity = series["humidity"];
  double temperature_rise = 0, humidity_rise = 0;
  std::size_t openings = 0;
  for (std::size_t i = 2; i < door.v.size(); ++i) {
    if (door.v[i] == 1.0 && door.v[i - 1] == 0.0) {
      temperature_rise += temperature.v[i] - temperature.v[i - 1];
      humidity_rise += humidity.v[i] - humidity.v[i - 1];
      ++openings;
    }
  }
  ASSERT_GT(openings, 100u);
  EXPECT_GT(temperature_rise / static_cast<double>(openings), 0.3);
  EXPECT_GT(humidity_rise / static_cast<double>(openings), 2.0);
}

TEST(FridgeModelTest, FailingFridgeBreaches8DegreesForHalfAnHourSoonAfterStart) {
  for (std::uint64_t seed : {51u, 52u, 53u, 54u, 55u}) {
    auto temperature = ByMetric(Simulate(Fridge(seed, /*failing=*/true), kTwoWeeks))["temperature"];
    EXPECT_GE(LongestAbove(temperature, 8.0), 30 * kMsPerMinute) << seed;

    // A live demo shows the alert within hours of starting: a sustained breach in the first 3 h.
    Series first;
    for (std::size_t i = 0;
         i < temperature.ts.size() && temperature.ts[i] <= kStart + 3 * kMsPerHour; ++i) {
      first.ts.push_back(temperature.ts[i]);
      first.v.push_back(temperature.v[i]);
    }
    EXPECT_GE(LongestAbove(first, 8.0), 30 * kMsPerMinute) << seed;

    // And again and again over two weeks, so any live start sees one within hours.
    std::size_t breaches = 0;
    for (auto [a, b] : RunsAbove(temperature.v, 8.0)) {
      if (temperature.ts[b] - temperature.ts[a] >= 30 * kMsPerMinute) ++breaches;
    }
    EXPECT_GE(breaches, 14u * 2) << seed;
  }
}

TEST(FridgeModelTest, HealthyFridgesNeverBreach8DegreesForHalfAnHour) {
  for (std::uint64_t seed = 60; seed < 66; ++seed) {
    for (const UnitSpec& unit : DemoUnits(seed)) {
      if (unit.failing || unit.kind == UnitKind::kFreezer) continue;
      auto temperature = ByMetric(Simulate(unit, kTwoWeeks))["temperature"];
      EXPECT_LT(LongestAbove(temperature, 8.0), 30 * kMsPerMinute) << unit.name << " " << seed;
    }
  }
}

TEST(FridgeModelTest, BatteryDrainsSlowlyAndNeverRises) {
  for (const UnitSpec& unit : DemoUnits(71)) {
    auto battery = ByMetric(Simulate(unit, kTwoWeeks))["battery"];
    for (std::size_t i = 0; i < battery.v.size(); ++i) {
      ASSERT_GE(battery.v[i], 0.0);
      ASSERT_LE(battery.v[i], 100.0);
      if (i > 0) {
        ASSERT_LE(battery.v[i], battery.v[i - 1]) << unit.name << " at " << i;
      }
    }
    const double drop = battery.v.front() - battery.v.back();
    EXPECT_GE(drop, 2.0) << unit.name;
    EXPECT_LE(drop, 4.0) << unit.name;
  }
}

TEST(FridgeModelTest, BatteryStopsAtZero) {
  // A year and a half drains any battery: it reads 0, never below.
  FridgeModel model(Fridge(72), kStart, TimeZone::Utc(), kMsPerHour);
  auto battery = ByMetric(model.AdvanceTo(kStart + 540 * kMsPerDay))["battery"];
  EXPECT_EQ(battery.v.back(), 0.0);
  for (double v : battery.v) ASSERT_GE(v, 0.0);
}

TEST(FridgeModelTest, ValuesAreFiniteInRangeAndRoundedLikeASensor) {
  for (const UnitSpec& unit : DemoUnits(81)) {
    for (const SimReading& r : Simulate(unit, kTwoWeeks)) {
      ASSERT_TRUE(std::isfinite(r.value)) << unit.name << " " << r.metric;
      double scale = r.metric == "battery" ? 10.0 : 100.0;
      ASSERT_NEAR(r.value * scale, std::round(r.value * scale), 1e-6) << r.metric << " " << r.value;
      if (r.metric == "humidity") {
        ASSERT_GE(r.value, 40.0);
        ASSERT_LE(r.value, 90.0);
      }
    }
  }
}

TEST(FridgeModelTest, LongerStepsStayPhysical) {
  // Five-minute steps: the thermostat still holds the band and the readings stay sensible.
  auto temperature = ByMetric(
      Simulate(Fridge(91), 2 * kMsPerDay, TimeZone::Utc(), 5 * kMsPerMinute))["temperature"];
  for (double v : temperature.v) {
    EXPECT_GE(v, 1.0);
    EXPECT_LE(v, 10.0);
  }
}

TEST(DemoUnitsTest, ExactlyOneFailingUnitAndDistinctNames) {
  auto units = DemoUnits(1);
  ASSERT_GE(units.size(), 5u);
  ASSERT_LE(units.size(), 6u);
  EXPECT_EQ(std::count_if(units.begin(), units.end(), [](const UnitSpec& u) { return u.failing; }),
            1);
  std::set<std::string> names;
  std::set<std::uint64_t> seeds;
  for (const UnitSpec& u : units) {
    EXPECT_FALSE(u.name.empty());
    names.insert(u.name);
    seeds.insert(u.seed);
  }
  EXPECT_EQ(names.size(), units.size());
  EXPECT_EQ(seeds.size(), units.size());
  // The failing unit is a fridge, so the 8 °C limit applies to it.
  for (const UnitSpec& u : units) {
    if (u.failing) {
      EXPECT_EQ(u.kind, UnitKind::kFridge);
    }
  }
}

TEST(DemoUnitsTest, DeterministicPerSeedWithAllKinds) {
  auto a = DemoUnits(5), b = DemoUnits(5), c = DemoUnits(6);
  ASSERT_EQ(a.size(), b.size());
  std::set<UnitKind> kinds;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].seed, b[i].seed);
    EXPECT_EQ(a[i].name, c[i].name);
    EXPECT_NE(a[i].seed, c[i].seed);
    kinds.insert(a[i].kind);
  }
  EXPECT_EQ(kinds.size(), 3u);
  auto vaccine = std::find_if(a.begin(), a.end(),
                              [](const UnitSpec& u) { return u.name == "Vaccine fridge"; });
  ASSERT_NE(vaccine, a.end());
  EXPECT_EQ(vaccine->set_point_c, 5.0);
}

}  // namespace
}  // namespace opensense::sim
