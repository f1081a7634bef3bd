// libFuzzer target for the alert rule parser (src/alerts/rule.hpp): arbitrary bytes give a rule
// or a kInvalidArgument error, never a crash; a rule that parses round-trips through its JSON
// definition unchanged.
//
//   scripts/fuzz.sh 600
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "alerts/rule.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto rule = opensense::alerts::ParseRule(text);
  if (!rule) {
    if (rule.error().code != opensense::ErrorCode::kInvalidArgument) std::abort();
    return 0;
  }
  auto again = opensense::alerts::ParseRule(opensense::alerts::RuleDefinitionJson(*rule));
  if (!again || !(*again == *rule)) std::abort();
  return 0;
}
