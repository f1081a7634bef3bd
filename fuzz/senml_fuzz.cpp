// libFuzzer target for the SenML JSON (RFC 8428) ingest parser: arbitrary bytes give a document
// error or records and record errors that keep every invariant of ingest_fuzz_check.hpp; never a
// crash.
//
//   scripts/fuzz.sh 600   (builds with clang + libFuzzer and runs each target for 10 minutes)
#include <cstddef>
#include <cstdint>

#include "ingest_fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  opensense::ingest::fuzz::CheckParse(opensense::ingest::PayloadFormat::kSenML, data, size);
  return 0;
}
