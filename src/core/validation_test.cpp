#include "core/validation.hpp"

#include <gtest/gtest.h>

#include <string>

namespace opensense {
namespace {

TEST(IsValidMetricName, WellKnownAndCustomNames) {
  for (const char* name :
       {"temperature", "humidity", "battery", "door", "rssi", "voltage", "co2", "pm2.5",
        "temp-probe-1", "temp_probe_1", "a", "0", "9lives", "x.y-z_0"}) {
    EXPECT_TRUE(IsValidMetricName(name)) << name;
  }
}

TEST(IsValidMetricName, LengthLimitIs64) {
  EXPECT_TRUE(IsValidMetricName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidMetricName(std::string(65, 'a')));
  EXPECT_TRUE(IsValidMetricName("t" + std::string(63, '_')));
  EXPECT_FALSE(IsValidMetricName(""));
}

TEST(IsValidMetricName, UpperCaseRefused) {
  EXPECT_FALSE(IsValidMetricName("Temperature"));
  EXPECT_FALSE(IsValidMetricName("TEMP"));
  EXPECT_FALSE(IsValidMetricName("tempC"));
}

TEST(IsValidMetricName, SpacesAndPunctuationRefused) {
  for (const char* name : {"room temp", " temp", "temp ", "temp\t", "temp\n", "temp/1", "temp:1",
                           "temp,1", "temp=1", "temp\"", "temp*", "a+b", "temp#"}) {
    EXPECT_FALSE(IsValidMetricName(name)) << name;
  }
}

TEST(IsValidMetricName, MustStartWithLetterOrDigit) {
  EXPECT_FALSE(IsValidMetricName("_temp"));
  EXPECT_FALSE(IsValidMetricName(".temp"));
  EXPECT_FALSE(IsValidMetricName("-temp"));
  EXPECT_FALSE(IsValidMetricName("_"));
  EXPECT_TRUE(IsValidMetricName("temp_"));  // only the first character is restricted
}

TEST(IsValidMetricName, NonAsciiBytesRefused) {
  EXPECT_FALSE(IsValidMetricName("temp\xc3\xa9rature"));        // "é" in UTF-8
  EXPECT_FALSE(IsValidMetricName("\xe6\xb8\xa9\xe5\xba\xa6"));  // 温度
  EXPECT_FALSE(IsValidMetricName("\xff"));
  EXPECT_FALSE(IsValidMetricName(std::string("te\0mp", 5)));
}

TEST(IsKnownUnit, UnitsOfTheWellKnownMetrics) {
  for (const char* unit : {"Cel", "%RH", "%EL", "V", "dBm", "/"}) {
    EXPECT_TRUE(IsKnownUnit(unit)) << unit;
  }
}

TEST(IsKnownUnit, OtherSenmlUnits) {
  for (const char* unit : {"K", "Pa", "hPa", "ppm", "ppb", "lx", "%", "W", "kWh", "m/s", "count",
                           "ug/m3", "mV", "A"}) {
    EXPECT_TRUE(IsKnownUnit(unit)) << unit;
  }
}

TEST(IsKnownUnit, UnknownUnitsRefused) {
  for (const char* unit : {"celsius", "Celsius", "cel", "CEL", "C°", "°C", "degC", "%rh", "v",
                           "dbm", "Cel ", " Cel", "F ", "unknown"}) {
    EXPECT_FALSE(IsKnownUnit(unit)) << unit;
  }
}

TEST(IsKnownUnit, EmptyIsNotAUnit) {
  // An empty unit means "the metric's default" and is resolved before this check.
  EXPECT_FALSE(IsKnownUnit(""));
  EXPECT_FALSE(IsKnownUnit(std::string_view("Cel\0", 4)));
}

TEST(DefaultUnitFor, WellKnownMetrics) {
  EXPECT_EQ(DefaultUnitFor("temperature"), "Cel");
  EXPECT_EQ(DefaultUnitFor("humidity"), "%RH");
  EXPECT_EQ(DefaultUnitFor("battery"), "%EL");
  EXPECT_EQ(DefaultUnitFor("door"), "/");
  EXPECT_EQ(DefaultUnitFor("rssi"), "dBm");
  EXPECT_EQ(DefaultUnitFor("voltage"), "V");
}

TEST(DefaultUnitFor, DefaultsAreKnownUnitsAndValidNames) {
  for (const char* metric : {"temperature", "humidity", "battery", "door", "rssi", "voltage"}) {
    ASSERT_TRUE(DefaultUnitFor(metric).has_value()) << metric;
    EXPECT_TRUE(IsKnownUnit(*DefaultUnitFor(metric))) << metric;
    EXPECT_TRUE(IsValidMetricName(metric)) << metric;
  }
}

TEST(DefaultUnitFor, CustomMetricsHaveNone) {
  EXPECT_EQ(DefaultUnitFor("co2"), std::nullopt);
  EXPECT_EQ(DefaultUnitFor(""), std::nullopt);
  EXPECT_EQ(DefaultUnitFor("Temperature"), std::nullopt);
  EXPECT_EQ(DefaultUnitFor("temperature "), std::nullopt);
}

TEST(MaxFutureSkew, IsFiveMinutes) { EXPECT_EQ(kMaxFutureSkewMs, 5 * 60 * 1000); }

}  // namespace
}  // namespace opensense
