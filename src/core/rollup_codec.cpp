#include "core/rollup_codec.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include "core/chunk_codec.hpp"
#include "core/decimal.hpp"

namespace opensense {

namespace {

// Version 1: per bucket zigzag(bucket delta), count, first/last offset deltas, min/max/sum.
// Version 2: the bucket start as a delta of deltas (0 for a regular series: one byte), and the
// count shifted left by one with the low bit set for a single-reading bucket, which stores its
// first offset and one value only (last = first, max = sum = min): ~4 bytes.
// Version 3 (written now): a bucket opens with its tag (1: a single-reading bucket, count << 1:
// any other), then its start as in version 2, except that the first bucket's start is stored
// whole and the second's delta of deltas is its delta (version 2 took the difference from the
// first start: ~6 bytes a chunk), then its offsets and values as in version 2. Tag 0, which no
// bucket has, opens a run: its length L >= 1, then L "regular" buckets, each one step after the
// bucket before it (delta of deltas 0) and of the same shape (single or not, count, first and
// last offsets), so each stores its values only: one delta for a single-reading bucket, min/max/
// sum deltas otherwise (raw doubles in raw mode). A sensor reporting every 5 minutes fills a
// 4-hour chunk of 48 single-reading buckets with one full bucket and a run of 47 one-byte values
// (~1.4 bytes a bucket, ~4.3 in version 2); its 1-hour buckets of 12 readings cost their three
// value deltas (~4 bytes, ~8 in version 2).
constexpr unsigned char kVersion1 = 1;
constexpr unsigned char kVersion2 = 2;
constexpr unsigned char kVersion = 3;
constexpr std::uint64_t kTagRun = 0;     // version 3
constexpr std::uint64_t kTagSingle = 1;  // versions 2 and 3
constexpr std::uint64_t kMaxCount = std::uint64_t{1} << 62;
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

// What a bucket stores besides its start; min, max and sum as integers at the chunk's scale
// (decimal mode only).
struct BucketFields {
  std::uint64_t count = 0;
  bool single = false;  // one reading: last offset = first, max = sum = min
  std::int64_t first_off = 0, last_off = 0;
  std::int64_t min = 0, max = 0, sum = 0;
  // Version 3's run condition, besides the start.
  bool SameShape(const BucketFields& o) const {
    return single == o.single && count == o.count && first_off == o.first_off &&
           last_off == o.last_off;
  }
};

BucketFields FieldsOf(const RollupBucket& b, int scale) {
  const RollupAgg& a = b.agg;
  BucketFields f;
  f.count = static_cast<std::uint64_t>(a.count);
  f.first_off = Diff(a.first_ts, b.bucket);
  f.last_off = Diff(a.last_ts, b.bucket);
  f.single = a.count == 1 && f.first_off == f.last_off;
  if (scale >= 0) {
    f.min = static_cast<std::int64_t>(RoundToInteger(a.min * Pow10(scale)));
    f.max = static_cast<std::int64_t>(RoundToInteger(a.max * Pow10(scale)));
    f.sum = a.scaled_sum;
    for (int k = a.scale; k < scale; ++k) f.sum *= 10;  // checked by ChunkScale
    f.single = f.single && f.max == f.min && f.sum == f.min;
  } else {
    const auto bits = std::bit_cast<std::uint64_t>(a.min);
    f.single = f.single && bits == std::bit_cast<std::uint64_t>(a.max) &&
               bits == std::bit_cast<std::uint64_t>(a.Sum());
  }
  return f;
}

// The previous bucket's min, max and sum (decimal mode): a bucket stores its own as deltas.
struct ValueState {
  std::int64_t min = 0, max = 0, sum = 0;
};

void PutValues(std::string* out, const RollupBucket& b, const BucketFields& f, bool decimal,
               ValueState* prev) {
  if (decimal) {
    PutZigZag(out, Diff(f.min, prev->min));
    if (!f.single) {
      PutZigZag(out, Diff(f.max, prev->max));
      PutZigZag(out, Diff(f.sum, prev->sum));
    }
    *prev = {f.min, f.max, f.sum};
  } else {
    PutDouble(out, b.agg.min);
    if (!f.single) {
      PutDouble(out, b.agg.max);
      PutDouble(out, b.agg.Sum());
    }
  }
}

bool GetValues(std::string_view* in, int scale, bool single, ValueState* prev, RollupAgg* a) {
  if (scale >= 0) {
    std::int64_t d_min, d_max = 0, d_sum = 0;
    if (!GetZigZag(in, &d_min) || (!single && (!GetZigZag(in, &d_max) || !GetZigZag(in, &d_sum)))) {
      return false;
    }
    prev->min = Plus(prev->min, d_min);
    prev->max = single ? prev->min : Plus(prev->max, d_max);
    prev->sum = single ? prev->min : Plus(prev->sum, d_sum);
    a->min = static_cast<double>(prev->min) / Pow10(scale);
    a->max = static_cast<double>(prev->max) / Pow10(scale);
    a->scale = scale;
    a->scaled_sum = prev->sum;
    return true;
  }
  double sum = 0;
  if (!GetDouble(in, &a->min)) return false;
  if (single) {
    a->max = sum = a->min;
  } else if (!GetDouble(in, &a->max) || !GetDouble(in, &sum)) {
    return false;
  }
  a->scale = -1;
  a->double_sum = sum;
  return true;
}

// Appends bucket `index` of the chunk, refusing one that does not follow the one before it.
Status Append(std::uint64_t index, std::int64_t bucket, std::uint64_t count, std::int64_t first_off,
              std::int64_t last_off, const RollupAgg& values, std::vector<RollupBucket>* out) {
  if (index > 0 && bucket <= out->back().bucket) return Corrupt("bucket order");
  RollupBucket& b = out->emplace_back();
  b.bucket = bucket;
  b.agg = values;
  b.agg.count = static_cast<std::int64_t>(count);
  b.agg.first_ts = Plus(bucket, first_off);
  b.agg.last_ts = Plus(bucket, last_off);
  return Ok();
}

Status DecodeV1V2(std::string_view in, unsigned char version, std::uint64_t n, int scale,
                  std::vector<RollupBucket>* out) {
  std::int64_t bucket = 0, step = 0, first_off = 0, last_off = 0;
  ValueState values;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::int64_t d_bucket, d_first, d_last = 0;
    std::uint64_t count;
    if (!GetZigZag(&in, &d_bucket) || !GetVarint(&in, &count)) return Corrupt("bucket");
    bool single = false;
    if (version == kVersion2) {
      single = (count & kTagSingle) != 0;
      count = single ? 1 : count >> 1;
      step = Plus(step, d_bucket);  // a delta of deltas
      d_bucket = step;
    }
    if (!GetZigZag(&in, &d_first) || (!single && !GetZigZag(&in, &d_last))) return Corrupt("bucket");
    if (count == 0 || count > kMaxCount) return Corrupt("bucket count");
    bucket = Plus(bucket, d_bucket);
    first_off = Plus(first_off, d_first);
    last_off = single ? first_off : Plus(last_off, d_last);
    RollupAgg agg;
    if (!GetValues(&in, scale, single, &values, &agg)) return Corrupt("values");
    OS_RETURN_IF_ERROR(Append(i, bucket, count, first_off, last_off, agg, out));
  }
  if (!in.empty()) return Corrupt("trailing bytes");
  return Ok();
}

Status DecodeV3(std::string_view in, std::uint64_t n, int scale, std::vector<RollupBucket>* out) {
  std::int64_t bucket = 0, step = 0, first_off = 0, last_off = 0;
  std::uint64_t count = 0;
  bool single = false;
  ValueState values;
  for (std::uint64_t i = 0; i < n;) {
    std::uint64_t tag = 0, run = 1;
    if (!GetVarint(&in, &tag)) return Corrupt("bucket");
    if (tag == kTagRun) {
      // Regular buckets: the shape of the bucket before, one step on.
      if (i == 0 || !GetVarint(&in, &run) || run == 0 || run > n - i) return Corrupt("bucket run");
    } else {
      single = tag == kTagSingle;
      count = single ? 1 : tag >> 1;
      if ((!single && (tag & 1) != 0) || count > kMaxCount) return Corrupt("bucket count");
      std::int64_t d_bucket, d_first, d_last = 0;
      if (!GetZigZag(&in, &d_bucket) || !GetZigZag(&in, &d_first) ||
          (!single && !GetZigZag(&in, &d_last))) {
        return Corrupt("bucket");
      }
      if (i == 0) {
        bucket = d_bucket;  // the first start, whole
      } else {
        step = Plus(step, d_bucket);
        bucket = Plus(bucket, step);
      }
      first_off = Plus(first_off, d_first);
      last_off = single ? first_off : Plus(last_off, d_last);
    }
    for (const std::uint64_t end = i + run; i < end; ++i) {
      if (tag == kTagRun) bucket = Plus(bucket, step);
      RollupAgg agg;
      if (!GetValues(&in, scale, single, &values, &agg)) return Corrupt("values");
      OS_RETURN_IF_ERROR(Append(i, bucket, count, first_off, last_off, agg, out));
    }
  }
  if (!in.empty()) return Corrupt("trailing bytes");
  return Ok();
}

Status DecodeAppend(std::string_view in, std::vector<RollupBucket>* out) {
  if (in.size() < 3) return Corrupt("version");
  const auto version = static_cast<unsigned char>(in[0]);
  if (version != kVersion1 && version != kVersion2 && version != kVersion) return Corrupt("version");
  in.remove_prefix(1);
  std::uint64_t n = 0;
  // Every bucket takes at least one byte, so `n` is bounded by the input's size.
  if (!GetVarint(&in, &n) || n > kMaxBuckets || n > in.size()) return Corrupt("count");
  if (in.empty()) return Corrupt("mode");
  auto mode = static_cast<unsigned char>(in.front());
  in.remove_prefix(1);
  int scale = -1;
  if (mode == kModeDecimal) {
    if (in.empty()) return Corrupt("scale");
    scale = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    if (scale > kMaxDecimalScale) return Corrupt("scale");
  } else if (mode != kModeRaw) {
    return Corrupt("mode");
  }
  return version == kVersion ? DecodeV3(in, n, scale, out) : DecodeV1V2(in, version, n, scale, out);
}

}  // namespace

