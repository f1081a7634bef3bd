#include "ingest/mqtt/subscriber.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "ingest/mqtt/codec.hpp"
#include "ingest/mqtt/message.hpp"
#include "ingest/payload.hpp"

namespace opensense::mqtt {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;
using Steady = std::chrono::steady_clock;

constexpr Version kVersion = Version::kV5;
// A connection that lasted this long resets the reconnect back-off.
constexpr auto kStableConnection = std::chrono::seconds(10);

struct Endpoint {
  std::string host;
  std::string port;
  bool tls = false;
};

Result<Endpoint> ParseUrl(std::string_view url) {
  Endpoint e;
  if (url.rfind("mqtt://", 0) == 0) {
    url.remove_prefix(7);
  } else if (url.rfind("mqtts://", 0) == 0) {
    url.remove_prefix(8);
    e.tls = true;
  } else {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'{}' is not an MQTT URL: use mqtt://HOST:PORT or mqtts://HOST:PORT", url));
  }
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  const std::size_t colon = url.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == url.size()) {
    return MakeError(ErrorCode::kInvalidArgument, "the MQTT URL needs HOST:PORT, e.g. mqtt://127.0.0.1:1883");
  }
  e.host = std::string(url.substr(0, colon));
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
  e.port = std::string(url.substr(colon + 1));
  return e;
}

// Logs at most `burst` lines per 10 s; says how many were suppressed.
class LogLimiter {
 public:
  bool Allow() {
    const auto now = Steady::now();
    if (now - window_ > std::chrono::seconds(10)) {
      if (suppressed_ > 0) spdlog::warn("mqtt: {} more rejected readings not logged", suppressed_);
      window_ = now;
      used_ = 0;
      suppressed_ = 0;
    }
    if (used_ < 20) {
      ++used_;
      return true;
    }
    ++suppressed_;
    return false;
  }

 private:
  Steady::time_point window_{};
  int used_ = 0;
  long suppressed_ = 0;
};

class SubscriberImpl;

// One batch submitted to the store, waiting for its commit, and the PUBACKs it releases.
struct AckGroup {
  class Session* session = nullptr;
  std::uint64_t generation = 0;
  struct Submission {
    std::future<Result<IngestResult>> future;
    std::vector<DeviceId> devices;  // per reading, for the rejection log
  };
  std::vector<Submission> submissions;
  std::vector<std::uint16_t> packet_ids;  // in arrival order
};

class Session {
 public:
  Session(SubscriberImpl* owner, std::string client_id, bool retire)
      : owner_(owner), client_id_(std::move(client_id)), retire_(retire) {}

  awaitable<void> Run();
  // On the I/O thread: the commit of a group finished.
  void OnGroupDone(std::uint64_t generation, const std::vector<std::uint16_t>& ids,
                   const std::optional<Error>& failure);
  // On the I/O thread: begin a graceful stop (DISCONNECT keeping the session).
  void BeginStop();
  bool subscribed() const { return subscribed_.load(); }
  bool finished() const { return finished_.load(); }
  const std::string& client_id() const { return client_id_; }

 private:
  awaitable<Status> ConnectOnce();
  awaitable<void> ReadLoop();
  awaitable<void> KeepAlive(std::uint64_t generation);
  awaitable<void> DrainWatch(std::uint64_t generation);
  Status HandlePacket(Packet& packet, AckGroup& group);
  void HandlePublish(Publish& p, AckGroup& group);
  void Write(std::string bytes);
  void StartWrite();
  void Close();

  SubscriberImpl* owner_;
  std::string client_id_;
  bool retire_;
  std::unique_ptr<ssl::stream<tcp::socket>> stream_;
  bool tls_ = false;
  bool connected_ = false;
  std::uint64_t generation_ = 0;
  std::string in_;
  std::deque<std::string> out_;
  bool writing_ = false;
  std::uint16_t next_packet_id_ = 1;
  Steady::time_point last_sent_{}, last_received_{}, last_publish_{}, connected_since_{};
  bool unsubscribed_ = false;
  std::size_t pending_acks_ = 0;  // of this connection
  bool stopping_ = false;
  std::atomic<bool> subscribed_{false};
  std::atomic<bool> finished_{false};
};

