// Versioned schema migrations of the SQLite store. Version = PRAGMA user_version.
#pragma once

#include "core/result.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace opensense::store::sqlite {

int LatestVersion();
Result<int> CurrentVersion(Db* db);
// Applies migrations up to `target` (each in its own transaction). A database newer than this
// binary fails with kFailedPrecondition.
Status Migrate(Db* db, int target);

}  // namespace opensense::store::sqlite
