// Runs the external tools a backup needs (age, pg_dump, pg_restore, an off-site command) as a
// pipeline of child processes, without a shell unless the caller asks for one (`sh -c` for the
// operator's off-site command). Each child's stderr is kept (its last 16 KiB) for the error
// message; a tool that is not installed says which package to install.
//
// Threads: any thread; the calling thread blocks until every child has exited.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace opensense::backup {

struct Command {
  std::vector<std::string> argv;                // argv[0] is looked up in PATH
  std::map<std::string, std::string> extra_env;  // added to (or replacing in) this process's env
};

struct CommandOutcome {
  int exit_code = 0;       // 128 + signal when killed by a signal
  std::string stderr_tail;  // trimmed
};

// Runs `commands` with each one's stdout connected to the next one's stdin. The first reads
// /dev/null; the last writes to `stdout_path` (created 0600, truncated) or to /dev/null when it
// is empty. Returns every command's outcome; an error only when a process could not be started.
Result<std::vector<CommandOutcome>> RunPipeline(const std::vector<Command>& commands,
                                                const std::string& stdout_path = "");

// The first failed command of a pipeline as one message ("pg_dump exited with 1: ..."), or Ok.
Status PipelineStatus(const std::vector<Command>& commands, const std::vector<CommandOutcome>& outcomes);

// `s` quoted for /bin/sh (single quotes).
std::string ShellQuote(const std::string& s);

}  // namespace opensense::backup
