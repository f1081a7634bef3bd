// libFuzzer target for the backup manifest parser (src/backup/manifest.hpp): arbitrary bytes
// give an error that starts with "manifest: ", or a manifest whose names cannot leave the backup
// directory and which serialises and parses back to itself. Never a crash.
//
//   scripts/fuzz.sh 600
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "backup/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = opensense::backup::ParseManifest(text);
  if (!parsed) {
    if (parsed.error().message.rfind("manifest: ", 0) != 0) std::abort();
    return 0;
  }
  if (!opensense::backup::IsValidBackupName(parsed->name) ||
      !opensense::backup::IsValidBackupName(parsed->file)) {
    std::abort();
  }
  auto again = opensense::backup::ParseManifest(opensense::backup::SerializeManifest(*parsed));
  if (!again || !(*again == *parsed)) std::abort();
  return 0;
}
