// Backups with real age keys (age-keygen in the test's temp dir), real SQLite files, the
// PostgreSQL test cluster, and the real `opensense` binary for the disaster-recovery rehearsal.
#include "backup/backup.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "api/http/client.hpp"
#include "backup/jobs.hpp"
#include "backup/pg_physical.hpp"
#include "backup/subprocess.hpp"
#include "core/time_zone.hpp"
#include "opensense_process.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/test_util.hpp"

namespace opensense::backup {
namespace {

namespace fs = std::filesystem;
using store::ScratchDir;

// An age key pair made by the real age-keygen.
struct AgeKey {
  std::string identity_file;
  std::string public_key;
};

AgeKey MakeKey(const std::string& dir, const std::string& name) {
  AgeKey k;
  k.identity_file = dir + "/" + name + ".txt";
  auto out = RunPipeline({Command{{"age-keygen", "-o", k.identity_file}, {}}});
  EXPECT_TRUE(out && (*out)[0].exit_code == 0);
  std::ifstream in(k.identity_file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# public key: ", 0) == 0) k.public_key = line.substr(14);
  }
  EXPECT_EQ(k.public_key.rfind("age1", 0), 0u);
  return k;
}

class RecordingAlerts final : public OperatorAlerts {
 public:
  void Raise(const OperatorAlert& a) override {
    std::lock_guard lock(mu_);
    alerts_.push_back(a);
  }
  std::vector<OperatorAlert> alerts() {
    std::lock_guard lock(mu_);
    return alerts_;
  }

