// Physical backups of a PostgreSQL cluster (backup_method = "physical"): the pieces backup.cpp
// puts together. `pg_basebackup` writes the whole cluster (one tablespace) as a zstd-compressed
// tar with the WAL it needs and its own backup_manifest, on stdout, into `age`; a restore
// unpacks that tar into an empty data directory and checks it with `pg_verifybackup`; the drill
// starts a private server on such a directory (LocalPostgres), which replays the WAL and opens.
//
// The server refuses to run as root, so as root the server programs run as the unprivileged
// `postgres` system user (created by the postgresql-15 package) and the directories they use are
// handed to it. Public for the tests and the bench, which start servers on restored directories.
//
// Threads: any thread; a LocalPostgres is owned by one.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "backup/subprocess.hpp"
#include "core/result.hpp"

namespace opensense::backup {

// Debian's PostgreSQL 15 server programs (postgresql-15; pg_basebackup and pg_verifybackup
// come with postgresql-client-15).
inline constexpr const char* kDefaultPgBinDir = "/usr/lib/postgresql/15/bin";

// `pg_basebackup` of the cluster `store_url` names, as a replication connection of the store's
// role: tar format, zstd level 1 on the client, the WAL fetched at the end, a fast checkpoint,
// to stdout. The password comes from OPENSENSE_STORE_PASSWORD.
Command BaseBackupCommand(const std::string& bin_dir, const std::string& store_url, const std::string& label);

// pg_basebackup's failure in words an operator can act on: exactly what to add when the role
// lacks the REPLICATION attribute or pg_hba.conf has no `replication` line for it, and what a
// second tablespace, wal_level or max_wal_senders needs. Anything else passes through.
Error ExplainBaseBackupFailure(const std::string& store_url, const Error& e);

// `zstd -d | tar -x`: a base backup from stdin unpacked into `dir` (modes kept, owners not).
std::vector<Command> UnpackCommands(const std::string& dir);

// PGPASSWORD for libpq's programs, from OPENSENSE_STORE_PASSWORD (none when it is unset).
std::map<std::string, std::string> PgPasswordEnv();

// The user the server programs run as: ourselves, or `postgres` when we are root.
struct ServerUser {
  uid_t uid = 0;
  gid_t gid = 0;
  bool switch_user = false;  // run them through `runuser -u postgres --`
};
Result<ServerUser> ServerUserForThisProcess();

// Hands `dir` and everything in it to `user` (chown when we are root), directories 0700.
Status HandTreeTo(const std::string& dir, const ServerUser& user);

// `pg_verifybackup` of an unpacked data directory: every file against the backup_manifest
// (size and checksum) and the WAL from the backup's start to its end present and parseable.
Status VerifyDataDirectory(const std::string& bin_dir, const std::string& data_dir);

// A PostgreSQL server on a restored data directory, for a drill or a test: on a free 127.0.0.1
// port, no unix socket, with its own configuration and pg_hba.conf in `run_dir` (password
// logins from 127.0.0.1 only), fsync off (scratch), no archiving, no preloaded libraries; the
// data directory's postgresql.conf (if any) is not read. Stopped when destroyed.
class LocalPostgres {
 public:
  struct Options {
    std::string data_dir;
    std::string run_dir;  // created if needed; holds the configuration files and server.log
    std::string bin_dir = kDefaultPgBinDir;
    // pg_hba.conf lines; empty: `host all all 127.0.0.1/32 md5` (md5 also accepts SCRAM secrets).
    std::vector<std::string> hba_lines;
  };
  // Starts the server and waits (up to an hour: WAL replay) until it accepts connections.
  static Result<LocalPostgres> Start(const Options& options);
  LocalPostgres(LocalPostgres&& o) noexcept;
  LocalPostgres(const LocalPostgres&) = delete;
  ~LocalPostgres();

  int port() const { return port_; }
  // postgres://ROLE@127.0.0.1:PORT/DATABASE
  std::string Url(const std::string& role, const std::string& database) const;
  // A fast shutdown; the data directory stays.
  Status Stop();
  std::string LogTail() const;

 private:
  LocalPostgres() = default;
  Options options_;
  ServerUser user_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace opensense::backup
