// Internal helpers shared by the server, the router and the client: request targets,
// percent-decoding, header names, the JSON error body. Not part of the module's interface.
#pragma once

#include <string>
#include <string_view>

#include "api/http/server.hpp"
#include "core/result.hpp"

namespace opensense::http::wire {

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// Decodes %XX escapes (and '+' as a space when `plus_is_space`, for query strings).
// kInvalidArgument for a truncated or non-hex escape, or an encoded NUL.
Result<std::string> PercentDecode(std::string_view in, bool plus_is_space);

// Fills req.path and req.query from an origin-form target ("/a/b?x=1&y").
// kInvalidArgument when the target does not start with '/' or its query is malformed.
Status ParseTarget(std::string_view target, Request& req);

// Reduces an absolute-form target ("http://host:8080/a?x") to origin form ("/a?x"); other
// targets are returned as they are.
std::string OriginForm(std::string_view target);

// RFC 9110 token characters, and field values without CR, LF or NUL.
bool IsValidHeaderName(std::string_view name);
bool IsValidHeaderValue(std::string_view value);

// Escapes a string for use inside a JSON string literal.
std::string JsonEscape(std::string_view in);

// {"error":{"code":"...","message":"..."}}
std::string ErrorBody(std::string_view code, std::string_view message);

// Splits "HOST:PORT" or "[IPv6]:PORT" into host and port text; on a malformed address the
// error message says what was expected ("expected HOST:PORT", "expected [IPv6]:PORT").
Result<std::pair<std::string, std::string>> SplitHostPort(std::string_view address);

}  // namespace opensense::http::wire
