#include "store/postgres/pg_fold.hpp"

namespace opensense::store::postgres {

TimestampMs FirstDerived(int level, TimestampMs mark, const TimeZone& zone) {
  if (level == kLevel1h || mark == kFoldAll || mark == kFoldNone) return mark;
  return zone.DayOf(mark).start;
}

TimestampMs BucketsEnd(int level, TimestampMs to, const TimeZone& zone) {
  constexpr TimestampMs kYear10000 = 253402300800000;  // no bucket starts later
  if (to >= kYear10000) return to;
  if (level == kLevel5m) return FloorTo(to - 1, kBucket5m) + kBucket5m;
  if (level == kLevel1h) return FloorTo(to - 1, kBucket1h) + kBucket1h;
  return zone.DayOf(to - 1).end;
}

std::map<TimestampMs, RollupAgg> Regroup(const std::map<TimestampMs, RollupAgg>& fives, int level,
                                         DayBucketer* days) {
  std::map<TimestampMs, RollupAgg> out;
  for (const auto& [b, agg] : fives) {
    out[level == kLevel1h ? FloorTo(b, kBucket1h) : days->DayStart(b)].Merge(agg);
  }
  return out;
}

RollupAgg ReadRollupAgg(const PgResult& r, int row, int col) {
  RollupAgg a;
  a.count = r.Int(row, col);
  a.min = r.Double(row, col + 1);
  a.max = r.Double(row, col + 2);
  a.first_ts = r.Int(row, col + 3);
  a.last_ts = r.Int(row, col + 4);
  a.scale = static_cast<int>(r.Int(row, col + 5));
  a.scaled_sum = r.Int(row, col + 6);
  a.double_sum = r.Double(row, col + 7);
  return a;
}

}  // namespace opensense::store::postgres
