#include "api/json_number.hpp"

#include <cmath>
#include <iterator>

#include <fmt/compile.h>
#include <fmt/format.h>

#include "core/decimal.hpp"

namespace opensense::api {

namespace {
constexpr int kMaxFastScale = 4;
constexpr double kPow10[kMaxFastScale + 1] = {1e0, 1e1, 1e2, 1e3, 1e4};
}  // namespace

void AppendInt(std::string& out, std::int64_t v) {
  fmt::format_int text(v);
  out.append(text.data(), text.size());
}

void AppendNumber(std::string& out, double v) {
  // A short decimal n / 10^k (k as small as possible) whose division reads back exactly as `v`
  // is the shortest round-trip text: below 1e9 a double's spacing is far finer than 10^-4, so no
  // decimal with fewer digits maps to the same double. Division is correctly rounded, exactly as
  // parsing the text is, so the equality below is the round-trip check itself. One check at
  // k = 4 covers every k <= 4 (a v that is n / 10^k scaled by 10^4 rounds to n * 10^(4-k)
  // exactly), and the smallest k is that integer's trailing zeros, stripped.
  const double mag = std::fabs(v);
  if (mag < 1e9 && mag >= 1e-4) {
    const double scaled = RoundToInteger(v * kPow10[kMaxFastScale]);
    if (scaled / kPow10[kMaxFastScale] == v) {
      auto n = static_cast<std::int64_t>(scaled);
      const bool negative = n < 0;
      auto u = static_cast<std::uint64_t>(negative ? -n : n);
      int k = kMaxFastScale;
      while (k > 0 && u % 10 == 0) {
        u /= 10;
        --k;
      }
      // u / 10^k reads back as v too: it is the same rational number.
      char buf[32];
      char* end = buf + sizeof buf;
      char* p = end;
      for (int i = 0; i < k; ++i, u /= 10) *--p = static_cast<char>('0' + u % 10);
      if (k > 0) *--p = '.';
      do {
        *--p = static_cast<char>('0' + u % 10);
        u /= 10;
      } while (u != 0);
      if (negative) *--p = '-';
      out.append(p, end);
      return;
    }
  }
  fmt::format_to(std::back_inserter(out), FMT_COMPILE("{}"), v);
}

}  // namespace opensense::api
