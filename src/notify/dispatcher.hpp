// The dispatcher: delivers due outbox rows (store/outbox.hpp) through Postmark, Telegram or a
// webhook, with retries (exponential back-off with jitter, the provider's Retry-After /
// retry_after honoured), stops on permanent errors and records why, and logs every attempt
// (notification_attempts, kept attempt_retention_ms).
//
// Delivery once: a row is claimed (its next_attempt_at moved to the end of a lease) in a
// transaction before it is sent, so neither this nor another dispatcher sends it concurrently;
// the attempt and the row's new state are written together afterwards. A process killed between
// the claim and that write leaves the row to be sent again once the lease ends: at-least-once
// with the same idempotency key (sent to the provider where it takes one), which is "once" under
// normal operation.
//
// Without a Postmark token the dev mailer runs: an e-mail row is written whole to the log and
// marked sent.
//
// Threads: Start() runs one delivery thread; Stop() ends it (an in-flight request finishes or
// times out first). RunOnce() is what tests call with a ManualClock. Wake() may be called from
// any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/outbound.hpp"
#include "notify/channels.hpp"
#include "notify/delivery.hpp"
#include "store/notify_store.hpp"

namespace opensense::notify {

// Where operator messages go (server configuration; never an organisation's channels). Any
// combination; all empty: operator alerts are only logged.
struct OperatorChannel {
  std::string email;
  std::string telegram_chat;
  std::string webhook_url;
  std::string webhook_secret;  // OPENSENSE_OPERATOR_WEBHOOK_SECRET
  bool empty() const { return email.empty() && telegram_chat.empty() && webhook_url.empty(); }
};

struct DispatcherOptions {
  // Postmark. An empty token means the dev mailer (e-mail written to the log, marked sent).
  std::string postmark_base_url = "https://api.postmarkapp.com";
  std::string postmark_token;  // OPENSENSE_POSTMARK_TOKEN
  std::string mail_from = "OpenSense <opensense@localhost>";
  std::string message_stream = "outbound";
  // Telegram. An empty token makes Telegram rows fail (recorded: no bot token configured).
  std::string telegram_base_url = "https://api.telegram.org";
  std::string telegram_token;  // OPENSENSE_TELEGRAM_TOKEN
  OperatorChannel operator_channel;
  UrlPolicy url_policy;
  // Bounds one request (connect + send + answer): a hanging provider holds the dispatcher at
  // most this long per message. A claim's lease is this plus five seconds (how long a message
  // claimed by a process that died waits before another try).
  std::chrono::milliseconds request_timeout{10000};
  // Back-off after the n-th failed attempt: initial * 2^(n-1), at most max, then a random point
  // in its upper half (jitter). A provider's Retry-After replaces it (at most one day).
  TimestampMs initial_backoff_ms = 30 * kMsPerSecond;
  TimestampMs max_backoff_ms = kMsPerHour;
  // After this many attempts a message that still fails is given up (state failed).
  int max_attempts = 12;
  // How often the thread looks for due rows when nothing woke it.
  TimestampMs poll_ms = 1000;
  // Attempts older than this are deleted (hourly).
  TimestampMs attempt_retention_ms = 90 * kMsPerDay;
  std::uint64_t jitter_seed = std::random_device{}();
  const Clock* clock = nullptr;          // not owned; null: the system clock
  MetricsRegistry* metrics = nullptr;    // not owned; may be null
  // A message that fails permanently raises an operator alert here (not for operator messages
  // themselves). Not owned; may be null.
  OperatorAlerts* operator_alerts = nullptr;
};

class Dispatcher {
 public:
  // `store` and `transport` are not owned and must outlive the dispatcher.
  Dispatcher(store::NotifyStore* store, HttpTransport* transport, DispatcherOptions options);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void Start();
  void Stop();
  // Something was queued: look now instead of at the next poll.
  void Wake();
  // Claims and delivers what is due at the clock's now, one claim at a time, until nothing is
  // due or `max_messages` were tried; returns how many were tried.
  int RunOnce(int max_messages = 1000);
  // Deletes attempts older than the retention; refreshes the outbox gauges.
  Status Prune();
  void RefreshGauges();

  const DispatcherOptions& options() const { return options_; }

 private:
  struct Target;
  void Deliver(const store::OutboxMessage& m);
  Verdict Send(const store::OutboxMessage& m, const Target& t, std::optional<int>* code,
               std::int64_t* latency_ms);
  TimestampMs Backoff(int attempts);
  TimestampMs Now() const;
  void Loop();

  store::NotifyStore* store_;
  HttpTransport* transport_;
  DispatcherOptions options_;
  SystemClock system_clock_;
  std::mt19937_64 rng_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool woken_ = false;
  std::thread thread_;
};

// A text made safe for the attempt log and the database: invalid UTF-8 and control characters
// (but newline) replaced, at most `max_bytes` (cut at a character boundary).
std::string CleanText(std::string_view text, std::size_t max_bytes);

}  // namespace opensense::notify