class SubscriberImpl final : public Subscriber {
 public:
  SubscriberImpl(SubscriberOptions options, Endpoint endpoint, store::Store* store,
                 MetricsRegistry* metrics)
      : options_(std::move(options)),
        endpoint_(std::move(endpoint)),
        store_(store),
        ssl_ctx_(ssl::context::tls_client),
        received_(metrics->GetCounter("opensense_mqtt_messages_received_total",
                                      "MQTT PUBLISH packets received by the subscriber.")),
        stored_(metrics->GetCounter("opensense_mqtt_readings_stored_total",
                                    "Readings from MQTT committed to the store.")),
        duplicates_(metrics->GetCounter("opensense_mqtt_readings_duplicate_total",
                                        "Readings from MQTT the store had already (redeliveries).")),
        acked_(metrics->GetCounter("opensense_mqtt_acks_sent_total",
                                   "PUBACKs sent after the commit of their readings.")),
        reconnects_(metrics->GetCounter("opensense_mqtt_reconnects_total",
                                        "MQTT connections lost and opened again.")),
        sessions_lost_(metrics->GetCounter(
            "opensense_mqtt_sessions_lost_total",
            "Reconnects where the broker had no session any more (messages queued for it may be lost).")),
        acks_pending_(metrics->GetGauge("opensense_mqtt_acks_pending",
                                        "MQTT messages received and waiting for their commit before the PUBACK.")),
        connected_gauge_(metrics->GetGauge(
            "opensense_mqtt_connected",
            "MQTT subscriber connections that are up and subscribed (0: ingest over MQTT is down).")),
        metrics_(metrics) {
    clock_ = options_.clock != nullptr ? options_.clock : &system_clock_;
  }

  ~SubscriberImpl() override { Stop(); }

