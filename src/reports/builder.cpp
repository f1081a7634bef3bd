// BuildReport: the store reads of a report and the digest of what it read.
#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <memory>

#include "core/retention.hpp"
#include "reports/report.hpp"
#include "store/store.hpp"

namespace opensense::reports {

namespace {

// SHA-256 over a canonical text: one line per stored row, numbers in their shortest exact form,
// strings length-prefixed, devices in request order and rows in time order.
class Digest {
 public:
  Digest() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Add(std::string_view text) { EVP_DigestUpdate(ctx_.get(), text.data(), text.size()); }
  std::string Hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &n);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

std::string Str(const std::optional<std::string>& s) {
  return s ? fmt::format("{}:{}", s->size(), *s) : std::string("-");
}
template <typename T>
std::string Opt(const std::optional<T>& v) {
  return v ? fmt::format("{}", *v) : std::string("-");
}

std::string_view LevelWords(Resolution r) {
  switch (r) {
    case Resolution::k5m: return "5-minute rollups";
    case Resolution::k1h: return "1-hour rollups";
    case Resolution::k1d: return "1-day rollups";
    default: return "raw readings";
  }
}

constexpr Resolution kLevels[] = {Resolution::k5m, Resolution::k1h, Resolution::k1d};
constexpr DataClass kLevelClass[] = {DataClass::kRollup5m, DataClass::kRollup1h, DataClass::kRollup1d};

}  // namespace

Result<std::vector<Device>> ResolveReportDevices(store::Store& store, const ReportRequest& request) {
  std::vector<Device> devices;
  if (!request.devices.empty()) {
    for (DeviceId id : request.devices) {
      auto d = store.GetDevice(request.org, id);
      if (!d) {
        if (d.error().code == ErrorCode::kNotFound) {
          return MakeError(ErrorCode::kNotFound, fmt::format("no device {} in this organisation", id));
        }
        return tl::unexpected(d.error());
      }
      devices.push_back(std::move(*d));
    }
  } else {
    if (request.site) {
      auto s = store.GetSite(request.org, *request.site);
      if (!s) {
        if (s.error().code == ErrorCode::kNotFound) {
          return MakeError(ErrorCode::kNotFound, fmt::format("no site {} in this organisation", *request.site));
        }
        return tl::unexpected(s.error());
      }
    }
    OS_ASSIGN_OR_RETURN(std::vector<Device> all, store.ListDevices(request.org));
    for (auto& d : all) {
      if (request.site && d.site_id != request.site) continue;
      devices.push_back(std::move(d));
    }
    if (devices.empty()) {
      return MakeError(ErrorCode::kNotFound, request.site ? "the site has no devices" : "the organisation has no devices");
    }
    if (devices.size() > kMaxReportDevices) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{} devices; a report covers at most {}: name them with 'devices'",
                                   devices.size(), kMaxReportDevices));
    }
  }

  return devices;
}

