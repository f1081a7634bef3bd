// The PostgreSQL implementation of PeopleStore (private to the store module), on the store's
// connection pool.
#pragma once

#include <memory>

#include "core/clock.hpp"
#include "store/people_store.hpp"
#include "store/postgres/pg_conn.hpp"

namespace opensense::store::postgres {

// `pool` and `clock` are not owned and must outlive the returned store.
std::unique_ptr<PeopleStore> MakePgPeopleStore(Pool* pool, const Clock* clock);

}  // namespace opensense::store::postgres
