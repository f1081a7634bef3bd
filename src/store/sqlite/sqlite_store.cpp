// SQLite store. Layout of readings (see docs/ARCHITECTURE.md, "Physical layout"):
//
//  * reading_log: one row per group commit holding every accepted reading of the group, all
//    series interleaved. A commit appends one row at the end of one B-tree: a handful of
//    sequential pages instead of one dirty page per reading.
//  * the head: the same readings in memory, per series, sorted; rebuilt from reading_log on open.
//  * chunks: per-series compressed runs (core/chunk_codec), keyed (series_id, start_ts). A flush
//    moves the whole head into chunks, updates the rollup chunks with the same readings and
//    empties reading_log, all in one transaction.
//  * rollups: 5-minute, 1-hour and 1-day aggregates of the chunked readings, compressed in
//    per-series runs (core/rollup_codec); queries add the head's aggregates, so the answer
//    always covers every acknowledged reading.
//
// Consistency: a durable reading is either in reading_log or in chunks (never both, never
// neither), and the rollup chunks always equal the aggregates of the chunks.
#include "store/sqlite/sqlite_store.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include <fmt/format.h>

#include "core/chunk_codec.hpp"
#include "core/rollup.hpp"
#include "core/rollup_codec.hpp"
#include "core/time_zone.hpp"
#include "core/validation.hpp"
#include "store/commit_listener.hpp"
#include "store/sqlite/migrations.hpp"
#include "store/sqlite/sqlite_alert_store.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/sqlite/sqlite_notify_store.hpp"
#include "store/sqlite/sqlite_people_store.hpp"

namespace opensense::store::sqlite {

namespace {

constexpr std::size_t kChunkMax = 1024;  // samples per chunk
// A chunk row must fit in its B-tree page: a WITHOUT ROWID row over ~1,000 bytes (4 KiB pages)
// spills into an overflow page of its own, which more than doubled the bytes per reading.
constexpr std::size_t kChunkMaxBytes = 900;
constexpr std::size_t kChunkMergeBelowBytes = kChunkMaxBytes / 2;  // a smaller tail absorbs more
// The head is flushed once it holds this many readings per series it touches (so that a flush
// writes whole chunks, not a sliver per series), up to a hard cap on memory.
constexpr std::size_t kFlushReadingsPerSeries = 256;
constexpr std::size_t kHeadHardCap = 8'000'000;
constexpr std::size_t kMaxGroupReadings = 200'000;
constexpr std::int64_t kRetentionStep = 500;    // rows per retention transaction
constexpr std::size_t kMaxRawPoints = 2'000'000;
constexpr TimestampMs kCacheTtlMs = 30 * kMsPerSecond;
constexpr TimestampMs kNoTs = std::numeric_limits<TimestampMs>::min();

// Rollup chunks cover fixed windows sized to hold ~48 buckets (well inside a B-tree page).
constexpr TimestampMs kRollupPeriod[3] = {4 * kMsPerHour, 2 * kMsPerDay, 48 * kMsPerDay};
constexpr int kLevel5m = 0, kLevel1h = 1, kLevel1d = 2;
// A bucket's width per level (a local day may be 23 or 25 hours; used for estimates only).
constexpr TimestampMs kRollupBucketWidth[3] = {5 * kMsPerMinute, kMsPerHour, kMsPerDay};

// A function object rather than a function, so sorts, merges and binary searches inline it.
struct ByTsLess {
  bool operator()(const Sample& a, const Sample& b) const { return a.ts < b.ts; }
};
constexpr ByTsLess ByTs{};

TimestampMs CeilTo(TimestampMs ts, TimestampMs width) {
  TimestampMs f = FloorTo(ts, width);
  return f == ts ? ts : f + width;
}

// (device, metric) -> series, without building a key string per reading: a device has a
// handful of metrics, scanned linearly.
template <typename Value>
class SeriesIndex {
 public:
  Value* Find(DeviceId device, std::string_view metric) {
    auto it = by_device_.find(device);
    if (it == by_device_.end()) return nullptr;
    for (auto& [name, value] : it->second) {
      if (name == metric) return &value;
    }
    return nullptr;
  }
  void Insert(DeviceId device, std::string metric, Value value) {
    by_device_[device].emplace_back(std::move(metric), std::move(value));
  }
  void Erase(DeviceId device, std::string_view metric) {
    auto it = by_device_.find(device);
    if (it == by_device_.end()) return;
    std::erase_if(it->second, [&](const auto& e) { return e.first == metric; });
  }

 private:
  std::unordered_map<DeviceId, std::vector<std::pair<std::string, Value>>> by_device_;
};

struct PairHash {
  std::size_t operator()(const std::pair<std::int64_t, TimestampMs>& p) const {
    std::uint64_t h = static_cast<std::uint64_t>(p.first) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<std::uint64_t>(p.second) + 0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
    return static_cast<std::size_t>(h);
  }
};

// Per-series readings waiting in memory (and in reading_log) for the next flush.
struct HeadSeries {
  std::vector<Sample> samples;        // sorted by ts, unique
  TimestampMs chunk_max_ts = kNoTs;   // newest ts stored in chunks
};

struct PendingSample {
  std::int64_t series;
  TimestampMs ts;
  double value;
};

struct IngestJob {
  OrgId org;
  std::vector<Reading> readings;
  std::promise<Result<IngestResult>> promise;
};
struct TaskJob {
  std::function<Status()> fn;
  std::promise<Status> promise;
};
using Job = std::variant<IngestJob, TaskJob>;

// Aggregates samples (sorted by ts) into buckets.
template <typename BucketFn>
std::vector<RollupBucket> Aggregate(std::span<const Sample> samples, BucketFn bucket_of) {
  std::vector<RollupBucket> out;
  for (const Sample& s : samples) {
    TimestampMs b = bucket_of(s.ts);
    if (out.empty() || out.back().bucket != b) out.push_back(RollupBucket{b, RollupAgg{}});
    out.back().agg.Add(s.ts, s.value);
  }
  return out;
}

// Regroups finer buckets (sorted) into coarser ones.
template <typename BucketFn>
std::vector<RollupBucket> Regroup(const std::vector<RollupBucket>& fine, BucketFn bucket_of) {
  std::vector<RollupBucket> out;
  for (const auto& f : fine) {
    TimestampMs b = bucket_of(f.bucket);
    if (out.empty() || out.back().bucket != b) out.push_back(RollupBucket{b, RollupAgg{}});
    out.back().agg.Merge(f.agg);
  }
  return out;
}

Result<Organization> ReadOrganization(Stmt* s) {
  Organization o;
  o.id = s->Int(0);
  o.name = s->Text(1);
  o.time_zone = s->Text(2);
  OS_ASSIGN_OR_RETURN(o.tier, ParseTier(s->Text(3)));
  o.created_at = s->Int(4);
  return o;
}

Device ReadDevice(Stmt* s) {
  Device d;
  d.id = s->Int(0);
  d.org_id = s->Int(1);
  if (!s->IsNull(2)) d.site_id = s->Int(2);
  d.name = s->Text(3);
  if (!s->IsNull(4)) d.serial = s->Text(4);
  d.decommissioned = !s->IsNull(5);
  d.created_at = s->Int(6);
  if (!s->IsNull(7)) d.profile.target_min = s->Double(7);
  if (!s->IsNull(8)) d.profile.target_max = s->Double(8);
  if (!s->IsNull(9)) d.profile.expected_interval_s = s->Int(9);
  d.profile.medicine_storage = s->Int(10) != 0;
  if (!s->IsNull(11)) d.profile.calibration_date = s->Text(11);
  if (!s->IsNull(12)) d.profile.calibration_due = s->Text(12);
  return d;
}

// Binds the profile columns at `first`, first + 1, ... (target_min .. calibration_due).
void BindDeviceProfile(Stmt* s, int first, const DeviceProfile& p) {
  if (p.target_min) s->Bind(first, *p.target_min); else s->BindNull(first);
  if (p.target_max) s->Bind(first + 1, *p.target_max); else s->BindNull(first + 1);
  if (p.expected_interval_s) s->Bind(first + 2, *p.expected_interval_s); else s->BindNull(first + 2);
  s->Bind(first + 3, p.medicine_storage ? 1 : 0);
  if (p.calibration_date) s->Bind(first + 4, *p.calibration_date); else s->BindNull(first + 4);
  if (p.calibration_due) s->Bind(first + 5, *p.calibration_due); else s->BindNull(first + 5);
}

// Steps a bound device query once: the device, or kNotFound with `missing`.
Result<Device> OneDevice(Stmt* s, std::string missing) {
  auto row = s->Step();
  if (!row || !*row) {
    s->Reset();
    if (!row) return tl::unexpected(row.error());
    return MakeError(ErrorCode::kNotFound, std::move(missing));
  }
  Device d = ReadDevice(s);
  s->Reset();
  return d;
}

}  // namespace

class SqliteStore final : public Store {
 public:
  SqliteStore(StoreOptions options, std::string path)
      : options_(std::move(options)), path_(std::move(path)) {
    clock_ = options_.clock != nullptr ? options_.clock : &system_clock_;
  }

  ~SqliteStore() override { Close(); }

  Status Open();

  int SchemaVersion() const override { return schema_version_; }

  // ---- organisations -------------------------------------------------------------------------
  Result<Organization> CreateOrganization(const NewOrganization& org) override;
  Result<Organization> GetOrganization(OrgId id) override;
  Result<std::vector<Organization>> ListOrganizations() override;
  Status SetOrganizationTimeZone(OrgId id, std::string_view time_zone) override;
  Status SetOrganizationTier(OrgId id, Tier tier) override;
  Result<RetentionPolicy> GetRetentionPolicy(OrgId id) override;
  Status SetRetention(OrgId id, DataClass data_class, RetentionPeriod period) override;

  // ---- sites and devices ---------------------------------------------------------------------
  Result<Site> CreateSite(OrgId org, std::string_view name) override;
  Result<std::vector<Site>> ListSites(OrgId org) override;
  Result<Device> CreateDevice(const NewDevice& device) override;
  Result<Device> GetDevice(OrgId org, DeviceId id) override;
  Result<Device> FindDeviceBySerial(OrgId org, std::string_view serial) override;
  Result<std::vector<Device>> ListDevices(OrgId org) override;
  Status DecommissionDevice(OrgId org, DeviceId id) override;
  Result<OrgId> OrganizationOfDevice(DeviceId device) override {
    std::lock_guard lock(meta_mu_);
    return DeviceOrg(meta_db_.get(), device);
  }
  Result<Site> GetSite(OrgId org, SiteId id) override;
  Result<Site> UpdateSite(OrgId org, SiteId id, std::optional<std::string> name,
                          std::optional<bool> auto_register) override;
  Status DeleteSite(OrgId org, SiteId id) override;
  Result<Device> UpdateDevice(OrgId org, DeviceId id, const DeviceUpdate& update) override;
  Result<User> CreateUser(OrgId org, std::string_view email, Role role) override;
  Result<User> GetUser(OrgId org, UserId id) override;
  Result<TokenRecord> CreateToken(const TokenRecord& token) override;
  Result<TokenRecord> FindToken(std::string_view public_id) override;
  Result<std::vector<TokenRecord>> ListTokens(OrgId org) override;
  Status ExpireToken(OrgId org, std::int64_t token_id, TimestampMs at) override;
  Status TouchTokens(const std::vector<std::pair<std::int64_t, TimestampMs>>& used) override;
  Result<std::vector<LatestValue>> Latest(OrgId org, DeviceId device) override;
  Result<std::vector<DeviceLatest>> LatestOfOrganization(OrgId org) override;
  void LogRequests(std::vector<ApiRequestLog> rows) override;

  // ---- readings ------------------------------------------------------------------------------
  std::future<Result<IngestResult>> Ingest(OrgId org, std::vector<Reading> readings) override;
  Result<SeriesResult> QuerySeries(const SeriesQuery& query) override;
  std::optional<std::uint64_t> SeriesDataVersion(DeviceId device) override {
    if (!options_.writer) return std::nullopt;
    // A sum of counters that only grow changes whenever one of them does.
    return data_generation_.load() + meta_generation_.load() +
           device_generation_[static_cast<std::size_t>(device) % device_generation_.size()].load();
  }
  Status RebuildRollups(OrgId org, DeviceId device, TimestampMs from, TimestampMs to) override;
  Result<RetentionReport> RunRetention(bool dry_run) override;
  Status Compact() override;
  Result<StoreStats> Stats() override;
  Status Ready() override;
  NotifyStore& Notify() override { return *notify_; }
  PeopleStore& People() override { return *people_; }
  AlertStore& Alerts() override { return *alerts_; }
  CommitListenerId AddCommitListener(CommitListener listener, CommitFilter wants) override {
    return commit_listener_.Add(std::move(listener), std::move(wants));
  }
  void RemoveCommitListener(CommitListenerId id) override { commit_listener_.Remove(id); }
  void Close() override;

 private:
  // ---- connections ---------------------------------------------------------------------------
  Result<std::unique_ptr<Db>> Connect(bool create);
  class ReaderLease {
   public:
    ReaderLease(SqliteStore* s, std::unique_ptr<Db> db) : s_(s), db_(std::move(db)) {}
    ReaderLease(ReaderLease&&) = default;
    ~ReaderLease() {
      if (db_) {
        std::lock_guard lock(s_->readers_mu_);
        s_->readers_.push_back(std::move(db_));
      }
    }
    Db* operator->() { return db_.get(); }
    Db* get() { return db_.get(); }

   private:
    SqliteStore* s_;
    std::unique_ptr<Db> db_;
  };
  Result<ReaderLease> AcquireReader();
  Result<OrgId> DeviceOrg(Db* db, DeviceId id);
  Result<TimeZone> ZoneOf(Db* db, OrgId org);
  Result<RetentionPolicy> LoadPolicy(Db* db, OrgId org);
  Status RequireWriter(std::string_view what) const;
  Status RunOnWriter(std::function<Status()> fn);
  void BumpMetadata() { meta_generation_.fetch_add(1); }

