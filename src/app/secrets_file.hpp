// The secrets file: one environment file (KEY=VALUE lines) that holds OpenSense's secrets, the
// names of kSecretEnvVars only, readable by its owner (root or the service user) only.
//
// Parsing and the permission rule are pure (tested with hostile input and fuzzed); LoadSecrets()
// does the I/O (open, fstat, the POSIX ACL) and ExportSecrets() puts the values into the process
// environment, where the modules that need a secret read it (before any thread starts).
//
// Where the file is: --secrets-file PATH, else $OPENSENSE_SECRETS_FILE, else
// $CREDENTIALS_DIRECTORY/secrets.env (systemd LoadCredential=), else /etc/opensense/secrets.env
// when it exists. A secret set in the process environment wins over the file (the usual
// precedence: file < environment); the log names it, never its value.
//
// No message of this module ever contains a value from the file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace opensense::app {

inline constexpr std::string_view kSecretsFileEnvVar = "OPENSENSE_SECRETS_FILE";
inline constexpr std::string_view kDefaultSecretsFile = "/etc/opensense/secrets.env";
inline constexpr std::string_view kCredentialName = "secrets.env";
// Larger files are refused (a secrets file is a few lines).
inline constexpr std::size_t kMaxSecretsFileBytes = 64 * 1024;

// `text` in env-file syntax: blank lines, comment lines (# or ;), `KEY=VALUE` with an optional
// `export ` before KEY, spaces around `=` allowed; VALUE unquoted (trailing spaces dropped, a `#`
// is part of it), 'single-quoted' (literal) or "double-quoted" (\" \\ \n \t \$ escapes), a comment
// may follow a closing quote. Refused, with `where:LINE:` and never the value: an unknown or
// repeated name, a line without `=`, an empty value, an unterminated quote, text after a closing
// quote, a NUL or other control character, a line continuation. `where` is the file's path.
Result<std::map<std::string, std::string>> ParseSecretsFile(std::string_view text,
                                                            std::string_view where);

// One entry of a POSIX access ACL (system.posix_acl_access): tag ACL_USER_OBJ=0x01, ACL_USER=0x02,
// ACL_GROUP_OBJ=0x04, ACL_GROUP=0x08, ACL_MASK=0x10, ACL_OTHER=0x20; perm rwx bits.
struct AclEntry {
  std::uint16_t tag = 0;
  std::uint16_t perm = 0;
  std::uint32_t id = 0;
};

// The raw xattr value -> entries; nullopt when it is not a version-2 ACL.
std::optional<std::vector<AclEntry>> ParsePosixAcl(std::string_view xattr);

// What the permission rule looks at (from fstat and the ACL of the opened file).
struct SecretsFileFacts {
  bool regular_file = true;
  uid_t owner = 0;
  mode_t mode = 0;               // permission bits (st_mode & 07777)
  std::vector<AclEntry> acl;     // empty: no extended ACL
};

// OK when the file is a regular file owned by root or `service_uid` on which no one but the owner
// (and, through an ACL entry, `service_uid` — systemd's LoadCredential grants read that way) has
// any permission. Otherwise kPermissionDenied, naming the problem and the exact command to run:
// `chown root:root PATH && chmod 0400 PATH`. `service_user` names service_uid in messages.
Status CheckSecretsFileFacts(std::string_view path, const SecretsFileFacts& facts, uid_t service_uid,
                             std::string_view service_user);

// Which file to read. `flag`: --secrets-file (empty: not given); `env`: the process environment.
struct SecretsFileChoice {
  std::string path;    // empty: none
  bool required = false;  // given explicitly: it must exist and be readable
  std::string origin;  // "--secrets-file", "OPENSENSE_SECRETS_FILE", "systemd credential", "default"
};
SecretsFileChoice ChooseSecretsFile(std::string_view flag,
                                    const std::map<std::string, std::string>& env,
                                    bool (*exists)(const std::string&));

struct LoadedSecrets {
  std::string path;                          // empty: no file was read
  std::map<std::string, std::string> values; // name -> value
  std::string note;                          // a line for the log/stderr, or empty; no values
};

// Opens `choice.path` (no file: nothing loaded), checks it with CheckSecretsFileFacts against the
// running effective uid, parses it. A default file this user may not read is skipped with a note
// unless `must_read_default` (serve: refuses to run without the secrets it would have had).
Result<LoadedSecrets> LoadSecrets(const SecretsFileChoice& choice, bool must_read_default);

// setenv() each secret not already in the environment (the environment wins); returns the names
// the environment overrode. Call before any thread starts.
std::vector<std::string> ExportSecrets(const LoadedSecrets& secrets);

}  // namespace opensense::app
