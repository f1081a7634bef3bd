// InfluxDB line protocol: measurement[,tag=value...] field=value[,field=value...] [timestamp]
//
// Each field becomes a record whose metric is the field key, except a field named `value`,
// whose metric is the measurement (`temperature value=3.9`); otherwise the measurement is not
// used. Tags are ignored except `device`, which names the device with a gateway token (and is
// ignored with a device token). Metric names are not lower-cased: `Temp=1` is refused.
//
// Records are indexed by physical line (0-based, blank and comment lines counted). A line that
// does not follow the syntax (missing '=', unterminated string, bad timestamp, ...) gives one
// error and no record; a field whose value cannot be stored (string, not a number, out of
// range, not finite, invalid metric name) gives an error for that field only.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "ingest/parse_support.hpp"

namespace opensense::ingest::internal {

namespace {

// How a line protocol timestamp becomes milliseconds.
struct Precision {
  std::int64_t divide = 1;    // ns: 1'000'000, us: 1'000
  std::int64_t multiply = 1;  // s: 1'000
};

std::optional<Precision> PrecisionFromName(std::string_view name) {
  if (name == "ns" || name == "n") return Precision{1'000'000, 1};
  if (name == "us" || name == "u") return Precision{1'000, 1};
  if (name == "ms") return Precision{1, 1};
  if (name == "s") return Precision{1, 1'000};
  return std::nullopt;
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

struct Field {
  std::string_view key;    // into the line, or into `scratch` when the key has escapes
  std::string_view value;  // as written (strings: without the quotes)
  bool is_string = false;
  std::string scratch;
};

// Whether every byte is printable ASCII (0x20..0x7E), eight bytes at a time: such a line (the
// usual one) needs no UTF-8 or control-character check.
bool AllPrintableAscii(std::string_view s) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ull;
  constexpr std::uint64_t kHigh = 0x8080808080808080ull;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    const std::uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;  // some byte < 0x20
    const std::uint64_t x = w ^ (kOnes * 0x7F);
    const std::uint64_t del = (x - kOnes) & ~x & kHigh;                  // some byte == 0x7F
    if (((w & kHigh) | below_space | del) != 0) return false;
  }
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7F) return false;
  }
  return true;
}

// A set of bytes as a table: one load per byte where a scan compared each byte with every member.
struct ByteSet {
  std::array<bool, 256> has{};
  constexpr explicit ByteSet(std::string_view members) {
    for (char c : members) has[static_cast<unsigned char>(c)] = true;
  }
  constexpr bool operator()(char c) const { return has[static_cast<unsigned char>(c)]; }
};
// Where names stop: the measurement at ',' or ' ', tag values too; tag and field keys also at '='.
constexpr ByteSet kMeasurementStops(", ");
constexpr ByteSet kKeyStops(",= ");
// The same sets with the backslash, which leaves the fast path.
constexpr ByteSet kMeasurementScan(", \\");
constexpr ByteSet kKeyScan(",= \\");

// One line split into its parts. Errors are the line's syntax problems.
class LineReader {
 public:
  explicit LineReader(std::string_view line) : line_(line) {}

  // Reads an escaped name up to an unescaped stop character (or the end). `escapable` are the
  // characters a backslash escapes; "\\" is a backslash; any other backslash is literal. The
  // answer is a view into the line when the name has no backslash (the usual case), else into
  // `scratch`, which must outlive its use.
  std::string_view ReadName(const ByteSet& stops, const ByteSet& scan, std::string_view escapable,
                            std::string& scratch) {
    std::size_t end = pos_;
    while (end < line_.size() && !scan(line_[end])) ++end;
    if (end == line_.size() || line_[end] != '\\') {
      const std::string_view name = line_.substr(pos_, end - pos_);
      pos_ = end;
      return name;
    }
    scratch.assign(line_.substr(pos_, end - pos_));
    pos_ = end;
    while (pos_ < line_.size()) {
      const char c = line_[pos_];
      if (c == '\\' && pos_ + 1 < line_.size()) {
        const char next = line_[pos_ + 1];
        if (next == '\\' || escapable.find(next) != std::string_view::npos) {
          scratch += next;
          pos_ += 2;
          continue;
        }
      }
      if (stops(c)) break;
      scratch += c;
      ++pos_;
    }
    return scratch;
  }