 private:
  std::mutex mu_;
  std::vector<OperatorAlert> alerts_;
};

const TimestampMs kStart = 1'790'000'000'000;  // 2026-09-21, a Monday

// A store with `devices` devices of two metrics, readings every 5 minutes for `days` days.
struct Filled {
  std::unique_ptr<store::Store> store;
  OrgId org = 0;
  std::vector<DeviceId> devices;
  TimestampMs next_ts = 0;
  std::int64_t readings = 0;
};

std::vector<Reading> Batch(const std::vector<DeviceId>& devices, TimestampMs ts) {
  std::vector<Reading> batch;
  for (DeviceId d : devices) {
    // Short decimals, as sensors send: rollup sums are exact (core/rollup.hpp).
    const std::int64_t tenths = (ts / 300'000 + d * 7) % 97 - 20;
    const double v = static_cast<double>(tenths) / 10.0;
    batch.push_back({d, "temperature", "Cel", ts, v});
    batch.push_back({d, "humidity", "%RH", ts, static_cast<double>(tenths + 500) / 10.0});
  }
  return batch;
}

Filled Fill(const std::string& url, const ManualClock* clock, int devices, int days) {
  Filled f;
  store::StoreOptions so;
  so.url = url;
  so.clock = clock;
  auto st = store::OpenStore(so);
  EXPECT_TRUE(st) << st.error().message;
  f.store = std::move(*st);
  f.org = f.store->CreateOrganization({"Cafe Rosa", "Europe/Berlin", Tier::kFree})->id;
  for (int i = 0; i < devices; ++i) {
    f.devices.push_back(f.store->CreateDevice({f.org, "Fridge " + std::to_string(i), std::nullopt,
                                               "SN-" + std::to_string(i)})->id);
  }
  f.next_ts = kStart - days * kMsPerDay;
  std::vector<Reading> all;
  for (; f.next_ts < kStart; f.next_ts += 5 * kMsPerMinute) {
    auto b = Batch(f.devices, f.next_ts);
    all.insert(all.end(), b.begin(), b.end());
  }
  auto r = f.store->Ingest(f.org, all).get();
  EXPECT_TRUE(r && r->accepted == all.size());
  f.readings = static_cast<std::int64_t>(all.size());
  return f;
}

// Keeps ingesting while a backup runs: one timestamp of every series per batch, the clock
// following the readings so none is in the future.
class BackgroundWriter {
 public:
  BackgroundWriter(Filled& f, ManualClock& clock)
      : thread_([this, &f, &clock] {
          for (TimestampMs ts = f.next_ts; !stop_; ts += 5 * kMsPerMinute) {
            auto r = f.store->Ingest(f.org, Batch(f.devices, ts)).get();
            if (r) acked_ += static_cast<std::int64_t>(r->accepted);
            if (ts > kStart + 4 * kMsPerMinute) clock.Set(ts);
          }
        }) {}
  ~BackgroundWriter() { Stop(); }
  void WaitFor(std::int64_t readings) {
    while (acked_ < readings) std::this_thread::yield();
  }
  std::int64_t acked() const { return acked_.load(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> acked_{0};
  std::thread thread_;
};

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = MakeKey(dir_.path(), "backup-key");
    other_key_ = MakeKey(dir_.path(), "other-key");
    fs::create_directories(DataDir());
  }
  std::string DataDir() const { return dir_.path() + "/data"; }
  std::string StoreUrl() const { return "sqlite://" + DataDir() + "/opensense.db"; }
  BackupOptions Options(const std::string& url) {
    BackupOptions o;
    o.store_url = url;
    o.backup_dir = dir_.path() + "/backups";
    o.recipients = {key_.public_key};
    o.work_dir = DataDir();
    o.clock = &clock_;
    return o;
  }
  // No plaintext left behind: no private temp directories in the work dir.
  void ExpectNoTempDirs() {
    for (const auto& e : fs::directory_iterator(DataDir())) {
      EXPECT_EQ(e.path().filename().string().rfind(".opensense-", 0), std::string::npos) << e.path();
    }
  }

  ScratchDir dir_{"backup"};
  ManualClock clock_{kStart};
  AgeKey key_, other_key_;
};

void FlipByte(const std::string& path, std::int64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.get(c);
  f.seekp(offset);
  f.put(static_cast<char>(c ^ 0x01));
}

// Raw points of every series of a store, keyed "device/metric".
std::map<std::string, std::vector<SeriesPoint>> AllSeries(store::Store& st, OrgId org) {
  std::map<std::string, std::vector<SeriesPoint>> out;
  const auto devices = st.ListDevices(org);
  for (const auto& d : *devices) {
    const auto latest = st.Latest(org, d.id);
    for (const auto& lv : *latest) {
      auto r = st.QuerySeries({org, d.id, lv.metric, 0, lv.ts + 1, Resolution::kRaw});
      out[std::to_string(d.id) + "/" + lv.metric] = r->points;
    }
  }
  return out;
}

// A hot backup holds a prefix of what the writer acknowledged: every series equals the source's
// up to the newest timestamp the copy has (the writer commits whole timestamps in order).
void ExpectSnapshotOfSource(store::Store& source, store::Store& copy_store, OrgId org) {
  auto src = AllSeries(source, org);
  auto copy = AllSeries(copy_store, org);
  ASSERT_EQ(src.size(), copy.size());
  const TimestampMs cut = copy.begin()->second.back().t;
  for (auto& [key, points] : src) {
    std::erase_if(points, [&](const SeriesPoint& p) { return p.t > cut; });
    ASSERT_EQ(points.size(), copy[key].size()) << key;
    for (std::size_t i = 0; i < points.size(); ++i) {
      ASSERT_EQ(points[i].t, copy[key][i].t);
      ASSERT_EQ(points[i].v, copy[key][i].v);
    }
  }
}

TEST_F(BackupTest, HotBackupWhileIngestingVerifiesAndRestoresTheSnapshot) {
  Filled f = Fill(StoreUrl(), &clock_, 4, 3);
  BackgroundWriter writer(f, clock_);
  writer.WaitFor(200);
  const std::int64_t acked_before = f.readings + writer.acked();
  std::vector<std::string> progress;
  BackupOptions o = Options(StoreUrl());
  o.progress = [&](const std::string& line) { progress.push_back(line); };
  auto m = CreateBackup(o);
  writer.Stop();
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_FALSE(progress.empty());
  EXPECT_EQ(m->store_kind, StoreKind::kSqlite);
  EXPECT_EQ(m->schema_version, store::LatestSchemaVersion());
  EXPECT_GE(m->readings, acked_before);  // everything acknowledged before the snapshot
  EXPECT_LE(m->readings, f.readings + writer.acked());
  EXPECT_EQ(m->tables.at("devices"), 4);
  EXPECT_EQ(m->tables.at("reading_log"), 0);  // folded into chunks in the snapshot
  EXPECT_EQ(m->recipients, std::vector<std::string>{key_.public_key});
  ASSERT_TRUE(m->newest_reading);
  ExpectNoTempDirs();
  // Encrypted: the SQLite header is nowhere in the file; age's header is.
  const std::string enc = o.backup_dir + "/" + m->file;
  std::ifstream in(enc, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(bytes.rfind("age-encryption.org/v1", 0), 0u);
  EXPECT_EQ(bytes.find("SQLite format 3"), std::string::npos);
  EXPECT_EQ(fs::status(o.backup_dir).permissions() & fs::perms::others_all, fs::perms::none);

  auto ref = FindBackup(o, "");
  ASSERT_TRUE(ref) << ref.error().message;
  auto report = VerifyBackup(o, *ref, key_.identity_file);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_GE(report->checks.size(), 5u);
  ExpectNoTempDirs();
  auto listed = ListBackups(o);
  ASSERT_TRUE(listed && listed->size() == 1);
  ASSERT_TRUE((*listed)[0].manifest->verification);
  EXPECT_EQ((*listed)[0].manifest->verification->status, DrillStatus::kPassed);

  // Restore: the same data as the source had at the snapshot, series by series.
  const std::string restored_dir = dir_.path() + "/restored";
  auto restored = RestoreBackup(o, *ref, key_.identity_file, restored_dir, false);
  ASSERT_TRUE(restored) << restored.error().message;
  store::StoreOptions so;
  so.url = "sqlite://" + restored_dir + "/opensense.db";
  auto back = store::OpenStore(so);
  ASSERT_TRUE(back) << back.error().message;
  auto digest = DigestStore(**back);
  ASSERT_TRUE(digest);
  EXPECT_EQ(digest->readings, m->readings);
  ExpectSnapshotOfSource(*f.store, **back, f.org);
  (*back)->Close();
  f.store->Close();
}

TEST_F(BackupTest, RestoreEqualsTheSourceByCountsAndContentChecksums) {
  Filled f = Fill(StoreUrl(), &clock_, 3, 2);
  auto before = DigestStore(*f.store);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->readings, f.readings);
  BackupOptions o = Options(StoreUrl());
  auto m = CreateBackup(o);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->readings, f.readings);
  auto ref = FindBackup(o, m->name);
  ASSERT_TRUE(ref);
  const std::string target = dir_.path() + "/restored";
  auto r = RestoreBackup(o, *ref, key_.identity_file, target, false);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->readings, f.readings);
  store::StoreOptions so;
  so.url = r->target;
  auto back = store::OpenStore(so);
  ASSERT_TRUE(back);
  auto after = DigestStore(**back);
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, *before);
  // Rollups came along too.
  auto q = SeriesQuery{f.org, f.devices[1], "temperature", kStart - 2 * kMsPerDay, kStart, Resolution::k1h};
  EXPECT_EQ(f.store->QuerySeries(q)->points.size(), (*back)->QuerySeries(q)->points.size());
  (*back)->Close();

