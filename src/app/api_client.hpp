// The CLI's client of a running server's HTTP API: the `rule` and `alert` commands change what a
// running `opensense serve` holds in memory (its AlertService caches the rules), so they go
// through its API instead of writing the store beside it.
//
// Where and as whom: --url, else OPENSENSE_URL, else the `listen` setting (0.0.0.0 and [::]
// become the loopback address); the user API token (osk_...) from --token-file, else
// OPENSENSE_TOKEN. Never from a plain flag: it would show in the shell history and in ps.
//
// Threads: one ApiClient is used by one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <string_view>

#include "app/config.hpp"  // kUrlEnvVar, kTokenEnvVar
#include "core/result.hpp"

namespace opensense::app {

struct ApiClientFlags {
  std::string url;         // "" : OPENSENSE_URL, else http://<listen>
  std::string token_file;  // "" : OPENSENSE_TOKEN
  bool json = false;
};

// Adds --url, --token-file and --json to `cmd`.
void AddApiClientFlags(CLI::App* cmd, ApiClientFlags* flags);

// An answer of the server: the status and the body parsed as JSON (null when it is not JSON).
struct ApiAnswer {
  int status = 0;
  nlohmann::json body;
};

class ApiClient {
 public:
  // `base_url` is scheme://host[:port] (a trailing slash is dropped); `token` the bearer token.
  ApiClient(std::string base_url, std::string token);

  // One request; `body` (may be null) is sent as JSON. kUnavailable when no answer came (the
  // message says how to point the CLI at the server).
  Result<ApiAnswer> Call(std::string_view method, const std::string& path,
                         const nlohmann::json& body = nullptr) const;

  const std::string& base_url() const { return base_url_; }

 private:
  std::string base_url_;
  std::string token_;
};

// The client for the flags: the URL from --url / OPENSENSE_URL / `listen`, the token from
// --token-file / OPENSENSE_TOKEN (`env`: the process environment). kInvalidArgument with what to
// do when there is no token or the file cannot be read.
Result<ApiClient> ApiClientFor(const ApiClientFlags& flags, const std::string& listen,
                               const std::map<std::string, std::string>& env);

// Prints the server's error message and what to do next to stderr. Exit status: 2 for bad input
// (400) and a missing rule or alert (404), 1 otherwise. `what` names the object ("alert rule").
int ReportApiError(const ApiAnswer& answer, std::string_view what);
// For a failure before any answer (no token, unreachable server): prints it; 2 for bad input.
int ReportClientError(const Error& error);

// A JSON number as people write it: 8, 2.5 (anything else as JSON).
std::string NumberText(const nlohmann::json& value);

// "a b" -> "a%20b": a query parameter's value.
std::string QueryEscape(std::string_view text);

}  // namespace opensense::app
