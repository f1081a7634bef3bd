// GET /api/v1/reports/compliance.pdf, /daily.csv and /readings.csv (see reports_routes.hpp).
#include "api/reports_routes.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <memory>

#include "core/retention.hpp"
#include "core/time_zone.hpp"
#include "reports/report.hpp"
#include "store/store.hpp"

#ifndef OPENSENSE_VERSION
#define OPENSENSE_VERSION "unknown"
#endif

namespace opensense::api::internal {

namespace {

using http::Request;
using http::Response;

constexpr const char* kRetryAfterSeconds = "5";
// Rows of the readings export are read one device-day at a time (bounded memory).
constexpr TimestampMs kReadingsSliceMs = kMsPerDay;
constexpr std::size_t kChunkBytes = 64 * 1024;

Response ReportError(const Error& e) {
  Response r = FromError(e);
  if (r.status == 429 || r.status == 503) r.SetHeader("Retry-After", kRetryAfterSeconds);
  return r;
}

// "user:7 ana@example.com" (the member's address from the store), or the principal alone.
std::string Requester(ApiContext& ctx, const auth::Principal& p) {
  if (p.user) {
    if (auto u = ctx.store->GetUser(p.org, *p.user)) return fmt::format("{} {}", p.Describe(), u->email);
  }
  return p.Describe();
}

struct Parsed {
  Organization org;
  TimeZone zone = TimeZone::Utc();
  reports::ReportRequest request;
};

Result<Parsed> ParseRequest(ApiContext& ctx, const Request& req, const auth::Principal& p,
                            const std::multimap<std::string, std::string>& query) {
  Parsed out;
  OS_ASSIGN_OR_RETURN(out.org, ctx.store->GetOrganization(p.org));
  OS_ASSIGN_OR_RETURN(out.zone, TimeZone::Load(out.org.time_zone));
  OS_ASSIGN_OR_RETURN(out.request, reports::ParseReportQuery(query, out.zone, ctx.clock->NowMs()));
  out.request.org = p.org;
  out.request.generated_by = Requester(ctx, p);
  out.request.software_version = OPENSENSE_VERSION;
  (void)req;
  return out;
}

json AuditDetail(const reports::ReportRequest& r, const TimeZone& zone) {
  return json{{"devices", r.devices},
              {"site", r.site ? json(*r.site) : json(nullptr)},
              {"from", zone.FormatLocal(r.from, "%Y-%m-%dT%H:%M:%S%Ez")},
              {"to", zone.FormatLocal(r.to, "%Y-%m-%dT%H:%M:%S%Ez")},
              {"metric", r.metric}};
}

class ReportRoutes {
 public:
  ReportRoutes(ApiContext* ctx, ReportRouteOptions options)
      : ctx_(ctx),
        options_(std::move(options)),
        gate_(options_.max_running, options_.max_waiting, options_.max_wait) {}

  Response CompliancePdf(Request& req, const auth::Principal& p) {
    std::string pdf_bytes;
    auto built = ParseAndBuild(req, p, [&](const reports::ReportData& d) -> Status {
      OS_ASSIGN_OR_RETURN(pdf_bytes, reports::RenderPdf(d));
      return Ok();
    });
    if (!built) return ReportError(built.error());
    const auto& [parsed, data] = *built;
    json detail = AuditDetail(parsed.request, parsed.zone);
    detail["digest"] = data.digest;
    detail["paper"] = reports::PaperName(parsed.request.paper);
    AuditDownload(req, p, "report.compliance_pdf", detail);
    Response r;
    r.status = 200;
    r.body = std::move(pdf_bytes);
    r.SetHeader("Content-Type", "application/pdf");
    r.SetHeader("Content-Disposition", fmt::format("attachment; filename=\"compliance-{}-{}.pdf\"",
                                                   parsed.zone.FormatLocal(parsed.request.from, "%Y-%m-%d"),
                                                   parsed.zone.FormatLocal(parsed.request.to - 1, "%Y-%m-%d")));
    r.SetHeader("X-Report-Digest", data.digest);
    return r;
  }

