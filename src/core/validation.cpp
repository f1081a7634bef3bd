#include "core/validation.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <fmt/format.h>

namespace opensense {

bool IsValidMetricName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  char first = name.front();
  return (first >= 'a' && first <= 'z') || (first >= '0' && first <= '9');
}

namespace {
// SenML units: RFC 8428 section 12.1 and the RFC 8798 secondary units that sensors use.
constexpr std::array<std::string_view, 97> kUnits = {
    "m",     "kg",     "g",      "s",     "A",     "K",      "cd",    "mol",   "Hz",    "rad",
    "sr",    "N",      "Pa",     "J",     "W",     "C",      "V",     "F",     "Ohm",   "S",
    "Wb",    "T",      "H",      "Cel",   "lm",    "lx",     "Bq",    "Gy",    "Sv",    "kat",
    "m2",    "m3",     "l",      "m/s",   "m/s2",  "m3/s",   "l/s",   "W/m2",  "cd/m2", "bit",
    "bit/s", "lat",    "lon",    "pH",    "dB",    "dBW",    "Bspl",  "count", "/",     "%",
    "%RH",   "%EL",    "EL",     "1/s",   "1/min", "beat/min", "beats", "S/m", "B",     "VA",
    "VAs",   "var",    "vars",   "J/m",   "kg/m3", "deg",    "NTU",   "ms",    "min",   "h",
    "MHz",   "kW",     "kVA",    "kvar",  "Ah",    "Wh",     "kWh",   "varh",  "kvarh", "kVAh",
    "Wh/km", "KiB",    "GB",     "Mbit/s", "B/s",  "MB/s",   "mV",    "mA",    "dBm",   "ug/m3",
    "mm/h",  "m/h",    "ppm",    "/100",  "/1000", "hPa",    "ppb"};
}  // namespace

bool IsKnownUnit(std::string_view unit) {
  return std::find(kUnits.begin(), kUnits.end(), unit) != kUnits.end();
}

std::optional<std::string_view> DefaultUnitFor(std::string_view metric) {
  if (metric == "temperature") return "Cel";
  if (metric == "humidity") return "%RH";
  if (metric == "battery") return "%EL";
  if (metric == "door") return "/";
  if (metric == "rssi") return "dBm";
  if (metric == "voltage") return "V";
  return std::nullopt;
}

bool IsValidCalendarDate(std::string_view date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return false;
  int parts[3] = {0, 0, 0};
  int idx = 0;
  for (std::size_t i = 0; i < date.size(); ++i) {
    if (i == 4 || i == 7) {
      ++idx;
      continue;
    }
    if (date[i] < '0' || date[i] > '9') return false;
    parts[idx] = parts[idx] * 10 + (date[i] - '0');
  }
  const int y = parts[0], m = parts[1], d = parts[2];
  if (y < 1900 || m < 1 || m > 12 || d < 1) return false;
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= kDays[m - 1] + (m == 2 && leap ? 1 : 0);
}

Status ValidateDeviceProfile(const DeviceProfile& p) {
  for (auto [name, v] : {std::pair{"target_min", p.target_min}, std::pair{"target_max", p.target_max}}) {
    if (v && (!std::isfinite(*v) || std::fabs(*v) > 1000)) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' must be a number between -1000 and 1000", name));
    }
  }
  if (p.target_min && p.target_max && !(*p.target_min < *p.target_max)) {
    return MakeError(ErrorCode::kInvalidArgument, "'target_min' must be below 'target_max'");
  }
  if (p.expected_interval_s && (*p.expected_interval_s < 1 || *p.expected_interval_s > 86400)) {
    return MakeError(ErrorCode::kInvalidArgument, "'expected_interval_s' must be 1-86400 seconds");
  }
  for (auto [name, v] : {std::pair{"calibration_date", &p.calibration_date},
                         std::pair{"calibration_due", &p.calibration_due}}) {
    if (*v && !IsValidCalendarDate(**v)) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' must be a date YYYY-MM-DD", name));
    }
  }
  if (p.calibration_date && p.calibration_due && *p.calibration_due < *p.calibration_date) {
    return MakeError(ErrorCode::kInvalidArgument, "'calibration_due' is before 'calibration_date'");
  }
  return Ok();
}

}  // namespace opensense
