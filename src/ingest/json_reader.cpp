#include "ingest/json_reader.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <utility>

#include "ingest/parse_support.hpp"

namespace opensense::ingest::internal {

namespace {

bool IsJsonWhitespace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && IsJsonWhitespace(s.back())) s.remove_suffix(1);
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool IsJsonNumber(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (i >= s.size() || !IsDigit(s[i])) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (i < s.size() && IsDigit(s[i])) ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i >= s.size() || !IsDigit(s[i])) return false;
    while (i < s.size() && IsDigit(s[i])) ++i;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= s.size() || !IsDigit(s[i])) return false;
    while (i < s.size() && IsDigit(s[i])) ++i;
  }
  return i == s.size();
}

// The character at `offset` for a message: one byte, or a whole UTF-8 sequence.
std::string CharAt(std::string_view text, std::size_t offset) {
  std::size_t n = 1;
  const auto c = static_cast<unsigned char>(text[offset]);
  if (c >= 0xF0) {
    n = 4;
  } else if (c >= 0xE0) {
    n = 3;
  } else if (c >= 0xC0) {
    n = 2;
  }
  return Quoted(text.substr(offset, n));
}

// Offset of the first string (its opening quote) that contains a raw control character, or of
// the string that is never closed; npos if neither.
std::size_t FindBadString(std::string_view text, bool want_unclosed) {
  bool in_string = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!in_string) {
      if (c == '"') {
        in_string = true;
        start = i;
      }
      continue;
    }
    if (c == '\\') {
      ++i;  // the escaped character: a raw control character is no escape either
      if (!want_unclosed && i < text.size() && static_cast<unsigned char>(text[i]) < 0x20) {
        return i;
      }
    } else if (c == '"') {
      in_string = false;
    } else if (!want_unclosed && static_cast<unsigned char>(c) < 0x20) {
      return i;
    }
  }
  return in_string && want_unclosed ? start : std::string_view::npos;
}

}  // namespace

std::string_view JsonKindName(JsonKind kind) {
  switch (kind) {
    case JsonKind::kNull:
      return "null";
    case JsonKind::kBool:
      return "a boolean";
    case JsonKind::kNumber:
      return "a number";
    case JsonKind::kString:
      return "a string";
    case JsonKind::kArray:
      return "an array";
    case JsonKind::kObject:
      return "an object";
  }
  return "a value";
}

bool JsonValue::IsIntegerLiteral() const {
  if (kind != JsonKind::kNumber) return false;
  return number_text.find_first_of(".eE") == std::string_view::npos;
}

Status JsonDocument::Open(std::string_view body, std::string_view expected) {
  body_ = body;
  if (body.substr(0, 3) == "\xEF\xBB\xBF") {
    skipped_ = 3;
    body.remove_prefix(3);
  }
  std::size_t first = 0;
  while (first < body.size() && IsJsonWhitespace(body[first])) ++first;
  if (first == body.size()) {
    return DocumentError(fmt::format("the body is empty: expected {}", expected));
  }
  padded_ = simdjson::padded_string(body);
  if (padded_.data() == nullptr) {
    return MakeError(ErrorCode::kResourceExhausted, "not enough memory to parse the payload");
  }
  return Restart();
}

Status JsonDocument::Restart() {
  started_ = false;
  if (auto error = parser_.iterate(padded_).get(doc_)) return Fail(error);
  started_ = true;
  return Ok();
}

Result<JsonKind> JsonDocument::RootKind() {
  ondemand::json_type type;
  if (auto error = doc_.type().get(type)) return Fail(error);
  switch (type) {
    case ondemand::json_type::array:
      return JsonKind::kArray;
    case ondemand::json_type::object:
      return JsonKind::kObject;
    case ondemand::json_type::number:
      return JsonKind::kNumber;
    case ondemand::json_type::string:
      return JsonKind::kString;
    case ondemand::json_type::boolean:
      return JsonKind::kBool;
    case ondemand::json_type::null:
      return JsonKind::kNull;
  }
  return Fail(simdjson::TAPE_ERROR);
}

