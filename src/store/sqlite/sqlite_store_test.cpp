// SQLite-specific behaviour: migrations, the writer lock, and durability under SIGKILL.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "core/rollup.hpp"
#include "store/sqlite/migrations.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/store.hpp"
#include "store/test_util.hpp"

namespace opensense::store {
namespace {

constexpr TimestampMs kNow = 1768478400000;  // 2026-01-15T12:00:00Z

StoreOptions Sqlite(const ScratchDir& dir, const Clock* clock) {
  StoreOptions o = Backends()[0].options(dir.path());
  o.clock = clock;
  return o;
}

std::string DbPath(const ScratchDir& dir) { return dir.path() + "/opensense.db"; }

TEST(SqliteMigrations, FromEmptyToLatest) {
  ScratchDir dir("mig");
  ManualClock clock(kNow);
  auto store = OpenStore(Sqlite(dir, &clock));
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->SchemaVersion(), LatestSchemaVersion());
  EXPECT_GE(LatestSchemaVersion(), 3);
}

TEST(SqliteMigrations, FromAPreviousSchemaKeepsTheData) {
  ScratchDir dir("mig");
  {
    auto db = sqlite::Db::Open(DbPath(dir), true, 1000);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->Exec("PRAGMA journal_mode=WAL"));
    ASSERT_TRUE(sqlite::Migrate(db->get(), 1));
    EXPECT_EQ(*sqlite::CurrentVersion(db->get()), 1);
    ASSERT_TRUE((*db)->Exec(
        "INSERT INTO organizations(id,name,time_zone,tier,created_at) VALUES(7,'Old','UTC','free',1);"
        "INSERT INTO devices(id,org_id,name,serial,created_at) VALUES(3,7,'Cold room','SN1',1);"));
  }
  ManualClock clock(kNow);
  // Without migrating, the old schema is refused with the command to run.
  auto no_migrate = Sqlite(dir, &clock);
  no_migrate.migrate = false;
  no_migrate.writer = false;
  auto refused = OpenStore(no_migrate);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("opensense migrate"), std::string::npos);

  auto store = OpenStore(Sqlite(dir, &clock));
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ((*store)->SchemaVersion(), LatestSchemaVersion());
  auto dev = (*store)->FindDeviceBySerial(7, "SN1");
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->id, 3);
  auto res = (*store)->Ingest(7, {Reading{3, "temperature", "Cel", kNow, 3.5}}).get();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->accepted, 1u);
}

TEST(SqliteMigrations, ANewerSchemaRefusesToStart) {
  ScratchDir dir("mig");
  ManualClock clock(kNow);
  { ASSERT_TRUE(OpenStore(Sqlite(dir, &clock))); }
  {
    auto db = sqlite::Db::Open(DbPath(dir), false, 1000);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version=999"));
  }
  auto store = OpenStore(Sqlite(dir, &clock));
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(store.error().message.find("newer than this binary"), std::string::npos);
}

TEST(SqliteStore, OneWriterAtATimeButReadersMayJoin) {
  ScratchDir dir("lock");
  ManualClock clock(kNow);
  auto writer = OpenStore(Sqlite(dir, &clock));
  ASSERT_TRUE(writer);
  auto second = OpenStore(Sqlite(dir, &clock));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(second.error().message.find("opensense serve"), std::string::npos);
  auto ro = Sqlite(dir, &clock);
  ro.writer = false;
  auto reader = OpenStore(ro);
  ASSERT_TRUE(reader) << reader.error().message;
  // A process without the writer may still manage organisations and devices.
  auto org = (*reader)->CreateOrganization({"Side door", "UTC", Tier::kFree});
  ASSERT_TRUE(org);
  EXPECT_TRUE((*writer)->GetOrganization(org->id));
  auto refused = (*reader)->Ingest(org->id, {Reading{1, "temperature", "", kNow, 1}}).get();
  EXPECT_FALSE(refused);
  (*writer)->Close();
  EXPECT_TRUE(OpenStore(Sqlite(dir, &clock)));  // the lock is released on close
}

