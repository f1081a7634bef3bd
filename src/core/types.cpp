#include "core/types.hpp"

#include <fmt/format.h>

namespace opensense {

std::string_view TierName(Tier tier) {
  switch (tier) {
    case Tier::kFree: return "free";
    case Tier::kTeam: return "team";
    case Tier::kEnterprise: return "enterprise";
  }
  return "free";
}

Result<Tier> ParseTier(std::string_view name) {
  if (name == "free") return Tier::kFree;
  if (name == "team") return Tier::kTeam;
  if (name == "enterprise") return Tier::kEnterprise;
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown tier '{}': use free, team or enterprise", name));
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kViewer: return "viewer";
    case Role::kMember: return "member";
    case Role::kAdmin: return "admin";
    case Role::kOwner: return "owner";
  }
  return "viewer";
}

Result<Role> ParseRole(std::string_view name) {
  if (name == "viewer") return Role::kViewer;
  if (name == "member") return Role::kMember;
  if (name == "admin") return Role::kAdmin;
  if (name == "owner") return Role::kOwner;
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown role '{}': use viewer, member, admin or owner", name));
}

std::string_view TokenKindName(TokenKind kind) {
  switch (kind) {
    case TokenKind::kDevice: return "device";
    case TokenKind::kGateway: return "gateway";
    case TokenKind::kUser: return "user";
  }
  return "device";
}

std::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNotFinite: return "not_finite";
    case RejectReason::kInFuture: return "in_future";
    case RejectReason::kOlderThanRetention: return "older_than_retention";
    case RejectReason::kUnknownDevice: return "unknown_device";
    case RejectReason::kDeviceDecommissioned: return "device_decommissioned";
    case RejectReason::kBadMetricName: return "bad_metric_name";
    case RejectReason::kUnknownUnit: return "unknown_unit";
    case RejectReason::kUnitMismatch: return "unit_mismatch";
  }
  return "unknown";
}

std::string_view ResolutionName(Resolution r) {
  switch (r) {
    case Resolution::kRaw: return "raw";
    case Resolution::k5m: return "5m";
    case Resolution::k1h: return "1h";
    case Resolution::k1d: return "1d";
    case Resolution::kAuto: return "auto";
  }
  return "raw";
}

Result<Resolution> ParseResolution(std::string_view name) {
  if (name == "raw") return Resolution::kRaw;
  if (name == "5m") return Resolution::k5m;
  if (name == "1h") return Resolution::k1h;
  if (name == "1d") return Resolution::k1d;
  if (name == "auto") return Resolution::kAuto;
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown resolution '{}': use raw, 5m, 1h, 1d or auto", name));
}

}  // namespace opensense
