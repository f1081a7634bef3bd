// `opensense simulate`: the fridge model's readings posted over HTTP, or published over MQTT,
// as real devices would.
#pragma once

#include <string>
#include <vector>

namespace opensense::app {

struct SimulateOptions {
  std::string url;       // http://host:port (or empty with `mqtt`)
  // mqtt://host:port or mqtts://host:port: publish to devices/<id>/readings (QoS 1) instead of
  // posting. Username = the device id (a device token) or site:<id> (a gateway token).
  std::string mqtt;
  std::vector<long> device_ids;  // MQTT: the device(s) published for (a gateway: its site's)
  long site = 0;                 // MQTT with a gateway token: the token's site
  std::string ca_file;           // mqtts://: CA bundle (default: the system's)
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