  // A target that holds a store is refused without --force, and replaced with it.
  auto again = RestoreBackup(o, *ref, key_.identity_file, target, false);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("--force"), std::string::npos) << again.error().message;
  auto forced = RestoreBackup(o, *ref, key_.identity_file, target, true);
  ASSERT_TRUE(forced) << forced.error().message;
  // A PostgreSQL target for a SQLite backup says how to get there.
  auto wrong_kind = RestoreBackup(o, *ref, key_.identity_file, "postgres://127.0.0.1:1/x", false);
  ASSERT_FALSE(wrong_kind);
  EXPECT_NE(wrong_kind.error().message.find("store copy"), std::string::npos);
  f.store->Close();
}

TEST_F(BackupTest, OneFlippedByteFailsVerificationClearly) {
  Filled f = Fill(StoreUrl(), &clock_, 2, 1);
  BackupOptions o = Options(StoreUrl());
  auto m = CreateBackup(o);
  ASSERT_TRUE(m) << m.error().message;
  auto ref = FindBackup(o, m->name);
  ASSERT_TRUE(ref);
  FlipByte(ref->FilePath(), m->encrypted_bytes / 2);
  auto v = VerifyBackup(o, *ref, key_.identity_file);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().message.find("does not match its manifest"), std::string::npos) << v.error().message;
  EXPECT_NE(v.error().message.find("Do not restore from it"), std::string::npos);
  auto listed = FindBackup(o, m->name);
  ASSERT_TRUE(listed && listed->manifest.verification);
  EXPECT_EQ(listed->manifest.verification->status, DrillStatus::kFailed);
  EXPECT_FALSE(RestoreBackup(o, *ref, key_.identity_file, dir_.path() + "/r", false));
  EXPECT_FALSE(fs::exists(dir_.path() + "/r/opensense.db"));

  // Someone who also rewrites the manifest's checksum still meets age's authentication.
  ref->manifest.sha256 = *[&]() -> std::optional<std::string> {
    auto out = RunPipeline({Command{{"sha256sum", ref->FilePath()}, {}}}, dir_.path() + "/sum.txt");
    std::ifstream in(dir_.path() + "/sum.txt");
    std::string sum;
    in >> sum;
    return sum;
  }();
  auto v2 = VerifyBackup(o, *ref, key_.identity_file);
  ASSERT_FALSE(v2);
  EXPECT_NE(v2.error().message.find("decryption failed"), std::string::npos) << v2.error().message;
  ExpectNoTempDirs();
  f.store->Close();
}

TEST_F(BackupTest, WrongIdentityFailsClearly) {
  Filled f = Fill(StoreUrl(), &clock_, 1, 1);
  BackupOptions o = Options(StoreUrl());
  auto m = CreateBackup(o);
  ASSERT_TRUE(m) << m.error().message;
  auto ref = FindBackup(o, "");
  ASSERT_TRUE(ref);
  auto v = VerifyBackup(o, *ref, other_key_.identity_file);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(v.error().message.find("wrong key"), std::string::npos) << v.error().message;
  EXPECT_NE(v.error().message.find(key_.public_key), std::string::npos) << v.error().message;
  auto missing = VerifyBackup(o, *ref, dir_.path() + "/no-such-key.txt");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot read the identity file"), std::string::npos);
  f.store->Close();
}

TEST_F(BackupTest, RecipientsFileAndPrivateKeyRefusal) {
  Filled f = Fill(StoreUrl(), &clock_, 1, 1);
  BackupOptions o = Options(StoreUrl());
  const std::string file = dir_.path() + "/recipients.txt";
  std::ofstream(file) << "# the drill host\n" << other_key_.public_key << "\n";
  o.recipients_file = file;
  auto m = CreateBackup(o);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->recipients, (std::vector<std::string>{key_.public_key, other_key_.public_key}));
  auto ref = FindBackup(o, "");
  EXPECT_TRUE(VerifyBackup(o, *ref, other_key_.identity_file));  // either key opens it
  EXPECT_TRUE(VerifyBackup(o, *ref, key_.identity_file));
  o.recipients = {"AGE-SECRET-KEY-1QQQ"};
  o.recipients_file.clear();
  auto refused = CreateBackup(o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("private key"), std::string::npos);
  o.recipients.clear();
  EXPECT_FALSE(CreateBackup(o));
  f.store->Close();
}

