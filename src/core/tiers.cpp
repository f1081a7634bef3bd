#include "core/tiers.hpp"

namespace opensense {

const std::array<TierLimits, 3>& TierTable() {
  static const std::array<TierLimits, 3> kTable = {{
      {Tier::kFree, 10, 3, false, 10, 60},
      {Tier::kTeam, 250, 25, true, 30, 150},
      {Tier::kEnterprise, std::nullopt, std::nullopt, true, 100, 500},
  }};
  return kTable;
}

const TierLimits& LimitsOf(Tier tier) {
  for (const auto& t : TierTable()) {
    if (t.tier == tier) return t;
  }
  return TierTable()[0];
}

}  // namespace opensense
