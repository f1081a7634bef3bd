#include "app/secrets_file.hpp"

#include "app/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace opensense::app {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kPath = "/etc/opensense/secrets.env";

std::map<std::string, std::string> ParseOk(std::string_view text) {
  auto r = ParseSecretsFile(text, kPath);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? *r : std::map<std::string, std::string>{};
}

std::string ParseError(std::string_view text) {
  auto r = ParseSecretsFile(text, kPath);
  EXPECT_FALSE(r) << "accepted: " << text;
  return r ? "" : r.error().message;
}

TEST(SecretsFileParse, SyntaxOfAnEnvFile) {
  auto v = ParseOk(
      "# OpenSense secrets\n"
      "\n"
      "; also a comment\n"
      "OPENSENSE_STORE_PASSWORD=plain value with # hash  \n"
      "export OPENSENSE_POSTMARK_TOKEN = 'single $quoted \\n' # comment\n"
      "  OPENSENSE_TELEGRAM_TOKEN=\"dq \\\"x\\\" \\\\ \\n\\t\"\r\n"
      "OPENSENSE_MQTT_HOOK_SECRET=a=b=c");
  EXPECT_EQ(v.size(), 4u);
  EXPECT_EQ(v["OPENSENSE_STORE_PASSWORD"], "plain value with # hash");
  EXPECT_EQ(v["OPENSENSE_POSTMARK_TOKEN"], "single $quoted \\n");
  EXPECT_EQ(v["OPENSENSE_TELEGRAM_TOKEN"], "dq \"x\" \\ \n\t");
  EXPECT_EQ(v["OPENSENSE_MQTT_HOOK_SECRET"], "a=b=c");
  EXPECT_TRUE(ParseOk("").empty());
  EXPECT_TRUE(ParseOk("\n\n# only comments\n").empty());
}

TEST(SecretsFileParse, MalformedLinesAreRefusedWithTheLineAndNeverTheValue) {
  struct Case {
    std::string text;
    std::string says;
  };
  const std::string secret = "s3cr3t-VALUE";
  const std::vector<Case> cases = {
      {"OPENSENSE_STORE_PASSWORD='" + secret, ":1: unterminated single quote"},
      {"# x\nOPENSENSE_STORE_PASSWORD=\"" + secret, ":2: unterminated double quote"},
      {"OPENSENSE_STORE_PASSWORD='" + secret + "' trailing", ":1: text after the closing quote"},
      {"OPENSENSE_STORE_PASSWORD=\"" + secret + "\\q\"", ":1: unknown escape"},
      {"OPENSENSE_STORE_PASSWORD=" + secret + "\\", ":1: a line continuation"},
      {"OPENSENSE_STORE_PASSWORD=", ":1: empty value"},
      {"OPENSENSE_STORE_PASSWORD=''", ":1: empty value"},
      {secret, ":1: not a KEY=VALUE line"},
      {"OPENSENSE_STORE_PASSWORD=" + secret + "\nOPENSENSE_STORE_PASSWORD=" + secret,
       ":2: OPENSENSE_STORE_PASSWORD is set twice"},
      {"OPENSENSE_LISTEN=" + secret, ":1: unknown secret name 'OPENSENSE_LISTEN'"},
      {"PATH=" + secret, ":1: unknown secret name; the secrets file may set only"},
      {secret + "=" + secret, ":1: unknown secret name;"},
      {"=" + secret, ":1: unknown secret name;"},
      {std::string("OPENSENSE_STORE_PASSWORD=a\0b", 27) + secret, ":1: a control character"},
      {"OPENSENSE_STORE_PASSWORD=a\x1b[2J" + secret, ":1: a control character"},
      {"OPENSENSE_STORE_PASSWORD=a\rb" + secret, ":1: a control character"},
      {std::string(kMaxSecretsFileBytes + 1, '#'), "larger than"},
  };
  for (const auto& c : cases) {
    const std::string error = ParseError(c.text);
    EXPECT_THAT(error, HasSubstr(c.says)) << c.text;
    EXPECT_THAT(error, HasSubstr(std::string(kPath))) << c.text;
    EXPECT_THAT(error, Not(HasSubstr(secret))) << c.text;
  }
}

TEST(SecretsFileParse, EveryKnownNameIsAccepted) {
  std::string text;
  for (auto name : kSecretEnvVars) text += std::string(name) + "=x\n";
  EXPECT_EQ(ParseOk(text).size(), kSecretEnvVars.size());
}

SecretsFileFacts Facts(uid_t owner, mode_t mode, std::vector<AclEntry> acl = {}) {
  SecretsFileFacts f;
  f.owner = owner;
  f.mode = mode;
  f.acl = std::move(acl);
  return f;
}