TEST_F(BackupTest, BackupDirInsideTheDataDirIsRefused) {
  const std::string data = DataDir();
  EXPECT_FALSE(CheckBackupDirPlacement(data + "/backups", data, StoreUrl()));
  EXPECT_FALSE(CheckBackupDirPlacement(data, data, StoreUrl()));
  EXPECT_FALSE(CheckBackupDirPlacement(dir_.path(), data, StoreUrl()));  // holds the data dir
  EXPECT_FALSE(CheckBackupDirPlacement(data + "/../data/x", data, StoreUrl()));
  // The SQLite store's directory counts too, wherever data_dir points.
  EXPECT_FALSE(CheckBackupDirPlacement(DataDir() + "/b", dir_.path() + "/other", StoreUrl()));
  auto ok = CheckBackupDirPlacement(dir_.path() + "/backups", data, StoreUrl());
  EXPECT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(CheckBackupDirPlacement(dir_.path() + "/data-backups", data, StoreUrl()));
  auto msg = CheckBackupDirPlacement(data + "/b", data, StoreUrl());
  EXPECT_NE(msg.error().message.find("must survive the loss of the data volume"), std::string::npos);
}

TEST_F(BackupTest, PruningDeletesExpiredFilesButNeverTheNewestVerified) {
  Filled f = Fill(StoreUrl(), &clock_, 1, 1);
  BackupOptions o = Options(StoreUrl());
  std::vector<std::string> names;
  for (TimestampMs t : {kStart + 10 * kMsPerMinute, kStart + 70 * kMsPerMinute, kStart + 130 * kMsPerMinute}) {
    clock_.Set(t);
    auto m = CreateBackup(o);
    ASSERT_TRUE(m) << m.error().message;
    names.push_back(m->name);
  }
  auto second = FindBackup(o, names[1]);
  ASSERT_TRUE(VerifyBackup(o, *second, key_.identity_file));
  clock_.Set(kStart + 40 * kMsPerDay);
  auto decisions = PruneBackups(o);
  ASSERT_TRUE(decisions);
  // The first (daily) expired after 30 days, the third is the newest, the second the newest
  // verified one.
  EXPECT_FALSE(fs::exists(o.backup_dir + "/" + ManifestFileName(names[0])));
  EXPECT_FALSE(FindBackup(o, names[0]));
  EXPECT_TRUE(FindBackup(o, names[1]));
  EXPECT_TRUE(FindBackup(o, names[2]));
  auto listed = ListBackups(o);
  ASSERT_EQ(listed->size(), 2u);
  f.store->Close();
}

TEST_F(BackupTest, ListShowsDamagedManifestsAndOrphans) {
  Filled f = Fill(StoreUrl(), &clock_, 1, 1);
  BackupOptions o = Options(StoreUrl());
  ASSERT_TRUE(CreateBackup(o));
  std::ofstream(o.backup_dir + "/opensense-x.manifest.json") << "{\"format\": ";
  std::ofstream(o.backup_dir + "/opensense-y.sqlite.age") << "junk";
  auto listed = ListBackups(o);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 3u);
  int damaged = 0;
  for (const auto& b : *listed) damaged += b.manifest ? 0 : 1;
  EXPECT_EQ(damaged, 2);
  auto newest = FindBackup(o, "");
  ASSERT_TRUE(newest);  // the readable one
  EXPECT_FALSE(FindBackup(o, "../etc/passwd"));
  f.store->Close();
}

