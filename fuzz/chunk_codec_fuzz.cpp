// libFuzzer target for the chunk codec: arbitrary bytes must decode to an error or to samples,
// never crash; whatever decodes must survive a re-encode bit for bit; a failed decode must not
// touch the caller's vector.
//
//   scripts/fuzz.sh 600   (builds with clang + libFuzzer and runs for 10 minutes)
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/chunk_codec.hpp"

namespace {

using opensense::Sample;

[[noreturn]] void Fail(const char* what, std::size_t index) {
  std::fprintf(stderr, "chunk_codec_fuzz: %s (sample %zu)\n", what, index);
  std::abort();
}

// Bit-for-bit equality of values (NaN payloads included), except that the codec stores -0.0 as
// +0.0 when the chunk is otherwise decimal (see ExactAtScale in chunk_codec.cpp).
bool SameValue(double got, double want) {
  if (got == 0 && want == 0) return !std::signbit(got) || std::signbit(want);
  return std::bit_cast<std::uint64_t>(got) == std::bit_cast<std::uint64_t>(want);
}

void ExpectSame(const std::vector<Sample>& got, const Sample* want, std::size_t n,
                const char* what) {
  if (got.size() != n) Fail(what, got.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (got[i].ts != want[i].ts || !SameValue(got[i].value, want[i].value)) Fail(what, i);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // DecodeChunkInto appends on success and leaves the vector alone on error.
  const std::vector<Sample> existing = {{-7, 2.5}, {3, -0.0}};
  std::vector<Sample> into = existing;
  opensense::Status into_status = opensense::DecodeChunkInto(input, &into);

  auto decoded = opensense::DecodeChunk(input);
  if (!decoded) {
    if (into_status) Fail("DecodeChunkInto accepted what DecodeChunk refused", 0);
    if (into.size() != existing.size()) Fail("failed DecodeChunkInto changed the output", 0);
    for (std::size_t i = 0; i < existing.size(); ++i) {
      if (into[i].ts != existing[i].ts || std::bit_cast<std::uint64_t>(into[i].value) !=
                                              std::bit_cast<std::uint64_t>(existing[i].value)) {
        Fail("failed DecodeChunkInto changed the output", i);
      }
    }
    return 0;
  }
  if (!into_status) Fail("DecodeChunkInto refused what DecodeChunk accepted", 0);
  if (into.size() != existing.size() + decoded->size()) Fail("DecodeChunkInto size", into.size());
  for (std::size_t i = 0; i < decoded->size(); ++i) {
    const Sample& a = into[existing.size() + i];
    const Sample& b = (*decoded)[i];
    if (a.ts != b.ts ||
        std::bit_cast<std::uint64_t>(a.value) != std::bit_cast<std::uint64_t>(b.value)) {
      Fail("DecodeChunkInto and DecodeChunk disagree", i);
    }
  }

  // Round trip. Decoded samples need not be sorted or finite (the input is arbitrary); the
  // encoder's wrapping deltas and raw mode must still carry them through exactly.
  const std::string reencoded = opensense::EncodeChunk(*decoded);
  auto again = opensense::DecodeChunk(reencoded);
  if (!again) Fail("re-encoded chunk does not decode", 0);
  ExpectSame(*again, decoded->data(), decoded->size(), "round trip changed a sample");
  // The encoding of a decoded chunk is canonical: encoding it again gives the same bytes.
  if (opensense::EncodeChunk(*again) != reencoded) Fail("encoding is not stable", 0);
  return 0;
}
