// libFuzzer target for the report query parser (src/reports/report.hpp ParseReportQuery): the
// input is split into a query string "k=v&k=v"; a parse either fails with kInvalidArgument or
// gives a period of at most three years that starts before "now", at most 50 devices and a valid
// metric. Never a crash.
//
//   scripts/fuzz.sh 600
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "core/validation.hpp"
#include "reports/report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const opensense::TimeZone zone = *opensense::TimeZone::Load("Europe/Berlin");
  constexpr opensense::TimestampMs kNow = 1794744000000;  // 2026-11-15T12:00:00Z
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::multimap<std::string, std::string> query;
  while (!text.empty()) {
    auto amp = text.find('&');
    std::string_view part = text.substr(0, amp);
    auto eq = part.find('=');
    query.emplace(std::string(part.substr(0, eq)), eq == std::string_view::npos ? "" : std::string(part.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp + 1);
  }
  auto r = opensense::reports::ParseReportQuery(query, zone, kNow);
  if (!r) {
    if (r.error().code != opensense::ErrorCode::kInvalidArgument || r.error().message.empty()) std::abort();
    return 0;
  }
  if (!(r->from < r->to) || r->to - r->from > opensense::reports::kMaxReportPeriodMs || r->from > kNow) std::abort();
  if (r->devices.size() > opensense::reports::kMaxReportDevices) std::abort();
  if (!opensense::IsValidMetricName(r->metric)) std::abort();
  if (!(r->activation_energy_kj_mol >= 10 && r->activation_energy_kj_mol <= 500)) std::abort();
  return 0;
}
