// `opensense rule list|show|create|update|delete`: an organisation's alert rules, through the
// running server's API (/api/v1/alert-rules), whose AlertService holds them in memory. The
// organisation is the token's (api_client.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "app/api_client.hpp"

namespace opensense::app {

struct RuleFlags {
  ApiClientFlags client;
  std::int64_t id = 0;
  std::string file;  // the rule JSON (create) or a merge patch (update); "-": standard input
  // Convenience flags: fields of the definition, laid over --file's.
  std::optional<std::string> name, kind, metric, severity;
  std::optional<std::int64_t> device, site, delay_minutes, offline_after_minutes, reminder_minutes;
  std::optional<double> above, below, hysteresis;
  std::optional<bool> enabled, require_note;
  std::vector<std::string> notify_emails;
};

struct RuleCommands {
  CLI::App* root = nullptr;
  CLI::App* list = nullptr;
  CLI::App* show = nullptr;
  CLI::App* create = nullptr;
  CLI::App* update = nullptr;
  CLI::App* remove = nullptr;
  std::vector<CLI::App*> all() const { return {list, show, create, update, remove}; }
};

// Adds `rule` and its subcommands to `app`.
RuleCommands AddRuleCommand(CLI::App& app, RuleFlags* flags);
// Runs the parsed subcommand. Exit status: 0 done, 2 bad input or no such rule, 1 otherwise.
int RunRuleCommand(const RuleCommands& cmds, const RuleFlags& flags, const ApiClient& client);

}  // namespace opensense::app