TEST(SecretsFilePermissions, OwnerOnlyRootOrServiceUser) {
  const uid_t service = 999;
  EXPECT_TRUE(CheckSecretsFileFacts(kPath, Facts(0, 0400), service, "opensense"));
  EXPECT_TRUE(CheckSecretsFileFacts(kPath, Facts(0, 0600), service, "opensense"));
  EXPECT_TRUE(CheckSecretsFileFacts(kPath, Facts(service, 0600), service, "opensense"));
  EXPECT_TRUE(CheckSecretsFileFacts(kPath, Facts(service, 0400), service, "opensense"));
  for (mode_t bad : {0644, 0640, 0604, 0440, 0410, 0401, 0402, 0420, 0460}) {
    auto r = CheckSecretsFileFacts(kPath, Facts(0, bad), service, "opensense");
    ASSERT_FALSE(r) << std::oct << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied);
    EXPECT_THAT(r.error().message, HasSubstr("group or others have permissions"));
    EXPECT_THAT(r.error().message,
                HasSubstr("run `chown root:root /etc/opensense/secrets.env && chmod 0400 "
                          "/etc/opensense/secrets.env`"));
  }
  auto other = CheckSecretsFileFacts(kPath, Facts(1234, 0400), service, "opensense");
  ASSERT_FALSE(other);
  EXPECT_THAT(other.error().message, HasSubstr("owned by"));
  EXPECT_THAT(other.error().message, HasSubstr("uid 1234"));
  SecretsFileFacts dir = Facts(0, 0400);
  dir.regular_file = false;
  EXPECT_FALSE(CheckSecretsFileFacts(kPath, dir, service, "opensense"));
}

TEST(SecretsFilePermissions, PathsAreQuotedForTheShellInTheCommand) {
  auto r = CheckSecretsFileFacts("/tmp/my secrets'.env", Facts(0, 0644), 1, "x");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("chmod 0400 '/tmp/my secrets'\\''.env'"));
}

TEST(SecretsFilePermissions, AclReadForTheServiceUserOnlyAsSystemdCredentialsHave) {
  const uid_t service = 61234;
  // root-owned 0400 + user:service:r--, mask r-- (systemd's LoadCredential): mode shows 0440.
  std::vector<AclEntry> systemd = {{0x01, 4, 0}, {0x02, 4, service}, {0x04, 0, 0}, {0x10, 4, 0}, {0x20, 0, 0}};
  EXPECT_TRUE(CheckSecretsFileFacts(kPath, Facts(0, 0440, systemd), service, "svc"));
  std::vector<AclEntry> stranger = systemd;
  stranger[1].id = 4321;
  EXPECT_FALSE(CheckSecretsFileFacts(kPath, Facts(0, 0440, stranger), service, "svc"));
  std::vector<AclEntry> group = systemd;
  group.push_back({0x08, 4, 100});
  EXPECT_FALSE(CheckSecretsFileFacts(kPath, Facts(0, 0440, group), service, "svc"));
  std::vector<AclEntry> other = systemd;
  other[4].perm = 4;
  EXPECT_FALSE(CheckSecretsFileFacts(kPath, Facts(0, 0444, other), service, "svc"));
}

TEST(SecretsFilePermissions, PosixAclXattrDecodes) {
  // version 2, user_obj r, user 1000 r, group_obj -, mask r, other -.
  const unsigned char raw[] = {2, 0, 0, 0,                  //
                               1, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,  //
                               2, 0, 4, 0, 0xe8, 3, 0, 0,   //
                               4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,  //
                               0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,  //
                               0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  auto acl = ParsePosixAcl(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
  ASSERT_TRUE(acl);
  ASSERT_EQ(acl->size(), 5u);
  EXPECT_EQ((*acl)[1].tag, 0x02);
  EXPECT_EQ((*acl)[1].id, 1000u);
  EXPECT_FALSE(ParsePosixAcl(std::string_view("\x01\0\0\0", 4)));
  EXPECT_FALSE(ParsePosixAcl(std::string_view("\x02\0\0\0\x01", 5)));
}

bool Never(const std::string&) { return false; }
bool Always(const std::string&) { return true; }

TEST(SecretsFileChoice, FlagThenEnvironmentThenCredentialThenDefault) {
  std::map<std::string, std::string> env = {{"OPENSENSE_SECRETS_FILE", "/e"},
                                            {"CREDENTIALS_DIRECTORY", "/run/credentials/x"}};
  EXPECT_EQ(ChooseSecretsFile("/f", env, Always).path, "/f");
  EXPECT_TRUE(ChooseSecretsFile("/f", env, Always).required);
  EXPECT_EQ(ChooseSecretsFile("", env, Always).path, "/e");
  env.erase("OPENSENSE_SECRETS_FILE");
  EXPECT_EQ(ChooseSecretsFile("", env, Always).path, "/run/credentials/x/secrets.env");
  EXPECT_EQ(ChooseSecretsFile("", env, Never).path, "");
  env.clear();
  auto def = ChooseSecretsFile("", env, Always);
  EXPECT_EQ(def.path, "/etc/opensense/secrets.env");
  EXPECT_FALSE(def.required);
}

}  // namespace
}  // namespace opensense::app
