// Live updates for the dashboard: GET /api/v1/events streams Server-Sent Events of the caller's
// organisation — the readings each commit stored (the newest per device and metric of the
// commit) and every alert change (fired, escalated, reminder, acknowledged, resolved).
//
// Where events come from: the store's commit listener (Attach; only organisations with an open
// stream are copied at all) and AlertService's alert_changed callback (OnAlertChanged). Both
// run on threads that must not wait (the writer, the alert evaluator): publishing appends the
// event's text to each of the organisation's streams and wakes it; nothing blocks.
//
// How streams are served: a stream is an http::Response whose producer takes what is queued,
// and whose wake-up (Response::stream_wakeup) lets the server call the producer as soon as an
// event is queued. Between events a stream holds no worker thread and is not polled; it is
// only looked at once per heartbeat (a comment line, so proxies and the browser keep it open).
// Bounds: max_streams in all and max_streams_per_org per organisation (beyond: 503 with
// Retry-After, and the browser's EventSource retries); a stream whose client does not read
// and falls max_pending_bytes behind is ended (the dashboard reconnects and reloads); and a
// stream ends after max_stream_age, so the browser's automatic reconnect authenticates again
// (a session that ended, or a member that was removed, stops receiving within that time).
//
// Threads: every method is thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "api/http/server.hpp"
#include "core/result.hpp"
#include "store/store.hpp"

namespace opensense::api {

struct EventHubOptions {
  // Open streams, in all and per organisation; beyond them a new stream is refused (503).
  std::size_t max_streams = 256;
  std::size_t max_streams_per_org = 32;
  // Queued, unsent text per stream; a stream that falls further behind is ended.
  std::size_t max_pending_bytes = 1 << 20;
  // A comment line after this long without an event.
  std::chrono::milliseconds heartbeat{15000};
  // A stream ends after this long; the browser reconnects (and authenticates again).
  std::chrono::milliseconds max_stream_age{5 * 60 * 1000};
  // The reconnection delay the stream asks the browser for (the SSE `retry:` field).
  std::chrono::milliseconds retry{3000};
};

class EventHub {
 public:
  explicit EventHub(EventHubOptions options = {});
  ~EventHub();  // Detach()
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  // Registers the commit listener on `store` (not owned; must outlive the hub or Detach).
  void Attach(store::Store* store);
  void Detach();

  // The commit listener and its filter (public for tests).
  void OnCommitted(std::vector<store::CommittedReadings>&& committed);
  bool Wants(OrgId org) const;
  // AlertServiceOptions::alert_changed.
  void OnAlertChanged(OrgId org, const store::AlertRecord& alert, std::string_view event);

  // A new stream of `org`'s events: a 200 text/event-stream response whose producer and
  // wake-up are set; kResourceExhausted beyond the bounds.
  Result<http::Response> Open(OrgId org);

  // Open streams (all organisations).
  std::size_t streams() const;

  struct Stream;    // one open stream (events.cpp)
  struct Registry;  // the open streams; shared with them, so a stream may outlive the hub

 private:
  void Publish(OrgId org, const std::string& text);

  const EventHubOptions options_;
  std::shared_ptr<Registry> registry_;
  std::mutex attach_mu_;
  store::Store* store_ = nullptr;
  store::CommitListenerId listener_ = 0;
};

}  // namespace opensense::api
