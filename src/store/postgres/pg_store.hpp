// The PostgreSQL store (postgres://host:port/db?sslmode=...): the production backend for an
// operator hosting many organisations on one server. Same contract as the SQLite store (the
// conformance suite runs against both); see README.md in this folder for the layout.
#pragma once

#include <memory>
#include <string>

#include "store/store.hpp"

namespace opensense::store::postgres {

Result<std::unique_ptr<Store>> OpenPostgresStore(const StoreOptions& options);

// Creates database `name` (unless it exists) on the server of `admin_url` (tests: a fresh database per test) and
// returns the URL of the new database.
Result<std::string> CreateDatabase(const std::string& admin_url, const std::string& name);

}  // namespace opensense::store::postgres
