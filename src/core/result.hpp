// Error handling shared by every module: Result<T> = tl::expected<T, Error>.
// No exception crosses a module boundary; adapters convert library exceptions to Error.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace opensense {

enum class ErrorCode {
  kInvalidArgument,   // the caller sent something wrong; retrying the same is pointless
  kNotFound,          // no such thing (or not visible to the caller)
  kAlreadyExists,     // a unique name or id is taken
  kPermissionDenied,  // the caller may not do this
  kFailedPrecondition,// the system is not in a state that allows it (e.g. schema too new)
  kResourceExhausted, // a limit or queue is full; retry later
  kUnavailable,       // a dependency is down or the store is busy; retry later
  kConflict,          // concurrent modification
  kInternal,          // a bug or an unexpected library failure
};

std::string_view ErrorCodeName(ErrorCode code);

// A failure with a message fit to show a user: what went wrong and, where possible, what to do.
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  std::string ToString() const;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}
inline Status Ok() { return {}; }

}  // namespace opensense

// Returns the error of `expr` (a Result) from the enclosing function.
#define OS_RETURN_IF_ERROR(expr)                                         \
  do {                                                                  \
    auto os_status_ = (expr);                                           \
    if (!os_status_) return tl::unexpected<::opensense::Error>(std::move(os_status_.error())); \
  } while (0)

#define OS_CONCAT_INNER_(a, b) a##b
#define OS_CONCAT_(a, b) OS_CONCAT_INNER_(a, b)
// Declares `lhs` from the value of `expr` (a Result), or returns its error.
#define OS_ASSIGN_OR_RETURN(lhs, expr) OS_ASSIGN_OR_RETURN_IMPL_(OS_CONCAT_(os_result_, __LINE__), lhs, expr)
#define OS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)                      \
  auto tmp = (expr);                                                   \
  if (!tmp) return tl::unexpected<::opensense::Error>(std::move(tmp.error())); \
  lhs = std::move(*tmp)
