// libFuzzer target for the chunk codec: arbitrary bytes must decode to an error or to samples,
// never crash; whatever decodes must survive a re-encode bit for bit; a failed decode must not
// touch the caller's vector. The same bytes also describe a series (mostly regular timestamps
// with breaks, decimal or raw values) that must encode and decode back exactly, so the encoder's
// runs of zero delta-of-deltas are exercised on inputs no decoder accepted.
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

// A series from the bytes, two per sample. The first byte of a pair below 0x80 keeps the step
// (a run), 0x80-0xbf adds jitter of -32..31 ms to this sample, 0xc0 and above sets the step to
// 2^(byte & 63) ms (wrapping: the codec's arithmetic is defined for any timestamps). The second
// is a small decimal step of the value, or 0xff for a value that forces raw doubles.
std::vector<Sample> SeriesOf(const std::uint8_t* data, std::size_t size) {
  std::vector<Sample> out;
  std::uint64_t step = 300'000;
  std::uint64_t ts = size > 0 ? static_cast<std::uint64_t>(data[0]) << 56 : 0;
  std::int64_t cents = 412;
  for (std::size_t i = 1; i + 1 < size; i += 2) {
    const std::uint8_t t = data[i], v = data[i + 1];
    if (t >= 0xc0) step = std::uint64_t{1} << (t & 0x3f);
    ts += step;
    const std::uint64_t jitter = t >= 0x80 && t < 0xc0 ? static_cast<std::uint64_t>((t & 0x3f) - 32) : 0;
    cents += static_cast<std::int8_t>(v) / 8;
    const double value = v == 0xff ? 1.0 / 3 : static_cast<double>(cents) / 100.0;
    out.push_back({static_cast<opensense::TimestampMs>(ts + jitter), value});
  }
  return out;
}

void CheckSeriesRoundTrip(const std::uint8_t* data, std::size_t size) {
  const std::vector<Sample> series = SeriesOf(data, size);
  auto back = opensense::DecodeChunk(opensense::EncodeChunk(series));
  if (!back) Fail("an encoded series does not decode", 0);
  ExpectSame(*back, series.data(), series.size(), "series round trip changed a sample");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckSeriesRoundTrip(data, size);

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
