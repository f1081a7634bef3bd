// Rules a reading must satisfy before it is stored. Pure functions.
#pragma once

#include <optional>
#include <string_view>

#include "core/types.hpp"

namespace opensense {

// How far ahead of the server clock a reading may be stamped (device clock drift).
inline constexpr TimestampMs kMaxFutureSkewMs = 5 * kMsPerMinute;

// 1-64 characters of a-z 0-9 _ . - (lower case), starting with a letter or digit.
bool IsValidMetricName(std::string_view name);
// A SenML unit (RFC 8428 / RFC 8798 registry) that OpenSense accepts.
bool IsKnownUnit(std::string_view unit);
// The unit used when a reading of a well-known metric names none ("temperature" -> "Cel").
std::optional<std::string_view> DefaultUnitFor(std::string_view metric);

// A calendar date "YYYY-MM-DD" (a real day of the Gregorian calendar, years 1900-9999).
bool IsValidCalendarDate(std::string_view date);
// Finite limits with min < max, an interval of 1 s to 1 day, valid calendar dates with the due
// date not before the certificate date. The error names the field.
Status ValidateDeviceProfile(const DeviceProfile& profile);

}  // namespace opensense
