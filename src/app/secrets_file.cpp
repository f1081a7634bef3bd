#include "app/secrets_file.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "app/config.hpp"

namespace opensense::app {
namespace {

tl::unexpected<Error> Bad(std::string_view where, std::size_t line, std::string_view what) {
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}:{}: {}", where, line, what));
}

bool IsKnownSecret(std::string_view name) {
  return std::find(kSecretEnvVars.begin(), kSecretEnvVars.end(), name) != kSecretEnvVars.end();
}

std::string KnownSecretNames() {
  std::string out;
  for (auto n : kSecretEnvVars) out += fmt::format("{}{}", out.empty() ? "" : ", ", n);
  return out;
}

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimLeft(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  return s;
}
std::string_view TrimRight(std::string_view s) {
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// After a closing quote: blanks, then nothing or a comment.
bool OnlyCommentAfter(std::string_view rest) {
  rest = TrimLeft(rest);
  return rest.empty() || rest.front() == '#';
}

// The value part of a line (after '='); the error says what is wrong, never the value.
Result<std::string> ParseValue(std::string_view v, std::string_view where, std::size_t line) {
  v = TrimLeft(v);
  std::string out;
  if (!v.empty() && v.front() == '\'') {
    const std::size_t close = v.find('\'', 1);
    if (close == std::string_view::npos) return Bad(where, line, "unterminated single quote");
    if (!OnlyCommentAfter(v.substr(close + 1))) {
      return Bad(where, line, "text after the closing quote");
    }
    out = std::string(v.substr(1, close - 1));
  } else if (!v.empty() && v.front() == '"') {
    std::size_t i = 1;
    bool closed = false;
    for (; i < v.size(); ++i) {
      const char c = v[i];
      if (c == '"') {
        closed = true;
        break;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (++i == v.size()) break;
      switch (v[i]) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '$': out += '$'; break;
        case '`': out += '`'; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        default: return Bad(where, line, "unknown escape in a double-quoted value (use \\\" \\\\ \\n \\t \\$)");
      }
    }
    if (!closed) return Bad(where, line, "unterminated double quote");
    if (!OnlyCommentAfter(v.substr(i + 1))) return Bad(where, line, "text after the closing quote");
  } else {
    v = TrimRight(v);
    if (!v.empty() && v.back() == '\\') {
      return Bad(where, line, "a line continuation (trailing \\) is not supported; quote the value");
    }
    if (!v.empty() && (v.front() == '\'' || v.front() == '"')) {
      return Bad(where, line, "unterminated quote");
    }
    out = std::string(v);
  }
  if (out.empty()) return Bad(where, line, "empty value (remove the line to leave the secret unset)");
  return out;
}

// `chown root:root PATH && chmod 0400 PATH` with PATH quoted for a shell when it needs it.
std::string ShellWord(std::string_view path) {
  const bool plain = !path.empty() && std::all_of(path.begin(), path.end(), [](char c) {
    return IsNameChar(c) || c == '/' || c == '.' || c == '-' || c == '+' || c == ',' || c == ':';
  });
  if (plain) return std::string(path);
  std::string out = "'";
  for (char c : path) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string FixCommand(std::string_view path) {
  const std::string p = ShellWord(path);
  return fmt::format("chown root:root {0} && chmod 0400 {0}", p);
}

std::string UserName(uid_t uid) {
  if (const passwd* pw = ::getpwuid(uid)) return pw->pw_name;
  return fmt::format("uid {}", uid);
}

}  // namespace

Result<std::map<std::string, std::string>> ParseSecretsFile(std::string_view text,
                                                            std::string_view where) {
  if (text.size() > kMaxSecretsFileBytes) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: the secrets file is larger than {} bytes", where,
                                 kMaxSecretsFileBytes));
  }
  std::map<std::string, std::string> out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    const std::size_t nl = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF files
    for (char c : line) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        return Bad(where, line_no, "a control character (NUL, CR, ESC, ...) is not allowed");
      }
    }
    line = TrimLeft(line);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.rfind("export", 0) == 0 && line.size() > 6 && IsBlank(line[6])) {
      line = TrimLeft(line.substr(6));
    }
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return Bad(where, line_no, "not a KEY=VALUE line (a comment starts with #)");
    }
    const std::string_view name = TrimRight(line.substr(0, eq));
    const bool identifier =
        !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), IsNameChar);
    if (!IsKnownSecret(name)) {
      // Echo the name only when it plainly is one of ours misspelt, never arbitrary text (which
      // might be a pasted secret).
      const std::string shown =
          identifier && name.rfind("OPENSENSE_", 0) == 0 ? fmt::format(" '{}'", name) : std::string();
      return Bad(where, line_no,
                 fmt::format("unknown secret name{}; the secrets file may set only {}", shown,
                             KnownSecretNames()));
    }
    OS_ASSIGN_OR_RETURN(std::string value, ParseValue(line.substr(eq + 1), where, line_no));
    if (!out.emplace(std::string(name), std::move(value)).second) {
      return Bad(where, line_no, fmt::format("{} is set twice", name));
    }
  }
  return out;
}