Result<ReportData> BuildReport(store::Store& store, AlertHistory& alerts, const ReportRequest& request,
                               TimestampMs now, bool alerts_available) {
  OS_RETURN_IF_ERROR(ValidatePeriod(request.from, request.to, now));
  ReportData data;
  data.request = request;
  data.generated_at = now;
  data.alerts_available = alerts_available;
  OS_ASSIGN_OR_RETURN(data.org, store.GetOrganization(request.org));
  OS_ASSIGN_OR_RETURN(TimeZone zone, TimeZone::Load(data.org.time_zone));
  data.time_zone = zone.name();

  OS_ASSIGN_OR_RETURN(std::vector<Site> sites, store.ListSites(request.org));
  std::map<SiteId, std::string> site_names;
  for (const auto& s : sites) site_names[s.id] = s.name;

  OS_ASSIGN_OR_RETURN(std::vector<Device> devices, ResolveReportDevices(store, request));

  // The finest rollup level whose retention still covers the start of the period.
  OS_ASSIGN_OR_RETURN(RetentionPolicy policy, store.GetRetentionPolicy(request.org));
  std::size_t first_level = 0;
  while (first_level + 1 < std::size(kLevels)) {
    auto cutoff = RetentionCutoff(policy.For(kLevelClass[first_level]), now);
    if (!cutoff || *cutoff <= request.from) break;
    ++first_level;
  }
  if (first_level > 0) {
    data.level_note = fmt::format(
        "5-minute rollups are kept for {}; this period starts before that, so it is reported from {}.",
        FormatRetentionPeriod(policy.For(DataClass::kRollup5m)), LevelWords(kLevels[first_level]));
  }

  Digest digest;
  digest.Add(fmt::format("opensense compliance report data v1\norg {}\nzone {}\nperiod {} {}\nmetric {}\nea {}\n",
                         data.org.id, data.time_zone, request.from, request.to, request.metric,
                         request.activation_energy_kj_mol));
  bool any_data = false;
  std::map<SiteId, bool> seen_sites;
  for (Device& d : devices) {
    DeviceReport dr;
    dr.device = std::move(d);
    if (dr.device.site_id) {
      auto it = site_names.find(*dr.device.site_id);
      dr.site_name = it == site_names.end() ? "" : it->second;
      if (!seen_sites[*dr.device.site_id] && !dr.site_name.empty()) data.site_names.push_back(dr.site_name);
      seen_sites[*dr.device.site_id] = true;
    }
    SeriesResult series;
    dr.level = kLevels[first_level];
    for (std::size_t l = first_level; l < std::size(kLevels); ++l) {
      SeriesQuery q{request.org, dr.device.id, request.metric, request.from, request.to, kLevels[l]};
      OS_ASSIGN_OR_RETURN(series, store.QuerySeries(q));
      dr.level = kLevels[l];
      if (!series.points.empty()) break;
    }
    if (series.points.empty()) dr.level = kLevels[first_level];
    if (!series.points.empty() && dr.level != kLevels[first_level]) {
      if (!data.level_note.empty()) data.level_note += " ";
      data.level_note += fmt::format("{}: no {} stored for this period; reported from {}.", dr.device.name,
                                     LevelWords(kLevels[first_level]), LevelWords(dr.level));
    }
    dr.unit = series.unit;
    any_data = any_data || !series.points.empty();
    const DeviceProfile& p = dr.device.profile;
    digest.Add(fmt::format("device {} {} level {} unit {} range {} {} interval {} medicine {} calibration {} {}\n",
                           dr.device.id, Str(dr.device.name), ResolutionName(dr.level), Str(dr.unit),
                           Opt(p.target_min), Opt(p.target_max), Opt(p.expected_interval_s),
                           p.medicine_storage ? 1 : 0, Str(p.calibration_date), Str(p.calibration_due)));
    std::string lines;
    for (const SeriesPoint& pt : series.points) {
      fmt::format_to(std::back_inserter(lines), "{} {} {} {} {}\n", pt.t, pt.v, pt.min, pt.max, pt.count);
      if (lines.size() > 64 * 1024) {
        digest.Add(lines);
        lines.clear();
      }
    }
    digest.Add(lines);
    ComputeDevice(series.points, request.from, request.to, now, zone, request.activation_energy_kj_mol, &dr);
    series.points.clear();
    series.points.shrink_to_fit();

    OS_ASSIGN_OR_RETURN(dr.alerts, alerts.AlertsInPeriod(request.org, dr.device.id, request.from, request.to));
    for (const AlertRecord& a : dr.alerts) {
      digest.Add(fmt::format("alert {} {} {} {} {} {} {} {} {}\n", a.id, Str(a.title), a.start, Opt(a.end),
                             Opt(a.peak), Str(a.acknowledged_by), Opt(a.acknowledged_at),
                             Str(a.corrective_action), a.late ? 1 : 0));
    }
    data.devices.push_back(std::move(dr));
  }
  if (!any_data) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("no stored '{}' data between {} and {} ({}) at any level (5-minute, 1-hour "
                                 "or 1-day rollups): check the period and the devices",
                                 request.metric, zone.FormatLocal(request.from, "%Y-%m-%d %H:%M"),
                                 zone.FormatLocal(request.to, "%Y-%m-%d %H:%M"), zone.name()));
  }
  data.digest = digest.Hex();
  return data;
}

}  // namespace opensense::reports
