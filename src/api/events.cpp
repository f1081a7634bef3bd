#include "api/events.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>

#include "core/time_zone.hpp"

namespace opensense::api {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

struct EventHub::Stream {
  std::mutex mu;
  std::string pending;  // SSE text not yet handed to the server
  bool overflowed = false;
  std::function<void()> wake;
  SteadyClock::time_point opened;
  SteadyClock::time_point last_sent;
};

struct EventHub::Registry {
  std::mutex mu;
  std::map<OrgId, std::vector<std::weak_ptr<Stream>>> streams;
  std::size_t count = 0;

  void Remove(OrgId org, const Stream* stream) {
    std::lock_guard lock(mu);
    auto it = streams.find(org);
    if (it == streams.end()) return;
    auto& list = it->second;
    const auto before = list.size();
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const std::weak_ptr<Stream>& w) {
                                auto s = w.lock();
                                return !s || s.get() == stream;
                              }),
               list.end());
    count -= std::min(count, before - list.size());
    if (list.empty()) streams.erase(it);
  }
};

namespace {

// Deregisters a stream when the server destroys its producer (client gone, stream ended,
// shutdown). Cheap: it runs on an io thread.
struct Registration {
  Registration(std::weak_ptr<EventHub::Registry> r, OrgId o, const EventHub::Stream* s)
      : registry(std::move(r)), org(o), stream(s) {}
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  std::weak_ptr<EventHub::Registry> registry;
  OrgId org;
  const EventHub::Stream* stream;
  ~Registration() {
    if (auto r = registry.lock()) r->Remove(org, stream);
  }
};

std::string Event(std::string_view name, const json& data) {
  return fmt::format("event: {}\ndata: {}\n\n", name, data.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

EventHub::EventHub(EventHubOptions options)
    : options_(options), registry_(std::make_shared<Registry>()) {}

EventHub::~EventHub() { Detach(); }

void EventHub::Attach(store::Store* store) {
  std::lock_guard lock(attach_mu_);
  if (store_ != nullptr) return;
  store_ = store;
  listener_ = store->AddCommitListener(
      [this](std::vector<store::CommittedReadings>&& committed) { OnCommitted(std::move(committed)); },
      [this](OrgId org) { return Wants(org); });
}

void EventHub::Detach() {
  std::lock_guard lock(attach_mu_);
  if (store_ == nullptr) return;
  store_->RemoveCommitListener(listener_);
  store_ = nullptr;
}

bool EventHub::Wants(OrgId org) const {
  std::lock_guard lock(registry_->mu);
  return registry_->streams.count(org) > 0;
}

std::size_t EventHub::streams() const {
  std::lock_guard lock(registry_->mu);
  return registry_->count;
}

void EventHub::OnCommitted(std::vector<store::CommittedReadings>&& committed) {
  for (const auto& batch : committed) {
    if (batch.readings.empty() || !Wants(batch.org)) continue;
    // The newest reading per device and metric of this commit: what a tile shows.
    std::map<std::pair<DeviceId, std::string>, const Reading*> newest;
    for (const auto& r : batch.readings) {
      auto& slot = newest[{r.device, r.metric}];
      if (slot == nullptr || r.ts >= slot->ts) slot = &r;
    }
    json list = json::array();
    for (const auto& [key, r] : newest) {
      list.push_back({{"device", r->device}, {"metric", r->metric}, {"unit", r->unit}, {"t", r->ts}, {"v", r->value}});
    }
    Publish(batch.org, Event("readings", {{"readings", list}}));
  }
}

void EventHub::OnAlertChanged(OrgId org, const store::AlertRecord& a, std::string_view event) {
  if (!Wants(org)) return;
  json j = {{"id", a.id},           {"event", event},       {"state", a.state},   {"device", a.device},
            {"rule_id", a.rule_id}, {"rule_name", a.rule_name}, {"severity", a.severity}, {"kind", a.kind},
            {"metric", a.metric},   {"fired_at", FormatRfc3339(a.fired_at)}};
  j["peak"] = a.peak_value ? json(*a.peak_value) : json(nullptr);
  Publish(org, Event("alert", j));
}

void EventHub::Publish(OrgId org, const std::string& text) {
  std::vector<std::shared_ptr<Stream>> targets;
  {
    std::lock_guard lock(registry_->mu);
    auto it = registry_->streams.find(org);
    if (it == registry_->streams.end()) return;
    for (const auto& w : it->second) {
      if (auto s = w.lock()) targets.push_back(std::move(s));
    }
  }
  for (const auto& s : targets) {
    std::function<void()> wake;
    {
      std::lock_guard lock(s->mu);
      if (s->overflowed) continue;
      if (s->pending.size() + text.size() > options_.max_pending_bytes) {
        s->overflowed = true;  // the producer ends the stream; the client reconnects and reloads
      } else {
        s->pending += text;
      }
      wake = s->wake;
    }
    if (wake) wake();
  }
}

Result<http::Response> EventHub::Open(OrgId org) {
  auto stream = std::make_shared<Stream>();
  stream->opened = stream->last_sent = SteadyClock::now();
  stream->pending = fmt::format("retry: {}\n: OpenSense live updates\n\n", options_.retry.count()) +
                    Event("hello", {{"org", org}});
  {
    std::lock_guard lock(registry_->mu);
    auto& list = registry_->streams[org];
    if (registry_->count >= options_.max_streams || list.size() >= options_.max_streams_per_org) {
      if (list.empty()) registry_->streams.erase(org);
      return MakeError(ErrorCode::kResourceExhausted,
                       "too many live-update streams are open; the browser retries shortly");
    }
    list.push_back(stream);
    ++registry_->count;
  }
  auto registration = std::make_shared<Registration>(registry_, org, stream.get());
  const auto heartbeat = options_.heartbeat;
  const auto max_age = options_.max_stream_age;
  http::Response r;
  r.status = 200;
  r.SetHeader("Content-Type", "text/event-stream; charset=utf-8");
  r.SetHeader("Cache-Control", "no-store");
  r.SetHeader("X-Accel-Buffering", "no");
  r.stream = [stream, registration, heartbeat, max_age](std::string& chunk) {
    const auto now = SteadyClock::now();
    std::lock_guard lock(stream->mu);
    if (stream->overflowed || now - stream->opened >= max_age) return false;
    if (!stream->pending.empty()) {
      chunk.swap(stream->pending);
      stream->last_sent = now;
    } else if (now - stream->last_sent >= heartbeat) {
      chunk = ": keep-alive\n\n";
      stream->last_sent = now;
    }
    return true;
  };
  r.stream_wakeup = [stream](std::function<void()> wake) {
    std::lock_guard lock(stream->mu);
    stream->wake = std::move(wake);
  };
  r.stream_idle_poll = heartbeat;
  return r;
}

}  // namespace opensense::api