std::optional<std::vector<AclEntry>> ParsePosixAcl(std::string_view xattr) {
  // Little-endian: u32 version (2), then entries of u16 tag, u16 perm, u32 id.
  auto u16 = [](const char* p) {
    return static_cast<std::uint16_t>(static_cast<unsigned char>(p[0]) |
                                      (static_cast<unsigned char>(p[1]) << 8));
  };
  auto u32 = [&](const char* p) {
    return static_cast<std::uint32_t>(u16(p)) | (static_cast<std::uint32_t>(u16(p + 2)) << 16);
  };
  if (xattr.size() < 4 || (xattr.size() - 4) % 8 != 0 || u32(xattr.data()) != 2) return std::nullopt;
  std::vector<AclEntry> out;
  for (std::size_t i = 4; i < xattr.size(); i += 8) {
    out.push_back(AclEntry{u16(xattr.data() + i), u16(xattr.data() + i + 2), u32(xattr.data() + i + 4)});
  }
  return out;
}

Status CheckSecretsFileFacts(std::string_view path, const SecretsFileFacts& facts, uid_t service_uid,
                             std::string_view service_user) {
  auto denied = [&](std::string problem) {
    return MakeError(ErrorCode::kPermissionDenied,
                     fmt::format("{}: {}; the secrets file must be owned by root (or {}, the user "
                                 "opensense runs as) and readable by its owner only: run `{}`",
                                 path, problem, service_user, FixCommand(path)));
  };
  if (!facts.regular_file) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: the secrets file is not a regular file", path));
  }
  if (facts.owner != 0 && facts.owner != service_uid) {
    return denied(fmt::format("it is owned by {} (uid {})", UserName(facts.owner), facts.owner));
  }
  constexpr std::uint16_t kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kOther = 0x20;
  if (facts.acl.empty()) {
    if ((facts.mode & 077) != 0) {
      return denied(fmt::format("group or others have permissions on it (mode {:04o})",
                                facts.mode & 07777));
    }
    return Ok();
  }
  // With an ACL the mode's group bits are the mask; look at the entries themselves.
  for (const AclEntry& e : facts.acl) {
    if (e.perm == 0) continue;
    if (e.tag == kGroupObj || e.tag == kGroup || e.tag == kOther) {
      return denied("its ACL gives a group or others permissions (see getfacl)");
    }
    if (e.tag == kUser && e.id != service_uid && e.id != 0) {
      return denied(fmt::format("its ACL gives {} (uid {}) permissions (see getfacl)",
                                UserName(e.id), e.id));
    }
  }
  if ((facts.mode & 07) != 0) {
    return denied(fmt::format("others have permissions on it (mode {:04o})", facts.mode & 07777));
  }
  return Ok();
}

