// Shared by the ingest payload fuzz targets (senml_fuzz, opensense_json_fuzz,
// line_protocol_fuzz): runs ingest::Parse on arbitrary bytes and aborts on any broken
// invariant. Parse must never crash or throw; what it returns must be storable as far as a
// payload can tell.
//
// The first input byte picks the options (bit 0: gateway token; bits 1-2: line protocol
// precision; bit 3: max_records = 5), the rest is the body.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/validation.hpp"
#include "ingest/payload.hpp"

namespace opensense::ingest::fuzz {

[[noreturn]] inline void Fail(const char* what, std::size_t index) {
  std::fprintf(stderr, "ingest fuzz: %s (index %zu)\n", what, index);
  std::abort();
}

// Text shown to a sender must be UTF-8 without control characters (messages quote payloads).
inline bool IsPrintableUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
inline bool IsJsonNumber(std::string_view s) {
  auto digit = [&](std::size_t i) { return i < s.size() && s[i] >= '0' && s[i] <= '9'; };
  std::size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  if (i < s.size() && s[i] == '.') {
    if (!digit(++i)) return false;
    while (digit(i)) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == s.size();
}

// The body with every number literal beyond the range of double replaced by 0. nlohmann refuses
// such literals (error 406), the ingest parsers read them as valid JSON and refuse only their
// record. One number literal for another never makes an invalid document valid.
inline std::string WithoutHugeNumbers(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  auto number_char = [](char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
  };
  bool in_string = false;
  for (std::size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < body.size()) {
        out += body[i + 1];
        i += 2;
        continue;
      }
      if (c == '"') in_string = false;
      ++i;
      continue;
    }
    if (c == '"') in_string = true;
    if (!number_char(c)) {
      out += c;
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < body.size() && number_char(body[end])) ++end;
    const std::string_view token = body.substr(i, end - i);
    double value = 0;
    const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
    const bool huge = IsJsonNumber(token) && ec == std::errc::result_out_of_range &&
                      ptr == token.data() + token.size();
    out += huge ? std::string_view("0") : token;
    i = end;
  }
  return out;
}

inline void CheckParse(PayloadFormat format, const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::uint8_t flags = data[0];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  static constexpr std::string_view kPrecisions[] = {"ns", "us", "ms", "s"};
  ParseOptions options;
  options.gateway = (flags & 1) != 0;
  options.lp_precision = kPrecisions[(flags >> 1) & 3];
  options.max_records = (flags & 8) != 0 ? 5 : 1'000'000;
  options.now_ms = 1705744800000;

  const auto result = Parse(format, body, options);
  if (format != PayloadFormat::kLineProtocol && result.has_value() &&
      !nlohmann::json::accept(WithoutHugeNumbers(body))) {
    Fail("accepted a document that is not JSON", 0);
  }
  if (!result) {
    const Error& error = result.error();
    if (error.code != ErrorCode::kInvalidArgument && error.code != ErrorCode::kResourceExhausted) {
      Fail("unexpected error code", 0);
    }
    if (error.message.empty() || !IsPrintableUtf8(error.message)) Fail("bad error message", 0);
    return;
  }

  // Indexes are document positions: below the number of lines for line protocol; a JSON
  // record takes at least two bytes.
  std::size_t index_bound = body.size();
  if (format == PayloadFormat::kLineProtocol) {
    index_bound = 1;
    for (char c : body) index_bound += c == '\n' ? 1 : 0;
  }
  if (result->records.size() + result->errors.size() > options.max_records) {
    Fail("more records than max_records", 0);
  }
  std::size_t previous = 0;
  for (const ParsedRecord& r : result->records) {
    if (r.index >= index_bound) Fail("record index out of range", r.index);
    if (r.index < previous) Fail("records out of document order", r.index);
    previous = r.index;
    if (!std::isfinite(r.value)) Fail("value not finite", r.index);
    if (!IsValidMetricName(r.metric)) Fail("invalid metric name", r.index);
    if (!r.unit.empty() && !IsKnownUnit(r.unit)) Fail("unknown unit", r.index);
    if (r.ts && (*r.ts < -62135596800000 || *r.ts > 253402300799999)) {
      Fail("timestamp out of range", r.index);
    }
    if (r.device.has_value() != options.gateway) Fail("device presence differs from mode", r.index);
    if (r.device && (r.device->empty() || r.device->size() > 128 || !IsPrintableUtf8(*r.device))) {
      Fail("bad device name", r.index);
    }
  }
  previous = 0;
  for (const RecordError& e : result->errors) {
    if (e.index >= index_bound) Fail("error index out of range", e.index);
    if (e.index < previous) Fail("errors out of document order", e.index);
    previous = e.index;
    if (e.reason.empty() || !IsPrintableUtf8(e.reason)) Fail("bad error reason", e.index);
  }

  // Parse is a pure function.
  const auto again = Parse(format, body, options);
  if (!again || again->records != result->records || again->errors != result->errors) {
    Fail("a second parse differs", 0);
  }
}

}  // namespace opensense::ingest::fuzz
