// The manifest parser against valid, malformed and hostile input.
#include "backup/manifest.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace opensense::backup {
namespace {

Manifest Sample() {
  Manifest m;
  m.name = "opensense-20261129T043500Z";
  m.file = "opensense-20261129T043500Z.sqlite.age";
  m.created_at = 1'795'000'000'000;
  m.store_kind = StoreKind::kSqlite;
  m.schema_version = 3;
  m.tables = {{"chunks", 12}, {"devices", 3}, {"organizations", 1}};
  m.readings = 10'000;
  m.newest_reading = 1'794'999'000'000;
  m.sha256 = std::string(64, 'a');
  m.encrypted_bytes = 4096;
  m.plain_bytes = 8192;
  m.duration_ms = 120;
  m.recipients = {"age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"};
  m.opensense_version = "0.1.0";
  return m;
}

TEST(Manifest, RoundTrips) {
  Manifest m = Sample();
  auto back = ParseManifest(SerializeManifest(m));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, m);
  m.verification = Verification{DrillStatus::kFailed, 1'795'000'100'000, "offsite", "SHA-256 differs"};
  m.newest_reading.reset();
  m.store_kind = StoreKind::kPostgres;
  m.method = BackupMethod::kPgDump;
  back = ParseManifest(SerializeManifest(m));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, m);
  // A physical backup carries the database, the role and the counts after the copy.
  m.method = BackupMethod::kPgBaseBackup;
  m.file = m.name + ".pgbase.tar.zst.age";
  m.database = "opensense";
  m.role = "opensense";
  m.tables_at_end = {{"chunks", 14}, {"devices", 3}, {"organizations", 1}};
  back = ParseManifest(SerializeManifest(m));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, m);
}

TEST(Manifest, MethodDefaultsFromTheStoreKindAndMustMatchIt) {
  // Manifests written before the method was recorded.
  std::string text = SerializeManifest(Sample());
  text.erase(text.find("\"method\""), std::string("\"method\": \"sqlite_file\",").size());
  auto old = ParseManifest(text);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(old->method, BackupMethod::kSqliteFile);
  Manifest pg = Sample();
  pg.store_kind = StoreKind::kPostgres;
  pg.method = BackupMethod::kPgBaseBackup;
  std::string physical = SerializeManifest(pg);
  auto no_database = ParseManifest(physical.replace(physical.find("\"database\""), 10, "\"databasx\""));
  ASSERT_FALSE(no_database);
  EXPECT_NE(no_database.error().message.find("'database' is missing"), std::string::npos);
  Manifest mismatch = Sample();
  mismatch.method = BackupMethod::kPgDump;  // a SQLite store cannot have a pg_dump
  auto refused = ParseManifest(SerializeManifest(mismatch));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("'method'"), std::string::npos);
}

// Replaces the first occurrence of `from` in a valid manifest.
std::string With(const std::string& from, const std::string& to) {
  std::string text = SerializeManifest(Sample());
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  return pos == std::string::npos ? text : text.replace(pos, from.size(), to);
}