  Status Start() {
    if (endpoint_.tls) {
      error_code ec;
      ssl_ctx_.set_verify_mode(ssl::verify_peer, ec);
      if (!ec) {
        if (options_.ca_file.empty()) ssl_ctx_.set_default_verify_paths(ec);
        else ssl_ctx_.load_verify_file(options_.ca_file, ec);
      }
      if (ec) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("mqtt_ca_file '{}': {} (give a readable PEM file of CA certificates)",
                                     options_.ca_file, ec.message()));
      }
    }
    for (const auto& id : options_.client_ids) sessions_.push_back(std::make_unique<Session>(this, id, false));
    for (const auto& id : options_.retired_client_ids) sessions_.push_back(std::make_unique<Session>(this, id, true));
    for (auto& s : sessions_) {
      asio::co_spawn(io_, s->Run(), asio::detached);
    }
    work_.emplace(asio::make_work_guard(io_));
    io_thread_ = std::thread([this] { io_.run(); });
    acker_ = std::thread([this] { AckLoop(); });
    return Ok();
  }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      stopping_.store(true);
    }
    // No new batches are submitted now (the read loops see stopping_); let the pending ones
    // commit and their PUBACKs go out, then say goodbye.
    {
      std::unique_lock lock(mu_);
      idle_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return groups_.empty() && !acking_; });
      acker_stop_ = true;
    }
    cv_.notify_all();
    if (acker_.joinable()) acker_.join();
    std::promise<void> done;
    asio::post(io_, [&] {
      for (auto& s : sessions_) s->BeginStop();
      done.set_value();
    });
    done.get_future().wait();
    // Give the DISCONNECTs a moment to leave, then stop the loop.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    work_.reset();
    io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
  }

  SubscriberStats Stats() const override {
    SubscriberStats s;
    s.received = received_.Value();
    s.stored = stored_.Value();
    s.duplicates = duplicates_.Value();
    s.rejected = rejected_total_.load();
    s.acked = acked_.Value();
    s.reconnects = reconnects_.Value();
    s.acks_pending = pending_total_.load();
    return s;
  }

  bool Subscribed() const override {
    for (const auto& s : sessions_) {
      if (!s->subscribed() && !s->finished()) return false;
    }
    return true;
  }

  // ---- for sessions (I/O thread) ------------------------------------------------------------

  const SubscriberOptions& options() const { return options_; }
  const Endpoint& endpoint() const { return endpoint_; }
  asio::io_context& io() { return io_; }
  ssl::context& ssl_ctx() { return ssl_ctx_; }
  bool stopping() const { return stopping_.load(); }
  const Clock* clock() const { return clock_; }
  std::string Filter() const {
    const std::string topic = "devices/+/readings";
    return options_.shared_group.empty() ? topic : fmt::format("$share/{}/{}", options_.shared_group, topic);
  }

  void CountReceived() { received_.Inc(); }
  void CountAcked(std::size_t n) { acked_.Inc(n); }
  void CountReconnect() { reconnects_.Inc(); }
  void CountSessionLost() { sessions_lost_.Inc(); }
  // A session's connection came up (+1) or went down (-1).
  void CountConnected(int delta) {
    connected_gauge_.Set(static_cast<double>(connected_count_.fetch_add(delta) + delta));
  }
  void AddPending(std::int64_t n) {
    pending_total_ += static_cast<std::uint64_t>(n);
    acks_pending_.Set(static_cast<double>(pending_total_.load()));
  }

  void Reject(std::string_view reason, std::uint64_t n, std::optional<DeviceId> device,
              std::string_view detail) {
    rejected_total_ += n;
    metrics_->GetCounter("opensense_mqtt_rejected_total",
                         "MQTT payloads or readings that will never be stored, by reason.",
                         {{"reason", std::string(reason)}})
        .Inc(n);
    std::lock_guard lock(log_mu_);
    if (log_limiter_.Allow()) {
      spdlog::warn("mqtt: rejected {} from device {}: {}: {}", n == 1 ? "1 reading" : fmt::format("{} readings", n),
                   device ? std::to_string(*device) : std::string("?"), reason, detail);
    }
  }

  // The organisation of a device, cached (a device never changes organisation).
  Result<OrgId> OrgOf(DeviceId device) {
    if (auto it = orgs_.find(device); it != orgs_.end()) return it->second;
    auto org = store_->OrganizationOfDevice(device);
    if (!org) return org;
    if (orgs_.size() > 100'000) orgs_.clear();
    orgs_.emplace(device, *org);
    return org;
  }

  store::Store* store() { return store_; }

  void Submit(AckGroup group) {
    {
      std::lock_guard lock(mu_);
      groups_.push_back(std::move(group));
    }
    cv_.notify_one();
  }

 private:
  void AckLoop() {
    while (true) {
      AckGroup group;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !groups_.empty() || acker_stop_; });
        if (groups_.empty()) return;
        group = std::move(groups_.front());
        groups_.pop_front();
        acking_ = true;
      }
      std::optional<Error> failure;
      for (auto& sub : group.submissions) {
        auto r = sub.future.get();
        if (!r) {
          if (!failure) failure = r.error();
          continue;
        }
        stored_.Inc(r->accepted);
        duplicates_.Inc(r->duplicates);
        for (const auto& rej : r->rejected) {
          const DeviceId d = rej.index < sub.devices.size() ? sub.devices[rej.index] : 0;
          Reject(RejectReasonName(rej.reason), 1, d, rej.message);
        }
      }
      auto* session = group.session;
      const auto generation = group.generation;
      std::promise<void> posted;
      asio::post(io_, [session, generation, ids = std::move(group.packet_ids), failure, &posted] {
        session->OnGroupDone(generation, ids, failure);
        posted.set_value();
      });
      posted.get_future().wait();
      {
        std::lock_guard lock(mu_);
        acking_ = false;
      }
      idle_cv_.notify_all();
    }
  }

  SubscriberOptions options_;
  Endpoint endpoint_;
  store::Store* store_;
  SystemClock system_clock_;
  const Clock* clock_ = nullptr;
  asio::io_context io_;
  ssl::context ssl_ctx_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread io_thread_;
  std::thread acker_;
  std::vector<std::unique_ptr<Session>> sessions_;
  std::unordered_map<DeviceId, OrgId> orgs_;  // I/O thread only
  std::mutex log_mu_;
  LogLimiter log_limiter_;  // guarded by log_mu_ (the I/O thread and the acker both reject)
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<AckGroup> groups_;
  bool acking_ = false;
  bool acker_stop_ = false;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
  Counter& received_;
  Counter& stored_;
  Counter& duplicates_;
  Counter& acked_;
  Counter& reconnects_;
  Counter& sessions_lost_;
  Gauge& acks_pending_;
  Gauge& connected_gauge_;
  std::atomic<int> connected_count_{0};
  std::atomic<std::uint64_t> rejected_total_{0};
  std::atomic<std::uint64_t> pending_total_{0};
  MetricsRegistry* metrics_;
};