  // ---- writer thread -------------------------------------------------------------------------
  struct DeviceState {
    OrgId org;
    bool decommissioned;
  };
  struct OrgState {
    std::optional<DayBucketer> days;
    RetentionPolicy policy;
    TimestampMs raw_cutoff = kNoTs;
    TimestampMs computed_at = kNoTs;
  };
  struct SeriesState {
    std::int64_t id;
    std::string unit;
  };
  void WriterLoop();
  void CommitGroup(std::vector<IngestJob>& group);
  Status LoadWriterState();
  void RefreshCaches(TimestampMs now);
  Result<const DeviceState*> WriterDevice(DeviceId id);
  Result<OrgState*> WriterOrg(OrgId org, TimestampMs now);
  Result<bool> ExistsOnDisk(std::int64_t series, TimestampMs ts);
  Status MaybeFlush(bool force);
  // Compacts the whole head in one transaction (Compact, Close, tasks that need it all).
  Status Flush();
  // One slice of an incremental flush cycle (StoreOptions::flush_slice_readings), series by
  // series, in a transaction of its own, so ingest commits go on between slices.
  Status FlushSlice();
  Result<std::vector<Sample>> MergeIntoChunks(std::int64_t series, std::span<const Sample> add);
  Status WriteChunks(std::int64_t series, std::span<const Sample> samples);
  Status AddRollups(std::int64_t series, std::span<const Sample> samples);
  Result<OrgId> SeriesOrg(std::int64_t series);
  Status RebuildSeries(std::int64_t series, OrgId org, TimestampMs from, TimestampMs to,
                       bool days_only);
  Result<std::int64_t> RetentionStepRaw(OrgId org, TimestampMs cutoff);
  struct StepResult {
    std::int64_t rows = 0;
    bool more = false;
  };
  Result<StepResult> RetentionStepRollup(OrgId org, int level, TimestampMs cutoff);
  // Raw readings of one series in [a, b) from the chunks (not the head); fails past max_points.
  Result<std::vector<Sample>> ReadRaw(Db* db, std::int64_t series, TimestampMs a, TimestampMs b,
                                      std::size_t max_points);
  Result<std::vector<RollupBucket>> ReadRollups(Db* db, std::int64_t series, int level, TimestampMs a,
                                                TimestampMs b);
  Status WriteRollups(std::int64_t series, int level, std::span<const RollupBucket> incoming,
                      bool replace, TimestampMs a, TimestampMs b);
  Status PutRollupChunk(std::int64_t series, int level, TimestampMs period,
                        const std::vector<RollupBucket>& buckets);
  Result<std::int64_t> RetentionCount(Db* db, OrgId org, DataClass c, TimestampMs cutoff);
  Status FlushRequestLog();
  void EnsureHeadSize(std::int64_t series) {
    if (static_cast<std::size_t>(series) >= head_.size()) {
      head_.resize(static_cast<std::size_t>(series) + 1);
      seen_max_.resize(static_cast<std::size_t>(series) + 1, kNoTs);
      group_ts_.resize(static_cast<std::size_t>(series) + 1);
      group_big_.resize(static_cast<std::size_t>(series) + 1, 0);
    }
  }

  StoreOptions options_;
  std::string path_;
  SystemClock system_clock_;
  const Clock* clock_;
  int schema_version_ = 0;
  int lock_fd_ = -1;
  bool closed_ = false;
  std::mutex close_mu_;

  std::mutex meta_mu_;
  std::unique_ptr<Db> meta_db_;
  std::unique_ptr<NotifyStore> notify_;  // its own connection
  std::unique_ptr<PeopleStore> people_;  // its own connection
  std::unique_ptr<AlertStore> alerts_;  // its own connection
  CommitListenerSlot commit_listener_;
  std::atomic<std::uint64_t> meta_generation_{0};
  // SeriesDataVersion: bumped by the writer after every task and compaction (anything may have
  // changed), and per device (hashed into slots) by each commit of readings, before it is
  // acknowledged.
  std::atomic<std::uint64_t> data_generation_{0};
  std::array<std::atomic<std::uint64_t>, 1024> device_generation_{};

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Db>> readers_;
  // The newest sample of each series' newest chunk, with that chunk's bytes: a chunk is decoded
  // whole to find its last sample, and "latest of every device" asks for every series at once.
  // Keyed by the bytes themselves, so a rewritten chunk can never answer from a stale entry.
  std::optional<Sample> NewestOfChunk(std::int64_t series, std::string_view chunk) {
    {
      std::lock_guard lock(newest_mu_);
      auto it = newest_.find(series);
      if (it != newest_.end() && it->second.first == chunk) return it->second.second;
    }
    std::vector<Sample> samples;
    if (!DecodeChunkInto(chunk, &samples) || samples.empty()) return std::nullopt;
    std::lock_guard lock(newest_mu_);
    if (newest_.size() >= 100'000) newest_.clear();
    newest_[series] = {std::string(chunk), samples.back()};
    return samples.back();
  }
  std::mutex newest_mu_;
  std::unordered_map<std::int64_t, std::pair<std::string, Sample>> newest_;
  std::mutex zones_mu_;
  std::unordered_map<std::string, TimeZone> zones_;

  // The head. The writer thread is its only mutator and mutates it under an exclusive lock;
  // readers hold a shared lock across their SQL read and their head read.
  mutable std::shared_mutex head_mu_;
  std::vector<HeadSeries> head_;  // indexed by series id
  std::atomic<std::int64_t> head_count_{0};

  // Writer.
  std::string hold_commit_path_;  // TEST HOOK: OPENSENSE_TEST_HOLD_COMMIT (empty: off)
  std::unique_ptr<Db> wdb_;
  std::thread writer_;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Job> queue_;
  std::size_t queued_readings_ = 0;
  bool stopping_ = false;

  // Writer-thread-only state.
  std::vector<TimestampMs> seen_max_;  // newest ts per series over chunks + head + pending
  // Timestamps accepted by the group being committed, per series: duplicate checks for readings
  // that arrive out of order (concurrent clients interleave). A series with many goes to a set.
  std::vector<std::vector<TimestampMs>> group_ts_;
  std::vector<char> group_big_;
  std::vector<std::int64_t> group_touched_;
  SeriesIndex<SeriesState> series_by_key_;
  std::unordered_map<std::int64_t, OrgId> series_org_;
  std::unordered_map<DeviceId, DeviceState> devices_;
  std::unordered_map<OrgId, OrgState> orgs_;
  std::uint64_t cached_generation_ = 0;
  TimestampMs caches_loaded_at_ = kNoTs;
  TimestampMs oldest_log_at_ = kNoTs;
  std::size_t head_series_ = 0;  // series with readings in the head
  // Incremental flush cycle: series ids below flush_cursor_ are compacted; log rows up to
  // flush_log_seq_ are deleted when the cycle ends (every reading in them is then in chunks).
  bool flush_cycle_ = false;
  std::size_t flush_cursor_ = 0;
  std::int64_t flush_log_seq_ = 0;
  std::mutex request_log_mu_;
  std::vector<ApiRequestLog> request_log_;  // waiting for the writer
  // One decoded chunk kept for duplicate checks of late data.
  std::int64_t dup_chunk_series_ = -1;
  TimestampMs dup_chunk_start_ = 0;
  TimestampMs dup_chunk_end_ = 0;
  std::vector<Sample> dup_chunk_;
};

// ================================================================================================
// Opening and closing

Result<std::unique_ptr<Db>> SqliteStore::Connect(bool create) {
  OS_ASSIGN_OR_RETURN(auto db, Db::Open(path_, create, options_.busy_timeout_ms));
  OS_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  OS_RETURN_IF_ERROR(db->Exec(options_.synchronous == Synchronous::kFull ? "PRAGMA synchronous=FULL"
                                                                         : "PRAGMA synchronous=NORMAL"));
  return db;
}

Status SqliteStore::Open() {
  std::filesystem::path p(path_);
  std::error_code ec;
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (options_.writer) {
    std::string lock_path = path_ + ".writer.lock";
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) {
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("cannot create {}: {}", lock_path, std::strerror(errno)));
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(lock_fd_);
      lock_fd_ = -1;
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("the store {} is in use by another opensense process (is "
                                   "`opensense serve` running?): stop it first, or use its API",
                                   path_));
    }
  }
  bool existed = std::filesystem::exists(p, ec);
  OS_ASSIGN_OR_RETURN(meta_db_, Connect(true));
  if (!existed) OS_RETURN_IF_ERROR(meta_db_->Exec("PRAGMA auto_vacuum=INCREMENTAL"));
  OS_ASSIGN_OR_RETURN(Stmt * jm, meta_db_->Prepare("PRAGMA journal_mode=WAL"));
  OS_ASSIGN_OR_RETURN(bool row, jm->Step());
  if (!row || jm->Text(0) != "wal") {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot switch {} to WAL mode (is it on a network file system?)",
                                 path_));
  }
  jm->Reset();
  if (options_.migrate) OS_RETURN_IF_ERROR(Migrate(meta_db_.get(), LatestVersion()));
  OS_ASSIGN_OR_RETURN(schema_version_, CurrentVersion(meta_db_.get()));
  if (schema_version_ > LatestVersion()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("the database {} has schema version {}, newer than this binary "
                                 "knows ({}); upgrade opensense before using it",
                                 path_, schema_version_, LatestVersion()));
  }
  if (schema_version_ < LatestVersion()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("the database {} has schema version {} but this binary needs {}; "
                                 "run `opensense migrate` first",
                                 path_, schema_version_, LatestVersion()));
  }
  {
    OS_ASSIGN_OR_RETURN(auto alerts_db, Connect(false));
    alerts_ = sqlite::MakeSqliteAlertStore(std::move(alerts_db));
  }
  {
    OS_ASSIGN_OR_RETURN(auto notify_db, Connect(false));
    notify_ = sqlite::MakeSqliteNotifyStore(std::move(notify_db));
  }
  {
    OS_ASSIGN_OR_RETURN(auto people_db, Connect(false));
    people_ = sqlite::MakeSqlitePeopleStore(std::move(people_db), clock_);
  }
  if (options_.writer) {
    OS_ASSIGN_OR_RETURN(wdb_, Connect(false));
    OS_RETURN_IF_ERROR(wdb_->Exec("PRAGMA cache_size=-65536"));
    OS_RETURN_IF_ERROR(wdb_->Exec("PRAGMA wal_autocheckpoint=4000"));
    // Freed pages need not be zeroed on disk (Debian builds SQLite with SECURE_DELETE on).
    OS_RETURN_IF_ERROR(wdb_->Exec("PRAGMA secure_delete=FAST"));
    OS_RETURN_IF_ERROR(LoadWriterState());
    // TEST HOOK: see CommitGroup. Read once, when the writer starts.
    if (const char* hold = std::getenv("OPENSENSE_TEST_HOLD_COMMIT")) hold_commit_path_ = hold;
    writer_ = std::thread([this] { WriterLoop(); });
  }
  return Ok();
}

Status SqliteStore::LoadWriterState() {
  OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare(
      "SELECT s.id, s.device_id, s.metric, s.unit, s.chunk_max_ts, d.org_id "
      "FROM series s JOIN devices d ON d.id = s.device_id"));
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    std::int64_t id = s->Int(0);
    series_by_key_.Insert(s->Int(1), s->Text(2), SeriesState{id, s->Text(3)});
    series_org_[id] = s->Int(5);
    EnsureHeadSize(id);
    head_[id].chunk_max_ts = s->IsNull(4) ? kNoTs : s->Int(4);
    seen_max_[id] = head_[id].chunk_max_ts;
  }
  s->Reset();
  // Replay the log: every acknowledged reading not yet compacted into chunks.
  OS_ASSIGN_OR_RETURN(Stmt * log, wdb_->Prepare(
      "SELECT created_at, entries FROM reading_log ORDER BY seq"));
  std::vector<std::int64_t> unsorted;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, log->Step());
    if (!row) break;
    if (oldest_log_at_ == kNoTs) oldest_log_at_ = log->Int(0);
    std::string_view in = log->Blob(1);
    std::uint64_t n = 0;
    if (!GetVarint(&in, &n)) return MakeError(ErrorCode::kInternal, "corrupt reading_log row");
    std::uint64_t prev_ts = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t sid = 0, dts = 0;
      if (!GetVarint(&in, &sid) || !GetVarint(&in, &dts) || in.size() < 8) {
        return MakeError(ErrorCode::kInternal, "corrupt reading_log row");
      }
      prev_ts += static_cast<std::uint64_t>(UnZigZag(dts));
      std::uint64_t bits;
      std::memcpy(&bits, in.data(), 8);
      in.remove_prefix(8);
      auto id = static_cast<std::int64_t>(sid);
      if (id <= 0 || series_org_.find(id) == series_org_.end()) {
        return MakeError(ErrorCode::kInternal, "reading_log names an unknown series");
      }
      auto ts = static_cast<TimestampMs>(prev_ts);
      auto& h = head_[id];
      // A flush cycle that did not finish leaves log rows whose readings are in chunks already.
      if (ts <= h.chunk_max_ts) {
        OS_ASSIGN_OR_RETURN(bool stored, ExistsOnDisk(id, ts));
        if (stored) continue;
      }
      if (h.samples.empty()) ++head_series_;
      if (!h.samples.empty() && ts <= h.samples.back().ts) unsorted.push_back(id);
      h.samples.push_back(Sample{ts, std::bit_cast<double>(bits)});
      seen_max_[id] = std::max(seen_max_[id], ts);
      head_count_.fetch_add(1);
    }
  }
  log->Reset();
  for (std::int64_t id : unsorted) {
    auto& v = head_[id].samples;
    std::sort(v.begin(), v.end(), ByTs);
  }
  if (head_count_ > 0) {
    spdlog::info("store: replayed {} acknowledged readings from the log", head_count_.load());
  }
  return Ok();
}

