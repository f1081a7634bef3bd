// Compliance reports over HTTP (api/reports_routes.cpp): the PDF, the daily table as CSV, and
// the raw-readings CSV export. Rendered on demand, never stored; at most a few at a time.
#pragma once

#include <chrono>
#include <functional>
#include <string_view>

#include "api/api_internal.hpp"

namespace opensense::api::internal {

struct ReportRouteOptions {
  // Reports rendering at once, and requests that may wait for a slot (beyond: 429).
  int max_running = 2;
  int max_waiting = 4;
  // How long a waiting request waits for a slot before 503.
  std::chrono::milliseconds max_wait{20'000};
  // Called once per report download that succeeded (the audit trail): the action
  // ("report.compliance_pdf", "report.daily_csv", "report.readings_csv") and a JSON detail
  // (devices, period, digest). Null: logged only.
  std::function<void(const http::Request&, const auth::Principal&, std::string_view action,
                     const json& detail)>
      audit;
};

void RegisterReportRoutes(ApiContext& ctx, http::Router& r, ReportRouteOptions options = {});

}  // namespace opensense::api::internal
