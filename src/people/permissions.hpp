// The permission table: what each role may do, and which permission every HTTP route needs.
// The API enforces it in one place (api/api.cpp, ApiContext::Route) and the isolation matrix
// (src/api/people_matrix_test.cpp) walks the route table against it, so a route without an
// entry here fails the tests. Pure data, no I/O.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "core/types.hpp"

namespace opensense::people {

enum class Permission {
  kPublic,           // no credential (health, metrics, the login flow)
  kIngest,           // a device (osd_) or gateway (osg_) token; never a user
  kBrokerHook,       // the broker's hook secret (/internal/mqtt/...)
  kSession,          // any signed-in user: own session, log out, switch organisation
  kReadData,         // devices, sites, readings, series, alerts, notifications, the organisation
  kOwnTokens,        // list, create, rotate and revoke one's own user API tokens
  kAckAlerts,        // acknowledge an alert
  kDownloadReports,  // download compliance reports
  kManageDevices,    // create, change, decommission devices and sites
  kRotateTokens,     // device and gateway tokens; every token of the organisation
  kEditRules,        // alert rules
  kResolveAlerts,    // resolve (close) an alert
  kManageChannels,   // notification channels (they hold addresses and webhook URLs)
  kManageMembers,    // invite, change roles, remove (only an owner grants or removes owner)
  kReadAudit,        // the audit trail and its CSV export
  kChangeRetention,  // retention settings (Team and Enterprise)
};

struct PermissionInfo {
  Permission permission;
  std::string_view name;          // "manage_devices"
  std::optional<Role> min_role;   // nullopt: not a user permission (public, ingest, hook)
  std::string_view description;
};

// Every permission, in the order above.
const std::vector<PermissionInfo>& PermissionTable();
const PermissionInfo& InfoOf(Permission p);
// Whether a user with `role` holds `p` (false for the non-user permissions).
bool Allows(Role role, Permission p);

struct RoutePermission {
  std::string_view method;   // "GET", ...; "*" in a group rule
  std::string_view pattern;  // the route pattern; a trailing '*' makes a group rule (prefix)
  Permission permission;
};

// The route table's permissions: exact (method, pattern) entries, then group rules for the
// route families other modules own (alerts, rules, channels, notifications, reports), which fail
// closed (a write in the family needs the family's strongest permission).
const std::vector<RoutePermission>& RoutePermissions();
// Exact entry first, then the longest matching group rule with the same method, then "*".
std::optional<Permission> PermissionForRoute(std::string_view method, std::string_view pattern);

}  // namespace opensense::people