void SqliteStore::Close() {
  std::lock_guard close_lock(close_mu_);
  if (closed_) return;
  closed_ = true;
  if (writer_.joinable()) {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    writer_.join();
  }
  wdb_.reset();
  {
    std::lock_guard lock(readers_mu_);
    readers_.clear();
  }
  {
    std::lock_guard lock(meta_mu_);
    meta_db_.reset();
  }
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
}

Result<SqliteStore::ReaderLease> SqliteStore::AcquireReader() {
  {
    std::lock_guard lock(readers_mu_);
    if (!readers_.empty()) {
      auto db = std::move(readers_.back());
      readers_.pop_back();
      return ReaderLease(this, std::move(db));
    }
  }
  OS_ASSIGN_OR_RETURN(auto db, Connect(false));
  // Readers map the file instead of pread()ing each page into their own small page cache: a
  // query touches pages all over the file (the newest chunk of every series, rollup chunks), and
  // copying them from the kernel was a third of a "latest of every device" request. Pages are
  // shared through the OS page cache; 1 GiB of address space per reader, not of memory.
  OS_RETURN_IF_ERROR(db->Exec("PRAGMA mmap_size=1073741824"));
  return ReaderLease(this, std::move(db));
}

Status SqliteStore::RequireWriter(std::string_view what) const {
  if (!options_.writer || closed_) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("{} needs the store's writer; open the store with a writer "
                                 "(stop `opensense serve` or use its API)",
                                 what));
  }
  return Ok();
}

Status SqliteStore::RunOnWriter(std::function<Status()> fn) {
  TaskJob job{std::move(fn), {}};
  auto fut = job.promise.get_future();
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_ || !writer_.joinable()) {
      return MakeError(ErrorCode::kUnavailable, "the store is closing");
    }
    queue_.emplace_back(std::move(job));
  }
  queue_cv_.notify_one();
  return fut.get();
}

// ================================================================================================
// Organisations, sites, devices (metadata connection)

Result<Organization> SqliteStore::CreateOrganization(const NewOrganization& org) {
  if (org.name.empty() || org.name.size() > 200) {
    return MakeError(ErrorCode::kInvalidArgument, "an organisation needs a name of 1-200 characters");
  }
  OS_RETURN_IF_ERROR(TimeZone::Load(org.time_zone));
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "INSERT INTO organizations(name, time_zone, tier, created_at) VALUES(?,?,?,?)"));
  Organization out{0, org.name, org.time_zone, org.tier, clock_->NowMs()};
  OS_RETURN_IF_ERROR(s->Bind(1, org.name)
                         .Bind(2, org.time_zone)
                         .Bind(3, TierName(org.tier))
                         .Bind(4, out.created_at)
                         .Run());
  out.id = meta_db_->LastInsertRowid();
  return out;
}

Result<Organization> SqliteStore::GetOrganization(OrgId id) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "SELECT id, name, time_zone, tier, created_at FROM organizations WHERE id=?"));
  s->Bind(1, id);
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", id));
  auto org = ReadOrganization(s);
  s->Reset();
  return org;
}

Result<std::vector<Organization>> SqliteStore::ListOrganizations() {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "SELECT id, name, time_zone, tier, created_at FROM organizations ORDER BY id"));
  std::vector<Organization> out;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    OS_ASSIGN_OR_RETURN(auto org, ReadOrganization(s));
    out.push_back(std::move(org));
  }
  s->Reset();
  return out;
}

Status SqliteStore::SetOrganizationTimeZone(OrgId id, std::string_view time_zone) {
  OS_ASSIGN_OR_RETURN(TimeZone zone, TimeZone::Load(time_zone));
  OS_RETURN_IF_ERROR(GetOrganization(id));
  OS_RETURN_IF_ERROR(RequireWriter("changing an organisation's time zone"));
  Status st = RunOnWriter([&]() -> Status {
    OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(wdb_.get()));
    OS_ASSIGN_OR_RETURN(Stmt * u, wdb_->Prepare("UPDATE organizations SET time_zone=? WHERE id=?"));
    OS_RETURN_IF_ERROR(u->Bind(1, zone.name()).Bind(2, id).Run());
    orgs_.erase(id);
    // 1-day buckets follow the new zone wherever 5-minute rollups still exist.
    TimestampMs now = clock_->NowMs();
    OS_ASSIGN_OR_RETURN(RetentionPolicy policy, LoadPolicy(wdb_.get(), id));
    auto cutoff5m = RetentionCutoff(policy.For(DataClass::kRollup5m), now);
    TimestampMs from = cutoff5m ? zone.DayOf(*cutoff5m).end : kNoTs / 2;
    OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare(
        "SELECT s.id FROM series s JOIN devices d ON d.id=s.device_id WHERE d.org_id=?"));
    s->Bind(1, id);
    std::vector<std::int64_t> ids;
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      ids.push_back(s->Int(0));
    }
    s->Reset();
    for (auto sid : ids) {
      OS_RETURN_IF_ERROR(RebuildSeries(sid, id, from, std::numeric_limits<TimestampMs>::max() / 4,
                                       /*days_only=*/true));
    }
    return txn.Commit();
  });
  if (!st) orgs_.clear();
  BumpMetadata();
  return st;
}

Status SqliteStore::SetOrganizationTier(OrgId id, Tier tier) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare("UPDATE organizations SET tier=? WHERE id=?"));
  OS_RETURN_IF_ERROR(s->Bind(1, TierName(tier)).Bind(2, id).Run());
  if (meta_db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", id));
  BumpMetadata();
  return Ok();
}

Result<RetentionPolicy> SqliteStore::LoadPolicy(Db* db, OrgId org) {
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare(
      "SELECT data_class, unit, amount FROM retention_overrides WHERE org_id=?"));
  s->Bind(1, org);
  RetentionPolicy policy;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    auto c = ParseDataClass(s->Text(0));
    if (!c) continue;  // a class this binary does not know: ignore
    std::string unit = s->Text(1);
    int amount = static_cast<int>(s->Int(2));
    policy.overrides[*c] = unit == "days"     ? RetentionPeriod::Days(amount)
                           : unit == "months" ? RetentionPeriod::Months(amount)
                                              : RetentionPeriod::Forever();
  }
  s->Reset();
  return policy;
}

Result<RetentionPolicy> SqliteStore::GetRetentionPolicy(OrgId id) {
  OS_RETURN_IF_ERROR(GetOrganization(id));
  std::lock_guard lock(meta_mu_);
  return LoadPolicy(meta_db_.get(), id);
}

Status SqliteStore::SetRetention(OrgId id, DataClass data_class, RetentionPeriod period) {
  OS_ASSIGN_OR_RETURN(Organization org, GetOrganization(id));
  OS_RETURN_IF_ERROR(ValidateRetentionOverride(org.tier, data_class, period));
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "INSERT INTO retention_overrides(org_id, data_class, unit, amount) VALUES(?,?,?,?) "
      "ON CONFLICT(org_id, data_class) DO UPDATE SET unit=excluded.unit, amount=excluded.amount"));
  const char* unit = period.unit == RetentionPeriod::Unit::kDays     ? "days"
                     : period.unit == RetentionPeriod::Unit::kMonths ? "months"
                                                                     : "forever";
  OS_RETURN_IF_ERROR(
      s->Bind(1, id).Bind(2, DataClassName(data_class)).Bind(3, unit).Bind(4, period.amount).Run());
  BumpMetadata();
  return Ok();
}

Result<Site> SqliteStore::CreateSite(OrgId org, std::string_view name) {
  if (name.empty() || name.size() > 200) {
    return MakeError(ErrorCode::kInvalidArgument, "a site needs a name of 1-200 characters");
  }
  OS_RETURN_IF_ERROR(GetOrganization(org));
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "INSERT INTO sites(org_id, name, created_at) VALUES(?,?,?)"));
  auto st = s->Bind(1, org).Bind(2, name).Bind(3, clock_->NowMs()).Run();
  if (!st) {
    if (st.error().code == ErrorCode::kAlreadyExists) {
      return MakeError(ErrorCode::kAlreadyExists, fmt::format("a site named '{}' exists already", name));
    }
    return tl::unexpected(st.error());
  }
  return Site{meta_db_->LastInsertRowid(), org, std::string(name), false};
}

Result<std::vector<Site>> SqliteStore::ListSites(OrgId org) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "SELECT id, org_id, name, auto_register FROM sites WHERE org_id=? ORDER BY id"));
  s->Bind(1, org);
  std::vector<Site> out;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(Site{s->Int(0), s->Int(1), s->Text(2), s->Int(3) != 0});
  }
  s->Reset();
  return out;
}

Result<Device> SqliteStore::CreateDevice(const NewDevice& device) {
  if (device.name.empty() || device.name.size() > 200) {
    return MakeError(ErrorCode::kInvalidArgument, "a device needs a name of 1-200 characters");
  }
  if (device.serial && (device.serial->empty() || device.serial->size() > 128)) {
    return MakeError(ErrorCode::kInvalidArgument, "a serial has 1-128 characters");
  }
  OS_RETURN_IF_ERROR(ValidateDeviceProfile(device.profile));
  OS_RETURN_IF_ERROR(GetOrganization(device.org));
  std::lock_guard lock(meta_mu_);
  if (device.site) {
    OS_ASSIGN_OR_RETURN(Stmt * q, meta_db_->Prepare("SELECT 1 FROM sites WHERE id=? AND org_id=?"));
    q->Bind(1, *device.site).Bind(2, device.org);
    OS_ASSIGN_OR_RETURN(bool found, q->Step());
    q->Reset();
    if (!found) return MakeError(ErrorCode::kNotFound, fmt::format("no site {}", *device.site));
  }
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "INSERT INTO devices(org_id, site_id, name, serial, created_at, target_min, target_max, "
      "expected_interval_s, medicine_storage, calibration_date, calibration_due) "
      "VALUES(?,?,?,?,?,?,?,?,?,?,?)"));
  Device out;
  out.org_id = device.org;
  out.site_id = device.site;
  out.name = device.name;
  out.serial = device.serial;
  out.created_at = clock_->NowMs();
  out.profile = device.profile;
  BindDeviceProfile(s, 6, device.profile);
  s->Bind(1, device.org);
  if (device.site) s->Bind(2, *device.site); else s->BindNull(2);
  s->Bind(3, device.name);
  if (device.serial) s->Bind(4, *device.serial); else s->BindNull(4);
  s->Bind(5, out.created_at);
  auto st = s->Run();
  if (!st) {
    if (st.error().code == ErrorCode::kAlreadyExists) {
      return MakeError(ErrorCode::kAlreadyExists,
                       fmt::format("a device with serial '{}' exists already", *device.serial));
    }
    return tl::unexpected(st.error());
  }
  out.id = meta_db_->LastInsertRowid();
  return out;
}

Result<Device> SqliteStore::GetDevice(OrgId org, DeviceId id) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "SELECT id, org_id, site_id, name, serial, decommissioned_at, created_at, "
      "target_min, target_max, expected_interval_s, medicine_storage, calibration_date, calibration_due FROM devices "
      "WHERE id=? AND org_id=?"));
  s->Bind(1, id).Bind(2, org);
  return OneDevice(s, fmt::format("no device {}", id));
}

Result<Device> SqliteStore::FindDeviceBySerial(OrgId org, std::string_view serial) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "SELECT id, org_id, site_id, name, serial, decommissioned_at, created_at, "
      "target_min, target_max, expected_interval_s, medicine_storage, calibration_date, calibration_due FROM devices "
      "WHERE org_id=? AND serial=?"));
  s->Bind(1, org).Bind(2, serial);
  return OneDevice(s, fmt::format("no device with serial '{}'", serial));
}

Result<std::vector<Device>> SqliteStore::ListDevices(OrgId org) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "SELECT id, org_id, site_id, name, serial, decommissioned_at, created_at, "
      "target_min, target_max, expected_interval_s, medicine_storage, calibration_date, calibration_due FROM devices "
      "WHERE org_id=? ORDER BY id"));
  s->Bind(1, org);
  std::vector<Device> out;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(ReadDevice(s));
  }
  s->Reset();
  return out;
}

Status SqliteStore::DecommissionDevice(OrgId org, DeviceId id) {
  {
    std::lock_guard lock(meta_mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
        "UPDATE devices SET decommissioned_at=coalesce(decommissioned_at, ?) WHERE id=? AND org_id=?"));
    OS_RETURN_IF_ERROR(s->Bind(1, clock_->NowMs()).Bind(2, id).Bind(3, org).Run());
    if (meta_db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no device {}", id));
  }
  BumpMetadata();
  return Ok();
}


Result<Site> SqliteStore::GetSite(OrgId org, SiteId id) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "SELECT id, org_id, name, auto_register FROM sites WHERE id=? AND org_id=?"));
  s->Bind(1, id).Bind(2, org);
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return MakeError(ErrorCode::kNotFound, fmt::format("no site {}", id));
  Site site{s->Int(0), s->Int(1), s->Text(2), s->Int(3) != 0};
  s->Reset();
  return site;
}

