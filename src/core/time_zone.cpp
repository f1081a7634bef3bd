#include "core/time_zone.hpp"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <limits>

namespace opensense {

namespace {

using Ms = std::chrono::milliseconds;
using SysMs = std::chrono::time_point<std::chrono::system_clock, Ms>;

constexpr TimestampMs FloorDiv(TimestampMs a, TimestampMs b) {
  TimestampMs q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

bool ParseDigits(std::string_view s, std::size_t pos, std::size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

tl::unexpected<Error> BadTimestamp(std::string_view text) {
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("'{}' is not a timestamp: use RFC 3339 (2024-01-20T10:00:00Z) "
                               "or epoch milliseconds",
                               text.substr(0, 64)));
}

// An IANA zone name: components of A-Z a-z 0-9 _ - + separated by single slashes. cctz would
// also open an absolute path, "file:<any path>", "./" or "//" aliases of a zone, and Debian's
// zoneinfo/localtime (a symlink to the host's zone); none of them is a zone an organisation may
// name, and a path could make the server read any file (or block on a FIFO).
bool IsIanaZoneName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "localtime") return false;
  std::size_t component = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '/') {
      if (component == 0) return false;
      component = 0;
      continue;
    }
    char c = name[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '+';
    if (!ok) return false;
    ++component;
  }
  return true;
}

}  // namespace

Result<TimestampMs> ParseTimestamp(std::string_view text) {
  if (text.empty() || text.size() > 64) return BadTimestamp(text);
  bool all_digits = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (!(c >= '0' && c <= '9') && !(i == 0 && c == '-')) all_digits = false;
  }
  if (all_digits) {
    TimestampMs v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || ptr != text.data() + text.size()) return BadTimestamp(text);
    return v;
  }
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  int y, mo, d, h, mi, s;
  if (!ParseDigits(text, 0, 4, &y) || text.size() < 20 || text[4] != '-' ||
      !ParseDigits(text, 5, 2, &mo) || text[7] != '-' || !ParseDigits(text, 8, 2, &d) ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !ParseDigits(text, 11, 2, &h) ||
      text[13] != ':' || !ParseDigits(text, 14, 2, &mi) || text[16] != ':' ||
      !ParseDigits(text, 17, 2, &s)) {
    return BadTimestamp(text);
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return BadTimestamp(text);
  std::size_t pos = 19;
  TimestampMs frac_ms = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    int scale = 100;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      frac_ms += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return BadTimestamp(text);
  }
  if (pos >= text.size()) return BadTimestamp(text);
  int offset_min = 0;
  if (text[pos] == 'Z' || text[pos] == 'z') {
    ++pos;
  } else if (text[pos] == '+' || text[pos] == '-') {
    int oh, om;
    if (!ParseDigits(text, pos + 1, 2, &oh) || pos + 3 >= text.size() || text[pos + 3] != ':' ||
        !ParseDigits(text, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return BadTimestamp(text);
    }
    offset_min = (oh * 60 + om) * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return BadTimestamp(text);
  }
  if (pos != text.size()) return BadTimestamp(text);
  cctz::civil_second cs(y, mo, d, h, mi, s == 60 ? 59 : s);
  if (cs.year() != y || cs.month() != mo || cs.day() != d) return BadTimestamp(text);  // 30 Feb
  auto tp = cctz::convert(cs, cctz::utc_time_zone());
  TimestampMs secs = std::chrono::duration_cast<std::chrono::seconds>(tp.time_since_epoch()).count();
  return secs * 1000 + frac_ms - offset_min * kMsPerMinute;
}

std::string FormatRfc3339(TimestampMs ts) {
  SysMs tp{Ms{ts}};
  // %E4Y: RFC 3339 years have four digits (0001, not 1), so ParseTimestamp reads them back.
  return cctz::format("%E4Y-%m-%dT%H:%M:%E3SZ", tp, cctz::utc_time_zone());
}

struct TimeZone::Impl {
  cctz::time_zone tz;
};

TimeZone::TimeZone(std::string name, std::shared_ptr<const Impl> impl)
    : name_(std::move(name)), impl_(std::move(impl)) {}

Result<TimeZone> TimeZone::Load(std::string_view name) {
  if (!IsIanaZoneName(name)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'{}' is not an IANA time zone (e.g. Europe/Berlin)", name));
  }
  auto impl = std::make_shared<Impl>();
  if (!cctz::load_time_zone(std::string(name), &impl->tz)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("unknown time zone '{}': use an IANA name such as Europe/Berlin "
                                 "(is the tzdata package installed?)",
                                 name));
  }
  return TimeZone(std::string(name), std::move(impl));
}

TimeZone TimeZone::Utc() {
  auto impl = std::make_shared<Impl>();
  impl->tz = cctz::utc_time_zone();
  return TimeZone("UTC", std::move(impl));
}

Interval TimeZone::DayOf(TimestampMs ts) const {
  SysMs tp{Ms{ts}};
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(tp);
  if (secs > tp) secs -= std::chrono::seconds(1);
  cctz::civil_day day(cctz::convert(secs, impl_->tz));
  // A midnight skipped by a DST change starts the day at the transition itself.
  auto midnight = [&](cctz::civil_day d) {
    auto cl = impl_->tz.lookup(cctz::civil_second(d));
    return cl.kind == cctz::time_zone::civil_lookup::SKIPPED ? cl.trans : cl.pre;
  };
  auto start = midnight(day);
  auto end = midnight(day + 1);
  // Within a day of either end of the int64 range a midnight is not representable in ms (a
  // query may send any epoch ms): saturate instead of overflowing.
  auto to_ms = [](auto t) -> TimestampMs {
    const std::int64_t secs =
        std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
    if (secs > std::numeric_limits<TimestampMs>::max() / kMsPerSecond) {
      return std::numeric_limits<TimestampMs>::max();
    }
    if (secs < std::numeric_limits<TimestampMs>::min() / kMsPerSecond) {
      return std::numeric_limits<TimestampMs>::min();
    }
    return secs * kMsPerSecond;
  };
  return Interval{to_ms(start), to_ms(end)};
}

std::string TimeZone::FormatLocal(TimestampMs ts, std::string_view format) const {
  SysMs tp{Ms{ts}};
  return cctz::format(std::string(format), tp, impl_->tz);
}

TimestampMs SubtractCalendarMonthsUtc(TimestampMs ts, int months) {
  cctz::civil_day d = cctz::civil_day(1970, 1, 1) + FloorDiv(ts, kMsPerDay);
  cctz::civil_month target = cctz::civil_month(d) - months;
  cctz::civil_day last_of_month = cctz::civil_day(target + 1) - 1;
  int day = std::min<int>(d.day(), last_of_month.day());
  cctz::civil_day result(target.year(), target.month(), day);
  // Shift `ts` by whole days, which keeps the time of day. At most 31 days per month, so the
  // shift fits an int64 for any int `months`; the sum saturates at the ends of the range.
  const TimestampMs shift = (result - d) * kMsPerDay;
  TimestampMs out = 0;
  if (__builtin_add_overflow(ts, shift, &out)) {
    return shift < 0 ? std::numeric_limits<TimestampMs>::min()
                     : std::numeric_limits<TimestampMs>::max();
  }
  return out;
}

}  // namespace opensense
