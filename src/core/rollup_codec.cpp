#include "core/rollup_codec.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include "core/chunk_codec.hpp"
#include "core/decimal.hpp"

namespace opensense {

namespace {

// Version 1: per bucket zigzag(bucket delta), count, first/last offset deltas, min/max/sum.
// Version 2 (written now): the bucket start as a delta of deltas (0 for a regular series: one
// byte), and the count shifted left by one with the low bit set for a single-reading bucket,
// which stores its first offset and one value only (last = first, max = sum = min). A sensor
// reporting every 5 minutes has one reading per 5-minute bucket: ~4-5 bytes instead of ~11.
constexpr unsigned char kVersion1 = 1;
constexpr unsigned char kVersion = 2;
constexpr unsigned char kModeDecimal = 0;
constexpr unsigned char kModeRaw = 1;
constexpr std::uint64_t kMaxBuckets = 1u << 20;

void PutZigZag(std::string* out, std::int64_t v) { PutVarint(out, ZigZag(v)); }
bool GetZigZag(std::string_view* in, std::int64_t* v) {
  std::uint64_t u = 0;
  if (!GetVarint(in, &u)) return false;
  *v = UnZigZag(u);
  return true;
}
void PutDouble(std::string* out, double v) {
  auto bits = std::bit_cast<std::uint64_t>(v);
  for (int b = 0; b < 8; ++b) out->push_back(static_cast<char>((bits >> (8 * b)) & 0xff));
}
bool GetDouble(std::string_view* in, double* v) {
  if (in->size() < 8) return false;
  std::uint64_t bits = 0;
  for (int b = 0; b < 8; ++b) {
    bits |= static_cast<std::uint64_t>(static_cast<unsigned char>((*in)[b])) << (8 * b);
  }
  in->remove_prefix(8);
  *v = std::bit_cast<double>(bits);
  return true;
}
// Wrapping difference: well defined for any pair of int64.
std::int64_t Diff(std::int64_t a, std::int64_t b) {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) - static_cast<std::uint64_t>(b));
}
std::int64_t Plus(std::int64_t a, std::int64_t b) {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
}

// The one scale at which every bucket's min, max and sum are exact integers, or -1.
int ChunkScale(std::span<const RollupBucket> buckets) {
  int scale = 0;
  for (const auto& b : buckets) {
    if (b.agg.scale < 0) return -1;
    scale = std::max(scale, b.agg.scale);
  }
  for (const auto& b : buckets) {
    RollupAgg a = b.agg;
    if (!ExactAtScale(a.min, scale) || !ExactAtScale(a.max, scale)) return -1;
    // The sum must be representable at `scale` without overflow.
    std::int64_t s = a.scaled_sum;
    for (int k = a.scale; k < scale; ++k) {
      if (__builtin_mul_overflow(s, std::int64_t{10}, &s)) return -1;
    }
  }
  return scale;
}

tl::unexpected<Error> Corrupt(const char* what) {
  return MakeError(ErrorCode::kInternal, std::string("corrupt rollup chunk: ") + what);
}

