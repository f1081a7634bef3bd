#include "app/simulate.hpp"

#include <fmt/format.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <csignal>
#include <functional>
#include <vector>
#include <thread>

#include "api/http/client.hpp"
#include "core/clock.hpp"
#include "core/time_zone.hpp"
#include "sim/fridge_model.hpp"

namespace opensense::app {

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// Runs `devices` fridge models from `backfill` ago, catching up with the clock and then keeping
// pace with it; every step of device i is handed to send(i, readings) at `rate` calls per second
// in all. report() runs every 10 s. Stops on SIGINT/SIGTERM, after the duration, or when send
// returns false (then false).
bool RunModels(const SimulateOptions& o, std::size_t devices,
               const std::function<bool(std::size_t, const std::vector<sim::SimReading>&)>& send,
               const std::function<void()>& report) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  SystemClock clock;
  auto units = sim::DemoUnits(7);
  std::vector<sim::FridgeModel> models;
  const TimestampMs step = o.step_seconds * kMsPerSecond;
  // Readings start `backfill` in the past and catch up with the clock; never in the future.
  const TimestampMs start = clock.NowMs() - std::max<TimestampMs>(step, o.backfill_seconds * kMsPerSecond);
  for (std::size_t i = 0; i < devices; ++i) {
    sim::UnitSpec spec = units[i % units.size()];
    spec.seed += static_cast<std::uint64_t>(i) * 7919;
    models.emplace_back(spec, start, TimeZone::Utc(), step);
  }
  const auto period = std::chrono::duration<double>(1.0 / o.rate);
  const auto begin = std::chrono::steady_clock::now();
  auto next = begin;
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
    if (!send(i, models[i].AdvanceTo(sim_time))) return false;
    if (std::chrono::steady_clock::now() - last_report >= std::chrono::seconds(10)) {
      last_report = std::chrono::steady_clock::now();
      report();
    }
  }
  return true;
}
}  // namespace