TEST_F(BackupTest, OffsiteDrillOfACorruptedCopyFailsAndRaisesTheOperatorAlert) {
  Filled f = Fill(StoreUrl(), &clock_, 2, 1);
  RecordingAlerts alerts;
  MetricsRegistry metrics;
  BackupJobOptions jo;
  jo.backup = Options(StoreUrl());
  jo.backup.offsite_dir = dir_.path() + "/storage-box";
  jo.identity_file = key_.identity_file;
  BackupJobs jobs(jo, &alerts, &metrics, clock_.NowMs());
  auto st = jobs.RunBackupJob(clock_.NowMs());
  ASSERT_TRUE(st) << st.error().message;
  auto copies = ListOffsiteCopies(jo.backup);
  ASSERT_TRUE(copies && copies->size() == 1);
  const std::string copy = jo.backup.offsite_dir + "/" + (*copies)[0].file;
  ASSERT_TRUE(fs::exists(copy));
  // A second backup in the same week is not copied again.
  clock_.Advance(kMsPerHour);
  ASSERT_TRUE(jobs.RunBackupJob(clock_.NowMs()));
  EXPECT_EQ(ListOffsiteCopies(jo.backup)->size(), 1u);
  // The drill fetches the copy back and restores it.
  ASSERT_TRUE(jobs.RunDrillJob(clock_.NowMs()));
  EXPECT_TRUE(alerts.alerts().empty());
  const std::string rendered = metrics.RenderPrometheus();
  EXPECT_NE(rendered.find("opensense_backup_drill_last_success_timestamp_seconds{source=\"offsite\"}"),
            std::string::npos);
  EXPECT_NE(rendered.find("opensense_backup_last_success_timestamp_seconds{class=\"weekly\"}"), std::string::npos);
  EXPECT_NE(rendered.find("opensense_backup_last_size_bytes"), std::string::npos);
  EXPECT_NE(rendered.find("opensense_backup_last_duration_seconds"), std::string::npos);

  // The off-site copy rots; a week later the drill fetches it again and must fail loudly.
  FlipByte(copy, fs::file_size(copy) - 10);
  clock_.Advance(7 * kMsPerDay);
  auto drill = jobs.RunDrillJob(clock_.NowMs());
  ASSERT_FALSE(drill);
  EXPECT_NE(drill.error().message.find("off-site copy"), std::string::npos) << drill.error().message;
  auto raised = alerts.alerts();
  ASSERT_EQ(raised.size(), 1u);
  EXPECT_EQ(raised[0].kind, "restore_drill_failed");
  EXPECT_EQ(raised[0].severity, OperatorSeverity::kCritical);
  EXPECT_EQ(raised[0].dedup_key, "restore_drill_failed:offsite");
  EXPECT_NE(raised[0].body.find("does not match its manifest"), std::string::npos) << raised[0].body;
  EXPECT_NE(metrics.RenderPrometheus().find("opensense_backup_failures_total{stage=\"drill_offsite\"} 1"),
            std::string::npos);
  auto after = ListOffsiteCopies(jo.backup);
  ASSERT_TRUE((*after)[0].verification);
  EXPECT_EQ((*after)[0].verification->status, DrillStatus::kFailed);
  f.store->Close();
}

TEST_F(BackupTest, OffsiteThroughCommandsPushesFetchesAndPrunes) {
  Filled f = Fill(StoreUrl(), &clock_, 1, 1);
  const std::string remote = dir_.path() + "/remote box";  // a space: commands quote their values
  fs::create_directories(remote);
  BackupOptions o = Options(StoreUrl());
  o.offsite_command = "cp {file} '" + remote + "'/{name}";
  o.offsite_fetch_command = "cp '" + remote + "'/{name} {file}";
  o.offsite_delete_command = "rm '" + remote + "'/{name}";
  auto m = CreateBackup(o);
  ASSERT_TRUE(m);
  ASSERT_TRUE(CopyOffsite(o, *FindBackup(o, m->name)));
  EXPECT_TRUE(fs::exists(remote + "/" + m->file));
  EXPECT_TRUE(fs::exists(remote + "/" + ManifestFileName(m->name)));
  auto drill = DrillOffsite(o, key_.identity_file);
  ASSERT_TRUE(drill) << drill.error().message;
  // 13 weeks later, with a newer copy, the old one is deleted through the command.
  clock_.Advance(13 * 7 * kMsPerDay);
  auto newer = CreateBackup(o);
  ASSERT_TRUE(newer && CopyOffsite(o, *FindBackup(o, newer->name)));
  ASSERT_TRUE(DrillOffsite(o, key_.identity_file));
  ASSERT_TRUE(PruneOffsite(o));
  EXPECT_FALSE(fs::exists(remote + "/" + m->file));
  EXPECT_TRUE(fs::exists(remote + "/" + newer->file));
  // A failing push command is an error with its output.
  o.offsite_command = "echo 'storage box unreachable' >&2; exit 3";
  auto failed = CopyOffsite(o, *FindBackup(o, newer->name));
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("storage box unreachable"), std::string::npos);
  f.store->Close();
}

TEST_F(BackupTest, FailedAndMissedBackupsRaiseOperatorAlerts) {
  Filled f = Fill(StoreUrl(), &clock_, 1, 1);
  RecordingAlerts alerts;
  MetricsRegistry metrics;
  BackupJobOptions jo;
  jo.backup = Options(StoreUrl());
  jo.backup.recipients = {"age1notavalidrecipient"};
  BackupJobs jobs(jo, &alerts, &metrics, clock_.NowMs());
  auto st = jobs.RunBackupJob(clock_.NowMs());
  ASSERT_FALSE(st);
  ASSERT_EQ(alerts.alerts().size(), 1u);
  EXPECT_EQ(alerts.alerts()[0].kind, "backup_failed");
  EXPECT_NE(metrics.RenderPrometheus().find("opensense_backup_failures_total{stage=\"backup\"} 1"), std::string::npos);
  // Nothing half-written.
  EXPECT_TRUE(!fs::exists(jo.backup.backup_dir) || fs::is_empty(jo.backup.backup_dir));
  ExpectNoTempDirs();
  // Two hours without a backup: missed, raised once until a backup succeeds.
  jobs.CheckMissed(clock_.NowMs() + kMsPerHour);
  EXPECT_EQ(alerts.alerts().size(), 1u);
  jobs.CheckMissed(clock_.NowMs() + 2 * kMsPerHour + 1);
  jobs.CheckMissed(clock_.NowMs() + 2 * kMsPerHour + 10 * kMsPerMinute);
  ASSERT_EQ(alerts.alerts().size(), 2u);
  EXPECT_EQ(alerts.alerts()[1].kind, "backup_missed");
  EXPECT_EQ(alerts.alerts()[1].dedup_key, "backup_missed");
  f.store->Close();
}

