#include "ingest/payload.hpp"

#include <fmt/format.h>

#include <exception>
#include <new>

#include "ingest/parse_support.hpp"

namespace opensense::ingest {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

constexpr std::string_view kAccepted =
    "use application/senml+json (SenML), application/json (OpenSense JSON) or text/plain "
    "(InfluxDB line protocol)";

}  // namespace

std::string_view PayloadFormatName(PayloadFormat format) {
  switch (format) {
    case PayloadFormat::kSenML:
      return "senml";
    case PayloadFormat::kOpenSenseJson:
      return "opensense-json";
    case PayloadFormat::kLineProtocol:
      return "line-protocol";
  }
  return "unknown";
}

Result<PayloadFormat> FormatFromContentType(std::string_view content_type) {
  const std::string_view media_type = Trim(content_type.substr(0, content_type.find(';')));
  if (media_type.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("missing Content-Type: {}", kAccepted));
  }
  if (EqualsIgnoreCase(media_type, "application/senml+json")) return PayloadFormat::kSenML;
  if (EqualsIgnoreCase(media_type, "application/json")) return PayloadFormat::kOpenSenseJson;
  if (EqualsIgnoreCase(media_type, "text/plain")) return PayloadFormat::kLineProtocol;
  return MakeError(
      ErrorCode::kInvalidArgument,
      fmt::format("unsupported Content-Type {}: {}", internal::Quoted(media_type), kAccepted));
}

Result<ParseResult> Parse(PayloadFormat format, std::string_view body,
                          const ParseOptions& options) {
  // The parsers return errors; only the standard library (allocation) can throw here.
  try {
    switch (format) {
      case PayloadFormat::kSenML:
        return internal::ParseSenml(body, options);
      case PayloadFormat::kOpenSenseJson:
        return internal::ParseOpenSenseJson(body, options);
      case PayloadFormat::kLineProtocol:
        return internal::ParseLineProtocol(body, options);
    }
    return MakeError(ErrorCode::kInvalidArgument, "unknown payload format");
  } catch (const std::bad_alloc&) {
    return MakeError(ErrorCode::kResourceExhausted, "not enough memory to parse the payload");
  } catch (const std::exception& e) {
    return MakeError(ErrorCode::kInternal, fmt::format("payload parser failed: {}", e.what()));
  } catch (...) {
    return MakeError(ErrorCode::kInternal, "payload parser failed");
  }
}

}  // namespace opensense::ingest
