// The tier table: what each plan (free, Team, Enterprise) may do. One table, read by the
// retention rules (core/retention.hpp), device registration, member invitations and the API's
// per-organisation request rate. Pure data, no I/O.
#pragma once

#include <array>
#include <optional>

#include "core/types.hpp"

namespace opensense {

struct TierLimits {
  Tier tier = Tier::kFree;
  std::optional<int> max_devices;  // nullopt: no limit
  std::optional<int> max_members;  // people with a role in the organisation
  bool retention_extension = false;  // may keep data longer than the defaults
  double api_rate_per_second = 0;    // user API requests (tokens and sessions) per organisation
  double api_burst = 0;
};

// The whole table, in tier order (docs/api.md and GET /api/v1/org show it).
const std::array<TierLimits, 3>& TierTable();
const TierLimits& LimitsOf(Tier tier);

}  // namespace opensense
