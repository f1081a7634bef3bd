#include "sim/fridge_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <utility>

namespace opensense::sim {

namespace {

constexpr double kMinutesPerMs = 1.0 / static_cast<double>(kMsPerMinute);
constexpr int kBusinessOpensMinute = 8 * 60;
constexpr int kBusinessClosesMinute = 22 * 60;
constexpr TimestampMs kLocalBucketMs = 15 * kMsPerMinute;
constexpr double kFridgeDefrostEndC = 8.5;

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, statistically good enough for a simulation,
// and identical on every platform (unlike the std:: distributions).
std::uint64_t NextRandom(std::uint64_t* state) {
  std::uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double Round(double v, double scale) {
  return std::round(v * scale) / scale + 0.0;  // + 0.0 turns -0.0 into 0.0
}

TimestampMs FloorTo(TimestampMs t, TimestampMs unit) {
  TimestampMs q = t / unit;
  if (t % unit != 0 && t < 0) --q;
  return q * unit;
}

TimestampMs Minutes(double m) { return static_cast<TimestampMs>(m * kMsPerMinute); }

[[noreturn]] void Die(const std::string& message) {
  std::fputs(fmt::format("opensense::sim: {}\n", message).c_str(), stderr);
  std::abort();
}

}  // namespace

FridgeModel::FridgeModel(UnitSpec spec, TimestampMs start, TimeZone zone, TimestampMs step_ms)
    : spec_(std::move(spec)), zone_(std::move(zone)), step_ms_(step_ms), last_(start) {
  if (step_ms_ <= 0) Die(fmt::format("step_ms must be positive, got {}", step_ms_));
  if (!std::isfinite(spec_.set_point_c)) Die("set_point_c must be finite");
  state_.rng = spec_.seed;
  Params& p = params_;
  switch (spec_.kind) {
    case UnitKind::kFridge:
      break;  // the defaults of Params describe a reach-in fridge
    case UnitKind::kFreezer:
      p.leak_per_min = 0.004;
      p.cooling_c_per_min = 0.40;
      p.hysteresis_c = 2.0;
      p.defrost_rise_c = 8.0;
      p.door_rate_per_hour = 3;
      p.door_min_s = 5;
      p.door_max_s = 40;
      p.door_air_max_c = 3.0;
      p.humidity_base = 55;
      break;
    case UnitKind::kColdRoom:
      p.ambient_c = 17;
      p.business_heat_c = 2;
      p.leak_per_min = 0.005;
      p.cooling_c_per_min = 0.25;
      p.hysteresis_c = 1.5;
      p.defrost_rise_c = 4.0;
      p.door_rate_per_hour = 4;
      p.door_min_s = 20;
      p.door_max_s = 150;
      p.door_air_max_c = 2.0;
      p.humidity_base = 70;
      break;
  }
  // The seed gives each unit its own character.
  p.leak_per_min *= Uniform(0.85, 1.15);
  p.cooling_c_per_min *= Uniform(0.9, 1.1);
  p.door_rate_per_hour *= Uniform(0.6, 1.4);
  p.humidity_base += Uniform(-5, 5);
  p.battery_drain_per_ms = Uniform(2.5, 3.5) / static_cast<double>(14 * kMsPerDay);
  p.failing_capacity = Uniform(0.0, 0.05);

  State& s = state_;
  s.cabinet_c = spec_.set_point_c + Uniform(-p.hysteresis_c, p.hysteresis_c);
  s.compressor_on = Uniform() < 0.5;
  s.humidity = p.humidity_base;
  s.battery = 100.0 - Uniform(0, 4);
  s.next_defrost_at = start + Minutes(Uniform(30, 7 * 60));
  s.episode_start = s.degrade_end = s.stuck_end = start;
  s.next_episode_at = start + Minutes(Uniform(5, 30));
}

std::vector<SimReading> FridgeModel::AdvanceTo(TimestampMs t) {
  std::vector<SimReading> out;
  if (t < last_ + step_ms_) return out;
  out.reserve(static_cast<std::size_t>((t - last_) / step_ms_) * 4);
  while (t - last_ >= step_ms_) {
    last_ += step_ms_;
    Step(last_, &out);
  }
  return out;
}

double FridgeModel::Uniform() {
  return static_cast<double>(NextRandom(&state_.rng) >> 11) * 0x1.0p-53;
}

double FridgeModel::Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

double FridgeModel::Normal(double sd) {
  // Box-Muller; 1 - u keeps the logarithm away from zero.
  double u1 = 1.0 - Uniform();
  double u2 = Uniform();
  return sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

int FridgeModel::LocalMinuteOfDay(TimestampMs ts) {
  TimestampMs bucket = FloorTo(ts, kLocalBucketMs);
  if (bucket != local_bucket_) {
    std::string hhmm = zone_.FormatLocal(bucket, "%H:%M");
    if (hhmm.size() != 5) Die(fmt::format("unexpected local time '{}'", hhmm));
    local_bucket_minute_ =
        ((hhmm[0] - '0') * 10 + (hhmm[1] - '0')) * 60 + (hhmm[3] - '0') * 10 + (hhmm[4] - '0');
    local_bucket_ = bucket;
  }
  return static_cast<int>((local_bucket_minute_ + (ts - bucket) / kMsPerMinute) % (24 * 60));
}

// 1 for a healthy compressor; a failing one fades over 30-50 min, stays weak for 90-150 min,
// then recovers (its overload protector resets) for 2-4 h until the next episode.
double FridgeModel::CompressorCapacity(TimestampMs ts) {
  if (!spec_.failing) return 1.0;
  State& s = state_;
  if (ts >= s.next_episode_at) {
    s.episode_start = ts;
    s.degrade_end = ts + Minutes(Uniform(30, 50));
    s.stuck_end = s.degrade_end + Minutes(Uniform(90, 150));
    s.next_episode_at = s.stuck_end + Minutes(Uniform(120, 240));
  }
  const double weakest = params_.failing_capacity;
  if (ts < s.episode_start || ts >= s.stuck_end) return 1.0;
  if (ts >= s.degrade_end) return weakest;
  double progress = static_cast<double>(ts - s.episode_start) /
                    static_cast<double>(s.degrade_end - s.episode_start);
  return 1.0 - (1.0 - weakest) * progress;
}

void FridgeModel::Step(TimestampMs ts, std::vector<SimReading>* out) {
  const Params& p = params_;
  State& s = state_;
  const double dt_min = static_cast<double>(step_ms_) * kMinutesPerMs;
  const TimestampMs step_begin = ts - step_ms_;
  const int local_minute = LocalMinuteOfDay(ts);
  const bool open_for_business =
      local_minute >= kBusinessOpensMinute && local_minute < kBusinessClosesMinute;
  const double ambient = p.ambient_c + (open_for_business ? p.business_heat_c : 0.0);
  const double capacity = CompressorCapacity(ts);

  // Defrost: the compressor stops and a heater warms the cabinet until the termination
  // thermostat ends it at its peak; then the thermostat pulls the cabinet back down.
  if (ts >= s.next_defrost_at && s.defrost_steps_left == 0) {
    const double duration_min = Uniform(20, 30);
    s.defrost_steps_left = std::max(1, static_cast<int>(std::lround(duration_min / dt_min)));
    s.defrost_peak_c = spec_.set_point_c + p.defrost_rise_c;
    // A fridge's termination thermostat ends the defrost at a fixed temperature, so a fridge
    // set warmer (a vaccine fridge at 5 °C) does not peak further above 8 °C than one at 4 °C.
    if (spec_.kind == UnitKind::kFridge) {
      s.defrost_peak_c = std::min(s.defrost_peak_c, kFridgeDefrostEndC);
    }
    s.next_defrost_at = ts + Minutes(Uniform(6.5 * 60, 7.5 * 60));
  }
  const bool defrosting = s.defrost_steps_left > 0;
  if (defrosting) {
    // Heat towards the peak, reaching it on the last step; door openings do not push it higher.
    s.cabinet_c += std::max(0.0, s.defrost_peak_c - s.cabinet_c) / s.defrost_steps_left;
    --s.defrost_steps_left;
    s.compressor_on = false;
  } else {
    // Thermostat and heat flow, in sub-steps of at most a minute so that longer steps do not
    // overshoot the hysteresis band.
    const int sub_steps = std::max(1, static_cast<int>(std::ceil(dt_min)));
    const double h = dt_min / sub_steps;
    for (int i = 0; i < sub_steps; ++i) {
      if (s.cabinet_c > spec_.set_point_c + p.hysteresis_c) s.compressor_on = true;
      if (s.cabinet_c < spec_.set_point_c - p.hysteresis_c) s.compressor_on = false;
      double rate = p.leak_per_min * (ambient - s.cabinet_c);
      if (s.compressor_on) rate -= p.cooling_c_per_min * capacity;
      s.cabinet_c += rate * h;
    }
  }

  // Door: openings only while the business is open; closing time shuts any open door.
  double open_ms = 0;
  if (!open_for_business) {
    s.door_open_until = 0;
  } else if (s.door_open_until > step_begin) {
    open_ms = static_cast<double>(std::min(ts, s.door_open_until) - step_begin);
  } else if (Uniform() < 1.0 - std::exp(-p.door_rate_per_hour / 60.0 * dt_min)) {
    const TimestampMs opened_at = step_begin + static_cast<TimestampMs>(Uniform() * step_ms_);
    s.door_open_until =
        opened_at + static_cast<TimestampMs>(Uniform(p.door_min_s, p.door_max_s) * kMsPerSecond);
    open_ms = static_cast<double>(std::min(ts, s.door_open_until) - opened_at);
    s.humidity += Uniform(3, 8);  // warm moist air comes in
  }
  const bool door_open = open_ms > 0;
  const double open_min = open_ms * kMinutesPerMs;
  const double closed_min = std::max(0.0, dt_min - open_min);
  if (open_min > 0) {
    s.door_air_c = p.door_air_max_c - (p.door_air_max_c - s.door_air_c) * std::exp(-open_min / 0.5);
    s.cabinet_c += 0.1 * open_min;  // warm air and hands on the contents
  }
  s.door_air_c *= std::exp(-closed_min / 2.5);

  // Humidity: the running evaporator dries the air, a defrost releases moisture.
  double humidity_target = p.humidity_base + (s.compressor_on ? -6.0 : 4.0);
  if (defrosting) humidity_target += 15.0;
  s.humidity += (humidity_target - s.humidity) * (1.0 - std::exp(-dt_min / 20.0));
  s.humidity = std::clamp(s.humidity, 40.0, 90.0);

  s.battery = std::max(0.0, s.battery - p.battery_drain_per_ms * static_cast<double>(step_ms_));

  const double temperature = s.cabinet_c + s.door_air_c + Normal(0.05);
  const double humidity = std::clamp(s.humidity + Normal(0.3), 40.0, 90.0);
  out->push_back(SimReading{ts, "temperature", "Cel", Round(temperature, 100)});
  out->push_back(SimReading{ts, "humidity", "%RH", Round(humidity, 100)});
  out->push_back(SimReading{ts, "battery", "%EL", Round(s.battery, 10)});
  out->push_back(SimReading{ts, "door", "/", door_open ? 1.0 : 0.0});
}

std::vector<UnitSpec> DemoUnits(std::uint64_t seed) {
  std::vector<UnitSpec> units = {
      {"Kitchen fridge", UnitKind::kFridge, 4.0, false, 0},
      {"Walk-in cold room", UnitKind::kColdRoom, 3.0, false, 0},
      {"Freezer", UnitKind::kFreezer, -18.0, false, 0},
      {"Drinks fridge", UnitKind::kFridge, 4.0, true, 0},
      {"Vaccine fridge", UnitKind::kFridge, 5.0, false, 0},
  };
  std::uint64_t state = seed;
  for (UnitSpec& unit : units) unit.seed = NextRandom(&state);
  return units;
}

}  // namespace opensense::sim
