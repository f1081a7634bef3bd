// Appending numbers to JSON text without a temporary string per number: the series, sparkline
// and latest answers write hundreds of them per request, and formatting was most of their CPU.
#pragma once

#include <cstdint>
#include <string>

namespace opensense::api {

// `v` as the shortest text that reads back as the same double (what fmt's "{}" prints), with a
// fast path for short decimals such as sensor values (at most 4 fractional digits, |v| < 1e9).
// `v` must be finite.
void AppendNumber(std::string& out, double v);
void AppendInt(std::string& out, std::int64_t v);

}  // namespace opensense::api