// ---- Session --------------------------------------------------------------------------------

awaitable<void> Session::Run() {
  const auto& o = owner_->options();
  std::mt19937_64 rng(std::random_device{}() ^ std::hash<std::string>{}(client_id_));
  int backoff_ms = o.reconnect_min_ms;
  bool first = true;
  while (!owner_->stopping() && !finished_) {
    if (!first) owner_->CountReconnect();
    first = false;
    Status st = co_await ConnectOnce();
    if (st) {
      const auto connected_at = Steady::now();
      co_await ReadLoop();
      // Only a connection that lasted resets the back-off: one the broker drops at once (e.g.
      // another process took the session over) must not turn into a reconnect storm.
      if (Steady::now() - connected_at >= kStableConnection) backoff_ms = o.reconnect_min_ms;
    } else if (!owner_->stopping()) {
      spdlog::warn("mqtt: {}: {}", client_id_, st.error().message);
    }
    Close();
    if (owner_->stopping() || finished_) break;
    // Full jitter between half and all of the current back-off.
    std::uniform_int_distribution<int> jitter(backoff_ms / 2, backoff_ms);
    const int wait_ms = jitter(rng);
    spdlog::info("mqtt: {}: reconnecting in {} ms", client_id_, wait_ms);
    asio::steady_timer timer(owner_->io(), std::chrono::milliseconds(wait_ms));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    backoff_ms = std::min(o.reconnect_max_ms, backoff_ms * 2);
  }
  finished_ = true;
}

