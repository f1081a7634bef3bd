#include "app/demo.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "alerts/service.hpp"
#include "core/rollup.hpp"
#include "core/time_zone.hpp"
#include "sim/fridge_model.hpp"

namespace opensense::app {

namespace {

constexpr std::string_view kDemoZone = "Europe/Berlin";

std::vector<sim::UnitSpec> Units(const DemoOptions& options) {
  auto units = sim::DemoUnits(options.seed);
  std::vector<sim::UnitSpec> out;
  for (int i = 0; i < options.devices; ++i) {
    sim::UnitSpec u = units[static_cast<std::size_t>(i) % units.size()];
    if (static_cast<std::size_t>(i) >= units.size()) {
      u.name += " " + std::to_string(i / units.size() + 1);
      u.seed += static_cast<std::uint64_t>(i) * 7919;
      u.failing = false;
    }
    out.push_back(u);
  }
  return out;
}

// Feeds readings of every model up to `until` to the writer, one batch per simulated hour.
Status Feed(store::Store* store, OrgId org, const std::vector<DeviceId>& devices,
            std::vector<sim::FridgeModel>& models, TimestampMs until, TimestampMs slice,
            const std::function<void(TimestampMs)>& on_slice) {
  TimestampMs t = models.front().last();
  while (t < until) {
    t = std::min(until, t + slice);
    std::vector<Reading> batch;
    for (std::size_t i = 0; i < models.size(); ++i) {
      for (auto& r : models[i].AdvanceTo(t)) {
        batch.push_back(Reading{devices[i], std::move(r.metric), std::move(r.unit), r.ts, r.value});
      }
    }
    if (batch.empty()) continue;
    auto result = store->Ingest(org, std::move(batch)).get();
    if (!result) return tl::unexpected(result.error());
    if (!result->rejected.empty()) {
      spdlog::warn("demo: {} readings rejected, first: {}", result->rejected.size(),
                   result->rejected.front().message);
    }
    if (on_slice) on_slice(t);
  }
  return Ok();
}

std::vector<sim::FridgeModel> Models(const DemoOptions& options, TimestampMs start) {
  auto zone = TimeZone::Load(kDemoZone);
  std::vector<sim::FridgeModel> models;
  for (const auto& u : Units(options)) {
    models.emplace_back(u, start, zone ? *zone : TimeZone::Utc(), options.step_ms);
  }
  return models;
}

}  // namespace

Result<DemoHandle> SetUpDemo(store::Store* store, const Clock* clock, const DemoOptions& options,
                             const std::function<void(int)>& progress) {
  DemoHandle demo;
  OS_ASSIGN_OR_RETURN(auto orgs, store->ListOrganizations());
  for (const auto& o : orgs) {
    if (o.name == kDemoOrgName) {
      demo.org = o.id;
      OS_ASSIGN_OR_RETURN(auto devices, store->ListDevices(o.id));
      for (const auto& d : devices) demo.devices.push_back(d.id);
      break;
    }
  }
  if (demo.org != 0 && static_cast<int>(demo.devices.size()) >= options.devices) {
    demo.devices.resize(static_cast<std::size_t>(options.devices));
    return demo;
  }
  if (demo.org == 0) {
    OS_ASSIGN_OR_RETURN(auto org, store->CreateOrganization(
                                      {std::string(kDemoOrgName), std::string(kDemoZone), Tier::kTeam}));
    demo.org = org.id;
  }
  demo.created = true;
  auto units = Units(options);
  OS_ASSIGN_OR_RETURN(auto site, store->CreateSite(demo.org, "Main kitchen"));
  for (std::size_t i = demo.devices.size(); i < units.size(); ++i) {
    OS_ASSIGN_OR_RETURN(auto dev, store->CreateDevice({demo.org, units[i].name, site.id,
                                                       "demo-" + std::to_string(i + 1)}));
    demo.devices.push_back(dev.id);
  }
  for (std::size_t i = 0; i < units.size() && i < demo.devices.size(); ++i) {
    if (units[i].failing) demo.failing_device = demo.devices[i];
  }
  if (options.before_backfill) OS_RETURN_IF_ERROR(options.before_backfill(demo));
  const TimestampMs now = clock->NowMs();
  const TimestampMs start = FloorTo(now, options.step_ms) -
                            static_cast<TimestampMs>(options.history_days) * kMsPerDay;
  auto models = Models(options, start);
  OS_RETURN_IF_ERROR(Feed(store, demo.org, demo.devices, models, now, kMsPerHour,
                          [&](TimestampMs t) {
                            if (progress && now > start) {
                              progress(static_cast<int>(100 * (t - start) / (now - start)));
                            }
                          }));
  return demo;
}

Status CreateDemoAlertRules(alerts::AlertService* service, const DemoHandle& demo, TimestampMs judge_from) {
  if (service == nullptr) return Ok();
  const std::string notify = fmt::format(R"([{{"email": "{}"}}])", kDemoOwnerEmail);
  if (demo.failing_device) {
    OS_RETURN_IF_ERROR(service
                           ->CreateRule(demo.org,
                                        fmt::format(R"({{"name": "Fridge above 8 °C", "device": {}, "above": 8,
                                          "hysteresis": 0.5, "delay_minutes": 10, "severity": "critical",
                                          "notify": {}}})",
                                                    *demo.failing_device, notify),
                                        judge_from)
                           .map([](auto&&) {}));
  }
  return service
      ->CreateRule(demo.org,
                   fmt::format(R"({{"name": "No readings for 30 minutes", "kind": "offline",
                     "offline_after_minutes": 30, "severity": "warning", "notify": {}}})", notify))
      .map([](auto&&) {});
}

void RunDemoLive(store::Store* store, const Clock* clock, const DemoOptions& options,
                 const DemoHandle& demo, const std::atomic<bool>& stop) {
  // Live readings continue the model from now; the model's history before now is not replayed.
  TimestampMs now = clock->NowMs();
  auto models = Models(options, FloorTo(now, options.step_ms) - 30 * kMsPerMinute);
  for (auto& m : models) (void)m.AdvanceTo(FloorTo(now, options.step_ms));
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    TimestampMs t = clock->NowMs();
    if (t - models.front().last() < options.step_ms) continue;
    auto st = Feed(store, demo.org, demo.devices, models, t, options.step_ms, nullptr);
    if (!st) spdlog::warn("demo: live readings not stored: {}", st.error().message);
  }
}

}  // namespace opensense::app