// SeriesDataVersion (the API's chart cache relies on it): it moves for a device once a commit
// of its readings is acknowledged, and after anything else the writer does to stored data; it
// stays put for another device's readings; a store without the writer cannot tell.
TEST(SqliteStore, SeriesDataVersionMovesWithTheDevicesData) {
  ScratchDir dir("version");
  ManualClock clock(kNow);
  auto opened = OpenStore(Sqlite(dir, &clock));
  ASSERT_TRUE(opened);
  auto& store = **opened;
  OrgId org = store.CreateOrganization({"A", "UTC", Tier::kFree})->id;
  DeviceId a = store.CreateDevice({org, "a", {}, {}, {}})->id;
  DeviceId b = store.CreateDevice({org, "b", {}, {}, {}})->id;
  auto version = [&](DeviceId d) {
    auto v = store.SeriesDataVersion(d);
    EXPECT_TRUE(v.has_value());
    return v.value_or(0);
  };
  std::uint64_t va = version(a), vb = version(b);
  EXPECT_EQ(version(a), va) << "nothing happened";

  ASSERT_TRUE(store.Ingest(org, {Reading{a, "temperature", "", kNow - 1000, 4.5}}).get());
  EXPECT_NE(version(a), va) << "acknowledged readings of a";
  EXPECT_EQ(version(b), vb) << "b's data did not change";
  va = version(a);

  ASSERT_TRUE(store.Ingest(org, {Reading{b, "temperature", "", kNow - 1000, 1}}).get());
  EXPECT_NE(version(b), vb);
  vb = version(b);

  ASSERT_TRUE(store.Compact());
  EXPECT_NE(version(a), va) << "compaction rewrote rows";
  va = version(a);
  ASSERT_TRUE(store.RebuildRollups(org, a, kNow - kMsPerDay, kNow));
  EXPECT_NE(version(a), va) << "rebuilt rollups";
  va = version(a);
  ASSERT_TRUE(store.SetOrganizationTimeZone(org, "Europe/Berlin"));
  EXPECT_NE(version(a), va) << "daily buckets moved";
  va = version(a);
  ASSERT_TRUE(store.RunRetention(false));
  EXPECT_NE(version(a), va) << "retention may delete";
  va = version(a);
  DeviceUpdate up;
  up.name = "renamed";
  ASSERT_TRUE(store.UpdateDevice(org, a, up));
  EXPECT_NE(version(a), va) << "device changes";

  auto ro = Sqlite(dir, &clock);
  ro.writer = false;
  auto reader = OpenStore(ro);
  ASSERT_TRUE(reader);
  EXPECT_FALSE((*reader)->SeriesDataVersion(a).has_value()) << "another process writes: cannot tell";
}

// An incremental flush cycle commits chunks slice by slice and deletes the log rows it covered
// only when the cycle ends; a crash in between leaves log rows whose readings are in chunks.
// Replaying the log must skip them: nothing is read twice, counted twice in rollups, or stored
// again.
TEST(SqliteStore, LogReplaySkipsReadingsAlreadyCompacted) {
  ScratchDir dir("replay");
  ManualClock clock(kNow);
  std::vector<Reading> batch;
  DeviceId device = 0;
  std::int64_t created_at = 0;
  std::string entries;
  {
    auto store = OpenStore(Sqlite(dir, &clock));
    ASSERT_TRUE(store) << store.error().message;
    auto org = (*store)->CreateOrganization({"Replay", "UTC", Tier::kFree});
    ASSERT_TRUE(org);
    device = (*store)->CreateDevice({org->id, "Fridge", std::nullopt, std::nullopt})->id;
    for (int i = 0; i < 50; ++i) {
      batch.push_back(Reading{device, "temperature", "Cel", kNow - (50 - i) * kMsPerMinute, 3.0 + i * 0.01});
    }
    auto res = (*store)->Ingest(org->id, batch).get();
    ASSERT_TRUE(res);
    ASSERT_EQ(res->accepted, 50u);
    {
      auto db = sqlite::Db::Open(DbPath(dir), false, 1000);
      ASSERT_TRUE(db);
      auto row = (*db)->PrepareOnce("SELECT created_at, entries FROM reading_log");
      ASSERT_TRUE(row);
      auto has = row->Step();
      ASSERT_TRUE(has && *has) << "the committed batch is in the log";
      created_at = row->Int(0);
      entries = std::string(row->Blob(1));
    }
    ASSERT_TRUE((*store)->Compact());
  }
  {
    auto db = sqlite::Db::Open(DbPath(dir), false, 1000);
    ASSERT_TRUE(db);
    auto ins = (*db)->PrepareOnce("INSERT INTO reading_log(created_at, entries) VALUES(?,?)");
    ASSERT_TRUE(ins);
    ASSERT_TRUE(ins->Bind(1, created_at).BindBlob(2, entries).Run());
  }
  auto store = OpenStore(Sqlite(dir, &clock));
  ASSERT_TRUE(store) << store.error().message;
  auto stats = (*store)->Stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->head_readings, 0) << "replayed readings that were in chunks already";
  EXPECT_EQ(stats->chunk_readings, 50);
  const TimestampMs from = kNow - kMsPerDay, to = kNow + 1;
  auto raw = (*store)->QuerySeries({1, device, "temperature", from, to, Resolution::kRaw});
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->points.size(), 50u);
  auto fives = (*store)->QuerySeries({1, device, "temperature", from, to, Resolution::k5m});
  ASSERT_TRUE(fives);
  std::int64_t counted = 0;
  for (const auto& p : fives->points) counted += p.count;
  EXPECT_EQ(counted, 50);
  auto again = (*store)->Ingest(1, batch).get();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->accepted, 0u);
  EXPECT_EQ(again->duplicates, 50u);
}

