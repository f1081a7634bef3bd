// MailQueue and OperatorAlerts (core/outbound.hpp) on the durable outbox: what other modules
// (people: magic links and invitations; backup: failed backups; the dispatcher itself: delivery
// failures) hand over is written to notification_outbox and delivered by the same dispatcher,
// with its retries and attempt log.
//
// Operator alerts go to the operator channel of the server configuration only (e-mail,
// Telegram chat and/or webhook), never to an organisation's channels. One alert becomes one
// notification per target per day for the same dedup_key and text (the idempotency key
// "operator:<dedup_key>:<target>:<day>:<hash of subject and body>"), so a backup failing every
// hour with the same error mails once a day, and a new error mails at once. Every alert is also
// logged; with no operator channel configured it is only logged.
//
// Threads: both may be called from any thread.
#pragma once

#include <functional>

#include "core/clock.hpp"
#include "core/outbound.hpp"
#include "notify/dispatcher.hpp"
#include "store/notify_store.hpp"

namespace opensense::notify {

class OutboxMailQueue final : public MailQueue {
 public:
  // `wake` (may be empty) tells the dispatcher something was queued.
  OutboxMailQueue(store::NotifyStore* store, const Clock* clock, std::function<void()> wake = {});
  // kInvalidArgument for a bad address or an empty subject; an empty idempotency_key gets a
  // random one (every call is then a new message).
  Status Enqueue(const OutgoingEmail& email) override;

 private:
  store::NotifyStore* store_;
  const Clock* clock_;
  std::function<void()> wake_;
};

class OutboxOperatorAlerts final : public OperatorAlerts {
 public:
  OutboxOperatorAlerts(store::NotifyStore* store, OperatorChannel channel, const Clock* clock,
                       std::function<void()> wake = {});
  void Raise(const OperatorAlert& alert) override;

 private:
  store::NotifyStore* store_;
  OperatorChannel channel_;
  const Clock* clock_;
  std::function<void()> wake_;
  LoggingOperatorAlerts log_;
};

}  // namespace opensense::notify
