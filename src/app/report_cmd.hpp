// `opensense report` (a compliance report as PDF or the daily table as CSV, rendered from the
// store without a running server) and `opensense device profile` (the device fields reports
// and alert rules use). src/reports does the work.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "core/types.hpp"
#include "store/store.hpp"

namespace opensense::app {

struct ReportFlags {
  OrgId org = 0;
  std::string devices;  // "1,2,3"; empty: --site, or every device
  SiteId site = 0;
  std::string from, to;  // RFC 3339 or local dates YYYY-MM-DD (to: the whole day)
  std::string paper = "a4";
  std::string metric = "temperature";
  double activation_energy = 0;  // 0: the default 83.144 kJ/mol
  std::string output;            // -o FILE ("-": standard output)
  bool csv = false;
  std::string by;  // who generates it; default: the operator's login name
};

struct DeviceProfileFlags {
  OrgId org = 0;
  DeviceId device = 0;
  std::optional<double> target_min, target_max;
  std::optional<std::int64_t> interval_s;
  std::optional<bool> medicine;
  std::optional<std::string> calibration_date, calibration_due;
  bool clear_range = false, clear_calibration = false;
};

CLI::App* AddReportCommand(CLI::App& app, ReportFlags* flags);
CLI::App* AddDeviceProfileCommand(CLI::App* device_cmd, DeviceProfileFlags* flags);

// Exit codes: 0 written, 1 a store/report error (message on stderr says what to do), 2 usage.
int RunReportCommand(const ReportFlags& flags, store::Store& store, bool json);
int RunDeviceProfileCommand(const DeviceProfileFlags& flags, store::Store& store, bool json);

}  // namespace opensense::app
