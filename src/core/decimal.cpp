#include "core/decimal.hpp"

#include <cmath>

namespace opensense {

namespace {
constexpr double kPow10[kMaxDecimalScale + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
constexpr double kMaxExact = 9007199254740992.0;  // 2^53
}  // namespace

double Pow10(int k) { return kPow10[k]; }

bool ExactAtScale(double v, int k) {
  double scaled = v * kPow10[k];
  if (!(std::fabs(scaled) < kMaxExact)) return false;  // also refuses NaN and infinities
  return RoundToInteger(scaled) / kPow10[k] == v;
}

int DecimalScale(double v) {
  for (int k = 0; k <= kMaxDecimalScale; ++k) {
    if (ExactAtScale(v, k)) return k;
  }
  return -1;
}

}  // namespace opensense
