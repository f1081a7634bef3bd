// The pure part of a report: query parsing, days, excursions, gaps, chart bins, MKT, the gate.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/validation.hpp"
#include "reports/report.hpp"

namespace opensense::reports {

std::string_view PaperName(Paper paper) { return paper == Paper::kA4 ? "a4" : "letter"; }

namespace {

constexpr std::size_t kMaxParamLength = 2048;

// days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

Result<std::int64_t> ParsePositiveId(std::string_view text, std::string_view what) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || text.size() > 18 || ec != std::errc() || p != text.data() + text.size() || v <= 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'{}' must be a positive id (got '{}')", what, text.substr(0, 32)));
  }
  return v;
}

TimestampMs BucketEnd(Resolution level, TimestampMs t, const TimeZone& zone) {
  switch (level) {
    case Resolution::k5m: return t + 5 * kMsPerMinute;
    case Resolution::k1h: return t + kMsPerHour;
    case Resolution::k1d: return zone.DayOf(t).end;
    default: return t + 1;
  }
}

}  // namespace

Result<TimestampMs> LocalDateStart(std::string_view date, const TimeZone& zone) {
  if (!IsValidCalendarDate(date)) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is not a date YYYY-MM-DD", date.substr(0, 32)));
  }
  auto num = [&](std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) v = v * 10 + (date[i] - '0');
    return v;
  };
  TimestampMs utc_midnight = DaysFromCivil(num(0, 4), static_cast<unsigned>(num(5, 2)),
                                           static_cast<unsigned>(num(8, 2))) * kMsPerDay;
  Interval day = zone.DayOf(utc_midnight);
  for (int i = 0; i < 4; ++i) {
    std::string local = zone.FormatLocal(day.start, "%Y-%m-%d");
    if (local == date) return day.start;
    day = local < date ? zone.DayOf(day.end) : zone.DayOf(day.start - 1);
  }
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("no local day {} in {}", date, zone.name()));
}

Result<TimestampMs> ParseReportTime(std::string_view text, const TimeZone& zone, bool end_of_day) {
  if (text.size() == 10 && text[4] == '-' && text[7] == '-') {
    OS_ASSIGN_OR_RETURN(TimestampMs start, LocalDateStart(text, zone));
    return end_of_day ? zone.DayOf(start).end : start;
  }
  return ParseTimestamp(text);
}

Result<ReportRequest> ParseReportQuery(const std::multimap<std::string, std::string>& query,
                                       const TimeZone& zone, TimestampMs now) {
  static constexpr std::string_view kKnown[] = {"devices", "site", "from", "to", "paper", "metric", "ea"};
  for (const auto& [key, value] : query) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("unknown parameter '{}' (known: devices, site, from, to, paper, metric, ea)",
                                   std::string_view(key).substr(0, 32)));
    }
    if (query.count(key) > 1) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is given more than once", key));
    }
    if (value.size() > kMaxParamLength) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is too long", key));
    }
  }
  auto get = [&](const char* key) -> std::optional<std::string> {
    auto it = query.find(key);
    if (it == query.end()) return std::nullopt;
    return it->second;
  };
  ReportRequest r;
  if (auto devices = get("devices")) {
    std::string_view rest = *devices;
    while (true) {
      auto comma = rest.find(',');
      std::string_view part = rest.substr(0, comma);
      OS_ASSIGN_OR_RETURN(std::int64_t id, ParsePositiveId(part, "devices"));
      if (std::find(r.devices.begin(), r.devices.end(), id) == r.devices.end()) r.devices.push_back(id);
      if (r.devices.size() > kMaxReportDevices) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("at most {} devices per report", kMaxReportDevices));
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (auto site = get("site")) {
    if (!r.devices.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, "give either 'devices' or 'site', not both");
    }
    OS_ASSIGN_OR_RETURN(r.site, ParsePositiveId(*site, "site"));
  }
  auto from = get("from"), to = get("to");
  if (!from || !to) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "'from' and 'to' are required (RFC 3339, or a local date YYYY-MM-DD: to=2026-10-31 "
                     "includes that whole day)");
  }
  auto f = ParseReportTime(*from, zone, false);
  if (!f) return MakeError(ErrorCode::kInvalidArgument, "'from': " + f.error().message);
  auto t = ParseReportTime(*to, zone, true);
  if (!t) return MakeError(ErrorCode::kInvalidArgument, "'to': " + t.error().message);
  r.from = *f;
  r.to = *t;
  if (auto paper = get("paper")) {
    if (*paper == "a4" || *paper == "A4") r.paper = Paper::kA4;
    else if (*paper == "letter" || *paper == "Letter") r.paper = Paper::kLetter;
    else return MakeError(ErrorCode::kInvalidArgument, "'paper' must be a4 or letter");
  }
  if (auto metric = get("metric")) {
    if (!IsValidMetricName(*metric)) {
      return MakeError(ErrorCode::kInvalidArgument, "'metric' must be 1-64 characters of a-z 0-9 _ . -");
    }
    r.metric = *metric;
  }
  if (auto ea = get("ea")) {
    double v = 0;
    auto [p, ec] = std::from_chars(ea->data(), ea->data() + ea->size(), v);
    if (ec != std::errc() || p != ea->data() + ea->size() || !(v >= 10 && v <= 500)) {
      return MakeError(ErrorCode::kInvalidArgument, "'ea' (activation energy) must be 10-500 kJ/mol");
    }
    r.activation_energy_kj_mol = v;
  }
  OS_RETURN_IF_ERROR(ValidatePeriod(r.from, r.to, now));
  return r;
}