awaitable<Status> Session::ConnectOnce() {
  const auto& o = owner_->options();
  const auto& ep = owner_->endpoint();
  auto& io = owner_->io();
  ++generation_;
  in_.clear();
  out_.clear();
  writing_ = false;
  pending_acks_ = 0;
  unsubscribed_ = false;
  subscribed_ = false;
  tls_ = ep.tls;
  stream_ = std::make_unique<ssl::stream<tcp::socket>>(io, owner_->ssl_ctx());

  // Everything up to the SUBACK must happen within 15 s.
  auto deadline = std::make_shared<asio::steady_timer>(io, std::chrono::seconds(15));
  auto* raw = stream_.get();
  deadline->async_wait([raw, this](error_code ec) {
    if (!ec && stream_.get() == raw) {
      error_code ignored;
      raw->next_layer().close(ignored);
    }
  });
  struct Cancel {
    std::shared_ptr<asio::steady_timer> t;
    ~Cancel() { t->cancel(); }
  } cancel{deadline};

  error_code ec;
  tcp::resolver resolver(io);
  auto endpoints = co_await resolver.async_resolve(ep.host, ep.port, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return MakeError(ErrorCode::kUnavailable, fmt::format("cannot resolve {}: {}", ep.host, ec.message()));
  co_await asio::async_connect(stream_->next_layer(), endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return MakeError(ErrorCode::kUnavailable,
                        fmt::format("cannot connect to {}:{}: {}", ep.host, ep.port, ec.message()));
  }
  stream_->next_layer().set_option(tcp::no_delay(true), ec);
  if (tls_) {
    SSL_set_tlsext_host_name(stream_->native_handle(), ep.host.c_str());
    stream_->set_verify_callback(ssl::host_name_verification(ep.host));
    co_await stream_->async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      co_return MakeError(ErrorCode::kUnavailable,
                          fmt::format("TLS handshake with {} failed: {} (check mqtt_ca_file)", ep.host, ec.message()));
    }
  }
  ConnectOptions co;
  co.version = kVersion;
  co.client_id = client_id_;
  co.username = o.username;
  if (!o.password.empty()) co.password = o.password;
  co.keepalive_seconds = static_cast<std::uint16_t>(o.keepalive_seconds);
  co.clean_start = false;
  co.session_expiry_seconds = o.session_expiry_seconds;
  co.receive_maximum = o.receive_maximum;
  co.maximum_packet_size = o.max_packet_bytes;
  auto connect = EncodeConnect(co);
  if (!connect) co_return tl::unexpected(connect.error());
  auto write_raw = [&](const std::string& bytes) -> awaitable<error_code> {
    error_code wec;
    if (tls_) co_await asio::async_write(*stream_, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, wec));
    else co_await asio::async_write(stream_->next_layer(), asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, wec));
    co_return wec;
  };
  auto read_packet = [&]() -> awaitable<Result<Packet>> {
    std::array<char, 4096> buf;
    while (true) {
      auto d = DecodePacket(in_, kVersion, o.max_packet_bytes);
      if (!d) co_return tl::unexpected(d.error());
      if (*d) {
        in_.erase(0, (*d)->size);
        co_return std::move((*d)->packet);
      }
      error_code rec;
      std::size_t n = tls_ ? co_await stream_->async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, rec))
                           : co_await stream_->next_layer().async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, rec));
      if (rec) co_return MakeError(ErrorCode::kUnavailable, fmt::format("connection lost: {}", rec.message()));
      in_.append(buf.data(), n);
    }
  };
  if (auto wec = co_await write_raw(*connect)) {
    co_return MakeError(ErrorCode::kUnavailable, fmt::format("sending CONNECT: {}", wec.message()));
  }
  auto first = co_await read_packet();
  if (!first) co_return tl::unexpected(first.error());
  auto* connack = std::get_if<Connack>(&*first);
  if (connack == nullptr) co_return MakeError(ErrorCode::kUnavailable, "the broker did not answer CONNECT with CONNACK");
  if (connack->reason_code != 0) {
    std::string hint;
    if (connack->reason_code == 0x86 || connack->reason_code == 0x87) {
      hint = "; check mqtt_username and OPENSENSE_MQTT_PASSWORD, and that the broker's plugin knows this service credential";
    }
    co_return MakeError(ErrorCode::kPermissionDenied,
                        fmt::format("the broker refused the connection: {}{}{}",
                                    ReasonCodeText(connack->reason_code, kVersion),
                                    connack->reason_string ? " (" + *connack->reason_string + ")" : "", hint));
  }
  if (!connack->session_present && generation_ > 1) {
    owner_->CountSessionLost();
    spdlog::error("mqtt: {}: the broker had no session for us any more: readings it queued while we "
                  "were away may be lost (is persistence on, and mqtt_session_expiry_seconds long enough?)",
                  client_id_);
  }
  const std::string filter = owner_->Filter();
  const std::uint16_t sub_id = next_packet_id_++;
  if (next_packet_id_ == 0) next_packet_id_ = 1;
  auto sub = retire_ ? EncodeUnsubscribe(kVersion, sub_id, filter) : EncodeSubscribe(kVersion, sub_id, filter, 1);
  if (!sub) co_return tl::unexpected(sub.error());
  if (auto wec = co_await write_raw(*sub)) {
    co_return MakeError(ErrorCode::kUnavailable, fmt::format("sending SUBSCRIBE: {}", wec.message()));
  }
  connected_ = true;
  owner_->CountConnected(+1);
  last_sent_ = last_received_ = last_publish_ = connected_since_ = Steady::now();
  spdlog::info("mqtt: {}: connected to {}:{}{} ({} session){}", client_id_, ep.host, ep.port, tls_ ? " (TLS)" : "",
               connack->session_present ? "resumed" : "new",
               retire_ ? fmt::format("; retiring: unsubscribing from {} and draining", filter)
                       : fmt::format("; subscribing to {}", filter));
  asio::co_spawn(io, KeepAlive(generation_), asio::detached);
  if (retire_) asio::co_spawn(io, DrainWatch(generation_), asio::detached);
  co_return Ok();
}

