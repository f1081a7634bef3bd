// OpenSense's MQTT subscriber: takes readings from `devices/<id>/readings` on a broker and
// stores them, acknowledging each QoS 1 message only after the commit that made it durable.
//
// One Subscriber runs one MQTT session per configured client id (a fixed id and a persistent
// session each), on its own I/O thread, and keeps reading while commits are pending. PUBACKs
// leave in the order the PUBLISHes arrived, each after the group commit of its batch. A payload
// or reading that can never be stored is logged with the device and reason, counted, and
// acknowledged; a store that refuses the batch (queue full, closing, I/O error) is not: the
// session is dropped and the broker delivers the messages again after the reconnect.
//
// Ownership: the store and the metrics registry are not owned and must outlive the Subscriber.
// Threads: Start/Stop from one thread; Stats from any.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/result.hpp"
#include "store/store.hpp"

namespace opensense::mqtt {

struct SubscriberOptions {
  // mqtt://HOST:PORT or mqtts://HOST:PORT (TLS, certificate and host name verified).
  std::string url;
  std::string username = "opensense";
  std::string password;  // from OPENSENSE_MQTT_PASSWORD; empty: none sent
  // One session per id. Every process sharing a subscription has ids of its own.
  std::vector<std::string> client_ids = {"opensense-ingest"};
  // Ids being retired: each is connected once, unsubscribed, drained (its queued readings stored
  // and acknowledged until the broker has sent nothing for `drain_idle_ms`) and its session
  // ended.
  std::vector<std::string> retired_client_ids;
  // Non-empty: $share/<group>/devices/+/readings.
  std::string shared_group;
  // PEM CA bundle for mqtts:// (empty: the system's default paths).
  std::string ca_file;
  int keepalive_seconds = 30;
  std::uint32_t session_expiry_seconds = 7 * 24 * 3600;
  // MQTT 5 Receive Maximum: messages in flight to us before we acknowledge.
  std::uint16_t receive_maximum = 10000;
  // Largest packet accepted (and announced to the broker).
  std::uint32_t max_packet_bytes = 16 * 1024 * 1024;
  // Reconnect back-off: from min to max, doubling, with jitter.
  int reconnect_min_ms = 100;
  int reconnect_max_ms = 30'000;
  int drain_idle_ms = 2000;
  const Clock* clock = nullptr;  // nullptr: the system clock
};

struct SubscriberStats {
  std::uint64_t received = 0;     // PUBLISH packets
  std::uint64_t stored = 0;       // readings accepted by the store
  std::uint64_t duplicates = 0;   // readings the store had already (redeliveries)
  std::uint64_t rejected = 0;     // readings or payloads that will never be stored
  std::uint64_t acked = 0;        // PUBACKs sent
  std::uint64_t reconnects = 0;
  std::uint64_t acks_pending = 0;
};

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Drops the sessions' connections (without ending the sessions, so the broker keeps queueing)
  // after the acknowledgements of every batch already committed were sent. Idempotent.
  virtual void Stop() = 0;
  virtual SubscriberStats Stats() const = 0;
  // true once every session has had a CONNACK and a SUBACK (for logs and tests).
  virtual bool Subscribed() const = 0;
};

// Checks the options and starts the sessions (connecting in the background, retrying forever).
Result<std::unique_ptr<Subscriber>> StartSubscriber(const SubscriberOptions& options,
                                                    store::Store* store, MetricsRegistry* metrics);

}  // namespace opensense::mqtt
