#include "ingest/parse_support.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <limits>

#include "core/validation.hpp"

namespace opensense::ingest::internal {

namespace {

// Length of the well-formed UTF-8 sequence at text[i], or 0 (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF).
std::size_t Utf8SequenceLength(std::string_view text, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c == 0xE0) {
    n = 3, lo = 0xA0;
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    n = 3;
  } else if (c == 0xED) {
    n = 3, hi = 0x9F;
  } else if (c == 0xF0) {
    n = 4, lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    n = 4;
  } else if (c == 0xF4) {
    n = 4, hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

bool HasControlCharacter(std::string_view text) {
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) return true;
  }
  return false;
}

}  // namespace

std::string Quoted(std::string_view text) {
  constexpr std::size_t kMaxBytes = 64;
  std::string out = "'";
  std::size_t i = 0;
  while (i < text.size() && i < kMaxBytes) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t n = Utf8SequenceLength(text, i);
    if (n == 1 && c >= 0x20 && c != 0x7F) {
      out += text[i];
    } else if (n > 1) {
      out.append(text.substr(i, n));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
    i += n == 0 ? 1 : n;
  }
  if (i < text.size()) out += "...";
  out += '\'';
  return out;
}

std::size_t FindInvalidUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = Utf8SequenceLength(text, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

std::string Position(std::string_view body, std::size_t offset) {
  if (offset > body.size()) offset = body.size();
  std::size_t line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < offset; ++i) {
    if (body[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return fmt::format("line {}, column {}", line, offset - line_start + 1);
}

std::optional<std::string> CheckMetricName(std::string_view metric) {
  if (IsValidMetricName(metric)) return std::nullopt;
  if (metric.empty()) return "metric name is empty: use 1-64 characters of a-z 0-9 _ . -";
  return fmt::format("metric name {} is invalid: use 1-64 characters of a-z 0-9 _ . -",
                     Quoted(metric));
}

std::optional<std::string> CheckUnit(std::string_view unit) {
  if (unit.empty() || IsKnownUnit(unit)) return std::nullopt;
  return fmt::format("unknown unit {}", Quoted(unit));
}

std::optional<std::string> CheckDevice(std::string_view device) {
  if (device.empty()) return "device is empty";
  if (device.size() > kMaxDeviceBytes) {
    return fmt::format("device {} is too long: at most {} bytes", Quoted(device), kMaxDeviceBytes);
  }
  if (FindInvalidUtf8(device) != std::string_view::npos) {
    return fmt::format("device {} is not valid UTF-8", Quoted(device));
  }
  if (HasControlCharacter(device)) {
    return fmt::format("device {} contains a control character", Quoted(device));
  }
  return std::nullopt;
}

std::optional<TimestampMs> MsFromDouble(double ms) {
  if (!std::isfinite(ms)) return std::nullopt;
  const double rounded = std::round(ms);
  // The bounds are far inside the range of int64 and exact in a double.
  if (rounded < static_cast<double>(kMinTimestampMs) ||
      rounded > static_cast<double>(kMaxTimestampMs)) {
    return std::nullopt;
  }
  return static_cast<TimestampMs>(rounded);
}

std::optional<double> ParseDouble(std::string_view text) {
  if (text.empty()) return std::nullopt;
  double value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ptr != last) return std::nullopt;
  if (ec == std::errc()) return value;
  if (ec != std::errc::result_out_of_range) return std::nullopt;
  // Out of range: decide between overflow (infinity) and underflow (zero) from the decimal
  // magnitude: digits before the point (after leading zeros) plus the exponent.
  const bool negative = text.front() == '-';
  std::size_t i = negative ? 1 : 0;
  std::int64_t magnitude = 0;
  bool seen_nonzero = false;
  bool after_point = false;
  for (; i < text.size() && text[i] != 'e' && text[i] != 'E'; ++i) {
    const char c = text[i];
    if (c == '.') {
      after_point = true;
    } else if (!seen_nonzero && c == '0') {
      if (after_point) --magnitude;
    } else if (c >= '0' && c <= '9') {
      if (!seen_nonzero) seen_nonzero = true;
      if (!after_point) ++magnitude;
    }
  }
  std::int64_t exponent = 0;
  if (i < text.size()) {
    ++i;
    bool exponent_negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) exponent_negative = text[i++] == '-';
    for (; i < text.size(); ++i) {
      if (exponent < 1'000'000) exponent = exponent * 10 + (text[i] - '0');  // saturates
    }
    if (exponent_negative) exponent = -exponent;
  }
  const bool huge = seen_nonzero && magnitude + exponent > 0;
  const double result = huge ? std::numeric_limits<double>::infinity() : 0.0;
  return negative ? -result : result;
}

tl::unexpected<Error> RecordSink::TooMany() const {
  return DocumentError(fmt::format(
      "too many records: the document holds more than {} (the limit per request); send it "
      "in smaller batches",
      max_records_));
}

tl::unexpected<Error> DocumentError(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

}  // namespace opensense::ingest::internal