awaitable<void> Session::ReadLoop() {
  const auto& o = owner_->options();
  std::vector<char> buf(64 * 1024);
  while (connected_) {
    // Whatever is buffered already (CONNECT's read may have over-read) is handled first.
    AckGroup group;
    group.session = this;
    group.generation = generation_;
    std::size_t offset = 0;
    Status st = Ok();
    while (true) {
      auto d = DecodePacket(std::string_view(in_).substr(offset), kVersion, o.max_packet_bytes);
      if (!d) {
        st = tl::unexpected(d.error());
        break;
      }
      if (!*d) break;
      offset += (*d)->size;
      st = HandlePacket((*d)->packet, group);
      if (!st) break;
    }
    in_.erase(0, offset);
    if (!group.packet_ids.empty() || !group.submissions.empty()) {
      pending_acks_ += group.packet_ids.size();
      owner_->AddPending(static_cast<std::int64_t>(group.packet_ids.size()));
      owner_->Submit(std::move(group));
    }
    if (!st) {
      spdlog::warn("mqtt: {}: {}; reconnecting", client_id_, st.error().message);
      co_return;
    }
    if (!connected_) co_return;
    error_code ec;
    std::size_t n = tls_ ? co_await stream_->async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec))
                         : co_await stream_->next_layer().async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (connected_ && !owner_->stopping()) {
        const bool soon = Steady::now() - connected_since_ < kStableConnection;
        spdlog::warn("mqtt: {}: connection lost: {}{}", client_id_, ec.message(),
                     soon ? fmt::format(" (the broker closed it soon after the login; if this repeats, another "
                                        "process may be using client id '{}': give every process ids of its own "
                                        "in mqtt_client_id)",
                                        client_id_)
                          : std::string());
      }
      co_return;
    }
    last_received_ = Steady::now();
    in_.append(buf.data(), n);
  }
}

Status Session::HandlePacket(Packet& packet, AckGroup& group) {
  if (auto* p = std::get_if<Publish>(&packet)) {
    HandlePublish(*p, group);
    return Ok();
  }
  if (auto* s = std::get_if<Suback>(&packet)) {
    for (auto code : s->reason_codes) {
      if (code >= 0x80) {
        return MakeError(ErrorCode::kPermissionDenied,
                         fmt::format("the broker refused the subscription to {}: {} (the broker ACL must let "
                                     "'{}' read devices/+/readings)",
                                     owner_->Filter(), ReasonCodeText(code, kVersion), owner_->options().username));
      }
    }
    subscribed_ = true;
    spdlog::info("mqtt: {}: subscribed to {}", client_id_, owner_->Filter());
    return Ok();
  }
  if (std::holds_alternative<Unsuback>(packet)) {
    unsubscribed_ = true;
    return Ok();
  }
  if (auto* d = std::get_if<Disconnect>(&packet)) {
    const std::string hint =
        d->reason_code == 0x8E
            ? fmt::format("; another process connected with client id '{}': give every process ids of its own "
                          "(mqtt_client_id)",
                          client_id_)
            : std::string();
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("the broker disconnected us: {}{}{}", ReasonCodeText(d->reason_code, kVersion),
                                 d->reason_string ? " (" + *d->reason_string + ")" : "", hint));
  }
  if (std::holds_alternative<Connack>(packet)) {
    return MakeError(ErrorCode::kUnavailable, "a second CONNACK: protocol error");
  }
  return Ok();  // PINGRESP, PUBACK: nothing to do
}

