// What other modules hand to the notification module (src/notify) without depending on it:
// operator alerts (backups, disk, delivery failures) and queued e-mail (magic links,
// invitations). The notify module implements both on its durable outbox and dispatcher; the
// logging implementations below are what runs until it is wired, and what simple tools use.
#pragma once

#include <optional>
#include <string>

#include "core/result.hpp"
#include "core/types.hpp"

namespace opensense {

enum class OperatorSeverity { kWarning, kCritical };

// A notification for whoever runs the server. It goes to the operator channel of the server
// configuration, never to an organisation's channels.
struct OperatorAlert {
  std::string kind;       // "backup_failed", "backup_missed", "restore_drill_failed", "disk_low", ...
  OperatorSeverity severity = OperatorSeverity::kWarning;
  std::string subject;    // one line
  std::string body;       // what happened and what to do next
  // Alerts with the same key are one notification until it changes (e.g. "backup_failed:hourly").
  std::string dedup_key;
};

class OperatorAlerts {
 public:
  virtual ~OperatorAlerts() = default;
  // Never blocks on delivery; the implementation queues durably when it can.
  virtual void Raise(const OperatorAlert& alert) = 0;
};

// Writes operator alerts to the log (spdlog, error level for critical).
class LoggingOperatorAlerts final : public OperatorAlerts {
 public:
  void Raise(const OperatorAlert& alert) override;
};

// An e-mail to queue for delivery (Postmark, or the dev mailer that writes it to the log).
struct OutgoingEmail {
  std::optional<OrgId> org;    // none for operator mail
  std::string kind;            // "magic_link", "invitation", "alert", "operator", "test"
  std::string to;
  std::string subject;
  std::string text_body;
  std::string html_body;
  // One delivery per key, whatever the retries (the outbox's idempotency key).
  std::string idempotency_key;
};

class MailQueue {
 public:
  virtual ~MailQueue() = default;
  // Queued durably (or refused with a reason); delivery happens later, with retries.
  virtual Status Enqueue(const OutgoingEmail& email) = 0;
};

// Writes the whole message to the log at once (the dev mailer without an outbox).
class LoggingMailQueue final : public MailQueue {
 public:
  Status Enqueue(const OutgoingEmail& email) override;
};

}  // namespace opensense
