// PeopleStore on the SQLite store's metadata connection (private to the store module).
#pragma once

#include <memory>
#include <mutex>

#include "core/clock.hpp"
#include "store/people_store.hpp"

namespace opensense::store::sqlite {

class Db;

// On its own connection `db`; `clock` is the store's clock (not owned).
std::unique_ptr<PeopleStore> MakeSqlitePeopleStore(std::unique_ptr<Db> db, const Clock* clock);

}  // namespace opensense::store::sqlite