void Session::HandlePublish(Publish& p, AckGroup& group) {
  if (owner_->stopping()) return;  // not acknowledged: the broker delivers it again
  owner_->CountReceived();
  last_publish_ = Steady::now();
  if (p.qos == 1) group.packet_ids.push_back(p.packet_id);
  const auto device = DeviceIdFromTopic(p.topic);
  if (!device) {
    owner_->Reject("topic", 1, std::nullopt, fmt::format("topic '{}' is not devices/<id>/readings", p.topic.substr(0, 200)));
    return;
  }
  auto org = owner_->OrgOf(*device);
  if (!org) {
    if (org.error().code == ErrorCode::kNotFound) {
      owner_->Reject("unknown_device", 1, *device, "no such device");
      return;
    }
    // The store cannot answer: do not acknowledge; a failed submission drops the connection.
    std::promise<Result<IngestResult>> failed;
    failed.set_value(tl::unexpected(org.error()));
    group.submissions.push_back({failed.get_future(), {}});
    return;
  }
  auto format = MessageFormat(p.content_type, p.payload);
  if (!format) {
    owner_->Reject("content_type", 1, *device, format.error().message);
    return;
  }
  ingest::ParseOptions po;
  po.gateway = false;
  po.now_ms = owner_->clock()->NowMs();
  auto parsed = ingest::Parse(*format, p.payload, po);
  if (!parsed) {
    owner_->Reject("payload", 1, *device,
                   fmt::format("{} payload: {}", ingest::PayloadFormatName(*format), parsed.error().message));
    return;
  }
  for (const auto& e : parsed->errors) owner_->Reject("invalid_record", 1, *device, e.reason);
  if (parsed->records.empty()) return;
  std::vector<Reading> readings;
  readings.reserve(parsed->records.size());
  for (auto& r : parsed->records) {
    readings.push_back(Reading{*device, std::move(r.metric), std::move(r.unit), r.ts.value_or(po.now_ms), r.value});
  }
  std::vector<DeviceId> devices(readings.size(), *device);
  // One submission per message keeps the rejection indexes simple; the writer commits every
  // queued batch in one transaction anyway.
  group.submissions.push_back({owner_->store()->Ingest(*org, std::move(readings)), std::move(devices)});
}

void Session::OnGroupDone(std::uint64_t generation, const std::vector<std::uint16_t>& ids,
                          const std::optional<Error>& failure) {
  owner_->AddPending(-static_cast<std::int64_t>(ids.size()));
  if (generation != generation_ || !connected_) return;  // that connection is gone: redelivered
  pending_acks_ -= std::min(pending_acks_, ids.size());
  if (failure) {
    spdlog::error("mqtt: {}: the store did not take {} message(s): {}; not acknowledged, reconnecting so "
                  "the broker delivers them again",
                  client_id_, ids.size(), failure->message);
    ++generation_;  // later groups of this connection are not acknowledged either
    Close();
    return;
  }
  if (ids.empty()) return;
  std::string acks;
  acks.reserve(ids.size() * 4);
  for (auto id : ids) acks += EncodePuback(id);
  Write(std::move(acks));
  owner_->CountAcked(ids.size());
}

