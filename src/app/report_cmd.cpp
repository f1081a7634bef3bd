#include "app/report_cmd.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "app/version.hpp"
#include "core/clock.hpp"
#include "core/time_zone.hpp"
#include "reports/report.hpp"

namespace opensense::app {

namespace {

using nlohmann::json;

std::string OperatorName() {
  for (const char* var : {"SUDO_USER", "USER", "LOGNAME"}) {
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') return v;
  }
  if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_name != nullptr) return pw->pw_name;
  return "unknown";
}

int Fail(const std::string& message, bool json_out) {
  if (json_out) fmt::print("{}\n", json({{"error", message}}).dump(2));
  fmt::print(stderr, "opensense: report: {}\n", message);
  return 1;
}

json ProfileJson(const Device& d) {
  const DeviceProfile& p = d.profile;
  auto opt = [](const auto& v) { return v ? json(*v) : json(nullptr); };
  return {{"id", d.id},
          {"name", d.name},
          {"target_min", opt(p.target_min)},
          {"target_max", opt(p.target_max)},
          {"expected_interval_s", opt(p.expected_interval_s)},
          {"medicine_storage", p.medicine_storage},
          {"calibration_date", opt(p.calibration_date)},
          {"calibration_due", opt(p.calibration_due)}};
}

}  // namespace

CLI::App* AddReportCommand(CLI::App& app, ReportFlags* f) {
  auto* cmd = app.add_subcommand("report", "Render a compliance report (PDF) or its daily table (--csv) from the store");
  cmd->add_option("--org", f->org, "Organisation id")->required();
  cmd->add_option("--from", f->from, "Start: RFC 3339 or a local date YYYY-MM-DD")->required();
  cmd->add_option("--to", f->to, "End: RFC 3339 (exclusive) or a local date YYYY-MM-DD (that whole day)")->required();
  cmd->add_option("--devices", f->devices, "Device ids, comma-separated (default: every device, or --site)");
  cmd->add_option("--site", f->site, "Every device of this site");
  cmd->add_option("--paper", f->paper, "a4 or letter")->capture_default_str();
  cmd->add_option("--metric", f->metric, "The metric reported")->capture_default_str();
  cmd->add_option("--ea", f->activation_energy, "Activation energy for the mean kinetic temperature, kJ/mol (default 83.144)");
  cmd->add_option("-o,--output", f->output, "Output file ('-': standard output)")->required();
  cmd->add_flag("--csv", f->csv, "Write the daily table as CSV instead of the PDF");
  cmd->add_option("--by", f->by, "Who generates the report (default: your login name)");
  return cmd;
}

CLI::App* AddDeviceProfileCommand(CLI::App* device_cmd, DeviceProfileFlags* f) {
  auto* cmd = device_cmd->add_subcommand(
      "profile", "Show or set what reports and alert rules use: target range, reading interval, medicine flag, calibration");
  cmd->add_option("--org", f->org, "Organisation id")->required();
  cmd->add_option("--device", f->device, "Device id")->required();
  cmd->add_option("--target-min", f->target_min, "Lower limit of the target range (°C)");
  cmd->add_option("--target-max", f->target_max, "Upper limit of the target range (°C)");
  cmd->add_option("--interval", f->interval_s, "Expected reading interval, seconds");
  cmd->add_option("--medicine", f->medicine, "Medicine storage (true/false): reports give the MKT");
  cmd->add_option("--calibration-date", f->calibration_date, "Calibration certificate date YYYY-MM-DD");
  cmd->add_option("--calibration-due", f->calibration_due, "Calibration due date YYYY-MM-DD");
  cmd->add_flag("--clear-range", f->clear_range, "Remove the target range");
  cmd->add_flag("--clear-calibration", f->clear_calibration, "Remove the calibration dates");
  return cmd;
}

