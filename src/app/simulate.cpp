#include "app/simulate.hpp"

#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "api/http/client.hpp"
#include "core/clock.hpp"
#include "core/time_zone.hpp"
#include "sim/fridge_model.hpp"

namespace opensense::app {

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int RunSimulate(const SimulateOptions& o) {
  std::string host = o.url;
  if (host.rfind("http://", 0) == 0) host = host.substr(7);
  else if (host.find("://") != std::string::npos) {
    fmt::print(stderr, "opensense: simulate speaks plain HTTP (use the server's loopback address)\n");
    return 2;
  }
  while (!host.empty() && host.back() == '/') host.pop_back();
  bool gateway = o.token.rfind("osg_", 0) == 0;
  int devices = gateway ? std::max(1, o.devices) : 1;
  if (o.rate <= 0 || o.step_seconds <= 0) {
    fmt::print(stderr, "opensense: --rate and --step must be positive\n");
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  SystemClock clock;
  auto units = sim::DemoUnits(7);
  std::vector<sim::FridgeModel> models;
  const TimestampMs step = o.step_seconds * kMsPerSecond;
  // Readings start `backfill` in the past and catch up with the clock; never in the future.
  const TimestampMs start = clock.NowMs() - std::max<TimestampMs>(step, o.backfill_seconds * kMsPerSecond);
  for (int i = 0; i < devices; ++i) {
    sim::UnitSpec spec = units[static_cast<std::size_t>(i) % units.size()];
    spec.seed += static_cast<std::uint64_t>(i) * 7919;
    models.emplace_back(spec, start, TimeZone::Utc(), step);
  }
  http::KeepAliveClient client(host);
  const auto period = std::chrono::duration<double>(1.0 / o.rate);
  const auto begin = std::chrono::steady_clock::now();
  auto next = begin;
  long posts = 0, failures = 0;
  TimestampMs sim_time = start;
  auto last_report = begin;
  std::size_t turn = 0;
  while (g_stop == 0) {
    if (o.duration_seconds > 0 && std::chrono::steady_clock::now() - begin >= std::chrono::seconds(o.duration_seconds)) break;
    std::this_thread::sleep_until(next);
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(period);
    std::size_t i = turn % models.size();
    if (i == 0 && sim_time + step > clock.NowMs()) continue;  // caught up: wait for the clock
    ++turn;
    if (i == 0) sim_time += step;
    std::string body = "[";
    for (const auto& r : models[i].AdvanceTo(sim_time)) {
      if (body.size() > 1) body += ",";
      body += gateway ? fmt::format(R"({{"device":"sim-{}","ts":{},"{}":{}}})", i + 1, r.ts, r.metric, r.value)
                      : fmt::format(R"({{"ts":{},"{}":{}}})", r.ts, r.metric, r.value);
    }
    body += "]";
    auto res = client.Send("POST", "/api/v1/ingest",
                           {{"Authorization", "Bearer " + o.token}, {"Content-Type", "application/json"}}, body);
    ++posts;
    if (!res || res->status >= 300) {
      ++failures;
      fmt::print(stderr, "simulate: post failed: {}\n",
                 res ? fmt::format("HTTP {} {}", res->status, res->body.substr(0, 200)) : res.error().message);
      if (res && (res->status == 401 || res->status == 403)) return 1;
    }
    if (std::chrono::steady_clock::now() - last_report >= std::chrono::seconds(10)) {
      last_report = std::chrono::steady_clock::now();
      fmt::print("simulate: {} posts, {} failed\n", posts, failures);
    }
  }
  fmt::print("simulate: done: {} posts from {} device(s), {} failed\n", posts, devices, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace opensense::app