Status DecodeAppend(std::string_view in, std::vector<RollupBucket>* out) {
  if (in.size() < 3) return Corrupt("version");
  const auto version = static_cast<unsigned char>(in[0]);
  if (version != kVersion1 && version != kVersion) return Corrupt("version");
  in.remove_prefix(1);
  std::uint64_t n = 0;
  if (!GetVarint(&in, &n) || n > kMaxBuckets || n > in.size()) return Corrupt("count");
  if (in.empty()) return Corrupt("mode");
  auto mode = static_cast<unsigned char>(in.front());
  in.remove_prefix(1);
  int scale = 0;
  if (mode == kModeDecimal) {
    if (in.empty()) return Corrupt("scale");
    scale = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    if (scale > kMaxDecimalScale) return Corrupt("scale");
  } else if (mode != kModeRaw) {
    return Corrupt("mode");
  }
  std::int64_t bucket = 0, step = 0, first_off = 0, last_off = 0, mn = 0, mx = 0, sum = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::int64_t d_bucket, d_first, d_last = 0;
    std::uint64_t count;
    if (!GetZigZag(&in, &d_bucket) || !GetVarint(&in, &count)) return Corrupt("bucket");
    bool single = false;
    if (version == kVersion) {
      single = (count & 1) != 0;
      count = single ? 1 : count >> 1;
      step = Plus(step, d_bucket);  // a delta of deltas
      d_bucket = step;
    }
    if (!GetZigZag(&in, &d_first) || (!single && !GetZigZag(&in, &d_last))) return Corrupt("bucket");
    if (count == 0 || count > (std::uint64_t{1} << 62)) return Corrupt("bucket count");
    bucket = Plus(bucket, d_bucket);
    first_off = Plus(first_off, d_first);
    last_off = single ? first_off : Plus(last_off, d_last);
    RollupBucket b;
    b.bucket = bucket;
    b.agg.count = static_cast<std::int64_t>(count);
    b.agg.first_ts = Plus(bucket, first_off);
    b.agg.last_ts = Plus(bucket, last_off);
    if (mode == kModeDecimal) {
      std::int64_t d_min, d_max = 0, d_sum = 0;
      if (!GetZigZag(&in, &d_min) || (!single && (!GetZigZag(&in, &d_max) || !GetZigZag(&in, &d_sum)))) {
        return Corrupt("values");
      }
      mn = Plus(mn, d_min);
      mx = single ? mn : Plus(mx, d_max);
      sum = single ? mn : Plus(sum, d_sum);
      b.agg.min = static_cast<double>(mn) / Pow10(scale);
      b.agg.max = static_cast<double>(mx) / Pow10(scale);
      b.agg.scale = scale;
      b.agg.scaled_sum = sum;
    } else {
      double s = 0;
      if (!GetDouble(&in, &b.agg.min)) return Corrupt("values");
      if (single) {
        b.agg.max = s = b.agg.min;
      } else if (!GetDouble(&in, &b.agg.max) || !GetDouble(&in, &s)) {
        return Corrupt("values");
      }
      b.agg.scale = -1;
      b.agg.double_sum = s;
    }
    if (!out->empty() && out->size() > 0 && i > 0 && b.bucket <= out->back().bucket) {
      return Corrupt("bucket order");
    }
    out->push_back(b);
  }
  if (!in.empty()) return Corrupt("trailing bytes");
  return Ok();
}

}  // namespace

std::string EncodeRollupChunk(std::span<const RollupBucket> buckets) {
  std::string out;
  out.reserve(4 + buckets.size() * 12);
  out.push_back(static_cast<char>(kVersion));
  PutVarint(&out, buckets.size());
  int scale = ChunkScale(buckets);
  out.push_back(static_cast<char>(scale >= 0 ? kModeDecimal : kModeRaw));
  if (scale >= 0) out.push_back(static_cast<char>(scale));
  std::int64_t bucket = 0, step = 0, first_off = 0, last_off = 0, mn = 0, mx = 0, sum = 0;
  for (const auto& b : buckets) {
    const RollupAgg& a = b.agg;
    std::int64_t f = Diff(a.first_ts, b.bucket), l = Diff(a.last_ts, b.bucket);
    std::int64_t imin = 0, imax = 0, isum = 0;
    bool single = a.count == 1 && f == l;
    if (scale >= 0) {
      imin = static_cast<std::int64_t>(std::nearbyint(a.min * Pow10(scale)));
      imax = static_cast<std::int64_t>(std::nearbyint(a.max * Pow10(scale)));
      isum = a.scaled_sum;
      for (int k = a.scale; k < scale; ++k) isum *= 10;  // checked by ChunkScale
      single = single && imax == imin && isum == imin;
    } else {
      const auto bits = std::bit_cast<std::uint64_t>(a.min);
      single = single && bits == std::bit_cast<std::uint64_t>(a.max) && bits == std::bit_cast<std::uint64_t>(a.Sum());
    }
    const std::int64_t d_bucket = Diff(b.bucket, bucket);
    PutZigZag(&out, Diff(d_bucket, step));
    PutVarint(&out, single ? 1 : static_cast<std::uint64_t>(a.count) << 1);
    PutZigZag(&out, Diff(f, first_off));
    if (!single) PutZigZag(&out, Diff(l, last_off));
    step = d_bucket;
    bucket = b.bucket;
    first_off = f;
    last_off = l;
    if (scale >= 0) {
      PutZigZag(&out, Diff(imin, mn));
      if (!single) {
        PutZigZag(&out, Diff(imax, mx));
        PutZigZag(&out, Diff(isum, sum));
      }
      mn = imin;
      mx = imax;
      sum = isum;
    } else {
      PutDouble(&out, a.min);
      if (!single) {
        PutDouble(&out, a.max);
        PutDouble(&out, a.Sum());
      }
    }
  }
  return out;
}

Status DecodeRollupChunkInto(std::string_view data, std::vector<RollupBucket>* out) {
  std::size_t base = out->size();
  Status st = DecodeAppend(data, out);
  if (!st) out->resize(base);
  return st;
}

}  // namespace opensense