TEST(SqliteStore, UnknownStoreUrlsAreRefused) {
  StoreOptions o;
  o.url = "mysql://x";
  EXPECT_EQ(OpenStore(o).error().code, ErrorCode::kInvalidArgument);
  o.url = "sqlite://";
  EXPECT_EQ(OpenStore(o).error().code, ErrorCode::kInvalidArgument);
}

TEST(SqliteStore, AFullWriterQueueRefusesInsteadOfGrowing) {
  ScratchDir dir("queue");
  ManualClock clock(kNow);
  auto o = Sqlite(dir, &clock);
  o.max_queued_readings = 50;
  auto store = OpenStore(o);
  ASSERT_TRUE(store);
  auto org = (*store)->CreateOrganization({"Q", "UTC", Tier::kFree});
  auto dev = (*store)->CreateDevice({org->id, "D", std::nullopt, std::nullopt});
  std::vector<std::future<Result<IngestResult>>> futures;
  for (int k = 0; k < 2000; ++k) {
    std::vector<Reading> batch;
    for (int i = 0; i < 10; ++i) batch.push_back(Reading{dev->id, "temperature", "", kNow - 100000000 + k * 10 + i, 1});
    futures.push_back((*store)->Ingest(org->id, std::move(batch)));
  }
  int refused = 0, stored = 0;
  for (auto& f : futures) {
    auto r = f.get();
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::kResourceExhausted);
      ++refused;
    } else {
      stored += static_cast<int>(r->accepted);
    }
  }
  EXPECT_GT(refused, 0);
  auto q = (*store)->QuerySeries({org->id, dev->id, "temperature", kNow - 100000001, kNow, Resolution::kRaw});
  ASSERT_TRUE(q);
  EXPECT_EQ(static_cast<int>(q->points.size()), stored);
}

// ---- durability: kill -9 -----------------------------------------------------------------------

constexpr int kCrashDevices = 10;
constexpr int kCrashThreads = 4;
const char* const kCrashDirEnv = "OPENSENSE_CRASH_CHILD_DIR";
// Each run of the child starts at a new batch number: earlier runs' batches are stored already.
const char* const kCrashFirstEnv = "OPENSENSE_CRASH_CHILD_FIRST_BATCH";

std::vector<Reading> CrashBatch(int k, const std::vector<DeviceId>& devices) {
  std::vector<Reading> batch;
  for (int i = 0; i < kCrashDevices; ++i) {
    batch.push_back(Reading{devices[static_cast<std::size_t>(i)], "temperature", "Cel",
                            kNow - 3 * kMsPerDay + k * 1000LL, (k % 1000 + i * 100) / 100.0});
  }
  return batch;
}

// The child: ingests batches from several threads and prints "k\n" for each batch whose
// future completed, until it is killed. Runs only when the parent sets the environment.
TEST(CrashChild, IngestUntilKilled) {
  const char* dir = std::getenv(kCrashDirEnv);
  if (dir == nullptr) GTEST_SKIP() << "runs as the child of CrashTest";
  ManualClock clock(kNow);
  StoreOptions o = Backends()[0].options(dir);
  o.clock = &clock;
  o.head_flush_readings = 3000;  // compactions happen while we are killed, too
  o.flush_slice_readings = 100;  // ... in many slices, so kills land in the middle of a cycle
  auto store = OpenStore(o);
  ASSERT_TRUE(store) << store.error().message;
  std::vector<DeviceId> devices;
  auto listed = (*store)->ListDevices(1);
  ASSERT_TRUE(listed);
  for (const auto& d : *listed) devices.push_back(d.id);
  ASSERT_EQ(devices.size(), static_cast<std::size_t>(kCrashDevices));
  const char* first_env = std::getenv(kCrashFirstEnv);
  const int first = first_env != nullptr ? std::atoi(first_env) : 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kCrashThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = first + t;; k += kCrashThreads) {
        auto res = (*store)->Ingest(1, CrashBatch(k, devices)).get();
        if (!res || res->accepted != static_cast<std::size_t>(kCrashDevices)) std::abort();
        std::string line = std::to_string(k) + "\n";
        if (::write(1, line.data(), line.size()) < 0) std::abort();
      }
    });
  }
  for (auto& t : threads) t.join();
}

