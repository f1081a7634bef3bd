// How log lines look: `text` (human-readable, the default) or `json` (one JSON object per line,
// for a log shipper). JSON lines carry the request id of the HTTP request being handled, the
// same id as the answer's X-Request-Id header and the request's row in the API request log.
#pragma once

#include <string>
#include <string_view>

namespace opensense::app {

// Installs the format on spdlog's default logger. `format` is "text" or "json".
void ApplyLogFormat(std::string_view format);

// One JSON log line (without the newline): {"ts":"2026-11-29T05:00:00.123Z","level":"info",
// "msg":"...","request_id":"..."}; request_id only when non-empty; invalid UTF-8 is replaced.
std::string JsonLogLine(long long unix_ms, std::string_view level, std::string_view message,
                        std::string_view request_id);

}  // namespace opensense::app
