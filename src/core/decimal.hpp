// Exact decimal arithmetic for sensor values. Sensors send decimals (21.37, 61.5, 98.2); a
// double holds the nearest binary value, and sums of such doubles depend on the order of
// addition. Scaling to an integer number of 10^-k units makes sums exact and order-free.
#pragma once

#include <cmath>
#include <cstdint>

namespace opensense {

inline constexpr int kMaxDecimalScale = 9;

// std::nearbyint in the default rounding mode (to nearest, ties to even), without its libm call
// (x86-64's baseline has no rounding instruction, and this runs several times per reading):
// below 2^52 adding and subtracting 2^52 rounds to an integer, at or above it every double is
// one already. NaN and infinities come back unchanged; -0.3 gives -0.0 as nearbyint does.
inline double RoundToInteger(double x) {
  constexpr double kTwo52 = 4503599627370496.0;
  const double a = std::fabs(x);
  if (!(a < kTwo52)) return x;
  return std::copysign((a + kTwo52) - kTwo52, x);
}

// 10^k for 0 <= k <= kMaxDecimalScale.
double Pow10(int k);
// True when v * 10^k is an integer below 2^53 that maps back to exactly v.
bool ExactAtScale(double v, int k);
// The smallest k (0..9) at which v is exact, or -1 (not a short decimal, or not finite).
int DecimalScale(double v);

}  // namespace opensense
