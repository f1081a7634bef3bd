// Compliance reports (HACCP, pharmacy, lab audits): what a report is built from, the figures it
// shows, and its renderings (PDF via cairo + pango, CSV).
//
// The flow: ParseReportQuery (untrusted query parameters -> ReportRequest), BuildReport (the
// store's rollups and the alert history -> ReportData, pure computation apart from the reads),
// RenderPdf / DailyCsv (ReportData -> bytes). Everything is computed in the organisation's time
// zone; a local calendar day is 23, 24 or 25 hours long.
//
// Reports never read raw readings: they use 5-minute rollups, or the finest rollup level still
// inside the organisation's retention (1 hour, then 1 day), and say which. Memory is bounded per
// device (one device's rollup rows at a time; the chart keeps at most kChartBins bins).
//
// Threads: every function is reentrant; a ReportGate is shared by the threads of a server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "core/time_zone.hpp"
#include "core/types.hpp"

namespace opensense::store {
class Store;
class AlertStore;
}

namespace opensense::reports {

enum class Paper { kA4, kLetter };
std::string_view PaperName(Paper paper);

// The longest period one report may cover, and the most devices.
inline constexpr TimestampMs kMaxReportPeriodMs = 1096 * kMsPerDay;  // three years
inline constexpr std::size_t kMaxReportDevices = 50;
// The chart of one device has at most this many columns (min/max/mean each).
inline constexpr int kChartBins = 720;
// Default activation energy of the mean kinetic temperature (USP <1160>, ICH Q1A), kJ/mol.
inline constexpr double kDefaultActivationEnergyKjMol = 83.144;

struct ReportRequest {
  OrgId org = 0;
  // Explicit devices, or every device of `site`; neither: every device of the organisation.
  std::vector<DeviceId> devices;
  std::optional<SiteId> site;
  TimestampMs from = 0;  // inclusive
  TimestampMs to = 0;    // exclusive
  Paper paper = Paper::kA4;
  std::string metric = "temperature";
  double activation_energy_kj_mol = kDefaultActivationEnergyKjMol;
  // Who asked: "user:7 ana@example.com" for the API, "cli:<operator>" for the CLI. Shown on the
  // cover; not part of the digest.
  std::string generated_by;
  std::string software_version;
};

// Parses the query of GET /api/v1/reports/... : devices=1,2,3 | site=N, from, to (RFC 3339, epoch
// milliseconds, or a local calendar date YYYY-MM-DD in `zone`: `from` is the start of that day,
// `to` the END of that day), paper=a4|letter, metric, ea (activation energy, kJ/mol). Unknown or
// repeated parameters, a period that is empty, longer than three years or starts in the future
// are kInvalidArgument with a message naming the parameter.
Result<ReportRequest> ParseReportQuery(const std::multimap<std::string, std::string>& query,
                                       const TimeZone& zone, TimestampMs now);
// A period a report may cover: from < to, at most three years, not starting in the future.
Status ValidatePeriod(TimestampMs from, TimestampMs to, TimestampMs now);
// "from" or "to" alone: a local date is the start of that day (end_of_day: the end of it).
Result<TimestampMs> ParseReportTime(std::string_view text, const TimeZone& zone, bool end_of_day);
// The start of local calendar date "YYYY-MM-DD" in `zone` (DST-correct).
Result<TimestampMs> LocalDateStart(std::string_view date, const TimeZone& zone);

// ---- alerts ---------------------------------------------------------------------------------

// One alert of the period as the report shows it.
struct AlertRecord {
  std::int64_t id = 0;
  DeviceId device = 0;
  std::string title;                      // rule name / kind, e.g. "above 8 °C"
  TimestampMs start = 0;
  std::optional<TimestampMs> end;         // still open: none
  std::optional<double> peak;             // worst value during the alert
  std::optional<std::string> acknowledged_by;
  std::optional<TimestampMs> acknowledged_at;
  std::string corrective_action;          // the note written when it was handled
  bool late = false;                      // raised from readings that arrived late (back-filled)
};

// What the report needs from the alert history (MakeStoreAlertHistory: on the alerts module's
// store; tests use their own).
class AlertHistory {
 public:
  virtual ~AlertHistory() = default;
  // Alerts of `device` that overlap [from, to), oldest first. Scoped to `org`.
  virtual Result<std::vector<AlertRecord>> AlertsInPeriod(OrgId org, DeviceId device,
                                                          TimestampMs from, TimestampMs to) = 0;
};

// The alert history of Store::Alerts() (not owned).
std::unique_ptr<AlertHistory> MakeStoreAlertHistory(store::AlertStore* alerts);

// No alert history (a store without the alerts module): the report says so and still lists the
// excursions and gaps it finds in the data.
class NoAlertHistory final : public AlertHistory {
 public:
  Result<std::vector<AlertRecord>> AlertsInPeriod(OrgId, DeviceId, TimestampMs, TimestampMs) override {
    return std::vector<AlertRecord>{};
  }
};

// ---- the computed report ------------------------------------------------------------------

// One local calendar day of one device (clipped to the period).
struct DailyRow {
  std::string date;  // local "YYYY-MM-DD"
  TimestampMs start = 0, end = 0;
  bool has_data = false;
  double min = 0, max = 0, mean = 0;
  std::int64_t received = 0;
  std::optional<std::int64_t> expected;  // unknown without an expected interval
  TimestampMs above_ms = 0, below_ms = 0;
  std::vector<std::string> flags;        // "above", "below", "missing data", "no data"
};

// A stretch of consecutive buckets whose mean is outside the target range.
struct Excursion {
  TimestampMs start = 0, end = 0;
  bool above = true;
  double peak = 0;  // highest max (above) or lowest min (below)
};

// Silence longer than two expected intervals (and at least one whole bucket).
struct Gap {
  TimestampMs start = 0, end = 0;
};

struct ChartBin {
  TimestampMs start = 0, end = 0;
  bool has_data = false;
  double min = 0, max = 0, mean = 0;
};

struct DeviceReport {
  Device device;
  std::string site_name;
  std::string unit;
  Resolution level = Resolution::k5m;  // the rollup level the figures come from
  TimestampMs bucket_ms = 0;           // its width (1 day: nominal 24 h)
  bool has_data = false;
  double min = 0, max = 0, mean = 0;
  std::int64_t received = 0;
  std::optional<std::int64_t> expected;
  TimestampMs above_ms = 0, below_ms = 0;
  int flagged_days = 0;
  std::optional<double> mkt;  // medicine stores only
  std::vector<DailyRow> days;
  std::vector<Excursion> excursions;
  std::vector<Gap> gaps;
  std::vector<AlertRecord> alerts;
  std::vector<ChartBin> chart;
  // Compliant: a target range is set, no time outside it and no gap. nullopt: no target range.
  std::optional<bool> compliant;
  // "overdue" when the due date is before the report's generation day, "" otherwise.
  bool calibration_overdue = false;
};

struct ReportData {
  ReportRequest request;
  Organization org;
  std::string time_zone;
  std::vector<std::string> site_names;
  TimestampMs generated_at = 0;
  bool alerts_available = true;  // false: NoAlertHistory (the report says so)
  // Why a coarser level was used ("" when 5-minute rollups covered the period).
  std::string level_note;
  std::vector<DeviceReport> devices;
  std::string digest;  // SHA-256 hex of the canonical serialisation of the data used
};

// The devices a request names (in its order), or every device of its site / organisation.
// kNotFound for an unknown device or site, another organisation's included.
Result<std::vector<Device>> ResolveReportDevices(store::Store& store, const ReportRequest& request);

// Reads and computes a report. kNotFound: an unknown device or site (another organisation's
// too), or no stored data for the period at any level; kInvalidArgument: a bad period.
Result<ReportData> BuildReport(store::Store& store, AlertHistory& alerts, const ReportRequest& request,
                               TimestampMs now, bool alerts_available = true);

// ---- pure computation (exposed for tests) ----------------------------------------------------

// Mean kinetic temperature in °C of temperatures in °C with weights (durations), for an
// activation energy in kJ/mol. nullopt when there is nothing to average.
std::optional<double> MeanKineticTemperature(const std::vector<std::pair<double, double>>& celsius_weight,
                                             double activation_energy_kj_mol);

// Computes the days, excursions, gaps, chart, totals and MKT of `out` from rollup points (sorted,
// at out->level; out->device.profile gives the limits) for the period [from, to) in `zone`.
// Data after `now` is not expected (no gap is reported in the future).
void ComputeDevice(const std::vector<SeriesPoint>& points, TimestampMs from, TimestampMs to,
                   TimestampMs now, const TimeZone& zone, double activation_energy_kj_mol,
                   DeviceReport* out);

// "2:05" for 2 h 5 min; "125:00" past four days.
std::string FormatDuration(TimestampMs ms);

// ---- renderings -------------------------------------------------------------------------------

// The PDF (vector, selectable text, DejaVu fonts). kInternal if cairo fails.
Result<std::string> RenderPdf(const ReportData& report);

// The daily table as CSV: a header line, then one line per device and day. `sink` gets the text
// in pieces (streaming); it returns false to stop.
void WriteDailyCsv(const ReportData& report, const std::function<bool(std::string_view)>& sink);

// ---- bounded concurrency ----------------------------------------------------------------------

// At most `running` reports render at once; up to `waiting` more wait (FIFO-ish) for a slot.
// Beyond that a request is refused at once (429); a waiter whose wait exceeds `max_wait` is
// refused too (503). Both carry a Retry-After.
class ReportGate {
 public:
  ReportGate(int running, int waiting, std::chrono::milliseconds max_wait)
      : max_running_(running), max_waiting_(waiting), max_wait_(max_wait) {}

  class Slot {
   public:
    Slot() = default;
    explicit Slot(ReportGate* g) : gate_(g) {}
    Slot(Slot&& o) noexcept : gate_(std::exchange(o.gate_, nullptr)) {}
    Slot& operator=(Slot&& o) noexcept {
      Release();
      gate_ = std::exchange(o.gate_, nullptr);
      return *this;
    }
    ~Slot() { Release(); }
    void Release();

   private:
    ReportGate* gate_ = nullptr;
  };
  // A slot, or kResourceExhausted (queue full) / kUnavailable (waited too long).
  Result<Slot> Acquire();
  int running() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int max_running_, max_waiting_;
  std::chrono::milliseconds max_wait_;
  int running_ = 0, waiting_ = 0;
};

}  // namespace opensense::reports
