#include "people/permissions.hpp"

namespace opensense::people {

const std::vector<PermissionInfo>& PermissionTable() {
  static const std::vector<PermissionInfo> kTable = {
      {Permission::kPublic, "public", std::nullopt, "no credential"},
      {Permission::kIngest, "ingest", std::nullopt, "device or gateway token"},
      {Permission::kBrokerHook, "broker_hook", std::nullopt, "the broker's hook secret"},
      {Permission::kSession, "session", Role::kViewer, "own session"},
      {Permission::kReadData, "read", Role::kViewer, "read devices, sites, readings, alerts"},
      {Permission::kOwnTokens, "own_tokens", Role::kViewer, "own user API tokens"},
      {Permission::kAckAlerts, "ack_alerts", Role::kMember, "acknowledge alerts"},
      {Permission::kDownloadReports, "download_reports", Role::kMember, "download reports"},
      {Permission::kManageDevices, "manage_devices", Role::kAdmin, "create/change/delete devices and sites"},
      {Permission::kRotateTokens, "rotate_tokens", Role::kAdmin, "device/gateway tokens, all tokens"},
      {Permission::kEditRules, "edit_rules", Role::kAdmin, "alert rules"},
      {Permission::kResolveAlerts, "resolve_alerts", Role::kAdmin, "resolve alerts"},
      {Permission::kManageChannels, "manage_channels", Role::kAdmin, "notification channels"},
      {Permission::kManageMembers, "manage_members", Role::kAdmin, "invite, change roles, remove"},
      {Permission::kReadAudit, "read_audit", Role::kAdmin, "the audit trail"},
      {Permission::kChangeRetention, "change_retention", Role::kOwner, "retention settings"},
  };
  return kTable;
}

const PermissionInfo& InfoOf(Permission p) { return PermissionTable()[static_cast<std::size_t>(p)]; }

bool Allows(Role role, Permission p) {
  const auto& min = InfoOf(p).min_role;
  return min.has_value() && role >= *min;
}

const std::vector<RoutePermission>& RoutePermissions() {
  using P = Permission;
  static const std::vector<RoutePermission> kRoutes = {
      // Operations and the login flow.
      {"GET", "/healthz", P::kPublic},
      {"GET", "/readyz", P::kPublic},
      {"GET", "/metrics", P::kPublic},
      {"POST", "/api/v1/auth/magic-link", P::kPublic},
      {"GET", "/auth/magic", P::kPublic},
      {"POST", "/api/v1/auth/magic-link/complete", P::kPublic},
      {"POST", "/api/v1/auth/signup", P::kPublic},
      // Ingest and the broker.
      {"POST", "/api/v1/ingest", P::kIngest},
      {"POST", "/write", P::kIngest},
      {"POST", "/api/v2/write", P::kIngest},
      {"POST", "/internal/mqtt/auth", P::kBrokerHook},
      {"POST", "/internal/mqtt/acl", P::kBrokerHook},
      {"GET", "/internal/mqtt/revoked", P::kBrokerHook},
      // Session.
      {"GET", "/api/v1/auth/session", P::kSession},
      {"POST", "/api/v1/auth/session/org", P::kSession},
      {"POST", "/api/v1/auth/logout", P::kSession},
      {"POST", "/api/v1/auth/logout-everywhere", P::kSession},
      // Own API tokens.
      {"GET", "/api/v1/auth/tokens", P::kOwnTokens},
      {"POST", "/api/v1/auth/tokens", P::kOwnTokens},
      {"POST", "/api/v1/auth/tokens/{id}/rotate", P::kOwnTokens},
      {"DELETE", "/api/v1/auth/tokens/{id}", P::kOwnTokens},
      // Devices and sites.
      {"GET", "/api/v1/devices", P::kReadData},
      {"POST", "/api/v1/devices", P::kManageDevices},
      {"GET", "/api/v1/devices/{id}", P::kReadData},
      {"PATCH", "/api/v1/devices/{id}", P::kManageDevices},
      {"DELETE", "/api/v1/devices/{id}", P::kManageDevices},
      {"POST", "/api/v1/devices/{id}/token", P::kRotateTokens},
      {"GET", "/api/v1/devices/{id}/latest", P::kReadData},
      {"GET", "/api/v1/latest", P::kReadData},
      {"GET", "/api/v1/sparklines", P::kReadData},
      {"GET", "/api/v1/events", P::kReadData},
      {"GET", "/api/v1/devices/{id}/series", P::kReadData},
      {"GET", "/api/v1/devices/{id}/series.csv", P::kReadData},
      {"GET", "/api/v1/sites", P::kReadData},
      {"POST", "/api/v1/sites", P::kManageDevices},
      {"GET", "/api/v1/sites/{id}", P::kReadData},
      {"PATCH", "/api/v1/sites/{id}", P::kManageDevices},
      {"DELETE", "/api/v1/sites/{id}", P::kManageDevices},
      {"POST", "/api/v1/sites/{id}/token", P::kRotateTokens},
      // The organisation's tokens.
      {"GET", "/api/v1/tokens", P::kRotateTokens},
      {"DELETE", "/api/v1/tokens/{id}", P::kRotateTokens},
      // Organisation, members, audit.
      {"GET", "/api/v1/org", P::kReadData},
      {"PATCH", "/api/v1/org/retention", P::kChangeRetention},
      {"GET", "/api/v1/members", P::kReadData},
      {"POST", "/api/v1/members", P::kManageMembers},
      {"PATCH", "/api/v1/members/{id}", P::kManageMembers},
      {"DELETE", "/api/v1/members/{id}", P::kManageMembers},
      {"GET", "/api/v1/audit", P::kReadAudit},
      {"GET", "/api/v1/audit.csv", P::kReadAudit},
      // Alerts (issue 5).
      {"POST", "/api/v1/alerts/{id}/ack", P::kAckAlerts},
      {"POST", "/api/v1/alerts/{id}/acknowledge", P::kAckAlerts},
      {"POST", "/api/v1/alerts/{id}/resolve", P::kResolveAlerts},
      {"GET", "/api/v1/alerts*", P::kReadData},
      {"*", "/api/v1/alerts*", P::kResolveAlerts},
      {"GET", "/api/v1/alert-rules*", P::kReadData},
      {"*", "/api/v1/alert-rules*", P::kEditRules},
      {"GET", "/api/v1/rules*", P::kReadData},
      {"*", "/api/v1/rules*", P::kEditRules},
      // Channels hold recipients and webhook URLs: admin, reading included.
      {"*", "/api/v1/channels*", P::kManageChannels},
      {"GET", "/api/v1/notifications*", P::kReadData},
      {"*", "/api/v1/notifications*", P::kManageChannels},
      {"*", "/api/v1/reports*", P::kDownloadReports},
  };
  return kRoutes;
}

std::optional<Permission> PermissionForRoute(std::string_view method, std::string_view pattern) {
  const RoutePermission* best = nullptr;
  std::size_t best_len = 0;
  bool best_exact_method = false;
  for (const auto& r : RoutePermissions()) {
    const bool group = !r.pattern.empty() && r.pattern.back() == '*';
    if (!group) {
      if (r.method == method && r.pattern == pattern) return r.permission;
      continue;
    }
    std::string_view prefix = r.pattern.substr(0, r.pattern.size() - 1);
    if (pattern.substr(0, prefix.size()) != prefix) continue;
    const bool exact_method = r.method == method;
    if (!exact_method && r.method != "*") continue;
    if (best == nullptr || prefix.size() > best_len ||
        (prefix.size() == best_len && exact_method && !best_exact_method)) {
      best = &r;
      best_len = prefix.size();
      best_exact_method = exact_method;
    }
  }
  if (best != nullptr) return best->permission;
  return std::nullopt;
}

}  // namespace opensense::people
