// Exact decimal arithmetic for sensor values. Sensors send decimals (21.37, 61.5, 98.2); a
// double holds the nearest binary value, and sums of such doubles depend on the order of
// addition. Scaling to an integer number of 10^-k units makes sums exact and order-free.
#pragma once

#include <cstdint>

namespace opensense {

inline constexpr int kMaxDecimalScale = 9;

// 10^k for 0 <= k <= kMaxDecimalScale.
double Pow10(int k);
// True when v * 10^k is an integer below 2^53 that maps back to exactly v.
bool ExactAtScale(double v, int k);
// The smallest k (0..9) at which v is exact, or -1 (not a short decimal, or not finite).
int DecimalScale(double v);

}  // namespace opensense
