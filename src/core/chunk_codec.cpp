#include "core/chunk_codec.hpp"

#include "core/decimal.hpp"

#include <bit>
#include <cmath>
#include <cstring>

namespace opensense {

namespace {

// Version 1: the count, the first timestamp, then one zig-zag varint delta-of-delta per further
// sample; then the value section. Version 2 (written now): the same, except that a run of zero
// delta-of-deltas (a sensor or gateway reporting at a fixed interval) is one 0 token followed by
// the run length minus one, so a regular chunk's timestamps cost a few bytes in all; a non-zero
// delta-of-delta is its zig-zag varint as in version 1 (never 0). The value section is the same.
constexpr unsigned char kVersion1 = 1;
constexpr unsigned char kVersion = 2;
constexpr unsigned char kValuesScaled = 0;
constexpr unsigned char kValuesRaw = 1;
constexpr int kMaxScale = 9;
constexpr double kPow10[kMaxScale + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
constexpr std::uint64_t kMaxSamples = 1u << 24;

// ExactAtScale (core/decimal.hpp): -0.0 passes and decodes as +0.0. A fridge near 0 degrees
// reports "-0.0" often, and keeping the sign of zero is not worth storing the whole chunk as raw
// doubles.

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

bool GetVarintSlow(std::string_view* in, std::uint64_t* v) {
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

namespace {

// Appends bytes and varints to a string through a small buffer, a block at a time: a string
// push_back per byte (a capacity check each, and not always inlined) was most of the encoding
// time on the writer's compaction path.
class ChunkWriter {
 public:
  // Call Flush() when done: what is still buffered is not in `out` before.
  explicit ChunkWriter(std::string* out) : out_(out) {}
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;

  void Byte(unsigned char b) {
    Room();
    buf_[len_++] = static_cast<char>(b);
  }
  void Varint(std::uint64_t v) {
    Room();
    while (v >= 0x80) {
      buf_[len_++] = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf_[len_++] = static_cast<char>(v);
  }
  void Double(double v) {
    Room();
    const auto bits = std::bit_cast<std::uint64_t>(v);
    for (int b = 0; b < 8; ++b) buf_[len_++] = static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  void Flush() {
    out_->append(buf_, len_);
    len_ = 0;
  }

 private:
  static constexpr std::size_t kMaxItem = 10;  // the longest varint
  void Room() {
    if (len_ + kMaxItem > sizeof(buf_)) Flush();
  }
  std::string* out_;
  char buf_[512];
  std::size_t len_ = 0;
};

}  // namespace

std::string EncodeChunk(std::span<const Sample> samples) {
  std::string out;
  out.reserve(8 + samples.size() * 2);
  ChunkWriter w(&out);
  w.Byte(kVersion);
  w.Varint(samples.size());
  if (samples.empty()) {
    w.Flush();
    return out;
  }
  // Timestamps: first, first delta, then delta-of-deltas (wrapping arithmetic: well defined),
  // each run of zero delta-of-deltas as a 0 token and the run length minus one.
  w.Varint(ZigZag(samples[0].ts));
  std::uint64_t prev_delta = 0;
  std::uint64_t zeros = 0;  // pending run of zero delta-of-deltas
  for (std::size_t i = 1; i < samples.size(); ++i) {
    const std::uint64_t delta = static_cast<std::uint64_t>(samples[i].ts) -
                                static_cast<std::uint64_t>(samples[i - 1].ts);
    const std::uint64_t dod = delta - prev_delta;
    prev_delta = delta;
    if (dod == 0) {
      ++zeros;
      continue;
    }
    if (zeros > 0) {
      w.Byte(0);
      w.Varint(zeros - 1);
      zeros = 0;
    }
    w.Varint(ZigZag(static_cast<std::int64_t>(dod)));
  }
  if (zeros > 0) {
    w.Byte(0);
    w.Varint(zeros - 1);
  }
  int scale = FindScale(samples);
  if (scale >= 0) {
    w.Byte(kValuesScaled);
    w.Byte(static_cast<unsigned char>(scale));
    std::int64_t prev_v = 0;
    for (const Sample& s : samples) {
      auto iv = static_cast<std::int64_t>(RoundToInteger(s.value * kPow10[scale]));
      w.Varint(ZigZag(iv - prev_v));
      prev_v = iv;
    }
  } else {
    w.Byte(kValuesRaw);
    for (const Sample& s : samples) w.Double(s.value);
  }
  w.Flush();
  return out;
}

namespace {
Status DecodeAppend(std::string_view in, std::vector<Sample>* out) {
  if (in.empty()) return Corrupt("version");
  const auto version = static_cast<unsigned char>(in.front());
  if (version != kVersion1 && version != kVersion) return Corrupt("version");
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
  for (std::uint64_t i = 1; i < n;) {
    std::uint64_t dod = 0;
    if (!GetVarint(&in, &dod)) return Corrupt("timestamp");
    if (dod != 0 || version == kVersion1) {
      delta += static_cast<std::uint64_t>(UnZigZag(dod));
      prev += delta;
      s[i++].ts = static_cast<TimestampMs>(prev);
      continue;
    }
    std::uint64_t run = 0;  // a run of run + 1 zero delta-of-deltas
    if (!GetVarint(&in, &run) || run >= n - i) return Corrupt("timestamp run");
    for (const std::uint64_t end = i + run + 1; i < end; ++i) {
      prev += delta;
      s[i].ts = static_cast<TimestampMs>(prev);
    }
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
