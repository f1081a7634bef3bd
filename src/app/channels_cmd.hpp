// `opensense channel list|create|delete|test` (an organisation's notification channels, on the
// store directly, beside a running server), and the notification settings of `opensense serve`
// (NotifyOptionsFor: provider URLs from the configuration, tokens from the environment only).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "app/config.hpp"
#include "notify/dispatcher.hpp"
#include "store/store.hpp"

namespace opensense::app {

struct ChannelFlags {
  OrgId org = 0;
  std::int64_t id = 0;
  std::string kind;
  std::string name;
  std::string target;
  bool json = false;
};

struct ChannelCommands {
  CLI::App* root = nullptr;
  CLI::App* list = nullptr;
  CLI::App* create = nullptr;
  CLI::App* remove = nullptr;
  CLI::App* test = nullptr;
  std::vector<CLI::App*> all() const { return {list, create, remove, test}; }
};

// Adds `channel` and its subcommands to `app`.
ChannelCommands AddChannelCommand(CLI::App& app, ChannelFlags* flags);
// Runs the parsed subcommand against `store`. Exit status: 0 done, 1 failed, 2 bad input.
int RunChannelCommand(const ChannelCommands& cmds, const ChannelFlags& flags, store::Store* store);

// The dispatcher's options from the configuration; OPENSENSE_POSTMARK_TOKEN,
// OPENSENSE_TELEGRAM_TOKEN and OPENSENSE_OPERATOR_WEBHOOK_SECRET from the environment (where the
// secrets file put them). clock, metrics and operator_alerts are the caller's to set.
notify::DispatcherOptions NotifyOptionsFor(const Config& cfg);

}  // namespace opensense::app
