// `opensense store copy --from <url> --to <url>`: moves an installation between SQLite and
// PostgreSQL with a progress bar, resumable, verified at the end (store/postgres/pg_copy.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace opensense::app {

struct StoreCopyFlags {
  std::string from;
  std::string to;
  bool verify_only = false;
  bool json = false;
};

// Adds `store copy` to `app`; returns the `copy` subcommand (parsed when it was asked for).
CLI::App* AddStoreCommand(CLI::App& app, StoreCopyFlags* flags);
// Exit status: 0 copied and verified, 1 otherwise (with what to do next on stderr).
int RunStoreCopy(const StoreCopyFlags& flags);

}  // namespace opensense::app