// ---- PostgreSQL --------------------------------------------------------------------------------

TEST_F(BackupTest, PostgresBackupWhileIngestingVerifiesAndRestores) {
  auto admin = store::TestPostgresUrl();
  if (!admin) GTEST_SKIP() << "no PostgreSQL test cluster (run through ctest)";
  const std::string url = store::FreshPostgresDatabase(*admin, dir_.path() + "src");
  Filled f = Fill(url, &clock_, 3, 2);
  auto before = DigestStore(*f.store);
  ASSERT_TRUE(before);
  BackupOptions o = Options(url);
  auto quiet = CreateBackup(o);
  ASSERT_TRUE(quiet) << quiet.error().message;
  EXPECT_EQ(quiet->store_kind, StoreKind::kPostgres);
  EXPECT_EQ(quiet->readings, f.readings);
  EXPECT_EQ(quiet->file.substr(quiet->file.size() - 11), ".pgdump.age");

  // Restore into a fresh database: the same content.
  const std::string target = store::FreshPostgresDatabase(*admin, dir_.path() + "dst");
  auto ref = FindBackup(o, quiet->name);
  ASSERT_TRUE(ref);
  auto r = RestoreBackup(o, *ref, key_.identity_file, target, false);
  ASSERT_TRUE(r) << r.error().message;
  store::StoreOptions so;
  so.url = target;
  {
    auto back = store::OpenStore(so);
    ASSERT_TRUE(back) << back.error().message;
    auto after = DigestStore(**back);
    ASSERT_TRUE(after);
    EXPECT_EQ(*after, *before);
    (*back)->Close();
  }
  auto again = RestoreBackup(o, *ref, key_.identity_file, target, false);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("not empty"), std::string::npos);
  auto wrong = RestoreBackup(o, *ref, other_key_.identity_file, store::FreshPostgresDatabase(*admin, dir_.path() + "w"), false);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("wrong key"), std::string::npos) << wrong.error().message;

  // Hot: pg_dump of an exported snapshot while a writer ingests; the counts are the snapshot's.
  BackgroundWriter writer(f, clock_);
  writer.WaitFor(100);
  const std::int64_t acked_before = f.readings + writer.acked();
  auto hot = CreateBackup(o);
  writer.Stop();
  ASSERT_TRUE(hot) << hot.error().message;
  EXPECT_GE(hot->readings, acked_before);
  auto hot_ref = FindBackup(o, hot->name);
  auto v = VerifyBackup(o, *hot_ref, key_.identity_file);
  ASSERT_TRUE(v) << v.error().message;
  // One flipped byte fails here too.
  FlipByte(hot_ref->FilePath(), hot->encrypted_bytes / 3);
  auto bad = VerifyBackup(o, *hot_ref, key_.identity_file);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("does not match its manifest"), std::string::npos);
  f.store->Close();
}

// ---- PostgreSQL, physical (pg_basebackup) ----------------------------------------------------

