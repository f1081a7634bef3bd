#include "backup/pg_physical.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

namespace opensense::backup {

namespace fs = std::filesystem;

namespace {

// The role in postgres://ROLE@host/db, or "" when the URL names none (libpq then uses the OS
// user's name).
std::string RoleOf(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  const auto at = url.find('@', scheme + 3);
  const auto slash = url.find('/', scheme + 3);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) return "";
  std::string role = url.substr(scheme + 3, at - scheme - 3);
  return role.substr(0, role.find(':'));
}

// A server program, run as the server user.
Command AsServerUser(const ServerUser& user, std::vector<std::string> argv) {
  if (user.switch_user) argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
  return Command{std::move(argv), {}};
}

Status Run(const std::vector<Command>& commands) {
  OS_ASSIGN_OR_RETURN(auto outcomes, RunPipeline(commands));
  return PipelineStatus(commands, outcomes);
}

Result<int> FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return MakeError(ErrorCode::kUnavailable, "socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  if (port == 0) return MakeError(ErrorCode::kUnavailable, "no free port on 127.0.0.1");
  return port;
}

// A server option for pg_ctl's -o, which pg_ctl hands to /bin/sh.
std::string ServerOption(const std::string& name, const std::string& value) {
  return " -c " + ShellQuote(name + "=" + value);
}

}  // namespace

std::map<std::string, std::string> PgPasswordEnv() {
  std::map<std::string, std::string> env;
  if (const char* pw = std::getenv("OPENSENSE_STORE_PASSWORD"); pw != nullptr && *pw != '\0') {
    env["PGPASSWORD"] = pw;
  }
  return env;
}

Command BaseBackupCommand(const std::string& bin_dir, const std::string& store_url, const std::string& label) {
  return Command{{bin_dir + "/pg_basebackup", "--dbname=" + store_url, "--pgdata=-", "--format=tar",
                  "--wal-method=fetch", "--checkpoint=fast", "--compress=client-zstd:1", "--label=" + label,
                  "--no-password"},
                 PgPasswordEnv()};
}

Error ExplainBaseBackupFailure(const std::string& store_url, const Error& e) {
  const std::string& text = e.message;
  std::string role = RoleOf(store_url);
  if (role.empty()) role = "<the store's role>";
  if (text.find("must be superuser or replication role") != std::string::npos) {
    return Error{ErrorCode::kPermissionDenied,
                 fmt::format("physical backup: the role {0} may not open a replication connection "
                             "(PostgreSQL: \"must be superuser or replication role\"). Give it the "
                             "REPLICATION attribute, as a superuser: ALTER ROLE {0} REPLICATION; "
                             "(e.g. sudo -u postgres psql -c 'ALTER ROLE {0} REPLICATION'), or set "
                             "backup_method = \"logical\"",
                             role)};
  }
  static const std::regex kNoHba(R"re(no pg_hba\.conf entry for replication connection from host "([^"]*)", user "([^"]*)")re");
  std::smatch match;
  if (std::regex_search(text, match, kNoHba)) {
    const std::string host = match[1], user = match[2];
    const std::string line =
        host == "[local]" ? fmt::format("local   replication   {}   scram-sha-256", user)
                          : fmt::format("host    replication   {}   {}/{}   scram-sha-256", user, host,
                                        host.find(':') != std::string::npos ? 128 : 32);
    return Error{ErrorCode::kPermissionDenied,
                 fmt::format("physical backup: pg_hba.conf has no line for a replication connection "
                             "of {} from {}. Add this line to pg_hba.conf (above any line that "
                             "would reject it): `{}`, then reload PostgreSQL (SELECT "
                             "pg_reload_conf(); or systemctl reload postgresql). The role also needs "
                             "the REPLICATION attribute (ALTER ROLE {} REPLICATION)",
                             user, host, line, user)};
  }
  if (text.find("can only write single tablespace") != std::string::npos) {
    return Error{ErrorCode::kFailedPrecondition,
                 "physical backup: the cluster has more than one tablespace; a physical backup into "
                 "one file needs a single tablespace: set backup_method = \"logical\""};
  }
  if (text.find("wal_level") != std::string::npos || text.find("WAL level") != std::string::npos) {
    return Error{ErrorCode::kFailedPrecondition,
                 "physical backup: PostgreSQL's wal_level is too low: set wal_level = replica (the "
                 "default) in postgresql.conf and restart PostgreSQL. " + text};
  }
  if (text.find("max_wal_senders") != std::string::npos) {
    return Error{ErrorCode::kFailedPrecondition,
                 "physical backup: no WAL sender is free: set max_wal_senders to at least 2 (the "
                 "default is 10) in postgresql.conf and restart PostgreSQL. " + text};
  }
  return Error{e.code, "physical backup: " + text};
}

std::vector<Command> UnpackCommands(const std::string& dir) {
  return {Command{{"zstd", "--decompress", "--stdout", "--quiet"}, {}},
          Command{{"tar", "--extract", "--no-same-owner", "--preserve-permissions", "--directory", dir, "--file", "-"}, {}}};
}

Result<ServerUser> ServerUserForThisProcess() {
  ServerUser user;
  if (::geteuid() != 0) {
    user.uid = ::geteuid();
    user.gid = ::getegid();
    return user;
  }
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "PostgreSQL refuses to run as root and there is no unprivileged 'postgres' "
                     "system user to run it as (apt-get install postgresql-15 creates it)");
  }
  user.uid = pw->pw_uid;
  user.gid = pw->pw_gid;
  user.switch_user = true;
  return user;
}