// MQTT: one libmosquitto client publishing the model's steps at QoS 1, as SenML.
int RunSimulateMqtt(const SimulateOptions& o) {
  std::string rest = o.mqtt;
  bool tls = false;
  if (rest.rfind("mqtt://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.rfind("mqtts://", 0) == 0) {
    rest = rest.substr(8);
    tls = true;
  } else {
    fmt::print(stderr, "opensense: --mqtt takes mqtt://HOST:PORT or mqtts://HOST:PORT\n");
    return 2;
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const std::size_t colon = rest.rfind(':');
  int port = 0;
  if (colon != std::string::npos) port = std::atoi(rest.c_str() + colon + 1);
  if (colon == std::string::npos || colon == 0 || port <= 0 || port > 65535) {
    fmt::print(stderr, "opensense: --mqtt needs HOST:PORT, e.g. mqtt://127.0.0.1:1883\n");
    return 2;
  }
  const std::string host = rest.substr(0, colon);
  const bool gateway = o.token.rfind("osg_", 0) == 0;
  if (o.device_ids.empty() || (!gateway && o.device_ids.size() != 1)) {
    fmt::print(stderr, "opensense: with --mqtt name the device: --device ID (a gateway token: --device "
                       "ID,ID,... of its site's devices and --site ID)\n");
    return 2;
  }
  if (gateway && o.site <= 0) {
    fmt::print(stderr, "opensense: a gateway token logs in as site:<id>: add --site ID\n");
    return 2;
  }
  if (o.rate <= 0 || o.step_seconds <= 0) {
    fmt::print(stderr, "opensense: --rate and --step must be positive\n");
    return 2;
  }
  mosquitto_lib_init();
  struct State {
    std::atomic<long> acked{0}, refused{0};
    std::atomic<int> connect_rc{-1};
  } state;
  const std::string username = gateway ? fmt::format("site:{}", o.site) : std::to_string(o.device_ids[0]);
  mosquitto* m = mosquitto_new(fmt::format("sim-{}-{}", username, ::getpid()).c_str(), true, &state);
  mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_username_pw_set(m, username.c_str(), o.token.c_str());
  if (tls) {
    const int rc = o.ca_file.empty() ? mosquitto_tls_set(m, nullptr, "/etc/ssl/certs", nullptr, nullptr, nullptr)
                                     : mosquitto_tls_set(m, o.ca_file.c_str(), nullptr, nullptr, nullptr, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      fmt::print(stderr, "opensense: TLS set-up failed: {} (check --ca-file)\n", mosquitto_strerror(rc));
      return 1;
    }
  }
  mosquitto_connect_v5_callback_set(m, [](mosquitto*, void* self, int rc, int, const mosquitto_property*) {
    static_cast<State*>(self)->connect_rc = rc;
  });
  mosquitto_publish_v5_callback_set(m, [](mosquitto*, void* self, int, int reason, const mosquitto_property*) {
    auto* st = static_cast<State*>(self);
    (reason < 0x80 ? st->acked : st->refused).fetch_add(1);
  });
  mosquitto_reconnect_delay_set(m, 1, 30, true);
  if (int rc = mosquitto_connect_async(m, host.c_str(), port, 30); rc != MOSQ_ERR_SUCCESS) {
    fmt::print(stderr, "opensense: cannot connect to {}: {}\n", o.mqtt, mosquitto_strerror(rc));
    return 1;
  }
  mosquitto_loop_start(m);
  for (int i = 0; i < 100 && state.connect_rc.load() == -1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (state.connect_rc.load() != 0) {
    fmt::print(stderr, "opensense: the broker refused {} ({}): check the device id, the token and --site\n",
               username, state.connect_rc.load() == -1 ? "no answer" : mosquitto_reason_string(state.connect_rc.load()));
    mosquitto_loop_stop(m, true);
    mosquitto_destroy(m);
    return 1;
  }
  long published = 0;
  RunModels(
      o, o.device_ids.size(),
      [&](std::size_t i, const std::vector<sim::SimReading>& readings) {
        std::string body = "[";
        for (const auto& r : readings) {
          if (body.size() > 1) body += ",";
          body += fmt::format(R"({{"n":"{}","u":"{}","t":{}.{:03},"v":{}}})", r.metric, r.unit, r.ts / 1000,
                              r.ts % 1000, r.value);
        }
        body += "]";
        const std::string topic = fmt::format("devices/{}/readings", o.device_ids[i]);
        mosquitto_property* props = nullptr;
        mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/senml+json");
        const int rc = mosquitto_publish_v5(m, nullptr, topic.c_str(), static_cast<int>(body.size()), body.data(),
                                            1, false, props);
        mosquitto_property_free_all(&props);
        if (rc == MOSQ_ERR_SUCCESS) ++published;
        else fmt::print(stderr, "simulate: publish failed: {}\n", mosquitto_strerror(rc));
        return true;
      },
      [&] {
        fmt::print("simulate: {} published, {} acknowledged by the broker, {} refused\n", published,
                   state.acked.load(), state.refused.load());
      });
  // Let the last acknowledgements arrive.
  for (int i = 0; i < 50 && state.acked + state.refused < published; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  mosquitto_disconnect(m);
  mosquitto_loop_stop(m, true);
  mosquitto_destroy(m);
  mosquitto_lib_cleanup();
  fmt::print("simulate: done: {} messages published for {} device(s), {} acknowledged, {} refused by the broker\n",
             published, o.device_ids.size(), state.acked.load(), state.refused.load());
  return state.refused == 0 && state.acked == published ? 0 : 1;
}

int RunSimulate(const SimulateOptions& o) {
  if (!o.mqtt.empty()) return RunSimulateMqtt(o);
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
  http::KeepAliveClient client(host);
  long posts = 0, failures = 0;
  const bool ok = RunModels(
      o, static_cast<std::size_t>(devices),
      [&](std::size_t i, const std::vector<sim::SimReading>& readings) {
        std::string body = "[";
        for (const auto& r : readings) {
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
          if (res && (res->status == 401 || res->status == 403)) return false;
        }
        return true;
      },
      [&] { fmt::print("simulate: {} posts, {} failed\n", posts, failures); });
  if (!ok) return 1;
  fmt::print("simulate: done: {} posts from {} device(s), {} failed\n", posts, devices, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace opensense::app
