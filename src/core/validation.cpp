#include "core/validation.hpp"

#include <algorithm>
#include <array>

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

}  // namespace opensense