  // A field value: a quoted string (escapes \" and \\) or a bare token up to ',' or ' '.
  std::optional<std::string_view> ReadValue(bool* is_string) {
    *is_string = false;
    if (pos_ < line_.size() && line_[pos_] == '"') {
      *is_string = true;
      const std::size_t start = ++pos_;
      while (pos_ < line_.size()) {
        if (line_[pos_] == '\\' && pos_ + 1 < line_.size()) {
          pos_ += 2;
          continue;
        }
        if (line_[pos_] == '"') return line_.substr(start, pos_++ - start);
        ++pos_;
      }
      return std::nullopt;
    }
    const std::size_t start = pos_;
    while (pos_ < line_.size() && line_[pos_] != ',' && line_[pos_] != ' ') ++pos_;
    return line_.substr(start, pos_ - start);
  }

  std::string_view ReadToken() {
    const std::size_t start = pos_;
    while (pos_ < line_.size() && line_[pos_] != ' ') ++pos_;
    return line_.substr(start, pos_ - start);
  }

  bool SkipSpaces() {
    const std::size_t start = pos_;
    while (pos_ < line_.size() && line_[pos_] == ' ') ++pos_;
    return pos_ > start;
  }
  bool Consume(char c) {
    if (pos_ < line_.size() && line_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool AtEnd() const { return pos_ >= line_.size(); }
  std::string_view Rest() const { return line_.substr(pos_); }

 private:
  std::string_view line_;
  std::size_t pos_ = 0;
};

bool IsTrue(std::string_view v) {
  return v == "t" || v == "T" || v == "true" || v == "True" || v == "TRUE";
}
bool IsFalse(std::string_view v) {
  return v == "f" || v == "F" || v == "false" || v == "False" || v == "FALSE";
}

// The number a field value holds, or why it cannot be stored.
tl::expected<double, std::string> FieldNumber(std::string_view text) {
  if (text.empty()) return tl::unexpected<std::string>("value is empty");
  if (IsTrue(text)) return 1.0;
  if (IsFalse(text)) return 0.0;
  const char suffix = text.back();
  if (suffix == 'i' || suffix == 'u') {
    const std::string_view digits = text.substr(0, text.size() - 1);
    const char* first = digits.data();
    const char* last = digits.data() + digits.size();
    if (suffix == 'i') {
      std::int64_t v = 0;
      auto [ptr, ec] = std::from_chars(first, last, v);
      if (ptr == last && ec == std::errc::result_out_of_range) {
        return tl::unexpected(fmt::format("integer {} is out of the int64 range", Quoted(text)));
      }
      if (digits.empty() || ptr != last || ec != std::errc()) {
        return tl::unexpected(fmt::format("value {} is not an integer", Quoted(text)));
      }
      return static_cast<double>(v);
    }
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(first, last, v);
    if (ptr == last && ec == std::errc::result_out_of_range) {
      return tl::unexpected(fmt::format("integer {} is out of the uint64 range", Quoted(text)));
    }
    if (digits.empty() || ptr != last || ec != std::errc()) {
      return tl::unexpected(fmt::format("value {} is not an unsigned integer", Quoted(text)));
    }
    return static_cast<double>(v);
  }
  auto number = ParseDouble(text);
  if (!number) return tl::unexpected(fmt::format("value {} is not a number", Quoted(text)));
  if (!std::isfinite(*number)) return tl::unexpected<std::string>("value is not finite");
  return *number;
}

class LineProtocolParser {
 public:
  LineProtocolParser(const ParseOptions& options, Precision precision)
      : options_(options), precision_(precision), sink_(options.max_records) {}

  Result<ParseResult> Run(std::string_view body) {
    // About one record per 24 bytes (no line with a record is shorter); no counting pass.
    sink_.ReserveRecords(body.size() / 24 + 1, body.size());
    std::size_t index = 0;
    std::size_t start = 0;
    while (start <= body.size()) {
      std::size_t end = body.find('\n', start);
      if (end == std::string_view::npos) end = body.size();
      std::string_view line = body.substr(start, end - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      OS_RETURN_IF_ERROR(ReadLine(line, index));
      ++index;
      start = end + 1;
    }
    return sink_.Take();
  }

 private:
  Status ReadLine(std::string_view line, std::size_t index) {
    std::size_t first = 0;
    while (first < line.size() && (line[first] == ' ' || line[first] == '\t')) ++first;
    line.remove_prefix(first);
    if (line.empty() || line.front() == '#') return Ok();
    if (!AllPrintableAscii(line)) {
      if (const std::size_t bad = FindInvalidUtf8(line); bad != std::string_view::npos) {
        return Refuse(index, fmt::format("the line is not valid UTF-8 (byte {})", first + bad + 1));
      }
      for (std::size_t i = 0; i < line.size(); ++i) {
        const auto c = static_cast<unsigned char>(line[i]);
        if ((c < 0x20 && c != '\t') || c == 0x7F) {
          return Refuse(index,
                        fmt::format("control character \\x{:02x} at byte {}", c, first + i + 1));
        }
      }
    }

    LineReader reader(line);
    const std::string_view measurement = reader.ReadName(kMeasurementStops, kMeasurementScan, ", ", measurement_scratch_);
    if (measurement.empty()) return Refuse(index, "missing measurement name");
    std::optional<std::string_view> device;
    while (reader.Consume(',')) {
      const std::string_view key = reader.ReadName(kKeyStops, kKeyScan, ",= ", key_scratch_);
      if (key.empty()) return Refuse(index, "empty tag key");
      if (!reader.Consume('=')) {
        return Refuse(index, fmt::format("tag {} has no value (expected '=')", Quoted(key)));
      }
      std::string_view value = reader.ReadName(kMeasurementStops, kMeasurementScan, ",= ", value_scratch_);
      if (value.empty())
        return Refuse(index, fmt::format("tag {} has an empty value", Quoted(key)));
      if (key == "device") {
        if (device) return Refuse(index, "tag device appears twice");
        if (value.data() == value_scratch_.data()) {  // unescaped into the scratch the next tag reuses
          device_scratch_ = value_scratch_;
          value = device_scratch_;
        }
        device = value;
      }
    }
    if (!reader.SkipSpaces() || reader.AtEnd()) {
      return Refuse(index, "missing fields: expected ' field=value' after the measurement");
    }
    std::size_t fields = 0;
    do {
      if (fields == fields_.size()) fields_.emplace_back();  // a deque: earlier fields stay put
      Field& field = fields_[fields++];
      field.key = reader.ReadName(kKeyStops, kKeyScan, ",= ", field.scratch);
      if (field.key.empty()) return Refuse(index, "empty field key");
      if (!reader.Consume('=')) {
        return Refuse(index,
                      fmt::format("field {} has no value (expected '=')", Quoted(field.key)));
      }
      auto value = reader.ReadValue(&field.is_string);
      if (!value) {
        return Refuse(index,
                      fmt::format("field {}: string value is never closed", Quoted(field.key)));
      }
      if (!field.is_string && value->empty()) {
        return Refuse(index, fmt::format("field {} has no value", Quoted(field.key)));
      }
      field.value = *value;
    } while (reader.Consume(','));

    std::optional<TimestampMs> ts;
    if (reader.SkipSpaces() && !reader.AtEnd()) {
      const std::string_view text = reader.ReadToken();
      reader.SkipSpaces();
      if (!reader.AtEnd()) {
        return Refuse(
            index, fmt::format("unexpected text after the timestamp: {}", Quoted(reader.Rest())));
      }
      auto parsed = ReadTimestamp(text);
      if (!parsed) return Refuse(index, std::move(parsed.error()));
      ts = *parsed;
    } else if (!reader.AtEnd()) {
      return Refuse(index,
                    fmt::format("unexpected text after the fields: {}", Quoted(reader.Rest())));
    }

    if (options_.gateway) {
      if (!device) {
        return Refuse(index,
                      "missing device: with a gateway token every line names its device "
                      "(tag device=<device id or serial>)");
      }
      if (auto problem = CheckDevice(*device)) return Refuse(index, *problem);
    } else {
      device.reset();  // the token names the device
    }

    for (std::size_t i = 0; i < fields; ++i) {
      const Field& field = fields_[i];
      const std::string_view metric = field.key == "value" ? measurement : field.key;
      if (auto problem = CheckMetricName(metric)) {
        OS_RETURN_IF_ERROR(Refuse(index, std::move(*problem)));
        continue;
      }
      bool repeated = false;
      for (std::size_t j = 0; j < i && !repeated; ++j) {
        repeated = (fields_[j].key == "value" ? measurement : fields_[j].key) == metric;
      }
      if (repeated) {
        OS_RETURN_IF_ERROR(
            Refuse(index, fmt::format("{}: appears twice on the line", Quoted(metric))));
        continue;
      }
      if (field.is_string) {
        OS_RETURN_IF_ERROR(
            Refuse(index, fmt::format("{}: string values are not supported", Quoted(field.key))));
        continue;
      }
      auto value = FieldNumber(field.value);
      if (!value) {
        OS_RETURN_IF_ERROR(Refuse(index, fmt::format("{}: {}", Quoted(field.key), value.error())));
        continue;
      }
      ParsedRecord* out = sink_.Emplace();
      if (out == nullptr) return sink_.TooMany();
      out->index = index;
      if (device) out->device.emplace(*device);
      out->metric.assign(metric);
      out->ts = ts;
      out->value = *value;
    }
    return Ok();
  }

  tl::expected<TimestampMs, std::string> ReadTimestamp(std::string_view text) const {
    std::int64_t raw = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), raw);
    if (ptr != text.data() + text.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range)) {
      return tl::unexpected(fmt::format("timestamp {} is not an integer", Quoted(text)));
    }
    if (ec == std::errc::result_out_of_range) {
      return tl::unexpected(fmt::format("timestamp {} is out of range", Quoted(text)));
    }
    std::int64_t ms = FloorDiv(raw, precision_.divide);
    if (precision_.multiply != 1) {
      if (ms > kMaxTimestampMs / precision_.multiply ||
          ms < kMinTimestampMs / precision_.multiply) {
        return tl::unexpected(std::string(kTimeOutOfRange));
      }
      ms *= precision_.multiply;
    }
    if (!TimestampInRange(ms)) return tl::unexpected(std::string(kTimeOutOfRange));
    return ms;
  }

  Status Refuse(std::size_t index, std::string reason) {
    if (!sink_.Fail(index, std::move(reason))) return sink_.TooMany();
    return Ok();
  }

  const ParseOptions& options_;
  Precision precision_;
  RecordSink sink_;
  std::deque<Field> fields_;  // reused from line to line
  std::string measurement_scratch_, key_scratch_, value_scratch_, device_scratch_;
};

}  // namespace

Result<ParseResult> ParseLineProtocol(std::string_view body, const ParseOptions& options) {
  auto precision = PrecisionFromName(options.lp_precision);
  if (!precision) {
    return DocumentError(fmt::format("unknown line protocol precision {}: use ns, us, ms or s",
                                     Quoted(options.lp_precision)));
  }
  return LineProtocolParser(options, *precision).Run(body);
}

}  // namespace opensense::ingest::internal
