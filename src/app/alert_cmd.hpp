// `opensense alert list|show|ack|resolve`: an organisation's alerts and their history, through
// the running server's API (/api/v1/alerts), whose AlertService owns the lifecycle. The
// organisation is the token's (api_client.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "app/api_client.hpp"

namespace opensense::app {

struct AlertFlags {
  ApiClientFlags client;
  std::int64_t id = 0;
  std::string note;
  // list filters (GET /api/v1/alerts); empty / 0: none
  std::string state, from, to;
  std::int64_t device = 0, rule = 0, limit = 0;
};

struct AlertCommands {
  CLI::App* root = nullptr;
  CLI::App* list = nullptr;
  CLI::App* show = nullptr;
  CLI::App* ack = nullptr;
  CLI::App* resolve = nullptr;
  std::vector<CLI::App*> all() const { return {list, show, ack, resolve}; }
};

// Adds `alert` and its subcommands to `app`.
AlertCommands AddAlertCommand(CLI::App& app, AlertFlags* flags);
// Runs the parsed subcommand. Exit status: 0 done, 2 bad input or no such alert, 1 otherwise.
int RunAlertCommand(const AlertCommands& cmds, const AlertFlags& flags, const ApiClient& client);

}  // namespace opensense::app
