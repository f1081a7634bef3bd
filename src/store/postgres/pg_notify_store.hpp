// The PostgreSQL implementation of NotifyStore (private to the store module), on the store's
// connection pool.
#pragma once

#include <memory>

#include "store/notify_store.hpp"
#include "store/postgres/pg_conn.hpp"

namespace opensense::store::postgres {

// `pool` is not owned and must outlive the returned store.
std::unique_ptr<NotifyStore> MakePgNotifyStore(Pool* pool);

}  // namespace opensense::store::postgres