TEST_F(BackupTest, PostgresPhysicalBackupWhileIngestingDrillsAndRestoresIntoAnEmptyDataDirectory) {
  auto admin = store::TestPostgresUrl();
  if (!admin) GTEST_SKIP() << "no PostgreSQL test cluster (run through ctest)";
  const std::string url = store::FreshPostgresDatabase(*admin, dir_.path() + "phys");
  Filled f = Fill(url, &clock_, 3, 2);
  BackupOptions o = Options(url);
  o.pg_method = PgBackupMethod::kPhysical;

  // Hot: the writer keeps ingesting while pg_basebackup copies the cluster.
  BackgroundWriter writer(f, clock_);
  writer.WaitFor(100);
  const std::int64_t acked_before = f.readings + writer.acked();
  auto m = CreateBackup(o);
  writer.WaitFor(writer.acked() + 12);  // still ingesting after the copy
  writer.Stop();
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->method, BackupMethod::kPgBaseBackup);
  EXPECT_TRUE(m->file.ends_with(".pgbase.tar.zst.age")) << m->file;
  EXPECT_EQ(m->role, "opensense");
  EXPECT_EQ(m->database, url.substr(url.rfind('/') + 1));
  EXPECT_GE(m->readings, acked_before);
  EXPECT_GE(m->tables_at_end.at("readings"), m->readings);
  EXPECT_LE(m->tables_at_end.at("readings"), f.readings + writer.acked());
  {
    std::ifstream in(o.backup_dir + "/" + m->file, std::ios::binary);
    std::string head(21, '\0');
    in.read(head.data(), 21);
    EXPECT_EQ(head, "age-encryption.org/v1");
  }
  auto ref = FindBackup(o, m->name);
  ASSERT_TRUE(ref) << ref.error().message;
  EXPECT_EQ(ref->manifest, *m);

  // The drill: unpack, pg_verifybackup, a scratch server, counts, rollups.
  auto v = VerifyBackup(o, *ref, key_.identity_file);
  ASSERT_TRUE(v) << v.error().message;
  std::string checks;
  for (const auto& c : v->checks) checks += c + "\n";
  EXPECT_NE(checks.find("pg_verifybackup"), std::string::npos) << checks;
  EXPECT_NE(checks.find("replayed the WAL"), std::string::npos) << checks;
  EXPECT_NE(checks.find("between the counts before and after"), std::string::npos) << checks;
  EXPECT_NE(checks.find("rollups of"), std::string::npos) << checks;
  ExpectNoTempDirs();

  // Disaster recovery: unpack into an empty data directory, start PostgreSQL on it, read back.
  const std::string pgdata = dir_.path() + "/pgdata";
  auto r = RestoreBackup(o, *ref, key_.identity_file, pgdata, false);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_NE(r->next_step.find("Start PostgreSQL on"), std::string::npos) << r->next_step;
  EXPECT_TRUE(fs::exists(pgdata + "/backup_label"));
  EXPECT_EQ(fs::status(pgdata).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
  auto server = LocalPostgres::Start({pgdata, dir_.path() + "/pgrun", kDefaultPgBinDir, {}});
  ASSERT_TRUE(server) << server.error().message;
  {
    store::StoreOptions so;
    so.url = server->Url(m->role, m->database);
    so.clock = &clock_;
    auto back = store::OpenStore(so);
    ASSERT_TRUE(back) << back.error().message;
    auto digest = DigestStore(**back);
    ASSERT_TRUE(digest) << digest.error().message;
    EXPECT_GE(digest->readings, m->readings);
    EXPECT_LE(digest->readings, m->tables_at_end.at("readings"));
    ExpectSnapshotOfSource(*f.store, **back, f.org);
    (*back)->Close();
  }
  // That server's pg_hba.conf has no replication line: a physical backup of it says what to add.
  BackupOptions of_restored = o;
  of_restored.store_url = server->Url(m->role, m->database);
  of_restored.backup_dir = dir_.path() + "/backups-of-restored";
  auto no_hba = CreateBackup(of_restored);
  ASSERT_FALSE(no_hba);
  EXPECT_EQ(no_hba.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(no_hba.error().message.find("`host    replication   opensense   127.0.0.1/32   scram-sha-256`"),
            std::string::npos) << no_hba.error().message;
  EXPECT_NE(no_hba.error().message.find("pg_reload_conf()"), std::string::npos);
  EXPECT_TRUE(!fs::exists(of_restored.backup_dir) || fs::is_empty(of_restored.backup_dir));
  ASSERT_TRUE(server->Stop());

  // A restore target that is not empty, or a database URL, is refused with what to do instead.
  auto occupied = RestoreBackup(o, *ref, key_.identity_file, pgdata, true);
  ASSERT_FALSE(occupied);
  EXPECT_NE(occupied.error().message.find("move the old directory aside"), std::string::npos) << occupied.error().message;
  auto to_db = RestoreBackup(o, *ref, key_.identity_file, url, false);
  ASSERT_FALSE(to_db);
  EXPECT_NE(to_db.error().message.find("empty data directory"), std::string::npos) << to_db.error().message;

  // A restored table outside the manifest's before/after counts fails the drill, named.
  Manifest tampered = ref->manifest;
  tampered.tables["readings"] = m->tables_at_end.at("readings") + 1000;
  tampered.tables_at_end["readings"] = m->tables_at_end.at("readings") + 2000;
  std::ofstream(ref->ManifestPath(), std::ios::trunc) << SerializeManifest(tampered);
  auto miscounted = VerifyBackup(o, *FindBackup(o, m->name), key_.identity_file);
  ASSERT_FALSE(miscounted);
  EXPECT_NE(miscounted.error().message.find("readings: " + std::to_string(tampered.tables["readings"]) +
                                            " before the copy and"),
            std::string::npos) << miscounted.error().message;
  std::ofstream(ref->ManifestPath(), std::ios::trunc) << SerializeManifest(*m);

  // The wrong identity, then one flipped byte.
  auto wrong = VerifyBackup(o, *ref, other_key_.identity_file);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("wrong key"), std::string::npos) << wrong.error().message;
  FlipByte(ref->FilePath(), m->encrypted_bytes / 2);
  auto bad = VerifyBackup(o, *ref, key_.identity_file);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("does not match its manifest"), std::string::npos) << bad.error().message;
  auto failed_restore = RestoreBackup(o, *ref, key_.identity_file, dir_.path() + "/pgdata2", false);
  ASSERT_FALSE(failed_restore);
  EXPECT_FALSE(fs::exists(dir_.path() + "/pgdata2"));
  ExpectNoTempDirs();
  f.store->Close();
}

