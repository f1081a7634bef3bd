// The retention table (ARCHITECTURE.md §4): how long each class of data is kept, per
// organisation. The defaults are also the minimum; free tier cannot change them.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/types.hpp"

namespace opensense {

enum class DataClass {
  kRawReadings,
  kRollup5m,
  kRollup1h,
  kRollup1d,
  kAlertEvents,
  kApiRequestLogs,
  kNotificationLogs,
};
inline constexpr std::array<DataClass, 7> kAllDataClasses = {
    DataClass::kRawReadings,  DataClass::kRollup5m,       DataClass::kRollup1h,
    DataClass::kRollup1d,     DataClass::kAlertEvents,    DataClass::kApiRequestLogs,
    DataClass::kNotificationLogs};

std::string_view DataClassName(DataClass c);  // "raw_readings", "rollup_5m", ...
Result<DataClass> ParseDataClass(std::string_view name);

// A retention period in calendar months (years are 12 months), days, or forever.
struct RetentionPeriod {
  enum class Unit { kDays, kMonths, kForever };
  Unit unit = Unit::kForever;
  int amount = 0;

  static RetentionPeriod Days(int n) { return {Unit::kDays, n}; }
  static RetentionPeriod Months(int n) { return {Unit::kMonths, n}; }
  static RetentionPeriod Forever() { return {Unit::kForever, 0}; }
  bool operator==(const RetentionPeriod&) const = default;
};

// "13 months", "5 years", "30 days", "13mo", "5y", "30d", "forever".
Result<RetentionPeriod> ParseRetentionPeriod(std::string_view text);
std::string FormatRetentionPeriod(RetentionPeriod p);

RetentionPeriod DefaultRetention(DataClass c);

// Refuses a period shorter than the default, any change on the free tier, and a unit that
// does not match the default's (months for readings and rollups, days for logs).
Status ValidateRetentionOverride(Tier tier, DataClass c, RetentionPeriod p);

// Data strictly older than the returned instant is deleted; nullopt means "kept forever".
// Months are calendar months counted back from `now` in UTC.
std::optional<TimestampMs> RetentionCutoff(RetentionPeriod p, TimestampMs now);

// The retention in force for one organisation: defaults plus its overrides.
struct RetentionPolicy {
  std::map<DataClass, RetentionPeriod> overrides;
  RetentionPeriod For(DataClass c) const {
    auto it = overrides.find(c);
    return it == overrides.end() ? DefaultRetention(c) : it->second;
  }
};

}  // namespace opensense