SecretsFileChoice ChooseSecretsFile(std::string_view flag,
                                    const std::map<std::string, std::string>& env,
                                    bool (*exists)(const std::string&)) {
  if (!flag.empty()) return {std::string(flag), true, "--secrets-file"};
  if (auto it = env.find(std::string(kSecretsFileEnvVar)); it != env.end() && !it->second.empty()) {
    return {it->second, true, std::string(kSecretsFileEnvVar)};
  }
  if (auto it = env.find("CREDENTIALS_DIRECTORY"); it != env.end() && !it->second.empty()) {
    std::string p = it->second + "/" + std::string(kCredentialName);
    if (exists(p)) return {p, true, "systemd credential"};
  }
  std::string def(kDefaultSecretsFile);
  if (exists(def)) return {def, false, "default"};
  return {};
}

Result<LoadedSecrets> LoadSecrets(const SecretsFileChoice& choice, bool must_read_default) {
  LoadedSecrets out;
  if (choice.path.empty()) return out;
  const uid_t me = ::geteuid();
  const int fd = ::open(choice.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (!choice.required && !must_read_default && (err == EACCES || err == ENOENT)) {
      out.note = fmt::format("not reading the secrets file {}: {} (runs as {})", choice.path,
                             std::strerror(err), UserName(me));
      return out;
    }
    if (err == EACCES) {
      return MakeError(ErrorCode::kPermissionDenied,
                       fmt::format("{} ({}): permission denied for {}, the user opensense runs as: "
                                   "run it as root, pass the file through systemd's "
                                   "LoadCredential=secrets.env:{} (deploy/systemd/opensense.service), "
                                   "or run `chown {} {} && chmod 0400 {}`",
                                   choice.path, choice.origin, UserName(me), choice.path,
                                   UserName(me), ShellWord(choice.path), ShellWord(choice.path)));
    }
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{} ({}): cannot open the secrets file: {}", choice.path,
                                 choice.origin, std::strerror(err)));
  }
  struct stat st {};
  SecretsFileFacts facts;
  std::string text;
  bool read_ok = ::fstat(fd, &st) == 0;
  if (read_ok) {
    facts.regular_file = S_ISREG(st.st_mode);
    facts.owner = st.st_uid;
    facts.mode = st.st_mode & 07777;
    char acl[1024];
    const ssize_t n = ::fgetxattr(fd, "system.posix_acl_access", acl, sizeof acl);
    if (n > 0) {
      auto entries = ParsePosixAcl(std::string_view(acl, static_cast<std::size_t>(n)));
      // An ACL we cannot read is treated as giving everyone access.
      facts.acl = entries ? *entries : std::vector<AclEntry>{{0x20, 7, 0}};
    }
  }
  Status checked = read_ok ? CheckSecretsFileFacts(choice.path, facts, me, UserName(me))
                           : Status(MakeError(ErrorCode::kInternal, "fstat failed"));
  if (checked && facts.regular_file) {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        read_ok = false;
        break;
      }
      if (n == 0) break;
      text.append(buf, static_cast<std::size_t>(n));
      if (text.size() > kMaxSecretsFileBytes) break;
    }
  }
  ::close(fd);
  if (!checked) return tl::unexpected(checked.error());
  if (!read_ok) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("{}: cannot read the secrets file: {}", choice.path, std::strerror(errno)));
  }
  OS_ASSIGN_OR_RETURN(out.values, ParseSecretsFile(text, choice.path));
  out.path = choice.path;
  return out;
}

std::vector<std::string> ExportSecrets(const LoadedSecrets& secrets) {
  std::vector<std::string> overridden;
  for (const auto& [name, value] : secrets.values) {
    if (std::getenv(name.c_str()) != nullptr) {
      overridden.push_back(name);
      continue;
    }
    ::setenv(name.c_str(), value.c_str(), 0);
  }
  return overridden;
}

}  // namespace opensense::app
