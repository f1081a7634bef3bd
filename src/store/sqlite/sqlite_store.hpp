// The SQLite implementation of Store (private to the store module; use OpenStore).
#pragma once

#include <memory>
#include <string>

#include "store/store.hpp"

namespace opensense::store::sqlite {

Result<std::unique_ptr<Store>> OpenSqliteStore(const StoreOptions& options, const std::string& path);

}  // namespace opensense::store::sqlite
