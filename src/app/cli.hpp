// The `opensense` command line. RunCli is main() minus the process: tests call it directly.
#pragma once

namespace opensense::app {

// Exit status: 0 success, 2 usage error, 1 any other failure (reason on stderr).
int RunCli(int argc, char** argv);

}  // namespace opensense::app