std::string EncodeRollupChunk(std::span<const RollupBucket> buckets) {
  std::string out;
  out.reserve(8 + buckets.size() * 4);
  out.push_back(static_cast<char>(kVersion));
  PutVarint(&out, buckets.size());
  const int scale = ChunkScale(buckets);
  const bool decimal = scale >= 0;
  out.push_back(static_cast<char>(decimal ? kModeDecimal : kModeRaw));
  if (decimal) out.push_back(static_cast<char>(scale));
  std::int64_t step = 0;
  BucketFields prev;  // the bucket before: the next one's offsets are stored against its own
  ValueState values;
  // A bucket one step after the one before it and of its shape is regular: it goes in a run.
  auto regular = [&](std::size_t i, const BucketFields& f) {
    return i > 0 && Diff(buckets[i].bucket, buckets[i - 1].bucket) == step && f.SameShape(prev);
  };
  const std::size_t n = buckets.size();
  BucketFields f = n > 0 ? FieldsOf(buckets[0], scale) : BucketFields{};  // of buckets[i]
  for (std::size_t i = 0; i < n;) {
    const RollupBucket& b = buckets[i];
    if (regular(i, f)) {
      PutVarint(&out, kTagRun);
      const std::size_t run_at = out.size(), first = i;
      do {
        PutValues(&out, buckets[i], f, decimal, &values);
        if (++i < n) f = FieldsOf(buckets[i], scale);
      } while (i < n && regular(i, f));
      std::string run;  // the length goes before the values: known only now
      PutVarint(&run, i - first);
      out.insert(run_at, run);
      continue;
    }
    PutVarint(&out, f.single ? kTagSingle : f.count << 1);
    if (i == 0) {
      PutZigZag(&out, b.bucket);
    } else {
      const std::int64_t delta = Diff(b.bucket, buckets[i - 1].bucket);
      PutZigZag(&out, Diff(delta, step));
      step = delta;
    }
    PutZigZag(&out, Diff(f.first_off, prev.first_off));
    if (!f.single) PutZigZag(&out, Diff(f.last_off, prev.last_off));
    PutValues(&out, b, f, decimal, &values);
    prev = f;
    if (++i < n) f = FieldsOf(buckets[i], scale);
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