  Response DailyCsv(Request& req, const auth::Principal& p) {
    auto built = ParseAndBuild(req, p, [](const reports::ReportData&) { return Ok(); });
    if (!built) return ReportError(built.error());
    auto& [parsed_value, data_value] = *built;
    Parsed* parsed = &parsed_value;
    reports::ReportData* data = &data_value;
    // The table is small (at most 50 devices x 1096 days); it is cut into pieces and streamed.
    auto pieces = std::make_shared<std::vector<std::string>>();
    reports::WriteDailyCsv(*data, [&](std::string_view piece) {
      pieces->emplace_back(piece);
      return true;
    });
    json detail = AuditDetail(parsed->request, parsed->zone);
    detail["digest"] = data->digest;
    AuditDownload(req, p, "report.daily_csv", detail);
    auto next = std::make_shared<std::size_t>(0);
    Response r;
    r.status = 200;
    r.SetHeader("Content-Type", "text/csv; charset=utf-8");
    r.SetHeader("Content-Disposition", fmt::format("attachment; filename=\"daily-{}-{}.csv\"",
                                                   parsed->zone.FormatLocal(parsed->request.from, "%Y-%m-%d"),
                                                   parsed->zone.FormatLocal(parsed->request.to - 1, "%Y-%m-%d")));
    r.SetHeader("X-Report-Digest", data->digest);
    r.stream = [pieces, next](std::string& chunk) {
      if (*next < pieces->size()) chunk = std::move((*pieces)[(*next)++]);
      return *next < pieces->size();
    };
    return r;
  }

  // Raw readings (or, past raw retention, the finest rollup level still kept) of the devices,
  // streamed one device-day at a time.
  Response ReadingsCsv(Request& req, const auth::Principal& p) {
    auto query = req.query;
    Resolution level = Resolution::kRaw;
    if (auto it = query.find("resolution"); it != query.end()) {
      auto res = ParseResolution(it->second);
      if (!res || *res == Resolution::kAuto) {
        return Response::Error(400, "invalid_argument", "'resolution' must be raw, 5m, 1h or 1d");
      }
      level = *res;
      query.erase("resolution");
    }
    auto parsed = ParseRequest(*ctx_, req, p, query);
    if (!parsed) return ReportError(parsed.error());
    auto devices = reports::ResolveReportDevices(*ctx_->store, parsed->request);
    if (!devices) return ReportError(devices.error());
    auto policy = ctx_->store->GetRetentionPolicy(p.org);
    if (!policy) return ReportError(policy.error());
    const TimestampMs now = ctx_->clock->NowMs();
    std::string note;
    static constexpr std::pair<Resolution, DataClass> kClasses[] = {
        {Resolution::kRaw, DataClass::kRawReadings}, {Resolution::k5m, DataClass::kRollup5m},
        {Resolution::k1h, DataClass::kRollup1h}, {Resolution::k1d, DataClass::kRollup1d}};
    for (std::size_t i = 0; i < std::size(kClasses); ++i) {
      if (kClasses[i].first != level) continue;
      auto cutoff = RetentionCutoff(policy->For(kClasses[i].second), now);
      if (!cutoff || *cutoff <= parsed->request.from || i + 1 == std::size(kClasses)) break;
      note = fmt::format("{} are kept for {}; the period starts before that", DataClassName(kClasses[i].second),
                         FormatRetentionPeriod(policy->For(kClasses[i].second)));
      level = kClasses[i + 1].first;
    }
    auto slot = gate_.Acquire();
    if (!slot) return ReportError(slot.error());
    json detail = AuditDetail(parsed->request, parsed->zone);
    detail["level"] = ResolutionName(level);
    AuditDownload(req, p, "report.readings_csv", detail);

    struct State {
      reports::ReportGate::Slot slot;
      std::vector<Device> devices;
      std::size_t device = 0;
      TimestampMs at = 0;
      bool header = false;
    };
    auto st = std::make_shared<State>();
    st->slot = std::move(*slot);
    st->devices = std::move(*devices);
    st->at = parsed->request.from;
    store::Store* store = ctx_->store;
    const reports::ReportRequest request = parsed->request;
    const TimeZone zone = parsed->zone;
    Response r;
    r.status = 200;
    r.SetHeader("Content-Type", "text/csv; charset=utf-8");
    r.SetHeader("Content-Disposition", fmt::format("attachment; filename=\"readings-{}-{}.csv\"",
                                                   zone.FormatLocal(request.from, "%Y-%m-%d"),
                                                   zone.FormatLocal(request.to - 1, "%Y-%m-%d")));
    r.SetHeader("X-Readings-Level", std::string(ResolutionName(level)));
    if (!note.empty()) r.SetHeader("X-Readings-Level-Note", note);
    r.stream = [st, store, request, zone, level](std::string& chunk) {
      if (!st->header) {
        chunk += "device_id,device,time,value,min,max,count,unit,level\n";
        st->header = true;
      }
      while (st->device < st->devices.size() && chunk.size() < kChunkBytes) {
        const Device& d = st->devices[st->device];
        const TimestampMs end = std::min(request.to, st->at + kReadingsSliceMs);
        auto series = store->QuerySeries({request.org, d.id, request.metric, st->at, end, level});
        if (!series) {
          chunk += fmt::format("# error: {} (the export is incomplete)\n", series.error().message);
          st->slot.Release();
          return false;
        }
        std::string name = d.name;
        for (char& c : name) {
          if (c == '"' || c == ',' || c == '\n' || c == '\r') c = ' ';
        }
        for (const SeriesPoint& pt : series->points) {
          fmt::format_to(std::back_inserter(chunk), "{},{},{},{},{},{},{},{},{}\n", d.id, name,
                         zone.FormatLocal(pt.t, "%Y-%m-%dT%H:%M:%E3S%Ez"), pt.v, pt.min, pt.max, pt.count,
                         series->unit, ResolutionName(level));
        }
        st->at = end;
        if (st->at >= request.to) {
          ++st->device;
          st->at = request.from;
        }
      }
      if (st->device >= st->devices.size()) {
        st->slot.Release();
        return false;
      }
      return true;
    };
    return r;
  }