Result<Site> SqliteStore::UpdateSite(OrgId org, SiteId id, std::optional<std::string> name,
                                     std::optional<bool> auto_register) {
  if (name && (name->empty() || name->size() > 200)) {
    return MakeError(ErrorCode::kInvalidArgument, "a site needs a name of 1-200 characters");
  }
  OS_RETURN_IF_ERROR(GetSite(org, id));
  {
    std::lock_guard lock(meta_mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
        "UPDATE sites SET name=coalesce(?, name), auto_register=coalesce(?, auto_register) "
        "WHERE id=? AND org_id=?"));
    if (name) s->Bind(1, *name); else s->BindNull(1);
    if (auto_register) s->Bind(2, *auto_register ? 1 : 0); else s->BindNull(2);
    auto st = s->Bind(3, id).Bind(4, org).Run();
    if (!st && st.error().code == ErrorCode::kAlreadyExists) {
      return MakeError(ErrorCode::kAlreadyExists, fmt::format("a site named '{}' exists already", *name));
    }
    OS_RETURN_IF_ERROR(st);
  }
  BumpMetadata();
  return GetSite(org, id);
}

Status SqliteStore::DeleteSite(OrgId org, SiteId id) {
  OS_RETURN_IF_ERROR(GetSite(org, id));
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * q, meta_db_->Prepare("SELECT count(*) FROM devices WHERE site_id=?"));
  q->Bind(1, id);
  OS_ASSIGN_OR_RETURN(bool row, q->Step());
  std::int64_t n = row ? q->Int(0) : 0;
  q->Reset();
  if (n > 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("site {} still has {} device(s); move or delete them first", id, n));
  }
  OS_ASSIGN_OR_RETURN(Stmt * t, meta_db_->Prepare(
      "SELECT count(*) FROM tokens WHERE site_id=? AND (expires_at IS NULL OR expires_at > ?)"));
  t->Bind(1, id).Bind(2, clock_->NowMs());
  OS_ASSIGN_OR_RETURN(row, t->Step());
  n = row ? t->Int(0) : 0;
  t->Reset();
  if (n > 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("site {} still has an active gateway token; revoke it first", id));
  }
  OS_ASSIGN_OR_RETURN(Stmt * del, meta_db_->Prepare("DELETE FROM sites WHERE id=? AND org_id=?"));
  return del->Bind(1, id).Bind(2, org).Run();
}

Result<Device> SqliteStore::UpdateDevice(OrgId org, DeviceId id, const DeviceUpdate& update) {
  if (update.name && (update.name->empty() || update.name->size() > 200)) {
    return MakeError(ErrorCode::kInvalidArgument, "a device needs a name of 1-200 characters");
  }
  if (update.serial && *update.serial && ((*update.serial)->empty() || (*update.serial)->size() > 128)) {
    return MakeError(ErrorCode::kInvalidArgument, "a serial has 1-128 characters");
  }
  if (update.profile) OS_RETURN_IF_ERROR(ValidateDeviceProfile(*update.profile));
  OS_ASSIGN_OR_RETURN(Device current, GetDevice(org, id));
  if (update.site && *update.site) OS_RETURN_IF_ERROR(GetSite(org, **update.site));
  {
    std::lock_guard lock(meta_mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
        "UPDATE devices SET name=?, site_id=?, serial=?, target_min=?, target_max=?, "
        "expected_interval_s=?, medicine_storage=?, calibration_date=?, calibration_due=? "
        "WHERE id=? AND org_id=?"));
    BindDeviceProfile(s, 4, update.profile ? *update.profile : current.profile);
    std::string name = update.name ? *update.name : current.name;
    std::optional<SiteId> site = update.site ? *update.site : current.site_id;
    std::optional<std::string> serial = update.serial ? *update.serial : current.serial;
    s->Bind(1, name);
    if (site) s->Bind(2, *site); else s->BindNull(2);
    if (serial) s->Bind(3, *serial); else s->BindNull(3);
    auto st = s->Bind(10, id).Bind(11, org).Run();
    if (!st && st.error().code == ErrorCode::kAlreadyExists) {
      return MakeError(ErrorCode::kAlreadyExists,
                       fmt::format("a device with serial '{}' exists already", serial.value_or("")));
    }
    OS_RETURN_IF_ERROR(st);
  }
  BumpMetadata();
  return GetDevice(org, id);
}

Result<User> SqliteStore::CreateUser(OrgId org, std::string_view email, Role role) {
  if (email.size() < 3 || email.size() > 254 || email.find('@') == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is not an email address", email));
  }
  OS_RETURN_IF_ERROR(GetOrganization(org));
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "INSERT INTO users(org_id, email, role, created_at) VALUES(?,?,?,?)"));
  User u{0, org, std::string(email), role, clock_->NowMs()};
  auto st = s->Bind(1, org).Bind(2, email).Bind(3, RoleName(role)).Bind(4, u.created_at).Run();
  if (!st && st.error().code == ErrorCode::kAlreadyExists) {
    return MakeError(ErrorCode::kAlreadyExists, fmt::format("{} is a user of this organisation already", email));
  }
  OS_RETURN_IF_ERROR(st);
  u.id = meta_db_->LastInsertRowid();
  return u;
}

Result<User> SqliteStore::GetUser(OrgId org, UserId id) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "SELECT id, org_id, email, role, created_at FROM users WHERE id=? AND org_id=?"));
  s->Bind(1, id).Bind(2, org);
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return MakeError(ErrorCode::kNotFound, fmt::format("no user {}", id));
  User u{s->Int(0), s->Int(1), s->Text(2), Role::kViewer, s->Int(4)};
  auto role = ParseRole(s->Text(3));
  s->Reset();
  OS_ASSIGN_OR_RETURN(u.role, role);
  return u;
}

namespace {
constexpr const char* kTokenColumns =
    "id, public_id, kind, org_id, device_id, site_id, user_id, role, secret_hash, label, created_at, "
    "expires_at, last_used_at";

Result<TokenRecord> ReadToken(Stmt* s) {
  TokenRecord t;
  t.id = s->Int(0);
  t.public_id = s->Text(1);
  std::string kind = s->Text(2);
  t.kind = kind == "device" ? TokenKind::kDevice : kind == "gateway" ? TokenKind::kGateway : TokenKind::kUser;
  t.org_id = s->Int(3);
  if (!s->IsNull(4)) t.device = s->Int(4);
  if (!s->IsNull(5)) t.site = s->Int(5);
  if (!s->IsNull(6)) t.user = s->Int(6);
  OS_ASSIGN_OR_RETURN(t.role, ParseRole(s->Text(7)));
  t.secret_hash = s->Text(8);
  t.label = s->Text(9);
  t.created_at = s->Int(10);
  if (!s->IsNull(11)) t.expires_at = s->Int(11);
  if (!s->IsNull(12)) t.last_used_at = s->Int(12);
  return t;
}
}  // namespace

Result<TokenRecord> SqliteStore::CreateToken(const TokenRecord& token) {
  if (token.public_id.empty() || token.secret_hash.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "a token needs a public id and a secret hash");
  }
  if (token.kind == TokenKind::kDevice) OS_RETURN_IF_ERROR(GetDevice(token.org_id, token.device.value_or(0)));
  if (token.kind == TokenKind::kGateway) OS_RETURN_IF_ERROR(GetSite(token.org_id, token.site.value_or(0)));
  if (token.kind == TokenKind::kUser) OS_RETURN_IF_ERROR(GetUser(token.org_id, token.user.value_or(0)));
  TokenRecord out = token;
  out.created_at = clock_->NowMs();
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "INSERT INTO tokens(public_id, kind, org_id, device_id, site_id, user_id, role, secret_hash, "
      "label, created_at, expires_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)"));
  s->Bind(1, out.public_id).Bind(2, TokenKindName(out.kind)).Bind(3, out.org_id);
  if (out.device) s->Bind(4, *out.device); else s->BindNull(4);
  if (out.site) s->Bind(5, *out.site); else s->BindNull(5);
  if (out.user) s->Bind(6, *out.user); else s->BindNull(6);
  s->Bind(7, RoleName(out.role)).Bind(8, out.secret_hash).Bind(9, out.label).Bind(10, out.created_at);
  if (out.expires_at) s->Bind(11, *out.expires_at); else s->BindNull(11);
  OS_RETURN_IF_ERROR(s->Run());
  out.id = meta_db_->LastInsertRowid();
  return out;
}

Result<TokenRecord> SqliteStore::FindToken(std::string_view public_id) {
  std::lock_guard lock(meta_mu_);
  static const std::string sql = fmt::format("SELECT {} FROM tokens WHERE public_id=?", kTokenColumns);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(sql.c_str()));
  s->Bind(1, public_id);
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return MakeError(ErrorCode::kNotFound, "no such token");
  auto t = ReadToken(s);
  s->Reset();
  return t;
}

Result<std::vector<TokenRecord>> SqliteStore::ListTokens(OrgId org) {
  std::lock_guard lock(meta_mu_);
  static const std::string sql =
      fmt::format("SELECT {} FROM tokens WHERE org_id=? ORDER BY id", kTokenColumns);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(sql.c_str()));
  s->Bind(1, org);
  std::vector<TokenRecord> out;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    auto t = ReadToken(s);
    if (!t) {
      s->Reset();
      return tl::unexpected(t.error());
    }
    out.push_back(std::move(*t));
  }
  s->Reset();
  return out;
}

Status SqliteStore::ExpireToken(OrgId org, std::int64_t token_id, TimestampMs at) {
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "UPDATE tokens SET expires_at=min(coalesce(expires_at, ?1), ?1) WHERE id=?2 AND org_id=?3"));
  OS_RETURN_IF_ERROR(s->Bind(1, at).Bind(2, token_id).Bind(3, org).Run());
  if (meta_db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no token {}", token_id));
  return Ok();
}

Status SqliteStore::TouchTokens(const std::vector<std::pair<std::int64_t, TimestampMs>>& used) {
  if (used.empty()) return Ok();
  std::lock_guard lock(meta_mu_);
  OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(meta_db_.get()));
  OS_ASSIGN_OR_RETURN(Stmt * s, meta_db_->Prepare(
      "UPDATE tokens SET last_used_at=max(coalesce(last_used_at, 0), ?) WHERE id=?"));
  for (auto [id, at] : used) OS_RETURN_IF_ERROR(s->Bind(1, at).Bind(2, id).Run());
  return txn.Commit();
}

Result<std::vector<LatestValue>> SqliteStore::Latest(OrgId org, DeviceId device) {
  OS_ASSIGN_OR_RETURN(ReaderLease db, AcquireReader());
  auto dev_org = DeviceOrg(db.get(), device);
  if (!dev_org || *dev_org != org) return MakeError(ErrorCode::kNotFound, fmt::format("no device {}", device));
  OS_ASSIGN_OR_RETURN(Stmt * ss, db->Prepare(
      "SELECT id, metric, unit FROM series WHERE device_id=? ORDER BY metric"));
  ss->Bind(1, device);
  std::vector<std::tuple<std::int64_t, std::string, std::string>> series;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, ss->Step());
    if (!row) break;
    series.emplace_back(ss->Int(0), ss->Text(1), ss->Text(2));
  }
  ss->Reset();
  std::shared_lock head_lock(head_mu_);
  OS_ASSIGN_OR_RETURN(Stmt * last, db->Prepare(
      "SELECT data FROM chunks WHERE series_id=? ORDER BY start_ts DESC LIMIT 1"));
  std::vector<LatestValue> out;
  for (auto& [sid, metric, unit] : series) {
    std::optional<Sample> newest;
    last->Bind(1, sid);
    OS_ASSIGN_OR_RETURN(bool row, last->Step());
    if (row) newest = NewestOfChunk(sid, last->Blob(0));
    last->Reset();
    if (static_cast<std::size_t>(sid) < head_.size() && !head_[sid].samples.empty()) {
      const Sample& h = head_[sid].samples.back();
      if (!newest || h.ts > newest->ts) newest = h;
    }
    if (newest) out.push_back(LatestValue{metric, unit, newest->ts, newest->value});
  }
  return out;
}

// One statement for the whole organisation: each series with its newest chunk (by the chunks'
// primary key), then the head, as Latest does per device.
Result<std::vector<DeviceLatest>> SqliteStore::LatestOfOrganization(OrgId org) {
  OS_ASSIGN_OR_RETURN(ReaderLease db, AcquireReader());
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare(
      "SELECT s.id, s.device_id, s.metric, s.unit, "
      "(SELECT c.data FROM chunks c WHERE c.series_id=s.id ORDER BY c.start_ts DESC LIMIT 1) "
      "FROM series s JOIN devices d ON d.id=s.device_id WHERE d.org_id=? ORDER BY s.device_id, s.metric"));
  s->Bind(1, org);
  std::vector<DeviceLatest> out;
  std::shared_lock head_lock(head_mu_);
  while (true) {
    auto row = s->Step();
    if (!row) {
      s->Reset();
      return tl::unexpected(row.error());
    }
    if (!*row) break;
    const std::int64_t sid = s->Int(0);
    const DeviceId device = s->Int(1);
    std::optional<Sample> newest;
    if (!s->IsNull(4)) newest = NewestOfChunk(sid, s->Blob(4));
    if (static_cast<std::size_t>(sid) < head_.size() && !head_[sid].samples.empty()) {
      const Sample& h = head_[sid].samples.back();
      if (!newest || h.ts > newest->ts) newest = h;
    }
    if (!newest) continue;
    if (out.empty() || out.back().device != device) out.push_back(DeviceLatest{device, {}});
    out.back().values.push_back(LatestValue{s->Text(2), s->Text(3), newest->ts, newest->value});
  }
  s->Reset();
  return out;
}

