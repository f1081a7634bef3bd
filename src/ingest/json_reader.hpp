// Internal to the ingest module: reading a JSON document with simdjson On-Demand, turning every
// simdjson failure into a document error with a position.
//
// On-Demand validates only what is visited, so the parsers read every value through
// JsonDocument::ReadValue (which walks arrays and objects it is not interested in) and finish
// with ExpectEnd: a document is either read in full or refused.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace opensense::ingest::internal {

namespace ondemand = simdjson::ondemand;

enum class JsonKind { kNull, kBool, kNumber, kString, kArray, kObject };
// "null", "a boolean", "a number", "a string", "an array", "an object".
std::string_view JsonKindName(JsonKind kind);

struct JsonValue {
  JsonKind kind = JsonKind::kNull;
  bool boolean = false;          // kBool
  double number = 0;             // kNumber; +-infinity when the literal is beyond double range
  std::string_view number_text;  // kNumber: the literal as written
  std::string_view string;       // kString: unescaped; valid while its JsonDocument lives
  std::size_t offset = 0;        // where the value starts (an offset for JsonDocument::Where)

  // A number literal without fraction or exponent ("-12", not "12.0" or "1e3").
  bool IsIntegerLiteral() const;
};

struct JsonMember {
  std::string_view key;  // unescaped; valid while its JsonDocument lives
  JsonValue value;
};

// One document. Not copyable or movable (simdjson iterators point into it).
class JsonDocument {
 public:
  JsonDocument() = default;
  JsonDocument(const JsonDocument&) = delete;
  JsonDocument& operator=(const JsonDocument&) = delete;

  // Starts reading `body` (copied into a padded buffer; a UTF-8 byte order mark is skipped).
  // `expected` describes the document for the message about an empty body.
  Status Open(std::string_view body, std::string_view expected);
  // Starts over from the root (simdjson errors are sticky; a failed look-ahead needs this).
  Status Restart();
  // The kind of the root value.
  Result<JsonKind> RootKind();
  ondemand::document& doc() { return doc_; }
  std::size_t size() const { return padded_.size(); }

  // Reads `value` in full. Scalars are decoded; arrays and objects are checked to the end.
  // `depth` is the nesting level of `value` (the root is 1). When `members` is given and the
  // value is an object, its members are appended (their own containers only checked).
  Result<JsonValue> ReadValue(ondemand::value& value, int depth,
                              std::vector<JsonMember>* members = nullptr);
  // The unescaped key of an object member (an error points at the key).
  Result<std::string_view> ReadKey(ondemand::field& field);
  // Refuses text after the root value. Call after the root was read in full.
  Status ExpectEnd();

  // Document errors: a simdjson failure (positioned where simdjson stopped, or at `offset`),
  // or a problem of our own at `offset`.
  tl::unexpected<Error> Fail(simdjson::error_code error,
                             std::optional<std::size_t> offset = std::nullopt);
  tl::unexpected<Error> FailAt(std::size_t offset, std::string_view problem);
  // "line 1, column 7" of an offset into the document, counted in the body as given.
  std::string Where(std::size_t offset) const;
  std::size_t OffsetOf(const char* p) const { return static_cast<std::size_t>(p - padded_.data()); }

 private:
  // The message for brackets that do not balance (simdjson only says "incomplete").
  tl::unexpected<Error> DescribeUnbalanced();
  std::string_view text() const { return std::string_view(padded_.data(), padded_.size()); }

  std::string_view body_;    // as given, for positions
  std::size_t skipped_ = 0;  // bytes of byte order mark skipped
  bool started_ = false;     // doc_ is iterating (parser_.iterate succeeded)
  simdjson::padded_string padded_;
  ondemand::parser parser_;
  ondemand::document doc_;
};

}  // namespace opensense::ingest::internal