TEST(Manifest, MalformedAndHostileInputIsRefusedWithTheReason) {
  struct Case {
    std::string text;
    std::string expect;  // in the message
  };
  const std::string sha(64, 'a');
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[]", "not a JSON object"},
      {"{}", "'format' is missing"},
      {With("\"opensense-backup\"", "\"other\""), "'format'"},
      {With("\"format_version\": 1", "\"format_version\": 99"), "newer than this OpenSense reads"},
      {With("\"name\": \"opensense-20261129T043500Z\"", "\"name\": \"../../etc\""), "'name'"},
      {With("\"file\": \"opensense-20261129T043500Z.sqlite.age\"", "\"file\": \"../../etc/passwd\""), "'file'"},
      {With("\"file\": \"opensense-20261129T043500Z.sqlite.age\"", "\"file\": \"/etc/passwd\""), "'file'"},
      {With("\"file\": \"opensense-20261129T043500Z.sqlite.age\"", "\"file\": \"other.sqlite.age\""), "'file'"},
      {With("\"store_kind\": \"sqlite\"", "\"store_kind\": \"mysql\""), "'store_kind'"},
      {With("\"schema_version\": 3", "\"schema_version\": \"3\""), "'schema_version' is not an integer"},
      {With("\"schema_version\": 3", "\"schema_version\": 0"), "'schema_version'"},
      {With("\"readings\": 10000", "\"readings\": -1"), "'readings'"},
      {With("\"readings\": 10000", "\"readings\": 18446744073709551615"), "out of range"},
      {With("\"readings\": 10000", "\"readings\": 1.5"), "not an integer"},
      {With(sha, std::string(63, 'a')), "'sha256'"},
      {With(sha, std::string(64, 'A')), "'sha256'"},
      {With(sha, std::string(63, 'a') + "g"), "'sha256'"},
      {With("\"chunks\": 12", "\"chunks; DROP TABLE x\": 12"), "table name"},
      {With("\"chunks\": 12", "\"chunks\": -3"), "not a count"},
      {With("\"tables\": {", "\"tables\": [{"), "not valid JSON"},
      {With("\"recipients\": [", "\"recipients\": [1, "), "recipient"},
      {With("\"0.1.0\"", "\"0.1.0\\u0007\""), "printable"},
      {With("\"verification\": null", "\"verification\": {\"status\": \"maybe\"}"), "verification"},
      {With("\"verification\": null", "\"verification\": 7"), "verification"},
      {std::string(300'000, ' '), "larger than"},
      {std::string(10'000, '[') + std::string(10'000, ']'), "nested deeper"},
      {"{\"a\":" + std::string(5'000, '{') + std::string(5'000, '}') + "}", "nested deeper"},
  };
  for (const auto& c : cases) {
    auto m = ParseManifest(c.text);
    ASSERT_FALSE(m) << c.text.substr(0, 200);
    EXPECT_EQ(m.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(m.error().message.find(c.expect), std::string::npos)
        << "expected '" << c.expect << "' in: " << m.error().message;
    EXPECT_EQ(m.error().message.rfind("manifest: ", 0), 0u) << m.error().message;
  }
}

TEST(Manifest, TooManyTablesOrRecipientsAreRefused) {
  std::string tables;
  for (int i = 0; i < 300; ++i) tables += "\"t" + std::to_string(i) + "\": 1, ";
  EXPECT_FALSE(ParseManifest(With("\"chunks\": 12", tables + "\"chunks\": 12")));
  std::string recipients;
  for (int i = 0; i < 100; ++i) recipients += "\"age1x\", ";
  EXPECT_FALSE(ParseManifest(With("\"recipients\": [", "\"recipients\": [" + recipients)));
}

TEST(Manifest, RandomMutationsNeverCrash) {
  const std::string base = SerializeManifest(Sample());
  std::mt19937 rng(42);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0: text[pos] = static_cast<char>(rng() % 256); break;
        case 1: text.erase(pos, 1 + rng() % 8); break;
        default: text.insert(pos, std::string(1 + rng() % 3, "{}[]\",:0a\\"[rng() % 10])); break;
      }
      if (text.empty()) text = "x";
    }
    if (ParseManifest(text)) ++accepted;
  }
  EXPECT_LT(accepted, 3000);
}

TEST(Manifest, BackupNames) {
  EXPECT_TRUE(IsValidBackupName("opensense-20261129T043500Z-2"));
  EXPECT_FALSE(IsValidBackupName(""));
  EXPECT_FALSE(IsValidBackupName(".hidden"));
  EXPECT_FALSE(IsValidBackupName("a/b"));
  EXPECT_FALSE(IsValidBackupName("a b"));
  EXPECT_FALSE(IsValidBackupName(std::string(129, 'a')));
  EXPECT_EQ(ManifestFileName("x"), "x.manifest.json");
}

}  // namespace
}  // namespace opensense::backup