void SqliteStore::LogRequests(std::vector<ApiRequestLog> rows) {
  if (rows.empty() || !options_.writer) return;
  std::lock_guard lock(request_log_mu_);
  if (request_log_.size() > 100'000) return;  // the writer is far behind: drop rather than grow
  for (auto& r : rows) request_log_.push_back(std::move(r));
}

Status SqliteStore::FlushRequestLog() {
  std::vector<ApiRequestLog> rows;
  {
    std::lock_guard lock(request_log_mu_);
    rows.swap(request_log_);
  }
  if (rows.empty()) return Ok();
  OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(wdb_.get()));
  OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare(
      "INSERT INTO api_requests(at, org_id, principal, method, route, status, duration_us, client, "
      "request_id) VALUES(?,?,?,?,?,?,?,?,?)"));
  for (const auto& r : rows) {
    s->Bind(1, r.at);
    if (r.org) s->Bind(2, *r.org); else s->BindNull(2);
    OS_RETURN_IF_ERROR(s->Bind(3, r.principal)
                           .Bind(4, r.method)
                           .Bind(5, r.route)
                           .Bind(6, r.status)
                           .Bind(7, r.duration_us)
                           .Bind(8, r.client)
                           .Bind(9, r.request_id)
                           .Run());
  }
  return txn.Commit();
}

// ================================================================================================
// Ingest: the writer

std::future<Result<IngestResult>> SqliteStore::Ingest(OrgId org, std::vector<Reading> readings) {
  IngestJob job{org, std::move(readings), {}};
  auto fut = job.promise.get_future();
  if (job.readings.empty()) {
    job.promise.set_value(IngestResult{});
    return fut;
  }
  if (!options_.writer) {
    job.promise.set_value(MakeError(ErrorCode::kFailedPrecondition,
                                    "this store was opened without a writer; readings cannot be stored"));
    return fut;
  }
  std::size_t n = job.readings.size();
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) {
      job.promise.set_value(MakeError(ErrorCode::kUnavailable, "the store is shutting down; retry later"));
      return fut;
    }
    if (queued_readings_ > 0 && queued_readings_ + n > options_.max_queued_readings) {
      job.promise.set_value(MakeError(ErrorCode::kResourceExhausted,
                                      "the writer queue is full; retry in a moment"));
      return fut;
    }
    queued_readings_ += n;
    queue_.emplace_back(std::move(job));
  }
  queue_cv_.notify_one();
  return fut;
}

void SqliteStore::WriterLoop() {
  while (true) {
    std::vector<IngestJob> group;
    std::optional<TaskJob> task;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait_for(lock, std::chrono::milliseconds(flush_cycle_ ? 0 : 500),
                         [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty() && stopping_) break;
      if (!queue_.empty() && std::holds_alternative<TaskJob>(queue_.front())) {
        task.emplace(std::move(std::get<TaskJob>(queue_.front())));
        queue_.pop_front();
      } else {
        std::size_t total = 0;
        while (!queue_.empty() && std::holds_alternative<IngestJob>(queue_.front())) {
          auto& next = std::get<IngestJob>(queue_.front());
          if (!group.empty() && total + next.readings.size() > kMaxGroupReadings) break;
          total += next.readings.size();
          group.push_back(std::move(next));
          queue_.pop_front();
        }
        queued_readings_ -= total;
        if (options_.metrics != nullptr) {
          options_.metrics->GetGauge("opensense_writer_queue_readings", "Readings waiting for the writer.")
              .Set(static_cast<double>(queued_readings_));
        }
      }
    }
    if (task) {
      Status st = task->fn();
      dup_chunk_series_ = -1;  // tasks may rewrite chunks
      data_generation_.fetch_add(1);
      task->promise.set_value(std::move(st));
    } else if (!group.empty()) {
      CommitGroup(group);
    }
    if (auto st = MaybeFlush(false); !st) {
      spdlog::error("store: compaction failed, will retry: {}", st.error().message);
    }
    if (auto st = FlushRequestLog(); !st) {
      spdlog::warn("store: request log rows dropped: {}", st.error().message);
    }
  }
  (void)FlushRequestLog();
  if (head_count_ > 0) {
    if (auto st = Flush(); !st) {
      spdlog::warn("store: final compaction failed (the log keeps the readings): {}",
                   st.error().message);
    }
  }
}

void SqliteStore::RefreshCaches(TimestampMs now) {
  std::uint64_t gen = meta_generation_.load();
  if (gen != cached_generation_ || caches_loaded_at_ == kNoTs || now < caches_loaded_at_ ||
      now - caches_loaded_at_ > kCacheTtlMs) {
    devices_.clear();
    orgs_.clear();
    cached_generation_ = gen;
    caches_loaded_at_ = now;
  }
}

Result<const SqliteStore::DeviceState*> SqliteStore::WriterDevice(DeviceId id) {
  auto it = devices_.find(id);
  if (it != devices_.end()) return &it->second;
  OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare(
      "SELECT org_id, decommissioned_at IS NOT NULL FROM devices WHERE id=?"));
  s->Bind(1, id);
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) {
    s->Reset();
    return nullptr;  // not cached: a device created later must be found
  }
  DeviceState st{s->Int(0), s->Int(1) != 0};
  s->Reset();
  return &devices_.emplace(id, st).first->second;
}

Result<SqliteStore::OrgState*> SqliteStore::WriterOrg(OrgId org, TimestampMs now) {
  auto it = orgs_.find(org);
  if (it == orgs_.end()) {
    OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare("SELECT time_zone FROM organizations WHERE id=?"));
    s->Bind(1, org);
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) {
      s->Reset();
      return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", org));
    }
    std::string tz = s->Text(0);
    s->Reset();
    OS_ASSIGN_OR_RETURN(TimeZone zone, TimeZone::Load(tz));
    OrgState state;
    state.days.emplace(zone);
    OS_ASSIGN_OR_RETURN(state.policy, LoadPolicy(wdb_.get(), org));
    it = orgs_.emplace(org, std::move(state)).first;
  }
  OrgState& st = it->second;
  if (st.computed_at == kNoTs || now < st.computed_at || now - st.computed_at > kMsPerMinute) {
    auto cutoff = RetentionCutoff(st.policy.For(DataClass::kRawReadings), now);
    st.raw_cutoff = cutoff ? *cutoff : kNoTs;
    st.computed_at = now;
  }
  return &st;
}

Result<bool> SqliteStore::ExistsOnDisk(std::int64_t series, TimestampMs ts) {
  if (dup_chunk_series_ != series || ts < dup_chunk_start_ || ts > dup_chunk_end_) {
    OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare(
        "SELECT start_ts, end_ts, data FROM chunks WHERE series_id=? AND start_ts<=? "
        "ORDER BY start_ts DESC LIMIT 1"));
    s->Bind(1, series).Bind(2, ts);
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row || s->Int(1) < ts) {
      s->Reset();
      return false;
    }
    dup_chunk_.clear();
    auto st = DecodeChunkInto(s->Blob(2), &dup_chunk_);
    dup_chunk_series_ = series;
    dup_chunk_start_ = s->Int(0);
    dup_chunk_end_ = s->Int(1);
    s->Reset();
    if (!st) {
      dup_chunk_series_ = -1;
      return tl::unexpected(st.error());
    }
  }
  return std::binary_search(dup_chunk_.begin(), dup_chunk_.end(), Sample{ts, 0},
                            ByTs);
}

void SqliteStore::CommitGroup(std::vector<IngestJob>& group) {
  const TimestampMs now = clock_->NowMs();
  RefreshCaches(now);
  std::vector<IngestResult> results(group.size());
  std::vector<PendingSample> pending;
  // (job, reading) of each reading this commit stores, for the commit listener.
  const bool listening = commit_listener_.active();
  std::vector<std::pair<std::size_t, std::size_t>> committed;
  std::unordered_set<std::pair<std::int64_t, TimestampMs>, PairHash> big_keys;
  constexpr std::size_t kLinearScan = 64;
  auto note = [&](std::int64_t sid, TimestampMs ts) {
    auto& v = group_ts_[sid];
    if (v.empty()) group_touched_.push_back(sid);
    v.push_back(ts);
    if (group_big_[sid]) big_keys.insert({sid, ts});
  };
  auto in_group = [&](std::int64_t sid, TimestampMs ts) {
    auto& v = group_ts_[sid];
    if (v.size() <= kLinearScan) return std::find(v.begin(), v.end(), ts) != v.end();
    if (!group_big_[sid]) {
      group_big_[sid] = 1;
      for (TimestampMs t : v) big_keys.insert({sid, t});
    }
    return big_keys.count({sid, ts}) > 0;
  };
  struct GroupReset {
    SqliteStore* s;
    ~GroupReset() {
      for (auto sid : s->group_touched_) {
        s->group_ts_[sid].clear();
        s->group_big_[sid] = 0;
      }
      s->group_touched_.clear();
    }
  } group_reset{this};
  std::vector<std::pair<DeviceId, std::string>> created_series;
  std::vector<std::pair<std::int64_t, TimestampMs>> touched_max;  // to undo on failure

  auto fail_all = [&](const Error& e) {
    for (const auto& [device, metric] : created_series) {
      if (SeriesState* st = series_by_key_.Find(device, metric)) {
        series_org_.erase(st->id);
        series_by_key_.Erase(device, metric);
      }
    }
    for (auto it = touched_max.rbegin(); it != touched_max.rend(); ++it) {
      seen_max_[it->first] = it->second;
    }
    for (auto& job : group) job.promise.set_value(tl::unexpected(e));
  };

  auto txn = Transaction::Begin(wdb_.get());
  if (!txn) return fail_all(txn.error());

  auto process = [&]() -> Status {
    for (std::size_t j = 0; j < group.size(); ++j) {
      IngestJob& job = group[j];
      IngestResult& res = results[j];
      auto org_state = WriterOrg(job.org, now);
      if (!org_state) {
        if (org_state.error().code != ErrorCode::kNotFound) return tl::unexpected(org_state.error());
        for (std::size_t i = 0; i < job.readings.size(); ++i) {
          res.rejected.push_back({i, RejectReason::kUnknownDevice,
                                  fmt::format("organisation {} does not exist", job.org)});
        }
        continue;
      }
      const TimestampMs raw_cutoff = (*org_state)->raw_cutoff;
      for (std::size_t i = 0; i < job.readings.size(); ++i) {
        const Reading& r = job.readings[i];
        auto reject = [&](RejectReason why, std::string msg) {
          res.rejected.push_back({i, why, std::move(msg)});
        };
        if (!std::isfinite(r.value)) {
          reject(RejectReason::kNotFinite, "value is NaN or infinite");
          continue;
        }
        if (r.ts > now + kMaxFutureSkewMs) {
          reject(RejectReason::kInFuture, fmt::format("timestamp {} is more than 5 minutes in the future",
                                                      FormatRfc3339(r.ts)));
          continue;
        }
        if (r.ts < raw_cutoff) {
          reject(RejectReason::kOlderThanRetention,
                 fmt::format("timestamp {} is older than the raw-reading retention (before {})",
                             FormatRfc3339(r.ts), FormatRfc3339(raw_cutoff)));
          continue;
        }
        if (!IsValidMetricName(r.metric)) {
          reject(RejectReason::kBadMetricName,
                 "metric names are 1-64 characters of a-z 0-9 _ . - starting with a letter or digit");
          continue;
        }
        if (!r.unit.empty() && !IsKnownUnit(r.unit)) {
          reject(RejectReason::kUnknownUnit, fmt::format("unknown unit '{}'", r.unit.substr(0, 32)));
          continue;
        }
        OS_ASSIGN_OR_RETURN(const DeviceState* dev, WriterDevice(r.device));
        if (dev == nullptr || dev->org != job.org) {
          reject(RejectReason::kUnknownDevice, fmt::format("no device {} in this organisation", r.device));
          continue;
        }
        if (dev->decommissioned) {
          reject(RejectReason::kDeviceDecommissioned, fmt::format("device {} is decommissioned", r.device));
          continue;
        }
        SeriesState* known = series_by_key_.Find(r.device, r.metric);
        std::int64_t sid;
        if (known == nullptr) {
          std::string unit = r.unit;
          if (unit.empty()) unit = std::string(DefaultUnitFor(r.metric).value_or(""));
          OS_ASSIGN_OR_RETURN(Stmt * ins, wdb_->Prepare(
              "INSERT INTO series(device_id, metric, unit) VALUES(?,?,?)"));
          OS_RETURN_IF_ERROR(ins->Bind(1, r.device).Bind(2, r.metric).Bind(3, unit).Run());
          sid = wdb_->LastInsertRowid();
          series_by_key_.Insert(r.device, r.metric, SeriesState{sid, unit});
          series_org_[sid] = job.org;
          created_series.emplace_back(r.device, r.metric);
          EnsureHeadSize(sid);
        } else {
          sid = known->id;
          if (!r.unit.empty() && r.unit != known->unit) {
            reject(RejectReason::kUnitMismatch,
                   fmt::format("{} of device {} is recorded in '{}', not '{}'", r.metric, r.device,
                               known->unit, r.unit.substr(0, 32)));
            continue;
          }
        }
        // Duplicate? Fast path: newer than anything seen for the series.
        TimestampMs& seen = seen_max_[sid];
        if (r.ts > seen) {
          touched_max.emplace_back(sid, seen);
          seen = r.ts;
          pending.push_back({sid, r.ts, r.value});
          if (listening) committed.emplace_back(j, i);
          note(sid, r.ts);
          continue;
        }
        bool dup = in_group(sid, r.ts);
        if (!dup) {
          const auto& hs = head_[sid].samples;
          dup = std::binary_search(hs.begin(), hs.end(), Sample{r.ts, 0},
                                   ByTs);
        }
        if (!dup && r.ts <= head_[sid].chunk_max_ts) {
          OS_ASSIGN_OR_RETURN(dup, ExistsOnDisk(sid, r.ts));
        }
        if (dup) {
          ++res.duplicates;
          continue;
        }
        pending.push_back({sid, r.ts, r.value});
        if (listening) committed.emplace_back(j, i);
        note(sid, r.ts);
      }
    }
    if (pending.empty()) return Ok();
    std::string blob;
    blob.reserve(pending.size() * 12 + 8);
    PutVarint(&blob, pending.size());
    std::uint64_t prev = 0;
    for (const auto& p : pending) {
      PutVarint(&blob, static_cast<std::uint64_t>(p.series));
      PutVarint(&blob, ZigZag(static_cast<std::int64_t>(static_cast<std::uint64_t>(p.ts) - prev)));
      prev = static_cast<std::uint64_t>(p.ts);
      auto bits = std::bit_cast<std::uint64_t>(p.value);
      blob.append(reinterpret_cast<const char*>(&bits), 8);
    }
    OS_ASSIGN_OR_RETURN(Stmt * log, wdb_->Prepare(
        "INSERT INTO reading_log(created_at, entries) VALUES(?,?)"));
    return log->Bind(1, now).BindBlob(2, blob).Run();
  };

  Status st = process();
  // TEST HOOK (tests/mqtt_test.cpp, ack-after-commit): while the file named by
  // OPENSENSE_TEST_HOLD_COMMIT exists, the writer waits here, just before COMMIT.
  while (st && !hold_commit_path_.empty() && ::access(hold_commit_path_.c_str(), F_OK) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (st) st = txn->Commit();
  if (!st) {
    spdlog::error("store: commit of {} batches failed: {}", group.size(), st.error().message);
    return fail_all(st.error());
  }
  // Durable: publish to the head, then acknowledge.
  {
    std::unique_lock lock(head_mu_);
    // Append each series' new readings, then put them in order: sort the (small) new tail and
    // merge it into the sorted head, instead of re-sorting the whole head.
    std::vector<std::pair<std::int64_t, std::size_t>> starts;
    starts.reserve(group_touched_.size());
    for (auto sid : group_touched_) {
      auto& v = head_[sid].samples;
      if (v.empty()) ++head_series_;
      starts.emplace_back(sid, v.size());
    }
    for (const auto& p : pending) head_[p.series].samples.push_back(Sample{p.ts, p.value});
    for (auto [sid, old] : starts) {
      auto& v = head_[sid].samples;
      auto mid = v.begin() + static_cast<std::ptrdiff_t>(old);
      if (!std::is_sorted(mid, v.end(), ByTs)) std::sort(mid, v.end(), ByTs);
      if (old > 0 && mid != v.end() && mid->ts < (mid - 1)->ts) std::inplace_merge(v.begin(), mid, v.end(), ByTs);
    }
  }
  if (!pending.empty() && oldest_log_at_ == kNoTs) oldest_log_at_ = now;
  // Visible to readers now; the devices' SeriesDataVersion moves before anyone is acknowledged.
  for (const auto& job : group) {
    DeviceId last = -1;
    for (const Reading& r : job.readings) {
      if (r.device == last) continue;
      last = r.device;
      device_generation_[static_cast<std::size_t>(r.device) % device_generation_.size()].fetch_add(1);
    }
  }
  if (options_.metrics != nullptr) {
    options_.metrics->GetHistogram("opensense_writer_commit_seconds", "Group commit latency (one transaction).")
        .Observe(static_cast<double>(clock_->NowMs() - now) / 1000.0);
    options_.metrics->GetCounter("opensense_writer_batches_total", "Batches committed by the writer.").Inc(group.size());
    options_.metrics->GetGauge("opensense_store_head_readings", "Acknowledged readings not yet compacted.")
        .Set(static_cast<double>(head_count_.load() + static_cast<std::int64_t>(pending.size())));
  }
  head_count_.fetch_add(static_cast<std::int64_t>(pending.size()));
  // Durable: hand the stored readings on before acknowledging, so a caller whose batch is
  // acknowledged knows the alert evaluator has it queued (the listener only queues).
  commit_listener_.Deliver(committed, [&](std::size_t j) { return group[j].org; },
                           [&](std::size_t j, std::size_t i) -> const Reading& { return group[j].readings[i]; });
  // Every record has exactly one fate: accepted = the rest.
  for (std::size_t j = 0; j < group.size(); ++j) {
    IngestResult& res = results[j];
    res.accepted = group[j].readings.size() - res.duplicates - res.rejected.size();
    group[j].promise.set_value(std::move(res));
  }
}

// ================================================================================================
// Compaction: head -> chunks + rollups

Status SqliteStore::MaybeFlush(bool force) {
  if (head_count_ == 0 && !flush_cycle_) return Ok();
  TimestampMs now = clock_->NowMs();
  const auto count = static_cast<std::size_t>(head_count_.load());
  const std::size_t threshold = std::min(
      kHeadHardCap, std::max(options_.head_flush_readings, kFlushReadingsPerSeries * head_series_));
  if (force) return Flush();
  if (!flush_cycle_) {
    bool due = count >= threshold ||
               (oldest_log_at_ != kNoTs && now - oldest_log_at_ >= options_.head_flush_age_ms);
    if (!due) return Ok();
    OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare("SELECT coalesce(max(seq), 0) FROM reading_log"));
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    flush_log_seq_ = row ? s->Int(0) : 0;
    s->Reset();
    flush_cursor_ = 0;
    flush_cycle_ = true;
  }
  return FlushSlice();
}