Result<JsonValue> JsonDocument::ReadValue(ondemand::value& value, int depth,
                                          std::vector<JsonMember>* members) {
  JsonValue out;
  ondemand::json_type type;
  if (auto error = value.type().get(type)) return Fail(error);
  const std::string_view raw = value.raw_json_token();
  out.offset = OffsetOf(raw.data());
  switch (type) {
    case ondemand::json_type::array: {
      out.kind = JsonKind::kArray;
      if (depth > kMaxJsonDepth) return Fail(simdjson::DEPTH_ERROR, out.offset);
      ondemand::array array;
      if (auto error = value.get_array().get(array)) return Fail(error);
      for (auto element : array) {
        ondemand::value child;
        if (auto error = element.get(child)) return Fail(error);
        // Recursion is bounded by kMaxJsonDepth.
        auto read = ReadValue(child, depth + 1);
        if (!read) return tl::unexpected(std::move(read.error()));
      }
      return out;
    }
    case ondemand::json_type::object: {
      out.kind = JsonKind::kObject;
      if (depth > kMaxJsonDepth) return Fail(simdjson::DEPTH_ERROR, out.offset);
      ondemand::object object;
      if (auto error = value.get_object().get(object)) return Fail(error);
      for (auto member : object) {
        ondemand::field field;
        if (auto error = std::move(member).get(field)) return Fail(error);
        OS_ASSIGN_OR_RETURN(std::string_view key, ReadKey(field));
        ondemand::value child = field.value();
        auto read = ReadValue(child, depth + 1);
        if (!read) return tl::unexpected(std::move(read.error()));
        if (members != nullptr) members->push_back(JsonMember{key, *read});
      }
      return out;
    }
    case ondemand::json_type::number: {
      out.kind = JsonKind::kNumber;
      out.number_text = TrimRight(raw);
      if (value.get_double().get(out.number) == simdjson::SUCCESS) return out;
      // simdjson refuses both malformed literals and literals beyond the double range; the
      // latter are valid JSON and become +-infinity, which the record rules refuse one by one.
      auto parsed = IsJsonNumber(out.number_text) ? ParseDouble(out.number_text) : std::nullopt;
      if (!parsed)
        return FailAt(out.offset, fmt::format("invalid number {}", Quoted(out.number_text)));
      out.number = *parsed;
      return out;
    }
    case ondemand::json_type::string: {
      out.kind = JsonKind::kString;
      if (auto error = value.get_string().get(out.string)) return Fail(error, out.offset);
      return out;
    }
    case ondemand::json_type::boolean: {
      out.kind = JsonKind::kBool;
      if (auto error = value.get_bool().get(out.boolean)) return Fail(error, out.offset);
      return out;
    }
    case ondemand::json_type::null: {
      out.kind = JsonKind::kNull;
      bool is_null = false;
      if (auto error = value.is_null().get(is_null)) return Fail(error, out.offset);
      if (!is_null) return Fail(simdjson::N_ATOM_ERROR, out.offset);
      return out;
    }
  }
  return Fail(simdjson::TAPE_ERROR, out.offset);
}

Result<std::string_view> JsonDocument::ReadKey(ondemand::field& field) {
  // raw() points just after the opening quote.
  const std::size_t offset = OffsetOf(field.key().raw()) - 1;
  std::string_view key;
  if (auto error = field.unescaped_key().get(key)) return Fail(error, offset);
  return key;
}

Status JsonDocument::ExpectEnd() {
  const char* location = nullptr;
  if (doc_.current_location().get(location) == simdjson::SUCCESS) {
    return FailAt(OffsetOf(location), "unexpected text after the end of the document");
  }
  return Ok();
}

std::string JsonDocument::Where(std::size_t offset) const {
  return Position(body_, offset + skipped_);
}