Status ValidatePeriod(TimestampMs from, TimestampMs to, TimestampMs now) {
  if (to <= from) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'from' ({}) must be before 'to' ({})", FormatRfc3339(from), FormatRfc3339(to)));
  }
  if (to - from > kMaxReportPeriodMs) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("the period is {} days; a report covers at most {} days (three years): "
                                 "split it into several reports",
                                 (to - from) / kMsPerDay, kMaxReportPeriodMs / kMsPerDay));
  }
  if (from > now) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'from' ({}) is in the future", FormatRfc3339(from)));
  }
  return Ok();
}

std::optional<double> MeanKineticTemperature(const std::vector<std::pair<double, double>>& celsius_weight,
                                             double activation_energy_kj_mol) {
  constexpr long double kGasConstant = 8.3144626181532L;  // J/(mol K), CODATA 2018
  const long double e_over_r = static_cast<long double>(activation_energy_kj_mol) * 1000.0L / kGasConstant;
  long double sum = 0, weights = 0;
  for (auto [c, w] : celsius_weight) {
    if (!(w > 0) || !std::isfinite(c)) continue;
    sum += static_cast<long double>(w) * std::exp(-e_over_r / (static_cast<long double>(c) + 273.15L));
    weights += w;
  }
  if (weights <= 0 || sum <= 0) return std::nullopt;
  return static_cast<double>(e_over_r / -std::log(sum / weights) - 273.15L);
}

std::string FormatDuration(TimestampMs ms) {
  TimestampMs minutes = (ms + kMsPerMinute / 2) / kMsPerMinute;
  return fmt::format("{}:{:02}", minutes / 60, minutes % 60);
}

