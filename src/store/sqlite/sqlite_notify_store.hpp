// The SQLite implementation of NotifyStore (private to the store module). It has its own
// connection, so notification work never waits for the metadata connection's lock.
#pragma once

#include <memory>

#include "store/notify_store.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace opensense::store::sqlite {

std::unique_ptr<NotifyStore> MakeSqliteNotifyStore(std::unique_ptr<Db> db);

}  // namespace opensense::store::sqlite