Status SqliteStore::FlushSlice() {
  RefreshCaches(clock_->NowMs());
  OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(wdb_.get()));
  OS_ASSIGN_OR_RETURN(Stmt * upd, wdb_->Prepare(
      "UPDATE series SET chunk_max_ts=max(coalesce(chunk_max_ts, ?2), ?2) WHERE id=?1"));
  std::vector<std::pair<std::int64_t, TimestampMs>> new_max;
  std::size_t cursor = flush_cursor_, flushed = 0;
  // A cycle takes about 16 slices however fast readings arrive meanwhile.
  const std::size_t budget = std::max<std::size_t>(
      {1, options_.flush_slice_readings, static_cast<std::size_t>(head_count_.load()) / 16});
  while (cursor < head_.size() && flushed < budget) {
    const auto& samples = head_[cursor].samples;
    auto id = static_cast<std::int64_t>(cursor++);
    if (samples.empty()) continue;
    OS_ASSIGN_OR_RETURN(std::vector<Sample> added, MergeIntoChunks(id, samples));
    OS_RETURN_IF_ERROR(AddRollups(id, added));
    OS_RETURN_IF_ERROR(upd->Bind(1, id).Bind(2, samples.back().ts).Run());
    new_max.emplace_back(id, std::max(head_[id].chunk_max_ts, samples.back().ts));
    flushed += samples.size();
  }
  const bool finished = cursor >= head_.size();
  if (finished) {
    OS_ASSIGN_OR_RETURN(Stmt * del, wdb_->Prepare("DELETE FROM reading_log WHERE seq<=?"));
    OS_RETURN_IF_ERROR(del->Bind(1, flush_log_seq_).Run());
  }
  {
    // Readers see a series either in the head or in the chunks, never both and never neither.
    std::unique_lock lock(head_mu_);
    OS_RETURN_IF_ERROR(txn.Commit());
    for (auto [id, max] : new_max) {
      head_[id].samples.clear();
      head_[id].chunk_max_ts = max;
    }
    // The same answers as before, from other rows; counted so nothing cached outlives a rewrite.
    data_generation_.fetch_add(1);
  }
  flush_cursor_ = cursor;
  head_count_.fetch_sub(static_cast<std::int64_t>(flushed));
  head_series_ -= new_max.size();
  dup_chunk_series_ = -1;
  if (finished) {
    flush_cycle_ = false;
    OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare("SELECT min(created_at) FROM reading_log"));
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    oldest_log_at_ = row && !s->IsNull(0) ? s->Int(0) : kNoTs;
    s->Reset();
  }
  return Ok();
}

Result<OrgId> SqliteStore::SeriesOrg(std::int64_t series) {
  auto it = series_org_.find(series);
  if (it == series_org_.end()) {
    return MakeError(ErrorCode::kInternal, fmt::format("series {} has no organisation", series));
  }
  return it->second;
}

Status SqliteStore::WriteChunks(std::int64_t series, std::span<const Sample> samples) {
  OS_ASSIGN_OR_RETURN(Stmt * ins, wdb_->Prepare(
      "INSERT INTO chunks(series_id, start_ts, end_ts, count, data) VALUES(?,?,?,?,?)"));
  // Pieces of at most kChunkMax samples, halved until each encodes within kChunkMaxBytes.
  std::function<Status(std::span<const Sample>)> write = [&](std::span<const Sample> part) -> Status {
    if (part.empty()) return Ok();
    if (part.size() > kChunkMax) {
      std::size_t pieces = (part.size() + kChunkMax - 1) / kChunkMax;
      for (std::size_t p = 0; p < pieces; ++p) {
        std::size_t begin = part.size() * p / pieces, end = part.size() * (p + 1) / pieces;
        OS_RETURN_IF_ERROR(write(part.subspan(begin, end - begin)));
      }
      return Ok();
    }
    std::string data = EncodeChunk(part);
    if (data.size() > kChunkMaxBytes && part.size() > 1) {
      OS_RETURN_IF_ERROR(write(part.first(part.size() / 2)));
      return write(part.subspan(part.size() / 2));
    }
    return ins->Bind(1, series)
        .Bind(2, part.front().ts)
        .Bind(3, part.back().ts)
        .Bind(4, static_cast<std::int64_t>(part.size()))
        .BindBlob(5, data)
        .Run();
  };
  return write(samples);
}

Result<std::vector<Sample>> SqliteStore::MergeIntoChunks(std::int64_t series,
                                                         std::span<const Sample> add) {
  const TimestampMs lo = add.front().ts, hi = add.back().ts;
  // Chunks overlapping [lo, hi], plus the last chunk when it is small and everything is newer.
  OS_ASSIGN_OR_RETURN(Stmt * sel, wdb_->Prepare(
      "SELECT start_ts, end_ts, length(data), data FROM chunks WHERE series_id=?1 AND start_ts<=?3 AND "
      "start_ts>=coalesce((SELECT max(start_ts) FROM chunks WHERE series_id=?1 AND start_ts<=?2), ?2) "
      "ORDER BY start_ts"));
  sel->Bind(1, series).Bind(2, lo).Bind(3, hi);
  std::vector<Sample> existing;
  std::vector<TimestampMs> remove;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, sel->Step());
    if (!row) break;
    bool overlaps = sel->Int(1) >= lo;
    bool small_tail = static_cast<std::size_t>(sel->Int(2)) < kChunkMergeBelowBytes;
    if (!overlaps && !small_tail) continue;
    auto st = DecodeChunkInto(sel->Blob(3), &existing);
    if (!st) {
      sel->Reset();
      return tl::unexpected(st.error());
    }
    remove.push_back(sel->Int(0));
  }
  sel->Reset();
  std::vector<Sample> added;
  std::vector<Sample> merged;
  if (existing.empty()) {
    added.assign(add.begin(), add.end());
    merged = added;
  } else {
    merged.reserve(existing.size() + add.size());
    std::size_t i = 0, j = 0;
    while (i < existing.size() || j < add.size()) {
      if (j == add.size() || (i < existing.size() && existing[i].ts < add[j].ts)) {
        merged.push_back(existing[i++]);
      } else if (i == existing.size() || add[j].ts < existing[i].ts) {
        added.push_back(add[j]);
        merged.push_back(add[j++]);
      } else {  // same timestamp: the stored reading wins (ingest already refused duplicates)
        merged.push_back(existing[i++]);
        ++j;
      }
    }
    OS_ASSIGN_OR_RETURN(Stmt * del, wdb_->Prepare("DELETE FROM chunks WHERE series_id=? AND start_ts=?"));
    for (TimestampMs start : remove) OS_RETURN_IF_ERROR(del->Bind(1, series).Bind(2, start).Run());
  }
  OS_RETURN_IF_ERROR(WriteChunks(series, merged));
  return added;
}

Status SqliteStore::AddRollups(std::int64_t series, std::span<const Sample> samples) {
  if (samples.empty()) return Ok();
  OS_ASSIGN_OR_RETURN(OrgId org, SeriesOrg(series));
  OS_ASSIGN_OR_RETURN(OrgState * os, WriterOrg(org, clock_->NowMs()));
  OS_RETURN_IF_ERROR(WriteRollups(series, kLevel5m,
                                  Aggregate(samples, [](TimestampMs t) { return FloorTo(t, kBucket5m); }),
                                  false, 0, 0));
  OS_RETURN_IF_ERROR(WriteRollups(series, kLevel1h,
                                  Aggregate(samples, [](TimestampMs t) { return FloorTo(t, kBucket1h); }),
                                  false, 0, 0));
  return WriteRollups(series, kLevel1d,
                      Aggregate(samples, [&](TimestampMs t) { return os->days->DayStart(t); }),
                      false, 0, 0);
}

Result<std::vector<Sample>> SqliteStore::ReadRaw(Db* db, std::int64_t series, TimestampMs a,
                                                 TimestampMs b, std::size_t max_points) {
  // From the chunk that contains `a` (the newest starting at or before it) up to `b`.
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare(
      "SELECT data FROM chunks WHERE series_id=?1 AND start_ts<?3 AND start_ts>=coalesce("
      "(SELECT max(start_ts) FROM chunks WHERE series_id=?1 AND start_ts<=?2), ?2) ORDER BY start_ts"));
  s->Bind(1, series).Bind(2, a).Bind(3, b);
  std::vector<Sample> samples;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    Status st = DecodeChunkInto(s->Blob(0), &samples);
    if (st && samples.size() > max_points) {
      st = MakeError(ErrorCode::kInvalidArgument,
                     "too many raw points in this range; ask for resolution 5m, 1h, 1d or auto");
    }
    if (!st) {
      s->Reset();
      return tl::unexpected(st.error());
    }
  }
  s->Reset();
  std::erase_if(samples, [&](const Sample& x) { return x.ts < a || x.ts >= b; });
  return samples;
}

