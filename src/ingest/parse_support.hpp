// Internal to the ingest module: the rules every format shares (names, units, devices, time
// bounds), message helpers, and the sink that collects records under the max_records budget.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ingest/payload.hpp"

namespace opensense::ingest::internal {

// JSON containers may nest this deep (a SenML record needs 2); deeper refuses the document.
inline constexpr int kMaxJsonDepth = 64;
// Longest device name (server id or serial) a payload may give.
inline constexpr std::size_t kMaxDeviceBytes = 128;
// Timestamps must be RFC 3339 representable: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z.
inline constexpr TimestampMs kMinTimestampMs = -62135596800000;
inline constexpr TimestampMs kMaxTimestampMs = 253402300799999;

// `text` for a message: in single quotes, control characters and bytes that are not UTF-8 as
// \xNN, cut after 64 bytes ("..."), so a hostile payload cannot forge log lines.
std::string Quoted(std::string_view text);
// Offset of the first byte that does not belong to well-formed UTF-8, or npos.
std::size_t FindInvalidUtf8(std::string_view text);
// "line 3, column 7" (1-based; the column counts bytes) of byte `offset` of `body`.
std::string Position(std::string_view body, std::size_t offset);

// Each returns the reason a record is refused, or nullopt when the text is fine.
std::optional<std::string> CheckMetricName(std::string_view metric);
std::optional<std::string> CheckUnit(std::string_view unit);
std::optional<std::string> CheckDevice(std::string_view device);

// Milliseconds from a (finite or not) number of ms; nullopt when not finite or outside
// [kMinTimestampMs, kMaxTimestampMs].
std::optional<TimestampMs> MsFromDouble(double ms);
// A decimal floating-point literal (std::from_chars syntax, the whole of `text`). A literal
// beyond the range of double gives +-infinity (too large) or +-0 (too small); nullopt when
// `text` is not a number.
std::optional<double> ParseDouble(std::string_view text);
inline bool TimestampInRange(TimestampMs ts) {
  return ts >= kMinTimestampMs && ts <= kMaxTimestampMs;
}
inline constexpr std::string_view kTimeOutOfRange =
    "time out of range: must be between years 0001 and 9999";

// Collects records and errors; refuses more than ParseOptions::max_records of them together.
class RecordSink {
 public:
  explicit RecordSink(std::size_t max_records) : max_records_(max_records) {}

  // false when the budget is exceeded: the caller returns TooMany().
  [[nodiscard]] bool Add(ParsedRecord record) {
    if (!Reserve()) return false;
    result_.records.push_back(std::move(record));
    return true;
  }
  // A new record to fill in place (no move of a finished one), or nullptr when the budget is
  // exceeded: the caller returns TooMany().
  [[nodiscard]] ParsedRecord* Emplace() {
    if (!Reserve()) return nullptr;
    return &result_.records.emplace_back();
  }
  [[nodiscard]] bool Fail(std::size_t index, std::string reason) {
    if (!Reserve()) return false;
    result_.errors.push_back(RecordError{index, std::move(reason)});
    return true;
  }
  // Room for `expected` records, bounded by max_records and by `body_bytes` / 16 (no record
  // is shorter), so a hostile count cannot make a large allocation.
  void ReserveRecords(std::size_t expected, std::size_t body_bytes) {
    result_.records.reserve(std::min({expected, max_records_, body_bytes / 16}));
  }
  tl::unexpected<Error> TooMany() const;
  ParseResult Take() { return std::move(result_); }

 private:
  bool Reserve() {
    if (count_ >= max_records_) return false;
    ++count_;
    return true;
  }
  std::size_t max_records_;
  std::size_t count_ = 0;
  ParseResult result_;
};

tl::unexpected<Error> DocumentError(std::string message);

// The three formats (senml.cpp, opensense_json.cpp, line_protocol.cpp).
Result<ParseResult> ParseSenml(std::string_view body, const ParseOptions& options);
Result<ParseResult> ParseOpenSenseJson(std::string_view body, const ParseOptions& options);
Result<ParseResult> ParseLineProtocol(std::string_view body, const ParseOptions& options);

}  // namespace opensense::ingest::internal
