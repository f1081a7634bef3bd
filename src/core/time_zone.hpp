// Calendar arithmetic: RFC 3339 timestamps, IANA time zones and local calendar days.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/types.hpp"

namespace opensense {

// Parses RFC 3339 ("2024-01-20T10:00:00Z", offsets and fractions allowed) or epoch milliseconds.
Result<TimestampMs> ParseTimestamp(std::string_view text);
// Formats as RFC 3339 UTC with milliseconds: 2024-01-20T10:00:00.000Z.
std::string FormatRfc3339(TimestampMs ts);

// Half-open interval of time [start, end).
struct Interval {
  TimestampMs start = 0;
  TimestampMs end = 0;
  bool Contains(TimestampMs t) const { return t >= start && t < end; }
};

// An IANA time zone. Cheap to copy; safe to share between threads.
class TimeZone {
 public:
  // Loads a zone from the system database ("Europe/Berlin", "Asia/Kolkata", "UTC").
  static Result<TimeZone> Load(std::string_view name);
  static TimeZone Utc();

  const std::string& name() const { return name_; }
  // The local calendar day that contains `ts`: 23, 24 or 25 hours long around DST changes.
  Interval DayOf(TimestampMs ts) const;
  // Local-time rendering "YYYY-MM-DD HH:MM:SS" for reports and CSV.
  std::string FormatLocal(TimestampMs ts, std::string_view format = "%Y-%m-%d %H:%M:%S") const;

 private:
  struct Impl;
  TimeZone(std::string name, std::shared_ptr<const Impl> impl);
  std::string name_;
  std::shared_ptr<const Impl> impl_;
};

// Caches the current day interval, because consecutive readings almost always share a day.
// Not thread-safe: one per thread.
class DayBucketer {
 public:
  explicit DayBucketer(TimeZone zone) : zone_(std::move(zone)) {}
  TimestampMs DayStart(TimestampMs ts) {
    if (!cached_.Contains(ts)) cached_ = zone_.DayOf(ts);
    return cached_.start;
  }
  const TimeZone& zone() const { return zone_; }

 private:
  TimeZone zone_;
  Interval cached_{0, 0};
};

// UTC calendar arithmetic: the same instant `months` calendar months earlier (day clamped to
// the end of a shorter month: 31 March minus 1 month is 28/29 February).
TimestampMs SubtractCalendarMonthsUtc(TimestampMs ts, int months);

}  // namespace opensense