awaitable<void> Session::KeepAlive(std::uint64_t generation) {
  const auto keepalive = std::chrono::seconds(owner_->options().keepalive_seconds);
  asio::steady_timer timer(owner_->io());
  while (generation == generation_ && connected_) {
    timer.expires_after(keepalive / 2);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (generation != generation_ || !connected_) break;
    const auto now = Steady::now();
    if (now - last_received_ > keepalive * 3 / 2 + std::chrono::seconds(1)) {
      spdlog::warn("mqtt: {}: no answer from the broker for {} s; reconnecting", client_id_,
                   std::chrono::duration_cast<std::chrono::seconds>(now - last_received_).count());
      Close();
      break;
    }
    if (now - last_sent_ >= keepalive / 2) Write(EncodePingreq());
  }
}

awaitable<void> Session::DrainWatch(std::uint64_t generation) {
  const auto idle = std::chrono::milliseconds(owner_->options().drain_idle_ms);
  asio::steady_timer timer(owner_->io());
  while (generation == generation_ && connected_) {
    timer.expires_after(std::chrono::milliseconds(100));
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (generation != generation_ || !connected_) co_return;
    if (unsubscribed_ && pending_acks_ == 0 && Steady::now() - last_publish_ >= idle) {
      spdlog::info("mqtt: {}: retired: drained and session ended; remove it from mqtt_retired_client_ids",
                   client_id_);
      finished_ = true;
      subscribed_ = true;
      Write(EncodeDisconnect(kVersion, 0u));  // session expiry 0: the broker forgets the session
      // Close once the DISCONNECT has left (StartWrite closes when finished_ and the queue is empty).
      co_return;
    }
  }
}

void Session::BeginStop() {
  stopping_ = true;
  if (!connected_) {
    Close();
    return;
  }
  Write(EncodeDisconnect(kVersion));  // keeps the session: the broker queues until we return
}

void Session::Write(std::string bytes) {
  if (!connected_ || !stream_) return;
  out_.push_back(std::move(bytes));
  if (!writing_) StartWrite();
}

void Session::StartWrite() {
  if (out_.empty()) {
    writing_ = false;
    if (stopping_ || finished_) Close();
    return;
  }
  writing_ = true;
  auto data = std::make_shared<std::string>();
  while (!out_.empty()) {
    *data += out_.front();
    out_.pop_front();
  }
  last_sent_ = Steady::now();
  const auto generation = generation_;
  auto done = [this, data, generation](error_code ec, std::size_t) {
    if (generation != generation_) return;
    if (ec) {
      spdlog::warn("mqtt: {}: write failed: {}", client_id_, ec.message());
      Close();
      return;
    }
    StartWrite();
  };
  if (tls_) asio::async_write(*stream_, asio::buffer(*data), done);
  else asio::async_write(stream_->next_layer(), asio::buffer(*data), done);
}

void Session::Close() {
  if (!stream_) return;
  if (connected_) owner_->CountConnected(-1);
  connected_ = false;
  subscribed_ = finished_.load();
  error_code ec;
  stream_->next_layer().shutdown(tcp::socket::shutdown_both, ec);
  stream_->next_layer().close(ec);
}

}  // namespace

Result<std::unique_ptr<Subscriber>> StartSubscriber(const SubscriberOptions& options,
                                                    store::Store* store, MetricsRegistry* metrics) {
  OS_ASSIGN_OR_RETURN(Endpoint endpoint, ParseUrl(options.url));
  if (options.client_ids.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "mqtt_client_id: name at least one client id");
  }
  for (const auto& r : options.retired_client_ids) {
    for (const auto& c : options.client_ids) {
      if (r == c) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("client id '{}' is both in mqtt_client_id and mqtt_retired_client_ids; "
                                     "remove it from one of them",
                                     r));
      }
    }
  }
  if (options.keepalive_seconds < 1 || options.keepalive_seconds > 65535 || options.receive_maximum == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "mqtt: keep-alive and receive maximum must be positive");
  }
  auto impl = std::make_unique<SubscriberImpl>(options, std::move(endpoint), store, metrics);
  OS_RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<Subscriber>(std::move(impl));
}

}  // namespace opensense::mqtt
