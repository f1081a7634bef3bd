// The SQLite implementation of AlertStore (private to the store module). It has its own
// connection, so alert work never waits for the metadata connection's lock.
#pragma once

#include <memory>

#include "store/alert_store.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace opensense::store::sqlite {

std::unique_ptr<AlertStore> MakeSqliteAlertStore(std::unique_ptr<Db> db);

}  // namespace opensense::store::sqlite
