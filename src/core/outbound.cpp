#include "core/outbound.hpp"

#include <spdlog/spdlog.h>

namespace opensense {

void LoggingOperatorAlerts::Raise(const OperatorAlert& alert) {
  if (alert.severity == OperatorSeverity::kCritical) {
    spdlog::error("operator alert [{}] {}: {}", alert.kind, alert.subject, alert.body);
  } else {
    spdlog::warn("operator alert [{}] {}: {}", alert.kind, alert.subject, alert.body);
  }
}

Status LoggingMailQueue::Enqueue(const OutgoingEmail& email) {
  spdlog::info("dev mailer: to={} subject=\"{}\"\n{}", email.to, email.subject, email.text_body);
  return {};
}

}  // namespace opensense
