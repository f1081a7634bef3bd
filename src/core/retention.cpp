#include "core/retention.hpp"
#include "core/tiers.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>

#include "core/time_zone.hpp"

namespace opensense {

std::string_view DataClassName(DataClass c) {
  switch (c) {
    case DataClass::kRawReadings: return "raw_readings";
    case DataClass::kRollup5m: return "rollup_5m";
    case DataClass::kRollup1h: return "rollup_1h";
    case DataClass::kRollup1d: return "rollup_1d";
    case DataClass::kAlertEvents: return "alert_events";
    case DataClass::kApiRequestLogs: return "api_request_logs";
    case DataClass::kNotificationLogs: return "notification_logs";
  }
  return "unknown";
}

Result<DataClass> ParseDataClass(std::string_view name) {
  for (DataClass c : kAllDataClasses) {
    if (DataClassName(c) == name) return c;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown data class '{}': use raw_readings, rollup_5m, rollup_1h, "
                               "rollup_1d, alert_events, api_request_logs or notification_logs",
                               name));
}

Result<RetentionPeriod> ParseRetentionPeriod(std::string_view text) {
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'{}' is not a retention period: use e.g. '13 months', '5 years', "
                                 "'30 days' or 'forever'",
                                 text));
  };
  if (text == "forever") return RetentionPeriod::Forever();
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 6) return bad();
  int n = 0;
  std::from_chars(text.data(), text.data() + i, n);
  while (i < text.size() && text[i] == ' ') ++i;
  std::string_view unit = text.substr(i);
  if (n <= 0) return bad();
  if (unit == "d" || unit == "day" || unit == "days") return RetentionPeriod::Days(n);
  if (unit == "mo" || unit == "month" || unit == "months") return RetentionPeriod::Months(n);
  if (unit == "y" || unit == "year" || unit == "years") {
    if (n > 1000) return bad();
    return RetentionPeriod::Months(n * 12);
  }
  return bad();
}

std::string FormatRetentionPeriod(RetentionPeriod p) {
  switch (p.unit) {
    case RetentionPeriod::Unit::kForever: return "forever";
    case RetentionPeriod::Unit::kDays: return fmt::format("{} day{}", p.amount, p.amount == 1 ? "" : "s");
    case RetentionPeriod::Unit::kMonths:
      if (p.amount % 12 == 0) {
        int y = p.amount / 12;
        return fmt::format("{} year{}", y, y == 1 ? "" : "s");
      }
      return fmt::format("{} month{}", p.amount, p.amount == 1 ? "" : "s");
  }
  return "forever";
}

RetentionPeriod DefaultRetention(DataClass c) {
  switch (c) {
    case DataClass::kRawReadings: return RetentionPeriod::Months(13);
    case DataClass::kRollup5m: return RetentionPeriod::Months(60);
    case DataClass::kRollup1h: return RetentionPeriod::Months(60);
    case DataClass::kRollup1d: return RetentionPeriod::Forever();
    case DataClass::kAlertEvents: return RetentionPeriod::Forever();
    case DataClass::kApiRequestLogs: return RetentionPeriod::Days(30);
    case DataClass::kNotificationLogs: return RetentionPeriod::Days(90);
  }
  return RetentionPeriod::Forever();
}

Status ValidateRetentionOverride(Tier tier, DataClass c, RetentionPeriod p) {
  RetentionPeriod def = DefaultRetention(c);
  if (!LimitsOf(tier).retention_extension) {
    return MakeError(ErrorCode::kPermissionDenied,
                     fmt::format("the free tier keeps {} for the default {}; upgrade to Team or "
                                 "Enterprise to extend retention",
                                 DataClassName(c), FormatRetentionPeriod(def)));
  }
  if (p.unit == RetentionPeriod::Unit::kForever) return Ok();
  if (def.unit == RetentionPeriod::Unit::kForever) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{} are kept forever; retention cannot be shortened",
                                 DataClassName(c)));
  }
  if (p.unit != def.unit) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("give the retention of {} in {}", DataClassName(c),
                                 def.unit == RetentionPeriod::Unit::kMonths ? "months or years"
                                                                            : "days"));
  }
  if (p.amount < def.amount) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{} must be kept at least {} (the default is also the minimum); "
                                 "{} is shorter",
                                 DataClassName(c), FormatRetentionPeriod(def),
                                 FormatRetentionPeriod(p)));
  }
  return Ok();
}

std::optional<TimestampMs> RetentionCutoff(RetentionPeriod p, TimestampMs now) {
  switch (p.unit) {
    case RetentionPeriod::Unit::kForever: return std::nullopt;
    case RetentionPeriod::Unit::kDays: return now - static_cast<TimestampMs>(p.amount) * kMsPerDay;
    case RetentionPeriod::Unit::kMonths: return SubtractCalendarMonthsUtc(now, p.amount);
  }
  return std::nullopt;
}

}  // namespace opensense
