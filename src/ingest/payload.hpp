// Ingest payload parsers: turn the body of an HTTP request or MQTT message into records for the
// writer. Pure functions: no I/O, no store access, no clock (the caller passes `now_ms`), no
// state between calls; safe to call from any thread. Nothing throws out of this header.
//
// Parse checks what can be checked from the payload alone: JSON syntax, the shape of each
// format, metric names (IsValidMetricName), units (IsKnownUnit), finite values, timestamps
// within years 0001-9999. It does not check that a named device exists, that a timestamp is
// inside retention or not in the future, or that a unit matches the series: that is the
// writer's job.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/types.hpp"

namespace opensense::ingest {

enum class PayloadFormat {
  kSenML,          // RFC 8428 SenML JSON, application/senml+json
  kOpenSenseJson,  // {"ts": ..., "temperature": 3.9, ...} or an array of such, application/json
  kLineProtocol,   // InfluxDB line protocol, text/plain
};

// "senml", "opensense-json", "line-protocol" (for logs and metrics labels).
std::string_view PayloadFormatName(PayloadFormat format);

// The format named by an HTTP Content-Type: application/senml+json, application/json or
// text/plain. Case-insensitive; parameters ("; charset=utf-8") are ignored. Anything else
// (or an empty header) is kInvalidArgument with a message that lists the accepted types.
Result<PayloadFormat> FormatFromContentType(std::string_view content_type);

// One reading taken from the payload.
//
// `index` is the position of the record in the document, the same number RecordError uses:
//  - SenML: the index of the record in the pack array (0-based).
//  - OpenSense JSON: the index of the object in the top-level array (0 for a single object).
//    Every metric field of an object becomes its own ParsedRecord, all with the object's index.
//  - Line protocol: the 0-based physical line number, counting every line of the body (blank
//    lines and comments included), so "index 7" is line 8 in an editor. Every field of a line
//    becomes its own ParsedRecord, all with the line's index.
// Records come out in document order, so indexes never decrease.
struct ParsedRecord {
  std::size_t index = 0;
  // The device named by the payload (a server id as decimal text, or a serial), only with a
  // gateway token (ParseOptions::gateway); absent with a device token.
  std::optional<std::string> device;
  std::string metric;  // passes IsValidMetricName
  std::string unit;    // a known SenML unit, or empty: the metric's default unit (writer decides)
  std::optional<TimestampMs> ts;  // absent: "now" (the caller fills it in)
  double value = 0;               // always finite

  bool operator==(const ParsedRecord&) const = default;
};

// A record of the document that was not turned into a ParsedRecord, and why (a message fit to
// show the sender). In OpenSense JSON and line protocol one object or line can produce several
// errors (one per bad field); the reason then starts with the field name: "'door': string
// values are not supported".
struct RecordError {
  std::size_t index = 0;  // as ParsedRecord::index
  std::string reason;

  bool operator==(const RecordError&) const = default;
};

struct ParseOptions {
  // false (default): the payload came with a device token; every record belongs to that
  // device, a device named inside the payload is not used, and ParsedRecord::device is absent.
  // true: a site gateway token; every record must name its device: SenML `bn` (without a
  // trailing ':' or '/'), OpenSense JSON "device", line protocol tag `device`.
  bool gateway = false;
  // The server clock when the payload arrived (ms UTC). Used for SenML times relative to "now"
  // (RFC 8428 section 4.5.3: resolved times below 2^28 s). Default 0.
  TimestampMs now_ms = 0;
  // Unit of line protocol timestamps: "ns" (default), "us", "ms", "s"; InfluxDB v1 spellings
  // "n" and "u" are accepted too. Anything else refuses the document. Must outlive the call.
  std::string_view lp_precision = "ns";
  // A document that would produce more than this many records and record errors together is
  // refused whole (a bound on memory and time per request). Default 1,000,000.
  std::size_t max_records = 1'000'000;
};

struct ParseResult {
  std::vector<ParsedRecord> records;  // in document order
  std::vector<RecordError> errors;    // in document order
};

// Parses one payload. A document that cannot be parsed at all (not JSON, invalid UTF-8 in
// JSON, wrong top-level shape, nesting deeper than 64, an unsupported SenML version or
// must-understand label, malformed SenML base fields, more than max_records, an unknown
// lp_precision) returns kInvalidArgument with a message that gives the position where
// possible ("invalid JSON at line 1, column 18: unexpected ']'"), and nothing else; so does an
// empty body for the JSON formats (an empty line protocol body is zero records). Otherwise
// every record stands alone: good ones go to `records`, bad ones to `errors`. Running out of
// memory returns kResourceExhausted.
Result<ParseResult> Parse(PayloadFormat format, std::string_view body, const ParseOptions& options);

}  // namespace opensense::ingest