 private:
  // Parses the query, waits for a report slot, builds the report and runs `render` on it while
  // the slot is held.
  Result<std::pair<Parsed, reports::ReportData>> ParseAndBuild(
      const Request& req, const auth::Principal& p, const std::function<Status(const reports::ReportData&)>& render) {
    OS_ASSIGN_OR_RETURN(Parsed parsed, ParseRequest(*ctx_, req, p, req.query));
    OS_ASSIGN_OR_RETURN(reports::ReportGate::Slot slot, gate_.Acquire());
    auto history = reports::MakeStoreAlertHistory(&ctx_->store->Alerts());
    OS_ASSIGN_OR_RETURN(reports::ReportData data,
                        reports::BuildReport(*ctx_->store, *history, parsed.request, ctx_->clock->NowMs()));
    OS_RETURN_IF_ERROR(render(data));
    return std::pair<Parsed, reports::ReportData>(std::move(parsed), std::move(data));
  }

  void AuditDownload(const Request& req, const auth::Principal& p, std::string_view action, const json& detail) {
    // Report downloads are audit events (target report:<kind>, the new value the devices and
    // period); ReportRouteOptions::audit replaces the call in tests.
    if (options_.audit) {
      options_.audit(req, p, action, detail);
      return;
    }
    std::string_view kind = action.substr(action.find('.') + 1);
    ctx_->Audit(req, p, action, fmt::format("report:{}", kind), nullptr, detail);
  }

  ApiContext* ctx_;
  ReportRouteOptions options_;
  reports::ReportGate gate_;
};

}  // namespace

void RegisterReportRoutes(ApiContext& ctx, http::Router& r, ReportRouteOptions options) {
  auto routes = std::make_shared<ReportRoutes>(&ctx, std::move(options));
  using P = const auth::Principal&;
  ctx.Route(r, "GET", "/api/v1/reports/compliance.pdf",
            "Compliance report (PDF) of devices or a site over a period, in the organisation's time zone",
            ctx.User(Role::kMember, [routes](Request& req, P p) { return routes->CompliancePdf(req, p); }));
  ctx.Route(r, "GET", "/api/v1/reports/daily.csv", "The report's daily table as CSV (streamed)",
            ctx.User(Role::kMember, [routes](Request& req, P p) { return routes->DailyCsv(req, p); }));
  ctx.Route(r, "GET", "/api/v1/reports/readings.csv",
            "Raw readings of devices over a period as CSV (streamed; past raw retention: the finest rollup kept)",
            ctx.User(Role::kMember, [routes](Request& req, P p) { return routes->ReadingsCsv(req, p); }));
}

}  // namespace opensense::api::internal
