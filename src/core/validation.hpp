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

}  // namespace opensense