Status HandTreeTo(const std::string& dir, const ServerUser& user) {
  std::error_code ec;
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) return MakeError(ErrorCode::kUnavailable, fmt::format("cannot chmod {}: {}", dir, ec.message()));
  if (!user.switch_user) return Ok();
  auto own = [&](const fs::path& p) -> Status {
    if (::lchown(p.c_str(), user.uid, user.gid) != 0) {
      return MakeError(ErrorCode::kUnavailable, fmt::format("cannot chown {}: {}", p.string(), std::strerror(errno)));
    }
    return Ok();
  };
  OS_RETURN_IF_ERROR(own(dir));
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    OS_RETURN_IF_ERROR(own(it->path()));
  }
  if (ec) return MakeError(ErrorCode::kUnavailable, fmt::format("cannot walk {}: {}", dir, ec.message()));
  return Ok();
}

Status VerifyDataDirectory(const std::string& bin_dir, const std::string& data_dir) {
  if (Status st = Run({Command{{bin_dir + "/pg_verifybackup", "--quiet", data_dir}, {}}}); !st) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("pg_verifybackup found the unpacked backup incomplete or changed: {}",
                                 st.error().message));
  }
  return Ok();
}

// ---- LocalPostgres ---------------------------------------------------------------------------

Result<LocalPostgres> LocalPostgres::Start(const Options& options) {
  LocalPostgres pg;
  pg.options_ = options;
  OS_ASSIGN_OR_RETURN(pg.user_, ServerUserForThisProcess());
  if (::access((options.bin_dir + "/postgres").c_str(), X_OK) != 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("no PostgreSQL server programs in {} (apt-get install postgresql-15): "
                                 "a physical backup is checked by starting a server on it",
                                 options.bin_dir));
  }
  std::error_code ec;
  fs::create_directories(options.run_dir, ec);
  std::vector<std::string> hba = options.hba_lines;
  if (hba.empty()) hba.push_back("host all all 127.0.0.1/32 md5");
  {
    std::ofstream conf(options.run_dir + "/postgresql.conf");
    conf << "# written by opensense for a server on a restored data directory; see -c options\n";
    std::ofstream hba_file(options.run_dir + "/pg_hba.conf");
    for (const auto& line : hba) hba_file << line << "\n";
    std::ofstream ident(options.run_dir + "/pg_ident.conf");
    if (!conf || !hba_file || !ident) {
      return MakeError(ErrorCode::kUnavailable, fmt::format("cannot write the server configuration in {}", options.run_dir));
    }
  }
  OS_RETURN_IF_ERROR(HandTreeTo(options.run_dir, pg.user_));
  OS_RETURN_IF_ERROR(HandTreeTo(options.data_dir, pg.user_));
  Error last{ErrorCode::kUnavailable, "not started"};
  for (int attempt = 0; attempt < 5; ++attempt) {
    OS_ASSIGN_OR_RETURN(pg.port_, FreeLoopbackPort());
    // On the command line, so they override the restored postgresql.auto.conf.
    std::string opts = fmt::format("-p {}", pg.port_);
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"config_file", options.run_dir + "/postgresql.conf"},
             {"hba_file", options.run_dir + "/pg_hba.conf"},
             {"ident_file", options.run_dir + "/pg_ident.conf"},
             {"listen_addresses", "127.0.0.1"},
             {"unix_socket_directories", ""},
             {"shared_buffers", "128MB"},
             {"max_connections", "50"},
             {"fsync", "off"},
             {"archive_mode", "off"},
             {"ssl", "off"},
             {"shared_preload_libraries", ""},
             {"logging_collector", "off"},
             {"jit", "off"}}) {
      opts += ServerOption(name, value);
    }
    Status st = Run({AsServerUser(pg.user_, {options.bin_dir + "/pg_ctl", "--pgdata=" + options.data_dir,
                                              "--log=" + options.run_dir + "/server.log", "--wait",
                                              "--timeout=3600", "-o", opts, "start"})});
    if (st) {
      pg.running_ = true;
      return pg;
    }
    last = st.error();
    if (pg.LogTail().find("could not bind") == std::string::npos) break;
  }
  return MakeError(ErrorCode::kFailedPrecondition,
                   fmt::format("PostgreSQL did not start on {}: {}; its log ends: {}", options.data_dir,
                               last.message, pg.LogTail()));
}

LocalPostgres::LocalPostgres(LocalPostgres&& o) noexcept
    : options_(std::move(o.options_)), user_(o.user_), port_(o.port_), running_(o.running_) {
  o.running_ = false;
}

LocalPostgres::~LocalPostgres() {
  if (!running_) return;
  (void)Run({AsServerUser(user_, {options_.bin_dir + "/pg_ctl", "--pgdata=" + options_.data_dir,
                                  "--mode=immediate", "--wait", "stop"})});
}

std::string LocalPostgres::Url(const std::string& role, const std::string& database) const {
  return fmt::format("postgres://{}@127.0.0.1:{}/{}", role, port_, database);
}

Status LocalPostgres::Stop() {
  if (!running_) return Ok();
  running_ = false;
  return Run({AsServerUser(user_, {options_.bin_dir + "/pg_ctl", "--pgdata=" + options_.data_dir, "--mode=fast",
                                   "--wait", "stop"})});
}

std::string LocalPostgres::LogTail() const {
  std::ifstream in(options_.run_dir + "/server.log", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (text.size() > 2000) text = text.substr(text.size() - 2000);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace opensense::backup
