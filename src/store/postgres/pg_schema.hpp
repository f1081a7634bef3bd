// Schema and migrations of the PostgreSQL store, and the monthly partitions of `readings`.
#pragma once

#include <cstdint>
#include <string>

#include "core/types.hpp"
#include "store/postgres/pg_conn.hpp"

namespace opensense::store::postgres {

// Advisory-lock keys (two-int form: kLockSpace, key). Series locks use (kSeriesLockSpace, id).
inline constexpr int kLockSpace = 0x4f53;  // "OS"
inline constexpr int kSeriesLockSpace = 0x4f54;
inline constexpr int kMigrationLock = 1;
inline constexpr int kMaintenanceLock = 2;  // time-based work: retention, partition creation
inline constexpr int kPartitionLock = 3;

int LatestPgVersion();
Result<int> CurrentPgVersion(Conn* conn);
// Applies pending migrations under an advisory lock (several processes may start at once).
// A schema newer than this binary refuses with kFailedPrecondition.
Status MigratePg(Conn* conn, bool apply);

// Months are counted as year * 12 + (month - 1), UTC.
int MonthIndexOf(TimestampMs ts);
TimestampMs MonthStartMs(int month_index);
std::string PartitionName(int month_index);  // readings_y2026m01
// Creates the partition of `month_index` if missing (idempotent; safe across processes).
Status EnsurePartition(Conn* conn, int month_index);

}  // namespace opensense::store::postgres