TEST_F(BackupTest, PhysicalBackupWithoutTheReplicationAttributeSaysWhatToAdd) {
  auto admin = store::TestPostgresUrl();
  if (!admin) GTEST_SKIP() << "no PostgreSQL test cluster (run through ctest)";
  // A role that owns its database but may not replicate (the store's usual set-up).
  const std::string role = "norepl_" + std::to_string(::getpid());
  {
    auto conn = store::postgres::Conn::Connect(*store::postgres::ParseConnInfo(*admin));
    ASSERT_TRUE(conn) << conn.error().message;
    ASSERT_TRUE((*conn)->Exec(fmt::format("CREATE ROLE {} LOGIN NOREPLICATION PASSWORD '{}'", role,
                                          std::getenv("OPENSENSE_STORE_PASSWORD"))));
    ASSERT_TRUE((*conn)->Exec(fmt::format("CREATE DATABASE {0} OWNER {0}", role)));
  }
  std::string url = *admin;
  url.replace(url.find("opensense@"), 9, role);
  url = url.substr(0, url.rfind('/') + 1) + role;
  {
    store::StoreOptions so;
    so.url = url;
    auto st = store::OpenStore(so);  // creates the schema as that role
    ASSERT_TRUE(st) << st.error().message;
    (*st)->Close();
  }
  BackupOptions o = Options(url);
  o.pg_method = PgBackupMethod::kPhysical;
  auto m = CreateBackup(o);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(m.error().message.find("ALTER ROLE " + role + " REPLICATION;"), std::string::npos) << m.error().message;
  EXPECT_NE(m.error().message.find("backup_method = \"logical\""), std::string::npos);
  EXPECT_TRUE(!fs::exists(o.backup_dir) || fs::is_empty(o.backup_dir));
  // The logical method needs no more than the store's login.
  o.pg_method = PgBackupMethod::kLogical;
  auto logical = CreateBackup(o);
  EXPECT_TRUE(logical) << logical.error().message;
}

// ---- disaster-recovery rehearsal -----------------------------------------------------------

TEST_F(BackupTest, DisasterRecoveryRehearsalServesTheSameSeries) {
  using nlohmann::json;
  opensense::testing::OpenSenseProcess os;
  const std::string backups = dir_.path() + "/dr-backups";
  json org = os.Cli({"org", "create", "--name", "Pharmacy", "--owner-email", "o@x"});
  ASSERT_TRUE(org.contains("token")) << org.dump();
  json dev = os.Cli({"device", "create", "--org", std::to_string(org["id"].get<int>()), "--name", "Vaccine fridge"});
  ASSERT_TRUE(dev.contains("token")) << dev.dump();
  ASSERT_TRUE(os.Start()) << os.Log();
  const std::string device = dev["token"], owner = org["token"];
  const std::string id = std::to_string(dev["id"].get<int>());
  const TimestampMs base = (std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count() / 60000 - 600) * 60000;
  json body = json::array();
  for (int i = 0; i < 600; ++i) body.push_back({{"ts", base + i * 60000}, {"temperature", 2.0 + (i % 40) / 10.0}});
  auto posted = http::Fetch(os.address(), "POST", "/api/v1/ingest",
                            {{"Authorization", "Bearer " + device}, {"Content-Type", "application/json"}}, body.dump());
  ASSERT_TRUE(posted && posted->status == 200) << (posted ? posted->body : posted.error().message);
  const std::string series_path = "/api/v1/devices/" + id + "/series?metric=temperature&resolution=raw&from=" +
                                  std::to_string(base) + "&to=" + std::to_string(base + 600 * 60000);
  auto Series = [&]() {
    auto r = http::Fetch(os.address(), "GET", series_path, {{"Authorization", "Bearer " + owner}});
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : r.error().message);
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  const json before = Series();
  ASSERT_EQ(before["points"].size(), 600u) << before.dump().substr(0, 300);

  // Hot backup from the CLI while serve runs.
  json made = os.Cli({"backup", "run", "--backup-dir", backups, "--backup-recipients", key_.public_key});
  ASSERT_TRUE(made.contains("name")) << made.dump();
  EXPECT_EQ(made["readings"], 600);
  json listed = os.Cli({"backup", "list", "--backup-dir", backups});
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["class"], "weekly");

  // Disaster: the data directory is gone.
  os.Stop();
  fs::remove_all(os.DataDir());
  json restored = os.Cli({"backup", "restore", made["name"], "--identity", key_.identity_file, "--to", os.DataDir(),
                          "--backup-dir", backups});
  ASSERT_EQ(restored["restored_readings"], 600) << restored.dump();
  // Start() looks for the address in serve.log: not the first run's.
  fs::remove(fs::path(os.DataDir()).parent_path() / "serve.log");
  ASSERT_TRUE(os.Start()) << os.Log();
  const json after = Series();
  EXPECT_EQ(after, before);
  // The placement check at start-up.
  os.Stop();
  opensense::testing::OpenSenseProcess bad;
  EXPECT_FALSE(bad.Start({"--backup-dir", bad.DataDir() + "/backups"}));
  EXPECT_NE(bad.Log().find("must survive the loss of the data volume"), std::string::npos) << bad.Log();
}

}  // namespace
}  // namespace opensense::backup
