// Fold marks (table rollup_folds, one row per series): which 1h and 1d rollup buckets of a
// series are stored in `rollups` and which are derived from its 5-minute rows.
//
// Every group commit would otherwise rewrite each series' open hour and open day (a group holds
// a few minutes of each series). So the writer stores a 1h or 1d bucket only once the series
// has moved past it ("folds" it, from the 5-minute rows, in the transaction that moves the
// mark); queries add the buckets at and after the mark from the 5-minute rows. A late reading
// into a folded bucket still updates the stored 1h/1d row at once. The mark is read and moved
// only under the series' advisory lock (the same one the writer takes), in the transaction
// that writes the rows, so readers see either the old rows and mark or the new ones.
#pragma once

#include <limits>
#include <map>

#include "core/rollup.hpp"
#include "core/time_zone.hpp"
#include "core/types.hpp"
#include "store/postgres/pg_conn.hpp"

namespace opensense::store::postgres {

inline constexpr int kLevel5m = 0, kLevel1h = 1, kLevel1d = 2;

// Every 1h and 1d bucket stored: a series without a rollup_folds row (created before the
// marks, or copied from SQLite). Also the store's "far future".
inline constexpr TimestampMs kFoldAll = std::numeric_limits<TimestampMs>::max() / 4;
// No 1h or 1d bucket stored: a series created by the writer, before its first commit.
inline constexpr TimestampMs kFoldNone = std::numeric_limits<TimestampMs>::min();

// The first bucket of `level` (kLevel1h or kLevel1d) that is not stored under fold mark `mark`
// (hour-aligned, or kFoldAll / kFoldNone): the 1h buckets that start before the mark and the
// 1d buckets (local days of `zone`) that end at or before it are stored; the later ones are
// derived from the 5-minute rows.
TimestampMs FirstDerived(int level, TimestampMs mark, const TimeZone& zone);

// The end of the last `level` bucket that starts before `to` (what the 5-minute rows must
// cover to derive the buckets that start before `to`).
TimestampMs BucketsEnd(int level, TimestampMs to, const TimeZone& zone);

// 5-minute buckets merged into `level` buckets (RollupAgg::Merge in bucket order, as a
// rebuild does).
std::map<TimestampMs, RollupAgg> Regroup(const std::map<TimestampMs, RollupAgg>& fives, int level,
                                         DayBucketer* days);

// The aggregate of a `rollups` row from column `col` on: count, min, max, first_ts, last_ts,
// scale, scaled_sum, double_sum.
RollupAgg ReadRollupAgg(const PgResult& r, int row, int col);

}  // namespace opensense::store::postgres
