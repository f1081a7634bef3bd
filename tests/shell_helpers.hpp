// Small helpers for integration tests that run shell tools (openssl, sqlite3, systemd-analyze)
// and read files. Header-only, POSIX.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace opensense::testing {

struct ShellRun {
  int code = -1;       // exit status; -1 when killed by a signal or not started
  std::string output;  // stdout (add 2>&1 to the command for stderr)
};

inline ShellRun Shell(const std::string& command) {
  ShellRun r;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace opensense::testing