Result<std::vector<RollupBucket>> SqliteStore::ReadRollups(Db* db, std::int64_t series, int level,
                                                           TimestampMs a, TimestampMs b) {
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare(
      "SELECT data FROM rollups WHERE series_id=? AND level=? AND period>=? AND period<? "
      "ORDER BY period"));
  s->Bind(1, series).Bind(2, level).Bind(3, FloorTo(a, kRollupPeriod[level])).Bind(4, b);
  std::vector<RollupBucket> out;
  // A rollup chunk spans one period of its level; reserving for the whole range saves the
  // reallocations of a long chart.
  out.reserve(static_cast<std::size_t>(std::clamp<TimestampMs>((b - a) / kRollupBucketWidth[level] + 1, 0, 4096)));
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    auto st = DecodeRollupChunkInto(s->Blob(0), &out);
    if (!st) {
      s->Reset();
      return tl::unexpected(st.error());
    }
  }
  s->Reset();
  std::erase_if(out, [&](const RollupBucket& x) { return x.bucket < a || x.bucket >= b; });
  return out;
}

Status SqliteStore::PutRollupChunk(std::int64_t series, int level, TimestampMs period,
                                   const std::vector<RollupBucket>& buckets) {
  if (buckets.empty()) {
    OS_ASSIGN_OR_RETURN(Stmt * del, wdb_->Prepare(
        "DELETE FROM rollups WHERE series_id=? AND level=? AND period=?"));
    return del->Bind(1, series).Bind(2, level).Bind(3, period).Run();
  }
  OS_ASSIGN_OR_RETURN(Stmt * put, wdb_->Prepare(
      "INSERT OR REPLACE INTO rollups(series_id, level, period, first_bucket, last_bucket, buckets, "
      "data) VALUES(?,?,?,?,?,?,?)"));
  return put->Bind(1, series)
      .Bind(2, level)
      .Bind(3, period)
      .Bind(4, buckets.front().bucket)
      .Bind(5, buckets.back().bucket)
      .Bind(6, static_cast<std::int64_t>(buckets.size()))
      .BindBlob(7, EncodeRollupChunk(buckets))
      .Run();
}

Status SqliteStore::WriteRollups(std::int64_t series, int level, std::span<const RollupBucket> incoming,
                                 bool replace, TimestampMs a, TimestampMs b) {
  const TimestampMs width = kRollupPeriod[level];
  std::vector<TimestampMs> periods;
  for (const auto& x : incoming) {
    TimestampMs p = FloorTo(x.bucket, width);
    if (periods.empty() || periods.back() != p) periods.push_back(p);
  }
  if (replace) {
    OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare(
        "SELECT period FROM rollups WHERE series_id=? AND level=? AND period>=? AND period<?"));
    s->Bind(1, series).Bind(2, level).Bind(3, FloorTo(a, width)).Bind(4, b);
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      periods.push_back(s->Int(0));
    }
    s->Reset();
    std::sort(periods.begin(), periods.end());
    periods.erase(std::unique(periods.begin(), periods.end()), periods.end());
  }
  OS_ASSIGN_OR_RETURN(Stmt * get, wdb_->Prepare(
      "SELECT data FROM rollups WHERE series_id=? AND level=? AND period=?"));
  std::size_t next = 0;  // incoming is sorted, and so are the periods
  for (TimestampMs p : periods) {
    std::vector<RollupBucket> stored;
    get->Bind(1, series).Bind(2, level).Bind(3, p);
    OS_ASSIGN_OR_RETURN(bool row, get->Step());
    Status decoded = row ? DecodeRollupChunkInto(get->Blob(0), &stored) : Ok();
    get->Reset();
    OS_RETURN_IF_ERROR(decoded);
    if (replace) {
      std::erase_if(stored, [&](const RollupBucket& x) { return x.bucket >= a && x.bucket < b; });
    }
    while (next < incoming.size() && FloorTo(incoming[next].bucket, width) < p) ++next;
    std::vector<RollupBucket> merged;
    merged.reserve(stored.size() + 8);
    std::size_t i = 0;
    while (i < stored.size() || (next < incoming.size() && FloorTo(incoming[next].bucket, width) == p)) {
      bool take_incoming = next < incoming.size() && FloorTo(incoming[next].bucket, width) == p &&
                           (i == stored.size() || incoming[next].bucket <= stored[i].bucket);
      if (!take_incoming) {
        merged.push_back(stored[i++]);
      } else if (i < stored.size() && incoming[next].bucket == stored[i].bucket) {
        merged.push_back(stored[i++]);
        merged.back().agg.Merge(incoming[next++].agg);
      } else {
        merged.push_back(incoming[next++]);
      }
    }
    OS_RETURN_IF_ERROR(PutRollupChunk(series, level, p, merged));
  }
  return Ok();
}

Status SqliteStore::Flush() {
  if (head_count_ == 0 && !flush_cycle_) return Ok();
  RefreshCaches(clock_->NowMs());
  OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(wdb_.get()));
  OS_ASSIGN_OR_RETURN(Stmt * upd, wdb_->Prepare(
      "UPDATE series SET chunk_max_ts=max(coalesce(chunk_max_ts, ?2), ?2) WHERE id=?1"));
  std::vector<std::pair<std::int64_t, TimestampMs>> new_max;
  for (std::size_t sid = 0; sid < head_.size(); ++sid) {
    const auto& samples = head_[sid].samples;
    if (samples.empty()) continue;
    auto id = static_cast<std::int64_t>(sid);
    OS_ASSIGN_OR_RETURN(std::vector<Sample> added, MergeIntoChunks(id, samples));
    OS_RETURN_IF_ERROR(AddRollups(id, added));
    OS_RETURN_IF_ERROR(upd->Bind(1, id).Bind(2, samples.back().ts).Run());
    new_max.emplace_back(id, std::max(head_[sid].chunk_max_ts, samples.back().ts));
  }
  OS_RETURN_IF_ERROR(wdb_->Exec("DELETE FROM reading_log"));
  {
    // Readers see either the head or the chunks, never both and never neither.
    std::unique_lock lock(head_mu_);
    OS_RETURN_IF_ERROR(txn.Commit());
    for (auto& h : head_) h.samples.clear();
    for (auto [id, max] : new_max) head_[id].chunk_max_ts = max;
    data_generation_.fetch_add(1);
  }
  head_count_ = 0;
  head_series_ = 0;
  oldest_log_at_ = kNoTs;
  dup_chunk_series_ = -1;
  flush_cycle_ = false;
  return Ok();
}

Status SqliteStore::Compact() {
  OS_RETURN_IF_ERROR(RequireWriter("compaction"));
  return RunOnWriter([this]() -> Status {
    OS_RETURN_IF_ERROR(FlushRequestLog());
    OS_RETURN_IF_ERROR(Flush());
    OS_RETURN_IF_ERROR(wdb_->Exec("PRAGMA wal_checkpoint(TRUNCATE)"));
    OS_RETURN_IF_ERROR(wdb_->Exec("PRAGMA incremental_vacuum"));
    return wdb_->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  });
}

// ================================================================================================
// Queries

Result<OrgId> SqliteStore::DeviceOrg(Db* db, DeviceId id) {
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare("SELECT org_id FROM devices WHERE id=?"));
  s->Bind(1, id);
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  OrgId org = row ? s->Int(0) : -1;
  s->Reset();
  if (!row) return MakeError(ErrorCode::kNotFound, fmt::format("no device {}", id));
  return org;
}

Result<TimeZone> SqliteStore::ZoneOf(Db* db, OrgId org) {
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare("SELECT time_zone FROM organizations WHERE id=?"));
  s->Bind(1, org);
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  std::string name = row ? s->Text(0) : "UTC";
  s->Reset();
  std::lock_guard lock(zones_mu_);
  auto it = zones_.find(name);
  if (it != zones_.end()) return it->second;
  OS_ASSIGN_OR_RETURN(TimeZone zone, TimeZone::Load(name));
  zones_.emplace(name, zone);
  return zone;
}

Result<SeriesResult> SqliteStore::QuerySeries(const SeriesQuery& q) {
  if (q.to <= q.from) {
    return MakeError(ErrorCode::kInvalidArgument, "'to' must be after 'from' (the range is [from, to))");
  }
  OS_ASSIGN_OR_RETURN(ReaderLease db, AcquireReader());
  auto dev_org = DeviceOrg(db.get(), q.device);
  if (!dev_org || *dev_org != q.org) {
    return MakeError(ErrorCode::kNotFound, fmt::format("no device {}", q.device));
  }
  SeriesResult out;
  out.device = q.device;
  out.metric = q.metric;
  out.resolution = q.resolution == Resolution::kAuto ? PickResolution(q.from, q.to) : q.resolution;
  OS_ASSIGN_OR_RETURN(Stmt * ss, db->Prepare("SELECT id, unit FROM series WHERE device_id=? AND metric=?"));
  ss->Bind(1, q.device).Bind(2, q.metric);
  OS_ASSIGN_OR_RETURN(bool have_series, ss->Step());
  std::int64_t sid = have_series ? ss->Int(0) : -1;
  out.unit = have_series ? ss->Text(1) : std::string(DefaultUnitFor(q.metric).value_or(""));
  ss->Reset();
  if (!have_series) return out;

  std::optional<TimeZone> zone;
  if (out.resolution == Resolution::k1d) {
    OS_ASSIGN_OR_RETURN(zone, ZoneOf(db.get(), q.org));
  }
  // One snapshot: the shared head lock keeps a compaction from moving readings between the
  // chunks we read and the head we read.
  std::shared_lock head_lock(head_mu_);
  OS_RETURN_IF_ERROR(db->Exec("BEGIN"));
  struct EndRead {
    Db* db;
    ~EndRead() { (void)db->Exec("COMMIT"); }
  } end_read{db.get()};
  std::span<const Sample> head;
  if (static_cast<std::size_t>(sid) < head_.size()) head = head_[sid].samples;

  if (out.resolution == Resolution::kRaw) {
    OS_ASSIGN_OR_RETURN(auto samples, ReadRaw(db.get(), sid, q.from, q.to, kMaxRawPoints));
    std::vector<Sample> merged;
    auto lo = std::lower_bound(head.begin(), head.end(), Sample{q.from, 0}, ByTs);
    auto hi = std::lower_bound(head.begin(), head.end(), Sample{q.to, 0}, ByTs);
    merged.reserve(samples.size() + static_cast<std::size_t>(hi - lo));
    std::merge(samples.begin(), samples.end(), lo, hi, std::back_inserter(merged), ByTs);
    out.points.reserve(merged.size());
    for (const Sample& x : merged) out.points.push_back(SeriesPoint{x.ts, x.value, x.value, x.value, 1});
    return out;
  }

  TimestampMs width = out.resolution == Resolution::k5m ? kBucket5m : kBucket1h;
  std::optional<DayBucketer> days;
  if (zone) days.emplace(*zone);
  auto bucket_of = [&](TimestampMs t) {
    return days ? days->DayStart(t) : FloorTo(t, width);
  };
  TimestampMs first_bucket = bucket_of(q.from);
  const int level = out.resolution == Resolution::k5m ? kLevel5m
                    : out.resolution == Resolution::k1h ? kLevel1h
                                                        : kLevel1d;
  OS_ASSIGN_OR_RETURN(auto stored, ReadRollups(db.get(), sid, level, first_bucket, q.to));
  // The head's readings of the same buckets (recent data not yet compacted), aggregated in time
  // order, then merged with the stored buckets (both sorted by bucket start).
  std::vector<RollupBucket> recent;
  auto lo = std::lower_bound(head.begin(), head.end(), Sample{first_bucket, 0}, ByTs);
  for (auto it = lo; it != head.end(); ++it) {
    const TimestampMs b = bucket_of(it->ts);
    if (b >= q.to) break;
    if (recent.empty() || recent.back().bucket != b) recent.push_back(RollupBucket{b, {}});
    recent.back().agg.Add(it->ts, it->value);
  }
  out.points.reserve(stored.size() + recent.size());
  auto r = recent.begin();
  for (const RollupBucket& x : stored) {
    for (; r != recent.end() && r->bucket < x.bucket; ++r) out.points.push_back(r->agg.ToPoint(r->bucket));
    if (r != recent.end() && r->bucket == x.bucket) {
      RollupAgg merged = x.agg;
      merged.Merge(r->agg);
      out.points.push_back(merged.ToPoint(x.bucket));
      ++r;
    } else {
      out.points.push_back(x.agg.ToPoint(x.bucket));
    }
  }
  for (; r != recent.end(); ++r) out.points.push_back(r->agg.ToPoint(r->bucket));
  return out;
}

Status SqliteStore::Ready() {
  if (options_.writer) {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return MakeError(ErrorCode::kUnavailable, "the store is shutting down");
    if (queued_readings_ * 10 >= options_.max_queued_readings * 9) {
      return MakeError(ErrorCode::kUnavailable, "the writer queue is nearly full");
    }
  }
  OS_ASSIGN_OR_RETURN(ReaderLease db, AcquireReader());
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare("SELECT 1"));
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  s->Reset();
  if (!row) return MakeError(ErrorCode::kUnavailable, "the store does not answer");
  return Ok();
}

Result<StoreStats> SqliteStore::Stats() {
  OS_ASSIGN_OR_RETURN(ReaderLease db, AcquireReader());
  StoreStats st;
  st.head_readings = head_count_.load();
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare(
      "SELECT count(*), coalesce(sum(count),0), (SELECT count(*) FROM series) FROM chunks"));
  OS_ASSIGN_OR_RETURN(bool row, s->Step());
  if (row) {
    st.chunks = s->Int(0);
    st.chunk_readings = s->Int(1);
    st.series = s->Int(2);
  }
  s->Reset();
  std::error_code ec;
  for (const char* suffix : {"", "-wal"}) {
    auto size = std::filesystem::file_size(path_ + suffix, ec);
    if (!ec) st.file_bytes += static_cast<std::int64_t>(size);
  }
  return st;
}

// ================================================================================================
// Rollup rebuild

