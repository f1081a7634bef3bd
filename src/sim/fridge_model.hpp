// Simulated refrigerated units: the readings a fridge, freezer or cold room with a wireless
// sensor would send. Used by `opensense serve --demo` (back-fill plus live readings) and by the
// networked simulator. Pure and deterministic: the same spec, start, zone and step always give
// the same readings. No I/O, no clock, no global state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/time_zone.hpp"
#include "core/types.hpp"

namespace opensense::sim {

enum class UnitKind { kFridge, kFreezer, kColdRoom };

// What is simulated. The seed picks this unit's character (insulation, door traffic, battery)
// and its noise; two units with different seeds behave differently.
struct UnitSpec {
  std::string name;
  UnitKind kind = UnitKind::kFridge;
  double set_point_c = 4.0;  // thermostat set point, °C
  // The compressor repeatedly fails: its capacity fades over 30-50 min, the unit drifts warm
  // and stays above 8 °C (a fridge's limit) for 1-2.5 h, then the compressor recovers. The first
  // episode starts within 30 minutes of the model's start (8 °C is crossed within about 2 h);
  // the next one 2-4 h after each recovery, so any live window sees a breach within hours.
  bool failing = false;
  std::uint64_t seed = 0;
};

// One simulated measurement, in the units a SenML sensor would use.
//   temperature  Cel  2 decimals
//   humidity     %RH  2 decimals, 40..90
//   battery      %EL  1 decimal, never increases, 0..100
//   door         /    1 if the door was open at any time during the step ending at `ts`, else 0
struct SimReading {
  TimestampMs ts = 0;
  std::string metric;
  std::string unit;
  double value = 0;
};

// The state of one simulated unit, advanced step by step. Physics: compressor cycling with
// hysteresis around the set point, a defrost every 6.5-7.5 h (a warm spike of several degrees
// over 20-30 min), door openings only during local business hours (08:00-22:00 in `zone`) that
// briefly warm the air and raise humidity, slow battery drain and small sensor noise.
//
// A value type: cheap to copy (a copy continues exactly as the original would). Not
// synchronised: use one instance from one thread at a time.
class FridgeModel {
 public:
  // The first readings are at start + step_ms. step_ms must be positive; the model is tuned for
  // minutely steps and stays sensible up to a few minutes.
  FridgeModel(UnitSpec spec, TimestampMs start, TimeZone zone, TimestampMs step_ms = kMsPerMinute);

  // Emits one set of readings (temperature, humidity, battery, door, in that order) per step
  // boundary in (last, t], in time order, and moves `last` to the latest boundary emitted.
  // Returns nothing if t is before the next step. Calling it in many small pieces gives the
  // same readings as one big call.
  std::vector<SimReading> AdvanceTo(TimestampMs t);

  const UnitSpec& spec() const { return spec_; }
  // The timestamp of the latest readings emitted (the start before any).
  TimestampMs last() const { return last_; }
  TimestampMs step_ms() const { return step_ms_; }

 private:
  // Fixed at construction from the kind and the seed.
  struct Params {
    double ambient_c = 22;            // the room around the unit outside business hours
    double business_heat_c = 3;       // extra room warmth while the business is open
    double leak_per_min = 0.008;      // heat gain per minute: this share of (room - cabinet)
    double cooling_c_per_min = 0.45;  // compressor at full capacity
    double hysteresis_c = 1.5;        // compressor on above set + h, off below set - h
    double defrost_rise_c = 4.5;      // defrost peak above the set point (fridges: <= 8.5 °C)
    double door_rate_per_hour = 6;    // openings per hour during business hours
    double door_min_s = 10;           // length of one opening
    double door_max_s = 60;
    double door_air_max_c = 2;        // the sensor's air warms towards this while open
    double humidity_base = 60;        // %RH around which humidity moves
    double battery_drain_per_ms = 0;  // %EL
    double failing_capacity = 0.05;   // share of the cooling left while failing
  };
  struct State {
    std::uint64_t rng = 0;
    double cabinet_c = 0;   // the unit's air temperature without the door transient
    double door_air_c = 0;  // transient warming from an open door, decays once closed
    double humidity = 60;
    double battery = 100;
    bool compressor_on = false;
    TimestampMs next_defrost_at = 0;
    int defrost_steps_left = 0;
    double defrost_peak_c = 0;
    TimestampMs door_open_until = 0;
    // Failing units only: the current compressor episode and the start of the next.
    TimestampMs episode_start = 0;
    TimestampMs degrade_end = 0;
    TimestampMs stuck_end = 0;
    TimestampMs next_episode_at = 0;
  };

  void Step(TimestampMs ts, std::vector<SimReading>* out);
  double CompressorCapacity(TimestampMs ts);
  int LocalMinuteOfDay(TimestampMs ts);
  double Uniform();
  double Uniform(double lo, double hi);
  double Normal(double sd);

  UnitSpec spec_;
  TimeZone zone_;
  TimestampMs step_ms_;
  TimestampMs last_;
  Params params_;
  State state_;
  // Local time of day, cached per UTC quarter hour (every zone's offset is a multiple of 15 min).
  TimestampMs local_bucket_ = -1;
  int local_bucket_minute_ = 0;
};

// A handful of units for a demo restaurant with a pharmacy corner, exactly one of them failing.
// Names are distinct; each unit gets its own seed derived from `seed`.
std::vector<UnitSpec> DemoUnits(std::uint64_t seed);

}  // namespace opensense::sim