int RunDeviceProfileCommand(const DeviceProfileFlags& f, store::Store& store, bool json_out) {
  auto device = store.GetDevice(f.org, f.device);
  if (!device) return Fail(device.error().message + " (see `opensense device list --org N`)", json_out);
  DeviceProfile p = device->profile;
  if (f.clear_range) p.target_min.reset(), p.target_max.reset();
  if (f.clear_calibration) p.calibration_date.reset(), p.calibration_due.reset();
  if (f.target_min) p.target_min = f.target_min;
  if (f.target_max) p.target_max = f.target_max;
  if (f.interval_s) p.expected_interval_s = f.interval_s;
  if (f.medicine) p.medicine_storage = *f.medicine;
  if (f.calibration_date) p.calibration_date = f.calibration_date;
  if (f.calibration_due) p.calibration_due = f.calibration_due;
  if (p != device->profile) {
    store::DeviceUpdate up;
    up.profile = p;
    auto updated = store.UpdateDevice(f.org, f.device, up);
    if (!updated) return Fail(updated.error().message, json_out);
    device = std::move(updated);
  }
  if (json_out) {
    fmt::print("{}\n", ProfileJson(*device).dump(2));
    return 0;
  }
  const DeviceProfile& q = device->profile;
  auto num = [](const std::optional<double>& v) { return v ? fmt::format("{}", *v) : std::string("-"); };
  fmt::print("device {} '{}'\n  target range      {} .. {} °C\n  reading interval  {}\n  medicine storage  {}\n"
             "  calibration       {} (due {})\n",
             device->id, device->name, num(q.target_min), num(q.target_max),
             q.expected_interval_s ? fmt::format("{} s", *q.expected_interval_s) : "not set",
             q.medicine_storage ? "yes" : "no", q.calibration_date.value_or("not recorded"),
             q.calibration_due.value_or("-"));
  return 0;
}

int RunReportCommand(const ReportFlags& f, store::Store& store, bool json_out) {
  auto org = store.GetOrganization(f.org);
  if (!org) return Fail(org.error().message + " (see `opensense org list`)", json_out);
  auto zone = TimeZone::Load(org->time_zone);
  if (!zone) return Fail(zone.error().message, json_out);
  std::multimap<std::string, std::string> query = {{"from", f.from}, {"to", f.to}, {"paper", f.paper},
                                                   {"metric", f.metric}};
  if (!f.devices.empty()) query.emplace("devices", f.devices);
  if (f.site > 0) query.emplace("site", std::to_string(f.site));
  if (f.activation_energy > 0) query.emplace("ea", fmt::format("{}", f.activation_energy));
  const TimestampMs now = SystemClock().NowMs();
  auto request = reports::ParseReportQuery(query, *zone, now);
  if (!request) return Fail(request.error().message, json_out);
  request->org = f.org;
  request->generated_by = "cli:" + (f.by.empty() ? OperatorName() : f.by);
  request->software_version = kVersion;
  auto history = reports::MakeStoreAlertHistory(&store.Alerts());
  auto data = reports::BuildReport(store, *history, *request, now);
  if (!data) return Fail(data.error().message, json_out);

  std::string bytes;
  if (f.csv) {
    reports::WriteDailyCsv(*data, [&](std::string_view piece) {
      bytes.append(piece);
      return true;
    });
  } else {
    auto pdf = reports::RenderPdf(*data);
    if (!pdf) return Fail(pdf.error().message, json_out);
    bytes = std::move(*pdf);
  }
  if (f.output == "-") {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    return 0;
  }
  // Written beside the target and renamed, so a failed run never leaves half a report.
  const std::string tmp = f.output + ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      return Fail(fmt::format("cannot write {}: check the directory exists and is writable", f.output), json_out);
    }
  }
  if (std::rename(tmp.c_str(), f.output.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Fail(fmt::format("cannot write {}", f.output), json_out);
  }
  std::size_t excursions = 0, gaps = 0;
  for (const auto& d : data->devices) excursions += d.excursions.size(), gaps += d.gaps.size();
  if (json_out) {
    fmt::print("{}\n", json({{"output", f.output},
                             {"format", f.csv ? "csv" : "pdf"},
                             {"bytes", bytes.size()},
                             {"devices", data->devices.size()},
                             {"excursions", excursions},
                             {"gaps", gaps},
                             {"digest", data->digest},
                             {"level_note", data->level_note}})
                           .dump(2));
  } else {
    fmt::print("wrote {} ({} bytes): {} device(s), {} excursion(s), {} gap(s)\nSHA-256 of the data: {}\n", f.output,
               bytes.size(), data->devices.size(), excursions, gaps, data->digest);
    if (!data->level_note.empty()) fmt::print("note: {}\n", data->level_note);
  }
  return 0;
}

}  // namespace opensense::app
