// `opensense simulate`: the fridge model's readings posted over HTTP as real devices would.
#pragma once

#include <string>

namespace opensense::app {

struct SimulateOptions {
  std::string url;       // http://host:port
  std::string token;     // osd_ (one device) or osg_ (devices sim-1..sim-N, site auto-registration)
  int devices = 1;
  double rate = 1;       // posts per second, all devices together
  int duration_seconds = 0;
  int step_seconds = 60;  // simulated time between a device's readings
  int backfill_seconds = 3600;  // readings start this far back and catch up with the clock
};

// Returns the exit status; prints progress every 10 s and a summary at the end.
int RunSimulate(const SimulateOptions& options);

}  // namespace opensense::app