Status SqliteStore::RebuildSeries(std::int64_t series, OrgId org, TimestampMs from, TimestampMs to,
                                  bool days_only) {
  OS_ASSIGN_OR_RETURN(OrgState * os, WriterOrg(org, clock_->NowMs()));
  const TimeZone& zone = os->days->zone();
  if (!days_only) {
    // 5m from raw chunks.
    TimestampMs a = FloorTo(from, kBucket5m), b = CeilTo(to, kBucket5m);
    OS_ASSIGN_OR_RETURN(auto samples, ReadRaw(wdb_.get(), series, a, b, std::numeric_limits<std::size_t>::max()));
    OS_RETURN_IF_ERROR(WriteRollups(series, kLevel5m,
                                    Aggregate(samples, [](TimestampMs t) { return FloorTo(t, kBucket5m); }),
                                    true, a, b));
    // 1h from 5m.
    TimestampMs ha = FloorTo(from, kBucket1h), hb = CeilTo(to, kBucket1h);
    OS_ASSIGN_OR_RETURN(auto fives, ReadRollups(wdb_.get(), series, kLevel5m, ha, hb));
    OS_RETURN_IF_ERROR(WriteRollups(series, kLevel1h,
                                    Regroup(fives, [](TimestampMs t) { return FloorTo(t, kBucket1h); }),
                                    true, ha, hb));
  }
  // 1d from 5m (1h cannot serve zones with 30- or 45-minute offsets), only for days whose
  // 5-minute rollups are still kept.
  auto cutoff5m = RetentionCutoff(os->policy.For(DataClass::kRollup5m), clock_->NowMs());
  TimestampMs da = zone.DayOf(std::max(from, cutoff5m ? *cutoff5m : from)).start;
  if (cutoff5m && da < *cutoff5m) da = zone.DayOf(*cutoff5m).end;
  TimestampMs db = to >= std::numeric_limits<TimestampMs>::max() / 8 ? to : zone.DayOf(to - 1).end;
  if (da < db) {
    DayBucketer days(zone);
    OS_ASSIGN_OR_RETURN(auto fives, ReadRollups(wdb_.get(), series, kLevel5m, da, db));
    OS_RETURN_IF_ERROR(WriteRollups(series, kLevel1d,
                                    Regroup(fives, [&](TimestampMs t) { return days.DayStart(t); }),
                                    true, da, db));
  }
  return Ok();
}

Status SqliteStore::RebuildRollups(OrgId org, DeviceId device, TimestampMs from, TimestampMs to) {
  if (to <= from) return MakeError(ErrorCode::kInvalidArgument, "'to' must be after 'from'");
  OS_RETURN_IF_ERROR(GetDevice(org, device));
  OS_RETURN_IF_ERROR(RequireWriter("rebuilding rollups"));
  return RunOnWriter([&]() -> Status {
    OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(wdb_.get()));
    OS_ASSIGN_OR_RETURN(Stmt * s, wdb_->Prepare("SELECT id FROM series WHERE device_id=?"));
    s->Bind(1, device);
    std::vector<std::int64_t> ids;
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      ids.push_back(s->Int(0));
    }
    s->Reset();
    for (auto sid : ids) OS_RETURN_IF_ERROR(RebuildSeries(sid, org, from, to, false));
    return txn.Commit();
  });
}

// ================================================================================================
// Retention

namespace {
// One stored run (a raw chunk or a rollup chunk) read for the retention job.
struct StoredRun {
  std::int64_t series;
  TimestampMs key;   // start_ts of a raw chunk, period of a rollup chunk
  TimestampMs last;  // its newest reading or bucket
  std::int64_t count;
  std::string data;
};

// Reads rows of (series, key, last, count, data) and resets the statement.
Result<std::vector<StoredRun>> ReadStoredRuns(Stmt* sel) {
  std::vector<StoredRun> rows;
  while (true) {
    auto row = sel->Step();
    if (!row) {
      sel->Reset();
      return tl::unexpected(row.error());
    }
    if (!*row) break;
    rows.push_back({sel->Int(0), sel->Int(1), sel->Int(2), sel->Int(3), std::string(sel->Blob(4))});
  }
  sel->Reset();
  return rows;
}
}  // namespace

Result<std::int64_t> SqliteStore::RetentionStepRaw(OrgId org, TimestampMs cutoff) {
  // Up to kRetentionStep chunks that start before the cutoff, in one transaction.
  OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(wdb_.get()));
  OS_ASSIGN_OR_RETURN(Stmt * sel, wdb_->Prepare(
      "SELECT c.series_id, c.start_ts, c.end_ts, c.count, c.data FROM chunks c "
      "JOIN series s ON s.id=c.series_id JOIN devices d ON d.id=s.device_id "
      "WHERE d.org_id=? AND c.start_ts<? LIMIT ?"));
  sel->Bind(1, org).Bind(2, cutoff).Bind(3, kRetentionStep);
  OS_ASSIGN_OR_RETURN(auto rows, ReadStoredRuns(sel));
  OS_ASSIGN_OR_RETURN(Stmt * del, wdb_->Prepare("DELETE FROM chunks WHERE series_id=? AND start_ts=?"));
  std::int64_t deleted = 0;
  for (const StoredRun& r : rows) {
    OS_RETURN_IF_ERROR(del->Bind(1, r.series).Bind(2, r.key).Run());
    if (r.last < cutoff) {
      deleted += r.count;
      continue;
    }
    OS_ASSIGN_OR_RETURN(std::vector<Sample> samples, DecodeChunk(r.data));
    std::size_t before = samples.size();
    std::erase_if(samples, [&](const Sample& x) { return x.ts < cutoff; });
    deleted += static_cast<std::int64_t>(before - samples.size());
    if (!samples.empty()) OS_RETURN_IF_ERROR(WriteChunks(r.series, samples));
  }
  OS_RETURN_IF_ERROR(txn.Commit());
  return deleted;
}

Result<SqliteStore::StepResult> SqliteStore::RetentionStepRollup(OrgId org, int level,
                                                                 TimestampMs cutoff) {
  OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(wdb_.get()));
  OS_ASSIGN_OR_RETURN(Stmt * sel, wdb_->Prepare(
      "SELECT r.series_id, r.period, r.last_bucket, r.buckets, r.data FROM rollups r "
      "JOIN series s ON s.id=r.series_id JOIN devices d ON d.id=s.device_id "
      "WHERE d.org_id=? AND r.level=? AND r.first_bucket<? LIMIT ?"));
  sel->Bind(1, org).Bind(2, level).Bind(3, cutoff).Bind(4, kRetentionStep);
  OS_ASSIGN_OR_RETURN(auto rows, ReadStoredRuns(sel));
  StepResult result;
  result.more = static_cast<std::int64_t>(rows.size()) >= kRetentionStep;
  for (const StoredRun& r : rows) {
    std::vector<RollupBucket> kept;
    if (r.last >= cutoff) {
      OS_RETURN_IF_ERROR(DecodeRollupChunkInto(r.data, &kept));
      std::erase_if(kept, [&](const RollupBucket& x) { return x.bucket < cutoff; });
    }
    result.rows += r.count - static_cast<std::int64_t>(kept.size());
    OS_RETURN_IF_ERROR(PutRollupChunk(r.series, level, r.key, kept));
  }
  OS_RETURN_IF_ERROR(txn.Commit());
  return result;
}

Result<std::int64_t> SqliteStore::RetentionCount(Db* db, OrgId org, DataClass c, TimestampMs cutoff) {
  if (c == DataClass::kApiRequestLogs) {
    OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare("SELECT count(*) FROM api_requests WHERE org_id=? AND at<?"));
    s->Bind(1, org).Bind(2, cutoff);
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    std::int64_t n = row ? s->Int(0) : 0;
    s->Reset();
    return n;
  }
  if (c == DataClass::kRawReadings) {
    OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare(
        "SELECT c.end_ts, c.count, c.data FROM chunks c JOIN series s ON s.id=c.series_id "
        "JOIN devices d ON d.id=s.device_id WHERE d.org_id=? AND c.start_ts<?"));
    s->Bind(1, org).Bind(2, cutoff);
    std::int64_t n = 0;
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      if (s->Int(0) < cutoff) {
        n += s->Int(1);
      } else {
        auto samples = DecodeChunk(s->Blob(2));
        if (samples) n += std::count_if(samples->begin(), samples->end(),
                                        [&](const Sample& x) { return x.ts < cutoff; });
      }
    }
    s->Reset();
    return n;
  }
  int level = c == DataClass::kRollup5m ? kLevel5m : c == DataClass::kRollup1h ? kLevel1h : kLevel1d;
  OS_ASSIGN_OR_RETURN(Stmt * s, db->Prepare(
      "SELECT r.last_bucket, r.buckets, r.data FROM rollups r JOIN series s ON s.id=r.series_id "
      "JOIN devices d ON d.id=s.device_id WHERE d.org_id=? AND r.level=? AND r.first_bucket<?"));
  s->Bind(1, org).Bind(2, level).Bind(3, cutoff);
  std::int64_t n = 0;
  while (true) {
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    if (s->Int(0) < cutoff) {
      n += s->Int(1);
      continue;
    }
    std::vector<RollupBucket> buckets;
    if (DecodeRollupChunkInto(s->Blob(2), &buckets)) {
      n += std::count_if(buckets.begin(), buckets.end(),
                         [&](const RollupBucket& x) { return x.bucket < cutoff; });
    }
  }
  s->Reset();
  return n;
}

Result<RetentionReport> SqliteStore::RunRetention(bool dry_run) {
  if (!dry_run) {
    OS_RETURN_IF_ERROR(RequireWriter("the retention job"));
    // Compact first so that every reading is in a chunk the job can see.
    OS_RETURN_IF_ERROR(RunOnWriter([this] { return Flush(); }));
  }
  RetentionReport report;
  report.dry_run = dry_run;
  for (DataClass c : kAllDataClasses) report.classes.push_back({c, 0});
  OS_ASSIGN_OR_RETURN(auto orgs, ListOrganizations());
  OS_ASSIGN_OR_RETURN(ReaderLease reader, AcquireReader());
  const TimestampMs now = clock_->NowMs();
  for (const Organization& org : orgs) {
    OS_ASSIGN_OR_RETURN(RetentionPolicy policy, GetRetentionPolicy(org.id));
    for (auto& entry : report.classes) {
      DataClass c = entry.data_class;
      if (c == DataClass::kAlertEvents || c == DataClass::kNotificationLogs) {
        continue;  // alert events are kept forever; notification logs arrive with their module
      }
      auto cutoff = RetentionCutoff(policy.For(c), now);
      if (!cutoff) continue;
      if (dry_run) {
        OS_ASSIGN_OR_RETURN(std::int64_t n, RetentionCount(reader.get(), org.id, c, *cutoff));
        entry.rows += n;
        continue;
      }
      // Small transactions, each its own writer task: ingest interleaves between them.
      while (true) {
        std::int64_t n = 0;
        bool more = false;
        OS_RETURN_IF_ERROR(RunOnWriter([&]() -> Status {
          if (c == DataClass::kRawReadings) {
            OS_ASSIGN_OR_RETURN(n, RetentionStepRaw(org.id, *cutoff));
            more = n > 0;
          } else if (c == DataClass::kApiRequestLogs) {
            OS_ASSIGN_OR_RETURN(Stmt * del, wdb_->Prepare(
                "DELETE FROM api_requests WHERE id IN (SELECT id FROM api_requests "
                "WHERE org_id=? AND at<? LIMIT ?)"));
            OS_RETURN_IF_ERROR(del->Bind(1, org.id).Bind(2, *cutoff).Bind(3, kRetentionStep).Run());
            n = wdb_->Changes();
            more = n >= kRetentionStep;
          } else {
            int level = c == DataClass::kRollup5m ? kLevel5m
                        : c == DataClass::kRollup1h ? kLevel1h
                                                    : kLevel1d;
            OS_ASSIGN_OR_RETURN(StepResult step, RetentionStepRollup(org.id, level, *cutoff));
            n = step.rows;
            more = step.more;
          }
          return Ok();
        }));
        entry.rows += n;
        if (!more) break;
      }
    }
  }
  // Requests without an organisation (refused tokens, health checks) follow the default.
  if (auto cutoff = RetentionCutoff(DefaultRetention(DataClass::kApiRequestLogs), now); cutoff) {
    for (auto& entry : report.classes) {
      if (entry.data_class != DataClass::kApiRequestLogs) continue;
      if (dry_run) {
        OS_ASSIGN_OR_RETURN(Stmt * s, reader->Prepare(
            "SELECT count(*) FROM api_requests WHERE org_id IS NULL AND at<?"));
        s->Bind(1, *cutoff);
        OS_ASSIGN_OR_RETURN(bool row, s->Step());
        entry.rows += row ? s->Int(0) : 0;
        s->Reset();
        continue;
      }
      while (true) {
        std::int64_t n = 0;
        OS_RETURN_IF_ERROR(RunOnWriter([&]() -> Status {
          OS_ASSIGN_OR_RETURN(Stmt * del, wdb_->Prepare(
              "DELETE FROM api_requests WHERE id IN (SELECT id FROM api_requests "
              "WHERE org_id IS NULL AND at<? LIMIT ?)"));
          OS_RETURN_IF_ERROR(del->Bind(1, *cutoff).Bind(2, kRetentionStep).Run());
          n = wdb_->Changes();
          return Ok();
        }));
        entry.rows += n;
        if (n < kRetentionStep) break;
      }
    }
  }
  return report;
}

// ================================================================================================

Result<std::unique_ptr<Store>> OpenSqliteStore(const StoreOptions& options, const std::string& path) {
  auto store = std::make_unique<SqliteStore>(options, path);
  OS_RETURN_IF_ERROR(store->Open());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace opensense::store::sqlite
