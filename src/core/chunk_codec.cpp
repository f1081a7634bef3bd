#include "core/chunk_codec.hpp"

#include <bit>
#include <cmath>
#include <cstring>

namespace opensense {

namespace {

constexpr unsigned char kVersion = 1;
constexpr unsigned char kValuesScaled = 0;
constexpr unsigned char kValuesRaw = 1;
constexpr int kMaxScale = 9;
constexpr double kPow10[kMaxScale + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
constexpr double kMaxExact = 9007199254740992.0;  // 2^53
constexpr std::uint64_t kMaxSamples = 1u << 24;

// True if `v` scaled by 10^scale is an integer below 2^53 that maps back to `v`. -0.0 passes and
// decodes as +0.0: a fridge near 0 degrees reports "-0.0" often, and keeping the sign of zero is
// not worth storing the whole chunk as raw doubles.
bool ExactAtScale(double v, int scale) {
  double scaled = v * kPow10[scale];
  if (!(std::fabs(scaled) < kMaxExact)) return false;  // also refuses NaN and infinities
  return std::nearbyint(scaled) / kPow10[scale] == v;
}

// Smallest decimal scale at which every value is an exact integer that maps back to itself,
// or -1. Being exact at one scale does not imply being exact at a larger one (2^53 - 1 is exact
// at scale 0, but (2^53 - 1) * 10 is not a double), so whenever a sample raises the scale every
// sample is checked again at the new one.
int FindScale(std::span<const Sample> samples) {
  int scale = 0;
  bool raised = true;
  while (raised) {
    raised = false;
    for (const Sample& s : samples) {
      while (!ExactAtScale(s.value, scale)) {
        if (++scale > kMaxScale) return -1;
        raised = true;
      }
    }
  }
  return scale;
}

tl::unexpected<Error> Corrupt(const char* what) {
  return MakeError(ErrorCode::kInternal, std::string("corrupt chunk: ") + what);
}

}  // namespace

void PutVarint(std::string* out, std::uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, std::uint64_t* v) {
  std::uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    auto byte = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    result |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

std::string EncodeChunk(std::span<const Sample> samples) {
  std::string out;
  out.reserve(8 + samples.size() * 3);
  out.push_back(static_cast<char>(kVersion));
  PutVarint(&out, samples.size());
  if (samples.empty()) return out;
  // Timestamps: first, first delta, then delta-of-deltas (wrapping arithmetic: well defined).
  std::uint64_t prev = static_cast<std::uint64_t>(samples[0].ts);
  std::uint64_t prev_delta = 0;
  PutVarint(&out, ZigZag(samples[0].ts));
  for (std::size_t i = 1; i < samples.size(); ++i) {
    std::uint64_t cur = static_cast<std::uint64_t>(samples[i].ts);
    std::uint64_t delta = cur - prev;
    PutVarint(&out, ZigZag(static_cast<std::int64_t>(delta - prev_delta)));
    prev_delta = delta;
    prev = cur;
  }
  int scale = FindScale(samples);
  if (scale >= 0) {
    out.push_back(static_cast<char>(kValuesScaled));
    out.push_back(static_cast<char>(scale));
    std::int64_t prev_v = 0;
    for (const Sample& s : samples) {
      auto iv = static_cast<std::int64_t>(std::nearbyint(s.value * kPow10[scale]));
      PutVarint(&out, ZigZag(iv - prev_v));
      prev_v = iv;
    }
  } else {
    out.push_back(static_cast<char>(kValuesRaw));
    for (const Sample& s : samples) {
      auto bits = std::bit_cast<std::uint64_t>(s.value);
      for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((bits >> (8 * b)) & 0xff));
    }
  }
  return out;
}

namespace {
Status DecodeAppend(std::string_view in, std::vector<Sample>* out) {
  if (in.empty() || static_cast<unsigned char>(in.front()) != kVersion) return Corrupt("version");
  in.remove_prefix(1);
  std::uint64_t n = 0;
  if (!GetVarint(&in, &n) || n > kMaxSamples || n > in.size()) return Corrupt("count");
  if (n == 0) return in.empty() ? Ok() : Corrupt("trailing bytes");
  std::size_t base = out->size();
  out->resize(base + n);
  Sample* s = out->data() + base;
  std::uint64_t first = 0;
  if (!GetVarint(&in, &first)) return Corrupt("timestamp");
  std::uint64_t prev = static_cast<std::uint64_t>(UnZigZag(first));
  std::uint64_t delta = 0;
  s[0].ts = static_cast<TimestampMs>(prev);
  for (std::uint64_t i = 1; i < n; ++i) {
    std::uint64_t dod = 0;
    if (!GetVarint(&in, &dod)) return Corrupt("timestamp");
    delta += static_cast<std::uint64_t>(UnZigZag(dod));
    prev += delta;
    s[i].ts = static_cast<TimestampMs>(prev);
  }
  if (in.empty()) return Corrupt("value mode");
  auto mode = static_cast<unsigned char>(in.front());
  in.remove_prefix(1);
  if (mode == kValuesScaled) {
    if (in.empty()) return Corrupt("scale");
    int scale = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    if (scale > kMaxScale) return Corrupt("scale");
    std::int64_t v = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t d = 0;
      if (!GetVarint(&in, &d)) return Corrupt("value");
      v = static_cast<std::int64_t>(static_cast<std::uint64_t>(v) +
                                    static_cast<std::uint64_t>(UnZigZag(d)));
      s[i].value = static_cast<double>(v) / kPow10[scale];
    }
  } else if (mode == kValuesRaw) {
    if (in.size() < n * 8) return Corrupt("value");
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t bits = 0;
      for (int b = 0; b < 8; ++b) {
        bits |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i * 8 + b])) << (8 * b);
      }
      s[i].value = std::bit_cast<double>(bits);
    }
    in.remove_prefix(n * 8);
  } else {
    return Corrupt("value mode");
  }
  if (!in.empty()) return Corrupt("trailing bytes");
  return Ok();
}

}  // namespace

Status DecodeChunkInto(std::string_view data, std::vector<Sample>* out) {
  std::size_t base = out->size();
  Status st = DecodeAppend(data, out);
  if (!st) out->resize(base);  // never leave half a chunk behind
  return st;
}

Result<std::vector<Sample>> DecodeChunk(std::string_view data) {
  std::vector<Sample> out;
  OS_RETURN_IF_ERROR(DecodeChunkInto(data, &out));
  return out;
}

}  // namespace opensense