TEST(CrashTest, AcknowledgedBatchesSurviveSigkill) {
  ScratchDir dir("crash");
  ManualClock clock(kNow);
  std::vector<DeviceId> devices;
  {
    auto store = OpenStore(Sqlite(dir, &clock));
    ASSERT_TRUE(store);
    auto org = (*store)->CreateOrganization({"Crash", "Europe/Berlin", Tier::kFree});
    ASSERT_TRUE(org);
    ASSERT_EQ(org->id, 1);
    for (int i = 0; i < kCrashDevices; ++i) {
      devices.push_back((*store)->CreateDevice({1, "D" + std::to_string(i), std::nullopt, std::nullopt})->id);
    }
  }
  std::mt19937 rng(std::random_device{}());
  std::set<int> acked;
  for (int trial = 0; trial < 3; ++trial) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::setenv(kCrashDirEnv, dir.path().c_str(), 1);
      ::setenv(kCrashFirstEnv, std::to_string(trial * 50000).c_str(), 1);
      ::execl("/proc/self/exe", "store_test", "--gtest_filter=CrashChild.IngestUntilKilled",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    FILE* in = ::fdopen(fds[0], "r");
    // Kill after a random number of acknowledgements (the child is mid-flight then).
    int kill_after = 200 + static_cast<int>(rng() % 2500);
    int seen = 0;
    char line[64];
    while (seen < kill_after && std::fgets(line, sizeof line, in) != nullptr) {
      if (line[0] >= '0' && line[0] <= '9') acked.insert(std::atoi(line));
      ++seen;
    }
    ::kill(pid, SIGKILL);
    // Lines written before the kill were acknowledged too.
    while (std::fgets(line, sizeof line, in) != nullptr) {
      if (line[0] >= '0' && line[0] <= '9') acked.insert(std::atoi(line));
    }
    std::fclose(in);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended on its own: status " << status;
    ASSERT_GE(seen, kill_after) << "the child stopped acknowledging early";
  }
  ASSERT_FALSE(acked.empty());

  auto store = OpenStore(Sqlite(dir, &clock));
  ASSERT_TRUE(store) << store.error().message;
  const TimestampMs from = kNow - 4 * kMsPerDay, to = kNow;
  for (int i = 0; i < kCrashDevices; ++i) {
    auto raw = (*store)->QuerySeries({1, devices[i], "temperature", from, to, Resolution::kRaw});
    ASSERT_TRUE(raw);
    std::map<TimestampMs, double> got;
    for (const auto& p : raw->points) got[p.t] = p.v;
    // Nothing twice: a reading replayed from the log is not also read from its chunk.
    ASSERT_EQ(got.size(), raw->points.size()) << "duplicate timestamps for device " << i;
    for (int k : acked) {
      auto want = CrashBatch(k, devices)[static_cast<std::size_t>(i)];
      auto it = got.find(want.ts);
      ASSERT_NE(it, got.end()) << "acknowledged batch " << k << " lost for device " << i;
      EXPECT_EQ(it->second, want.value);
    }
    // Rollups agree with the raw readings that survived, before and after a rebuild.
    for (bool rebuilt : {false, true}) {
      if (rebuilt) {
        ASSERT_TRUE((*store)->Compact());
        ASSERT_TRUE((*store)->RebuildRollups(1, devices[i], from, to));
      }
      std::map<TimestampMs, RollupAgg> want;
      for (auto [t, v] : got) want[FloorTo(t, kBucket5m)].Add(t, v);
      auto fives = (*store)->QuerySeries({1, devices[i], "temperature", from, to, Resolution::k5m});
      ASSERT_TRUE(fives);
      ASSERT_EQ(fives->points.size(), want.size()) << "rebuilt=" << rebuilt;
      for (const auto& p : fives->points) {
        const RollupAgg& w = want[p.t];
        EXPECT_EQ(p.count, w.count);
        EXPECT_EQ(p.min, w.min);
        EXPECT_EQ(p.max, w.max);
        EXPECT_EQ(p.v, w.Mean());
      }
    }
  }
}

}  // namespace
}  // namespace opensense::store
