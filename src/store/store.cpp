#include "store/store.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "store/postgres/pg_store.hpp"
#include "store/sqlite/migrations.hpp"
#include "store/sqlite/sqlite_store.hpp"

namespace opensense::store {

Result<std::unique_ptr<Store>> OpenStore(const StoreOptions& options) {
  constexpr std::string_view kSqlite = "sqlite://";
  const std::string& url = options.url;
  if (url.rfind(kSqlite, 0) == 0) {
    std::string path = url.substr(kSqlite.size());
    if (path.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("store URL '{}' has no path: use sqlite:///path/opensense.db", url));
    }
    return sqlite::OpenSqliteStore(options, path);
  }
  if (url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0) {
    return postgres::OpenPostgresStore(options);
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown store URL '{}': use sqlite:///path/opensense.db or "
                               "postgres://host:port/db",
                               url));
}

int LatestSchemaVersion() { return sqlite::LatestVersion(); }

Result<std::vector<DeviceLatest>> Store::LatestOfOrganization(OrgId org) {
  OS_ASSIGN_OR_RETURN(auto devices, ListDevices(org));
  std::sort(devices.begin(), devices.end(), [](const Device& a, const Device& b) { return a.id < b.id; });
  std::vector<DeviceLatest> out;
  for (const Device& d : devices) {
    OS_ASSIGN_OR_RETURN(auto values, Latest(org, d.id));
    if (!values.empty()) out.push_back(DeviceLatest{d.id, std::move(values)});
  }
  return out;
}

}  // namespace opensense::store
