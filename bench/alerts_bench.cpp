// Alert evaluation cost per reading, as a ratio to the writer's cost per reading, in one run:
// 1,000 devices x 5 rules each (an organisation-wide threshold rule, a site rule, a per-device
// band rule, an offline rule and a battery rule), minutely readings of temperature and battery.
//
//   build/release/bench/alerts_bench [--devices 1000] [--minutes 30]
//
// Phase 1 (baseline): the readings go through the real SQLite writer (Ingest, one batch per
// minute of all devices) with no commit listener: writer seconds per reading.
// Phase 2: the same kind of readings (the next minutes) through the writer with the alert service
// listening; the evaluator is drained on this thread after each batch and timed on its own:
// evaluation seconds per reading. Target: evaluation / writer < 0.20.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include <unistd.h>

#include "alerts/service.hpp"
#include "store/store.hpp"

using namespace opensense;

namespace {

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  int devices = 1000, minutes = 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--devices") == 0) devices = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--minutes") == 0) minutes = std::atoi(argv[i + 1]);
  }
  const std::string dir = fmt::format("/tmp/opensense-alerts-bench-{}", ::getpid());
  (void)std::system(fmt::format("rm -rf {} && mkdir -p {}", dir, dir).c_str());
  const TimestampMs start = 1767571200000;
  ManualClock clock(start);
  store::StoreOptions so;
  so.url = "sqlite://" + dir + "/opensense.db";
  so.clock = &clock;
  so.synchronous = store::Synchronous::kNormal;
  auto store = std::move(*store::OpenStore(so));
  const OrgId org = store->CreateOrganization({"Bench", "Europe/Berlin", Tier::kEnterprise})->id;
  const SiteId site = store->CreateSite(org, "Site")->id;
  std::vector<DeviceId> ids;
  for (int d = 0; d < devices; ++d) ids.push_back(store->CreateDevice({org, fmt::format("fridge {}", d), site, std::nullopt})->id);

  alerts::AlertServiceOptions ao;
  ao.clock = &clock;
  ao.evaluator_thread = false;
  alerts::AlertService service(store.get(), ao);
  // 5 rules per device: 2 shared (organisation, site) + 1 per device + offline + battery shared.
  (void)service.CreateRule(org, R"({"name": "org warm", "above": 8, "delay_minutes": 15, "hysteresis": 0.5})");
  (void)service.CreateRule(org, fmt::format(R"({{"name": "site cold", "site": {}, "below": 0, "delay_minutes": 15}})", site));
  (void)service.CreateRule(org, R"({"name": "offline", "kind": "offline", "offline_after_minutes": 30})");
  (void)service.CreateRule(org, R"({"name": "battery", "kind": "battery", "below": 10})");
  for (DeviceId id : ids) {
    (void)service.CreateRule(org, fmt::format(R"({{"name": "band {}", "device": {}, "above": 8, "below": 2, "delay_minutes": 20,
                                           "schedule": {{"from": "06:00", "to": "23:00"}}}})", id, id));
  }

  std::mt19937 rng(42);
  std::normal_distribution<double> noise(0, 0.3);
  auto batch_at = [&](int minute) {
    std::vector<Reading> batch;
    for (DeviceId id : ids) {
      const TimestampMs ts = start + minute * kMsPerMinute;
      batch.push_back({id, "temperature", "Cel", ts, 4.0 + noise(rng)});
      batch.push_back({id, "battery", "%EL", ts, 90.0});
    }
    return batch;
  };

  // Phase 1: the writer alone.
  std::size_t writer_readings = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int m = 0; m < minutes; ++m) {
    clock.Set(start + m * kMsPerMinute);
    auto b = batch_at(m);
    writer_readings += b.size();
    if (!store->Ingest(org, std::move(b)).get()) return 1;
  }
  const double writer_s = Seconds(std::chrono::steady_clock::now() - t0);

  // Phase 2: the writer with the listener; evaluation timed on its own.
  if (!service.Start()) return 1;
  std::size_t eval_readings = 0;
  double eval_s = 0, writer2_s = 0;
  for (int m = minutes; m < 2 * minutes; ++m) {
    clock.Set(start + m * kMsPerMinute);
    auto b = batch_at(m);
    eval_readings += b.size();
    auto w = std::chrono::steady_clock::now();
    if (!store->Ingest(org, std::move(b)).get()) return 1;
    auto e = std::chrono::steady_clock::now();
    service.Drain();
    writer2_s += Seconds(e - w);
    eval_s += Seconds(std::chrono::steady_clock::now() - e);
  }
  service.Stop();
  store->Close();
  (void)std::system(fmt::format("rm -rf {}", dir).c_str());
  const double writer_per = writer_s / static_cast<double>(writer_readings);
  const double eval_per = eval_s / static_cast<double>(eval_readings);
  fmt::print("devices {} rules/device 5 readings/phase {}\n", devices, writer_readings);
  fmt::print("writer (no listener):   {:.3f} us/reading ({:.0f} readings/s)\n", writer_per * 1e6, 1 / writer_per);
  fmt::print("writer (with listener): {:.3f} us/reading\n", writer2_s / static_cast<double>(eval_readings) * 1e6);
  fmt::print("alert evaluation:       {:.3f} us/reading\n", eval_per * 1e6);
  fmt::print("ratio evaluation/writer: {:.3f} (target < 0.20)\n", eval_per / writer_per);
  return 0;
}
