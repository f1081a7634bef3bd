#include "ingest/mqtt/message.hpp"

#include <array>

namespace opensense::mqtt {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::size_t SkipSpace(std::string_view s, std::size_t i) {
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i;
}

}  // namespace

Result<ingest::PayloadFormat> MessageFormat(const std::optional<std::string>& content_type,
                                            std::string_view payload) {
  if (content_type) return ingest::FormatFromContentType(*content_type);
  std::size_t i = SkipSpace(payload, 0);
  if (i < payload.size() && payload[i] == '{') return ingest::PayloadFormat::kOpenSenseJson;
  if (i >= payload.size() || payload[i] != '[') return ingest::PayloadFormat::kLineProtocol;
  // An array: look at the first key of the first object.
  i = SkipSpace(payload, i + 1);
  if (i >= payload.size() || payload[i] != '{') return ingest::PayloadFormat::kSenML;
  i = SkipSpace(payload, i + 1);
  if (i >= payload.size() || payload[i] != '"') return ingest::PayloadFormat::kSenML;
  const std::size_t end = payload.find('"', i + 1);
  if (end == std::string_view::npos) return ingest::PayloadFormat::kSenML;
  const std::string_view key = payload.substr(i + 1, end - i - 1);
  static constexpr std::array<std::string_view, 15> kSenmlLabels = {
      "bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"};
  for (auto label : kSenmlLabels) {
    if (key == label) return ingest::PayloadFormat::kSenML;
  }
  // Base labels may be extended ("bxyz_"); an unknown key is more likely OpenSense JSON
  // ("ts", "temperature").
  return ingest::PayloadFormat::kOpenSenseJson;
}

}  // namespace opensense::mqtt
