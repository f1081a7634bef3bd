// AlertHistory on the alerts module's store (store::AlertStore, Store::Alerts()).
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "reports/report.hpp"
#include "store/alert_store.hpp"

namespace opensense::reports {

namespace {

class StoreAlertHistory final : public AlertHistory {
 public:
  explicit StoreAlertHistory(store::AlertStore* alerts) : alerts_(alerts) {}

  Result<std::vector<AlertRecord>> AlertsInPeriod(OrgId org, DeviceId device, TimestampMs from,
                                                  TimestampMs to) override {
    store::AlertFilter filter;
    filter.device = device;
    filter.to = to;  // fired before the end; those resolved before the start are dropped below
    filter.limit = kMaxAlertsPerDevice;
    OS_ASSIGN_OR_RETURN(std::vector<store::AlertRecord> stored, alerts_->ListAlerts(org, filter));
    std::vector<AlertRecord> out;
    for (const auto& a : stored) {
      TimestampMs start = std::min(a.started_at, a.fired_at);
      if (a.resolved_at.value_or(std::numeric_limits<TimestampMs>::max()) <= from || start >= to) continue;
      AlertRecord r;
      r.id = a.id;
      r.device = a.device;
      r.title = a.rule_name.empty() ? a.kind : fmt::format("{} ({})", a.rule_name, a.kind);
      r.start = start;
      r.end = a.resolved_at;
      r.peak = a.peak_value;
      if (!a.acknowledged_by.empty()) r.acknowledged_by = a.acknowledged_by;
      r.acknowledged_at = a.acknowledged_at;
      r.corrective_action = a.ack_note;
      if (!a.resolve_note.empty()) {
        r.corrective_action += (r.corrective_action.empty() ? "" : "; ") + std::string("resolved: ") + a.resolve_note;
      }
      r.late = a.late;
      out.push_back(std::move(r));
    }
    std::sort(out.begin(), out.end(), [](const AlertRecord& x, const AlertRecord& y) {
      return x.start != y.start ? x.start < y.start : x.id < y.id;
    });
    return out;
  }

 private:
  static constexpr int kMaxAlertsPerDevice = 10000;
  store::AlertStore* alerts_;
};

}  // namespace

std::unique_ptr<AlertHistory> MakeStoreAlertHistory(store::AlertStore* alerts) {
  return std::make_unique<StoreAlertHistory>(alerts);
}

}  // namespace opensense::reports