void ComputeDevice(const std::vector<SeriesPoint>& points, TimestampMs from, TimestampMs to,
                   TimestampMs now, const TimeZone& zone, double activation_energy_kj_mol,
                   DeviceReport* out) {
  const DeviceProfile& profile = out->device.profile;
  out->bucket_ms = out->level == Resolution::k5m ? 5 * kMsPerMinute
                   : out->level == Resolution::k1h ? kMsPerHour
                                                   : kMsPerDay;
  const std::optional<TimestampMs> interval =
      profile.expected_interval_s ? std::optional<TimestampMs>(*profile.expected_interval_s * kMsPerSecond)
                                  : std::nullopt;
  const TimestampMs gap_threshold = std::max(out->bucket_ms, 2 * interval.value_or(0));
  const TimestampMs data_end = std::clamp(now, from, to);  // nothing is expected after now

  // Local calendar days of the period.
  out->days.clear();
  for (Interval d = zone.DayOf(from); d.start < to; d = zone.DayOf(d.end)) {
    DailyRow row;
    row.date = zone.FormatLocal(std::max(d.start, from), "%Y-%m-%d");
    row.start = std::max(d.start, from);
    row.end = std::min(d.end, to);
    if (interval) {
      TimestampMs expected_span = std::max<TimestampMs>(0, std::min(row.end, data_end) - row.start);
      row.expected = expected_span / *interval;
    }
    out->days.push_back(std::move(row));
  }

  const int bins = static_cast<int>(std::clamp<TimestampMs>((to - from + out->bucket_ms - 1) / out->bucket_ms, 1,
                                                            kChartBins));
  out->chart.assign(static_cast<std::size_t>(bins), ChartBin{});
  for (int i = 0; i < bins; ++i) {
    out->chart[i].start = from + (to - from) * i / bins;
    out->chart[i].end = from + (to - from) * (i + 1) / bins;
  }
  std::vector<double> chart_sum(static_cast<std::size_t>(bins), 0.0);
  std::vector<std::int64_t> chart_n(static_cast<std::size_t>(bins), 0);

  std::vector<double> day_sum(out->days.size(), 0.0);
  std::vector<std::pair<double, double>> mkt_input;
  if (profile.medicine_storage) mkt_input.reserve(points.size());
  double total_sum = 0;
  TimestampMs prev_end = from;
  std::size_t day = 0;
  std::optional<Excursion> open;
  out->excursions.clear();
  out->gaps.clear();
  out->has_data = false;

  for (const SeriesPoint& p : points) {
    if (p.t < from || p.t >= to || p.count <= 0) continue;
    const TimestampMs end = std::min(BucketEnd(out->level, p.t, zone), to);
    while (day + 1 < out->days.size() && out->days[day].end <= p.t) ++day;
    DailyRow& row = out->days[day];
    if (!row.has_data) {
      row.min = p.min;
      row.max = p.max;
    }
    row.has_data = true;
    row.min = std::min(row.min, p.min);
    row.max = std::max(row.max, p.max);
    row.received += p.count;
    day_sum[day] += p.v * static_cast<double>(p.count);
    if (!out->has_data) {
      out->min = p.min;
      out->max = p.max;
    }
    out->has_data = true;
    out->min = std::min(out->min, p.min);
    out->max = std::max(out->max, p.max);
    out->received += p.count;
    total_sum += p.v * static_cast<double>(p.count);

    // Time out of range: whole buckets whose mean is outside the target range.
    std::optional<bool> above;
    if (profile.target_max && p.v > *profile.target_max) above = true;
    else if (profile.target_min && p.v < *profile.target_min) above = false;
    if (above) {
      (*above ? row.above_ms : row.below_ms) += end - p.t;
      (*above ? out->above_ms : out->below_ms) += end - p.t;
    }
    if (open && (!above || *above != open->above || open->end != p.t)) {
      out->excursions.push_back(*open);
      open.reset();
    }
    if (above) {
      if (!open) open = Excursion{p.t, end, *above, *above ? p.max : p.min};
      open->end = end;
      open->peak = *above ? std::max(open->peak, p.max) : std::min(open->peak, p.min);
    }

    if (p.t - prev_end >= gap_threshold) out->gaps.push_back({prev_end, p.t});
    prev_end = std::max(prev_end, end);

    if (profile.medicine_storage) mkt_input.emplace_back(p.v, static_cast<double>(end - p.t));

    auto bin = static_cast<std::size_t>(std::min<TimestampMs>(bins - 1, (p.t - from) * bins / (to - from)));
    ChartBin& b = out->chart[bin];
    if (!b.has_data) {
      b.min = p.min;
      b.max = p.max;
    }
    b.has_data = true;
    b.min = std::min(b.min, p.min);
    b.max = std::max(b.max, p.max);
    chart_sum[bin] += p.v * static_cast<double>(p.count);
    chart_n[bin] += p.count;
  }
  if (open) out->excursions.push_back(*open);
  if (data_end - prev_end >= gap_threshold) out->gaps.push_back({prev_end, data_end});

  for (std::size_t i = 0; i < out->chart.size(); ++i) {
    if (chart_n[i] > 0) out->chart[i].mean = chart_sum[i] / static_cast<double>(chart_n[i]);
  }
  if (out->received > 0) out->mean = total_sum / static_cast<double>(out->received);
  if (interval) out->expected = 0;
  out->flagged_days = 0;
  for (std::size_t i = 0; i < out->days.size(); ++i) {
    DailyRow& row = out->days[i];
    if (row.received > 0) row.mean = day_sum[i] / static_cast<double>(row.received);
    if (row.expected) *out->expected += *row.expected;
    if (row.above_ms > 0) row.flags.push_back("above");
    if (row.below_ms > 0) row.flags.push_back("below");
    bool in_gap = std::any_of(out->gaps.begin(), out->gaps.end(),
                              [&](const Gap& g) { return g.start < row.end && g.end > row.start; });
    if (!row.has_data && row.start < data_end) row.flags.push_back("no data");
    else if (in_gap) row.flags.push_back("gap");
    else if (row.expected && row.received * 10 < *row.expected * 9) row.flags.push_back("missing data");
    if (!row.flags.empty()) ++out->flagged_days;
  }
  if (profile.target_min || profile.target_max) {
    out->compliant = out->has_data && out->above_ms == 0 && out->below_ms == 0 && out->gaps.empty();
  } else {
    out->compliant.reset();
  }
  out->mkt.reset();
  if (profile.medicine_storage) out->mkt = MeanKineticTemperature(mkt_input, activation_energy_kj_mol);
  const std::string today = zone.FormatLocal(now, "%Y-%m-%d");
  out->calibration_overdue = profile.calibration_due && *profile.calibration_due < today;
}

// ---- gate -------------------------------------------------------------------------------------

void ReportGate::Slot::Release() {
  if (gate_ == nullptr) return;
  {
    std::lock_guard lock(gate_->mu_);
    --gate_->running_;
  }
  gate_->cv_.notify_one();
  gate_ = nullptr;
}

Result<ReportGate::Slot> ReportGate::Acquire() {
  std::unique_lock lock(mu_);
  if (running_ < max_running_ && waiting_ == 0) {
    ++running_;
    return Slot(this);
  }
  if (waiting_ >= max_waiting_) {
    return MakeError(ErrorCode::kResourceExhausted,
                     fmt::format("{} reports are being rendered and {} are waiting; try again in a few seconds",
                                 running_, waiting_));
  }
  ++waiting_;
  bool got = cv_.wait_for(lock, max_wait_, [&] { return running_ < max_running_; });
  --waiting_;
  if (!got) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("no report slot became free within {} s; try again in a minute",
                                 max_wait_.count() / 1000));
  }
  ++running_;
  return Slot(this);
}

int ReportGate::running() const {
  std::lock_guard lock(mu_);
  return running_;
}

}  // namespace opensense::reports