tl::unexpected<Error> JsonDocument::FailAt(std::size_t offset, std::string_view problem) {
  return DocumentError(fmt::format("invalid JSON at {}: {}", Where(offset), problem));
}

tl::unexpected<Error> JsonDocument::Fail(simdjson::error_code error,
                                         std::optional<std::size_t> offset) {
  using simdjson::error_code;
  const std::string_view text = this->text();
  switch (error) {
    case error_code::UTF8_ERROR: {
      const std::size_t at = FindInvalidUtf8(text);
      if (at == std::string_view::npos) return DocumentError("the body is not valid UTF-8");
      return DocumentError(fmt::format("the body is not valid UTF-8: bad byte at {}", Where(at)));
    }
    case error_code::UNESCAPED_CHARS: {
      const std::size_t at = FindBadString(text, /*want_unclosed=*/false);
      if (at == std::string_view::npos) break;
      return FailAt(at, "control character inside a string (escape it as \\u00XX)");
    }
    case error_code::UNCLOSED_STRING: {
      const std::size_t at = FindBadString(text, /*want_unclosed=*/true);
      if (at == std::string_view::npos) break;
      return FailAt(at, "string is never closed");
    }
    case error_code::INCOMPLETE_ARRAY_OR_OBJECT:
      return DescribeUnbalanced();
    case error_code::CAPACITY:
    case error_code::MEMALLOC:
      return MakeError(ErrorCode::kResourceExhausted, "the payload is too large to parse");
    default:
      break;
  }
  if (!offset && started_) {  // a document that never started has no location
    const char* location = nullptr;
    if (doc_.current_location().get(location) == simdjson::SUCCESS) {
      offset = OffsetOf(location);
    }
  }
  std::string problem;
  switch (error) {
    case error_code::DEPTH_ERROR:
      problem = fmt::format("arrays and objects nested deeper than {} levels", kMaxJsonDepth);
      break;
    case error_code::STRING_ERROR:
      problem = "invalid string: bad escape sequence";
      break;
    case error_code::NUMBER_ERROR:
      problem = "invalid number";
      break;
    case error_code::T_ATOM_ERROR:
    case error_code::F_ATOM_ERROR:
    case error_code::N_ATOM_ERROR:
    case error_code::INCORRECT_TYPE:
      problem = "invalid literal: expected true, false or null";
      break;
    case error_code::TAPE_ERROR:
      if (offset && *offset < text.size()) {
        problem = fmt::format("unexpected {}", CharAt(text, *offset));
      } else {
        problem = "unexpected end of the document";
      }
      break;
    default:
      problem = simdjson::error_message(error);
      break;
  }
  if (offset) return FailAt(*offset, problem);
  return DocumentError(fmt::format("invalid JSON: {}", problem));
}

tl::unexpected<Error> JsonDocument::DescribeUnbalanced() {
  const std::string_view text = this->text();
  std::vector<std::size_t> open;  // offsets of the open '[' and '{'
  bool in_string = false;
  bool root_closed = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (IsJsonWhitespace(c)) continue;
    if (root_closed) return FailAt(i, "unexpected text after the end of the document");
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (open.size() >= static_cast<std::size_t>(kMaxJsonDepth)) {
        return Fail(simdjson::DEPTH_ERROR, i);
      }
      open.push_back(i);
    } else if (c == ']' || c == '}') {
      if (open.empty()) return FailAt(i, fmt::format("unexpected {}", CharAt(text, i)));
      const char opener = text[open.back()];
      if ((c == ']') != (opener == '[')) {
        return FailAt(i, fmt::format("{} does not close the {} at {}", CharAt(text, i),
                                     CharAt(text, open.back()), Where(open.back())));
      }
      open.pop_back();
      if (open.empty()) root_closed = true;
    }
  }
  if (!open.empty()) {
    return FailAt(text.size(), fmt::format("the document ends before the {} at {} is closed",
                                           CharAt(text, open.back()), Where(open.back())));
  }
  return DocumentError("invalid JSON: brackets do not balance");
}

}  // namespace opensense::ingest::internal
