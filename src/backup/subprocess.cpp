#include "backup/subprocess.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace opensense::backup {

namespace {

constexpr std::size_t kStderrTail = 16 * 1024;

std::string ReadTail(int fd) {
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return "";
  const off_t start = size > static_cast<off_t>(kStderrTail) ? size - static_cast<off_t>(kStderrTail) : 0;
  std::string out(static_cast<std::size_t>(size - start), '\0');
  const ssize_t n = ::pread(fd, out.data(), out.size(), start);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) out.pop_back();
  return out;
}

std::vector<std::string> EnvFor(const Command& c) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (c.extra_env.count(name) == 0) env.push_back(std::move(entry));
  }
  for (const auto& [k, v] : c.extra_env) env.push_back(k + "=" + v);
  return env;
}

}  // namespace

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

Result<std::vector<CommandOutcome>> RunPipeline(const std::vector<Command>& commands,
                                                const std::string& stdout_path) {
  if (commands.empty()) return std::vector<CommandOutcome>{};
  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return MakeError(ErrorCode::kInternal, "cannot open /dev/null");
  int out_fd = devnull;
  if (!stdout_path.empty()) {
    out_fd = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out_fd < 0) {
      const int err = errno;
      ::close(devnull);
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("cannot write {}: {}", stdout_path, std::strerror(err)));
    }
  }
  std::vector<pid_t> pids;
  std::vector<int> err_fds;
  int in_fd = devnull;
  Error start_error;
  bool failed = false;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    const Command& c = commands[i];
    int pipe_fds[2] = {-1, -1};
    const bool last = i + 1 == commands.size();
    if (!last && ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      failed = true;
      start_error = Error{ErrorCode::kInternal, "pipe failed"};
      break;
    }
    const int err_fd = ::memfd_create("opensense-stderr", MFD_CLOEXEC);
    std::vector<std::string> env = EnvFor(c);
    std::vector<char*> argv, envp;
    std::vector<std::string> args = c.argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int child_out = last ? out_fd : pipe_fds[1];
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(in_fd, 0);
      ::dup2(child_out, 1);
      ::dup2(err_fd >= 0 ? err_fd : devnull, 2);
      ::execvpe(argv[0], argv.data(), envp.data());
      const char* msg = "cannot run the program: ";
      (void)!::write(2, msg, std::strlen(msg));
      (void)!::write(2, argv[0], std::strlen(argv[0]));
      ::_exit(127);
    }
    if (in_fd != devnull) ::close(in_fd);
    if (!last) ::close(pipe_fds[1]);
    in_fd = last ? devnull : pipe_fds[0];
    if (pid < 0) {
      failed = true;
      start_error = Error{ErrorCode::kInternal, fmt::format("cannot start {}", c.argv[0])};
      if (err_fd >= 0) ::close(err_fd);
      break;
    }
    pids.push_back(pid);
    err_fds.push_back(err_fd);
  }
  if (in_fd != devnull) ::close(in_fd);
  if (out_fd != devnull) ::close(out_fd);
  ::close(devnull);
  std::vector<CommandOutcome> outcomes;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    int status = 0;
    while (::waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
    }
    CommandOutcome o;
    o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (err_fds[i] >= 0) {
      o.stderr_tail = ReadTail(err_fds[i]);
      ::close(err_fds[i]);
    }
    outcomes.push_back(std::move(o));
  }
  if (failed) return tl::unexpected(start_error);
  return outcomes;
}

Status PipelineStatus(const std::vector<Command>& commands, const std::vector<CommandOutcome>& outcomes) {
  for (std::size_t i = 0; i < outcomes.size() && i < commands.size(); ++i) {
    const auto& o = outcomes[i];
    if (o.exit_code == 0) continue;
    const std::string& program = commands[i].argv.front();
    if (o.exit_code == 127 && o.stderr_tail.rfind("cannot run the program", 0) == 0) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       fmt::format("'{}' is not installed or not in PATH (Debian: apt-get install "
                                   "{}; see scripts/install-deps.sh)",
                                   program,
                                   program.rfind("pg_", 0) == 0 ? "postgresql-client-15" : program));
    }
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("{} exited with status {}{}{}", program, o.exit_code,
                                 o.stderr_tail.empty() ? "" : ": ", o.stderr_tail));
  }
  return Ok();
}

}  // namespace opensense::backup
