// PostgreSQL store. Layout (see README.md in this folder):
//
//  * readings(series_id, ts, value), primary key (series_id, ts), range-partitioned by UTC
//    month on ts. The writer bulk-loads each group commit with binary COPY in (series, ts)
//    order: straight into readings for the series whose rows are all newer than the newest
//    reading it knows of (the fast path, behind a savepoint), the others through a temporary
//    staging table and one INSERT ... ON CONFLICT DO NOTHING RETURNING, so duplicates are
//    counted, never errors, and exactly the rows inserted feed the rollups.
//  * rollups(series_id, level, bucket): one row per bucket with an exact decimal sum
//    (core/rollup.hpp). Buckets newer than that reading are COPYed as new rows (behind a
//    savepoint); the other partial aggregates are COPYed to a staging table and merged by one
//    upsert that does RollupAgg::Merge in SQL (in C++ when a sum is not decimal or is near the
//    int64 limits), in the same transaction as the readings. Charts read these rows;
//    a coarse query never scans raw readings (which arrive time-ordered, so one series' rows
//    sit one per heap page).
//  * rollup_folds(series_id, fold_ts): a series' open hour and day are not stored but derived
//    from its 5-minute rows, and stored ("folded") by the commit that moves the series past
//    them (pg_fold.hpp); every reader of 1h/1d rows respects the mark.
//  * Several processes may ingest into one database: each group takes transaction-scoped
//    advisory locks on its series (in id order), so rollup merges never race.
//    Time-based work (retention, partitions ahead) runs in the one process that holds the
//    session-scoped maintenance lock; when it dies its session ends and another takes over.
#include "store/postgres/pg_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include <fmt/format.h>

#include "core/rollup.hpp"
#include "core/time_zone.hpp"
#include "core/validation.hpp"
#include "store/commit_listener.hpp"
#include "store/postgres/pg_alert_store.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/postgres/pg_fold.hpp"
#include "store/postgres/pg_notify_store.hpp"
#include "store/postgres/pg_people_store.hpp"
#include "store/postgres/pg_schema.hpp"

namespace opensense::store::postgres {

namespace {

constexpr std::size_t kMaxGroupReadings = 200'000;
constexpr std::int64_t kRetentionStep = 5'000;  // rows per retention transaction
constexpr std::size_t kMaxRawPoints = 2'000'000;
constexpr int kMonthsAhead = 2;                 // partitions kept ready beyond the current month
constexpr TimestampMs kFarFuture = kFoldAll;
constexpr TimestampMs kNoReading = std::numeric_limits<TimestampMs>::min();  // a series' newest, when it has none

TimestampMs CeilTo(TimestampMs ts, TimestampMs width) {
  TimestampMs f = FloorTo(ts, width);
  return f == ts ? ts : f + width;
}

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

struct SeriesInfo {
  int id;
  std::string unit;
  OrgId org;
};

struct RollupKey {
  int series;
  int level;
  TimestampMs bucket;
  bool operator==(const RollupKey&) const = default;
};
struct RollupKeyHash {
  std::size_t operator()(const RollupKey& k) const {
    std::uint64_t h = static_cast<std::uint64_t>(k.series) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<std::uint64_t>(k.bucket) + static_cast<std::uint64_t>(k.level) * 31 +
         0x7F4A7C159E3779B9ull + (h << 6) + (h >> 2);
    return static_cast<std::size_t>(h);
  }
};
using RollupMap = std::unordered_map<RollupKey, RollupAgg, RollupKeyHash>;

struct KeyHash {
  std::size_t operator()(const std::pair<int, TimestampMs>& p) const {
    std::uint64_t h = static_cast<std::uint64_t>(p.first) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<std::uint64_t>(p.second) + (h << 6) + (h >> 2);
    return static_cast<std::size_t>(h);
  }
};

const char* UnitName(RetentionPeriod::Unit u) {
  return u == RetentionPeriod::Unit::kDays     ? "days"
         : u == RetentionPeriod::Unit::kMonths ? "months"
                                               : "forever";
}

RetentionPeriod PeriodFrom(std::string_view unit, int amount) {
  return unit == "days"     ? RetentionPeriod::Days(amount)
         : unit == "months" ? RetentionPeriod::Months(amount)
                            : RetentionPeriod::Forever();
}

int LevelOf(Resolution r) {
  return r == Resolution::k5m ? kLevel5m : r == Resolution::k1h ? kLevel1h : kLevel1d;
}
int LevelOf(DataClass c) {
  return c == DataClass::kRollup5m ? kLevel5m : c == DataClass::kRollup1h ? kLevel1h : kLevel1d;
}

// RollupAgg::Merge (stored `r`, partial aggregate `excluded`) in SQL, for the cases where it is
// exact: both sums decimal (scale >= 0) and each, raised to the larger scale, within
// +-(2^62 - 1) (so neither the raise nor the addition can overflow, and C++ would not fall back
// to a double either). least/greatest keep the stored value on ties, as Merge does; double_sum stays 0.
// Buckets outside that are left alone and not counted, so the caller sees them in the row count.
// OS_POW10 is 10^0..10^9 (kMaxDecimalScale); an out-of-range index gives NULL, i.e. "not here".
#define OS_POW10 "('{1,10,100,1000,10000,100000,1000000,10000000,100000000,1000000000}'::bigint[])"
#define OS_RAISE_R OS_POW10 "[greatest(r.scale, excluded.scale) - r.scale + 1]"
#define OS_RAISE_E OS_POW10 "[greatest(r.scale, excluded.scale) - excluded.scale + 1]"
constexpr const char* kMergeRollupsSql =
    "SAVEPOINT rollup_merge; "
    "INSERT INTO rollups AS r SELECT * FROM rollup_stage ON CONFLICT (series_id, level, bucket) DO "
    "UPDATE SET count = r.count + excluded.count, min = least(r.min, excluded.min), "
    "max = greatest(r.max, excluded.max), first_ts = least(r.first_ts, excluded.first_ts), "
    "last_ts = greatest(r.last_ts, excluded.last_ts), scale = greatest(r.scale, excluded.scale), "
    "scaled_sum = r.scaled_sum * " OS_RAISE_R " + excluded.scaled_sum * " OS_RAISE_E " "
    "WHERE r.scale >= 0 AND excluded.scale >= 0 "
    "AND r.scaled_sum BETWEEN -(4611686018427387903 / " OS_RAISE_R ") AND 4611686018427387903 / " OS_RAISE_R " "
    "AND excluded.scaled_sum BETWEEN -(4611686018427387903 / " OS_RAISE_E ") AND 4611686018427387903 / " OS_RAISE_E;
#undef OS_RAISE_E
#undef OS_RAISE_R
#undef OS_POW10

// One bucket range to fold into stored rows (pg_fold.hpp): the 1h buckets of [from, to), or the
// one local day [from, to).
struct FoldTask {
  int series;
  int level;  // kLevel1h or kLevel1d
  TimestampMs from, to;
};

// The tasks that move a series' fold mark from `mark` to `to` (hour-aligned, later): the hours in
// between, and the local days that end by `to`. A series still at kFoldNone has no stored
// reading before this group's `oldest` (every commit moves the mark), so its tasks start there.
void AddFoldTasks(std::vector<FoldTask>* tasks, int series, TimestampMs mark, TimestampMs to,
                  TimestampMs oldest, DayBucketer* days) {
  const TimestampMs hour_from = mark == kFoldNone ? FloorTo(oldest, kBucket1h) : mark;
  if (hour_from < to) tasks->push_back({series, kLevel1h, hour_from, to});
  TimestampMs day = mark == kFoldNone ? days->DayStart(oldest) : FirstDerived(kLevel1d, mark, days->zone());
  const TimestampMs last = days->DayStart(to);
  while (day < last) {
    Interval d = days->zone().DayOf(day);
    tasks->push_back({series, kLevel1d, d.start, d.end});
    day = d.end;
  }
}

// One statement that stores the buckets of `tasks` from the 5-minute rows (replacing a row that
// should not be there: the 5-minute rows are the truth past the mark), doing
// RollupAgg::Merge in SQL where it is exact: every sum decimal, each raised to scale 9 within
// int64 (else the term is NULL and the bucket left out), and the sum of the magnitudes at the
// bucket's scale within +-(2^62 - 1), so that no order of additions overflows. It returns the
// buckets it left alone (series, level, bucket), for a merge in C++. The 5-minute rows are read
// by one index range scan per task (LATERAL ... OFFSET 0 keeps the planner from hashing the
// whole table).
std::string FoldSql(const std::vector<FoldTask>& tasks) {
  std::vector<std::int64_t> s, l, a, b;
  for (const FoldTask& t : tasks) {
    s.push_back(t.series);
    l.push_back(t.level);
    a.push_back(t.from);
    b.push_back(t.to);
  }
  // 10^(9 - scale) at [10 - scale]: scale 9 -> 1, scale 0 -> 10^9; out of range -> NULL.
  constexpr const char* kRaise =
      "('{1,10,100,1000,10000,100000,1000000,10000000,100000000,1000000000}'::bigint[])";
  return fmt::format(
      "WITH k(s, l, a, b) AS (SELECT * FROM unnest('{0}'::int[], '{1}'::int[], '{2}'::bigint[], "
      "'{3}'::bigint[])), "
      "t AS (SELECT k.s, k.l, CASE WHEN k.l = {5} THEN r.bucket - ((r.bucket % {6}) + {6}) % {6} "
      "ELSE k.a END AS b, r.count, r.min, r.max, r.first_ts, r.last_ts, r.scale, "
      "CASE WHEN r.scale BETWEEN 0 AND 9 AND r.scaled_sum BETWEEN -(4611686018427387903 / {4}[10 - r.scale]) "
      "AND 4611686018427387903 / {4}[10 - r.scale] "
      "THEN r.scaled_sum * {4}[10 - r.scale] END AS raised "
      "FROM k CROSS JOIN LATERAL (SELECT * FROM rollups r WHERE r.series_id = k.s AND r.level = 0 "
      "AND r.bucket >= k.a AND r.bucket < k.b OFFSET 0) r), "
      "g AS (SELECT s, l, b, sum(count)::bigint AS count, min(min) AS min, max(max) AS max, "
      "min(first_ts) AS first_ts, max(last_ts) AS last_ts, max(scale) AS scale, "
      "sum(raised) AS total, count(raised) = count(*) AND max(scale) BETWEEN 0 AND 9 AND "
      "sum(abs(raised)) / {4}[10 - max(scale)] <= 4611686018427387903 AS ok FROM t GROUP BY s, l, b), "
      "ins AS (INSERT INTO rollups SELECT s, l, b, count, min, max, first_ts, last_ts, scale, "
      "(total / {4}[10 - scale])::bigint, 0 FROM g WHERE ok ON CONFLICT (series_id, level, bucket) DO "
      "UPDATE SET count=excluded.count, min=excluded.min, max=excluded.max, first_ts=excluded.first_ts, "
      "last_ts=excluded.last_ts, scale=excluded.scale, scaled_sum=excluded.scaled_sum, "
      "double_sum=excluded.double_sum) "
      "SELECT s, l, b FROM g WHERE NOT ok",
      ArrayLiteral(s), ArrayLiteral(l), ArrayLiteral(a), ArrayLiteral(b), kRaise, kLevel1h,
      kBucket1h);
}

// A series without a mark (every bucket stored) that gets one: `hour` its new mark, `day` the
// first local day it leaves to derivation (FirstDerived(kLevel1d, hour)).
struct Unfold {
  int series;
  TimestampMs hour, day;
};

std::string UnfoldSql(const std::vector<Unfold>& unfolds) {
  std::vector<std::int64_t> s, h, d;
  for (const Unfold& u : unfolds) {
    s.push_back(u.series);
    h.push_back(u.hour);
    d.push_back(u.day);
  }
  return fmt::format(
      "DELETE FROM rollups r USING unnest('{0}'::int[], '{1}'::bigint[], '{2}'::bigint[]) AS k(s, h, d) "
      "WHERE r.series_id = k.s AND ((r.level = {3} AND r.bucket >= k.h) OR (r.level = {4} AND r.bucket >= k.d)); "
      "INSERT INTO rollup_folds SELECT * FROM unnest('{0}'::int[], '{1}'::bigint[]) "
      "ON CONFLICT (series_id) DO UPDATE SET fold_ts = excluded.fold_ts",
      ArrayLiteral(s), ArrayLiteral(h), ArrayLiteral(d), kLevel1h, kLevel1d);
}

std::string SetFoldMarksSql(const std::vector<std::pair<int, TimestampMs>>& marks) {
  std::vector<std::int64_t> s, m;
  for (const auto& [series, mark] : marks) {
    s.push_back(series);
    m.push_back(mark);
  }
  return fmt::format(
      "UPDATE rollup_folds f SET fold_ts = k.m FROM unnest('{}'::int[], '{}'::bigint[]) AS k(s, m) "
      "WHERE f.series_id = k.s",
      ArrayLiteral(s), ArrayLiteral(m));
}

// One rollups row in COPY's binary format (the columns of `rollups`, in order).
void AppendRollupRow(BinaryCopy* out, const RollupKey& k, const RollupAgg& a) {
  out->Row(11);
  out->Int4(k.series);
  out->Int2(static_cast<std::int16_t>(k.level));
  out->Int8(k.bucket);
  out->Int8(a.count);
  out->Float8(a.min);
  out->Float8(a.max);
  out->Int8(a.first_ts);
  out->Int8(a.last_ts);
  out->Int2(static_cast<std::int16_t>(a.scale));
  out->Int8(a.scaled_sum);
  out->Float8(a.double_sum);
}

// The rows of `buckets` in key order (so the server visits each series' index pages once).
BinaryCopy RollupRows(const RollupMap& buckets) {
  std::vector<const RollupMap::value_type*> sorted;
  sorted.reserve(buckets.size());
  for (const auto& entry : buckets) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return std::tie(a->first.series, a->first.level, a->first.bucket) <
           std::tie(b->first.series, b->first.level, b->first.bucket);
  });
  BinaryCopy out;
  for (const auto* entry : sorted) AppendRollupRow(&out, entry->first, entry->second);
  return out;
}

constexpr const char* kRollupColumns =
    "bucket, count, min, max, first_ts, last_ts, scale, scaled_sum, double_sum";


constexpr const char* kDeviceColumns =
    "id, org_id, site_id, name, serial, decommissioned_at IS NOT NULL, created_at, "
    "target_min, target_max, expected_interval_s, medicine_storage, calibration_date, calibration_due";

Device ReadDevice(const PgResult& r, int i) {
  Device d;
  d.id = r.Int(i, 0);
  d.org_id = r.Int(i, 1);
  d.site_id = r.OptInt(i, 2);
  d.name = std::string(r.Text(i, 3));
  if (!r.IsNull(i, 4)) d.serial = std::string(r.Text(i, 4));
  d.decommissioned = r.Bool(i, 5);
  d.created_at = r.Int(i, 6);
  if (!r.IsNull(i, 7)) d.profile.target_min = r.Double(i, 7);
  if (!r.IsNull(i, 8)) d.profile.target_max = r.Double(i, 8);
  d.profile.expected_interval_s = r.OptInt(i, 9);
  d.profile.medicine_storage = r.Bool(i, 10);
  if (!r.IsNull(i, 11)) d.profile.calibration_date = std::string(r.Text(i, 11));
  if (!r.IsNull(i, 12)) d.profile.calibration_due = std::string(r.Text(i, 12));
  return d;
}

constexpr const char* kTokenColumns =
    "id, public_id, kind, org_id, device_id, site_id, user_id, role, secret_hash, label, "
    "created_at, expires_at, last_used_at";

Result<TokenRecord> ReadToken(const PgResult& r, int i) {
  TokenRecord t;
  t.id = r.Int(i, 0);
  t.public_id = std::string(r.Text(i, 1));
  std::string_view kind = r.Text(i, 2);
  t.kind = kind == "device" ? TokenKind::kDevice : kind == "gateway" ? TokenKind::kGateway : TokenKind::kUser;
  t.org_id = r.Int(i, 3);
  t.device = r.OptInt(i, 4);
  t.site = r.OptInt(i, 5);
  t.user = r.OptInt(i, 6);
  OS_ASSIGN_OR_RETURN(t.role, ParseRole(r.Text(i, 7)));
  t.secret_hash = std::string(r.Text(i, 8));
  t.label = std::string(r.Text(i, 9));
  t.created_at = r.Int(i, 10);
  t.expires_at = r.OptInt(i, 11);
  t.last_used_at = r.OptInt(i, 12);
  return t;
}

Result<Organization> ReadOrganization(const PgResult& r, int i) {
  Organization o;
  o.id = r.Int(i, 0);
  o.name = std::string(r.Text(i, 1));
  o.time_zone = std::string(r.Text(i, 2));
  OS_ASSIGN_OR_RETURN(o.tier, ParseTier(r.Text(i, 3)));
  o.created_at = r.Int(i, 4);
  return o;
}

}  // namespace

class PgStore final : public Store {
 public:
  PgStore(const StoreOptions& options, ConnInfo info)
      : options_(options),
        clock_(options.clock != nullptr ? options.clock : &system_clock_),
        pool_(std::move(info), 8) {}
  ~PgStore() override { Close(); }

  Status Open();

  int SchemaVersion() const override { return schema_version_; }
  Result<Organization> CreateOrganization(const NewOrganization& org) override;
  Result<Organization> GetOrganization(OrgId id) override;
  Result<std::vector<Organization>> ListOrganizations() override;
  Status SetOrganizationTimeZone(OrgId id, std::string_view time_zone) override;
  Status SetOrganizationTier(OrgId id, Tier tier) override;
  Result<RetentionPolicy> GetRetentionPolicy(OrgId id) override;
  Status SetRetention(OrgId id, DataClass data_class, RetentionPeriod period) override;
  Result<Site> CreateSite(OrgId org, std::string_view name) override;
  Result<std::vector<Site>> ListSites(OrgId org) override;
  Result<Site> GetSite(OrgId org, SiteId id) override;
  Result<Site> UpdateSite(OrgId org, SiteId id, std::optional<std::string> name,
                          std::optional<bool> auto_register) override;
  Status DeleteSite(OrgId org, SiteId id) override;
  Result<Device> UpdateDevice(OrgId org, DeviceId id, const DeviceUpdate& update) override;
  Result<Device> CreateDevice(const NewDevice& device) override;
  Result<Device> GetDevice(OrgId org, DeviceId id) override;
  Result<Device> FindDeviceBySerial(OrgId org, std::string_view serial) override;
  Result<std::vector<Device>> ListDevices(OrgId org) override;
  Status DecommissionDevice(OrgId org, DeviceId id) override;
  Result<OrgId> OrganizationOfDevice(DeviceId device) override;
  Result<User> CreateUser(OrgId org, std::string_view email, Role role) override;
  Result<User> GetUser(OrgId org, UserId id) override;
  Result<TokenRecord> CreateToken(const TokenRecord& token) override;
  Result<TokenRecord> FindToken(std::string_view public_id) override;
  Result<std::vector<TokenRecord>> ListTokens(OrgId org) override;
  Status ExpireToken(OrgId org, std::int64_t token_id, TimestampMs at) override;
  Status TouchTokens(const std::vector<std::pair<std::int64_t, TimestampMs>>& used) override;
  Result<std::vector<LatestValue>> Latest(OrgId org, DeviceId device) override;
  void LogRequests(std::vector<ApiRequestLog> rows) override;
  std::future<Result<IngestResult>> Ingest(OrgId org, std::vector<Reading> readings) override;
  Result<SeriesResult> QuerySeries(const SeriesQuery& query) override;
  Result<SeriesResult> QuerySeriesOn(Conn* conn, const SeriesQuery& query);
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
  // Runs `fn` with a pooled connection.
  // An idle connection may have died with its server (a restart, a fail-over): the first
  // failure drops it and the call runs once more on a fresh connection.
  template <typename Fn>
  auto WithConn(Fn fn) -> decltype(fn(static_cast<Conn*>(nullptr))) {
    for (int attempt = 0;; ++attempt) {
      OS_ASSIGN_OR_RETURN(auto lease, pool_.Acquire());
      auto result = fn(lease.get());
      if (result || result.error().code != ErrorCode::kUnavailable || attempt > 0) return result;
      pool_.Clear();  // its other idle connections went with the same server
    }
  }
  Result<PgResult> Query(std::string_view sql, const std::vector<Param>& params = {}) {
    return WithConn([&](Conn* c) { return c->Exec(sql, params); });
  }
  Status RunOnWriter(std::function<Status()> fn);
  Status RequireWriter(std::string_view what) const;
  Status EnsureWriterConn();
  void WriterLoop();
  void CommitGroup(std::vector<IngestJob>& group);
  Status CommitStaged(const std::vector<IngestJob>& group, std::vector<IngestResult>& results);
  Status MergeRollupsInCpp(Conn* c, RollupMap& add);
  Status Fold(Conn* c, const std::vector<FoldTask>& tasks,
              const std::vector<std::pair<int, TimestampMs>>& marks,
              const std::vector<Unfold>& unfolds = {});
  Result<TimestampMs> FoldMark(Conn* c, int series);
  Status FoldBefore(Conn* conn, OrgId org, const TimeZone& zone, TimestampMs to);
  Status FlushRequestLog();
  Status FlushRequestLogOnWriter() {
    return RunOnWriter([this] { return FlushRequestLog(); });
  }
  Status EnsurePartitions(Conn* conn, const std::set<int>& months);
  Result<TimeZone> Zone(std::string_view name);
  Result<RetentionPolicy> LoadPolicy(Conn* conn, OrgId org);
  Status LockSeries(Conn* conn, std::vector<int> ids);
  Status WriteRollups(Conn* conn, int series, int level, const std::map<TimestampMs, RollupAgg>& buckets,
                      TimestampMs from, TimestampMs to);
  Result<std::map<TimestampMs, RollupAgg>> ReadRollups(Conn* conn, int series, int level,
                                                       TimestampMs from, TimestampMs to);
  Status RebuildSeries(Conn* conn, int series, OrgId org, TimestampMs from, TimestampMs to,
                       bool days_only);
  Result<bool> HoldMaintenanceLock();
  Result<std::int64_t> CountOld(Conn* conn, OrgId org, DataClass c, TimestampMs cutoff);
  Result<std::int64_t> DeleteOldStep(Conn* conn, OrgId org, DataClass c, TimestampMs cutoff);
  Result<std::int64_t> DropOldPartitions(Conn* conn, TimestampMs cutoff);

  StoreOptions options_;
  SystemClock system_clock_;
  const Clock* clock_;
  Pool pool_;
  std::unique_ptr<NotifyStore> notify_ = MakePgNotifyStore(&pool_);
  std::unique_ptr<PeopleStore> people_ = MakePgPeopleStore(&pool_, clock_);
  std::unique_ptr<AlertStore> alerts_ = MakePgAlertStore(&pool_);
  CommitListenerSlot commit_listener_;
  // (job, reading) of each reading the last CommitStaged stored, when someone listens.
  std::vector<std::pair<std::size_t, std::size_t>> committed_refs_;
  int schema_version_ = 0;

  // Writer thread state.
  std::unique_ptr<Conn> wconn_;
  std::unordered_map<DeviceId, std::vector<std::pair<std::string, SeriesInfo>>> series_;
  std::set<int> partitions_;  // month indexes known to exist
  // The fast path's hint: per series, the ts of a stored reading with none newer as far as this
  // process knows (read under the series lock when first needed, raised by each commit, dropped
  // when a direct COPY found it stale or the server went away). Never trusted for correctness.
  std::unordered_map<int, TimestampMs> newest_;
  // The last group commit: its size and how long it took (steady clock), for the linger below.
  std::size_t last_group_readings_ = 0;
  std::chrono::steady_clock::duration last_commit_time_{};
  std::mutex zones_mu_;
  std::map<std::string, TimeZone, std::less<>> zones_;

  // Time-based work: the connection holding the maintenance lock.
  std::mutex maintenance_mu_;
  std::unique_ptr<Conn> maintenance_conn_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Job> queue_;
  std::size_t queued_readings_ = 0;
  bool stopping_ = false;
  std::atomic<bool> writer_healthy_{true};
  std::thread writer_;
  std::mutex request_log_mu_;
  std::vector<ApiRequestLog> request_log_;
  std::once_flag closed_;
};

// ================================================================================================
// Open / close

Status PgStore::Open() {
  OS_ASSIGN_OR_RETURN(auto lease, pool_.Acquire());
  OS_RETURN_IF_ERROR(MigratePg(lease.get(), options_.migrate));
  OS_ASSIGN_OR_RETURN(schema_version_, CurrentPgVersion(lease.get()));
  if (!options_.writer) return Ok();
  OS_RETURN_IF_ERROR(EnsureWriterConn());
  // The current month and the next ones, so the writer rarely creates one on demand.
  const int month = MonthIndexOf(clock_->NowMs());
  std::set<int> months;
  for (int m = month; m <= month + kMonthsAhead; ++m) months.insert(m);
  OS_RETURN_IF_ERROR(EnsurePartitions(wconn_.get(), months));
  writer_ = std::thread([this] { WriterLoop(); });
  return Ok();
}

void PgStore::Close() {
  std::call_once(closed_, [this] {
    {
      std::lock_guard lock(queue_mu_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    std::lock_guard lock(maintenance_mu_);
    maintenance_conn_.reset();
    wconn_.reset();
    pool_.Clear();
  });
}

Status PgStore::RequireWriter(std::string_view what) const {
  if (!options_.writer) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("{} needs a store opened with a writer", what));
  }
  return Ok();
}

Status PgStore::RunOnWriter(std::function<Status()> fn) {
  TaskJob job{std::move(fn), {}};
  auto fut = job.promise.get_future();
  {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return MakeError(ErrorCode::kUnavailable, "the store is shutting down");
    queue_.emplace_back(std::move(job));
  }
  queue_cv_.notify_one();
  return fut.get();
}

Status PgStore::EnsureWriterConn() {
  if (wconn_ && !wconn_->Poisoned()) return Ok();
  wconn_.reset();
  OS_ASSIGN_OR_RETURN(auto c, Conn::Connect(pool_.info()));
  OS_RETURN_IF_ERROR(c->Exec(
      "CREATE TEMP TABLE IF NOT EXISTS stage(series_id integer, ts bigint, value double precision) "
      "ON COMMIT DELETE ROWS; "
      "CREATE TEMP TABLE IF NOT EXISTS rollup_stage (LIKE rollups) ON COMMIT DELETE ROWS"));
  wconn_ = std::move(c);
  return Ok();
}

Status PgStore::EnsurePartitions(Conn* conn, const std::set<int>& months) {
  for (int m : months) {
    if (partitions_.count(m) != 0) continue;
    OS_RETURN_IF_ERROR(EnsurePartition(conn, m));
    partitions_.insert(m);
  }
  return Ok();
}

Result<TimeZone> PgStore::Zone(std::string_view name) {
  std::lock_guard lock(zones_mu_);
  auto it = zones_.find(name);
  if (it != zones_.end()) return it->second;
  OS_ASSIGN_OR_RETURN(TimeZone zone, TimeZone::Load(name));
  zones_.emplace(std::string(name), zone);
  return zone;
}

// ================================================================================================
// Organisations, sites, devices, users, tokens

Result<Organization> PgStore::CreateOrganization(const NewOrganization& org) {
  if (org.name.empty() || org.name.size() > 200) {
    return MakeError(ErrorCode::kInvalidArgument, "an organisation needs a name of 1-200 characters");
  }
  OS_RETURN_IF_ERROR(TimeZone::Load(org.time_zone));
  Organization out{0, org.name, org.time_zone, org.tier, clock_->NowMs()};
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "INSERT INTO organizations(name, time_zone, tier, created_at) VALUES($1,$2,$3,$4) RETURNING id",
      {P(org.name), P(org.time_zone), P(TierName(org.tier)), P(out.created_at)}));
  out.id = r.Int(0, 0);
  return out;
}

Result<Organization> PgStore::GetOrganization(OrgId id) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "SELECT id, name, time_zone, tier, created_at FROM organizations WHERE id=$1", {P(id)}));
  if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", id));
  return ReadOrganization(r, 0);
}

Result<std::vector<Organization>> PgStore::ListOrganizations() {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "SELECT id, name, time_zone, tier, created_at FROM organizations ORDER BY id"));
  std::vector<Organization> out;
  for (int i = 0; i < r.Rows(); ++i) {
    OS_ASSIGN_OR_RETURN(auto o, ReadOrganization(r, i));
    out.push_back(std::move(o));
  }
  return out;
}

Status PgStore::SetOrganizationTimeZone(OrgId id, std::string_view time_zone) {
  OS_ASSIGN_OR_RETURN(TimeZone zone, TimeZone::Load(time_zone));
  OS_RETURN_IF_ERROR(GetOrganization(id));
  OS_RETURN_IF_ERROR(RequireWriter("changing an organisation's time zone"));
  return RunOnWriter([&]() -> Status {
    OS_RETURN_IF_ERROR(EnsureWriterConn());
    Conn* c = wconn_.get();
    OS_RETURN_IF_ERROR(c->Begin());
    auto body = [&]() -> Status {
      OS_RETURN_IF_ERROR(c->Exec("UPDATE organizations SET time_zone=$1 WHERE id=$2",
                                 {P(zone.name()), P(id)}));
      OS_ASSIGN_OR_RETURN(RetentionPolicy policy, LoadPolicy(c, id));
      auto cutoff5m = RetentionCutoff(policy.For(DataClass::kRollup5m), clock_->NowMs());
      TimestampMs from = cutoff5m ? zone.DayOf(*cutoff5m).end : -kFarFuture;
      OS_ASSIGN_OR_RETURN(PgResult s, c->Exec(
          "SELECT s.id FROM series s JOIN devices d ON d.id=s.device_id WHERE d.org_id=$1 "
          "ORDER BY s.id", {P(id)}));
      std::vector<int> ids;
      for (int i = 0; i < s.Rows(); ++i) ids.push_back(static_cast<int>(s.Int(i, 0)));
      OS_RETURN_IF_ERROR(LockSeries(c, ids));
      for (int sid : ids) OS_RETURN_IF_ERROR(RebuildSeries(c, sid, id, from, kFarFuture, true));
      return c->Commit();
    };
    Status st = body();
    if (!st) c->Rollback();
    return st;
  });
}

Status PgStore::SetOrganizationTier(OrgId id, Tier tier) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query("UPDATE organizations SET tier=$1 WHERE id=$2",
                                        {P(TierName(tier)), P(id)}));
  if (r.Affected() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", id));
  return Ok();
}

Result<RetentionPolicy> PgStore::LoadPolicy(Conn* conn, OrgId org) {
  OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(
      "SELECT data_class, unit, amount FROM retention_overrides WHERE org_id=$1", {P(org)}));
  RetentionPolicy policy;
  for (int i = 0; i < r.Rows(); ++i) {
    auto c = ParseDataClass(r.Text(i, 0));
    if (!c) continue;  // a class this binary does not know: ignore
    policy.overrides[*c] = PeriodFrom(r.Text(i, 1), static_cast<int>(r.Int(i, 2)));
  }
  return policy;
}

Result<RetentionPolicy> PgStore::GetRetentionPolicy(OrgId id) {
  OS_RETURN_IF_ERROR(GetOrganization(id));
  return WithConn([&](Conn* c) { return LoadPolicy(c, id); });
}

Status PgStore::SetRetention(OrgId id, DataClass data_class, RetentionPeriod period) {
  OS_ASSIGN_OR_RETURN(Organization org, GetOrganization(id));
  OS_RETURN_IF_ERROR(ValidateRetentionOverride(org.tier, data_class, period));
  OS_RETURN_IF_ERROR(Query(
      "INSERT INTO retention_overrides(org_id, data_class, unit, amount) VALUES($1,$2,$3,$4) "
      "ON CONFLICT (org_id, data_class) DO UPDATE SET unit=excluded.unit, amount=excluded.amount",
      {P(id), P(DataClassName(data_class)), P(UnitName(period.unit)), P(period.amount)}));
  return Ok();
}

Result<Site> PgStore::CreateSite(OrgId org, std::string_view name) {
  if (name.empty() || name.size() > 200) {
    return MakeError(ErrorCode::kInvalidArgument, "a site needs a name of 1-200 characters");
  }
  OS_RETURN_IF_ERROR(GetOrganization(org));
  auto r = Query("INSERT INTO sites(org_id, name, created_at) VALUES($1,$2,$3) RETURNING id",
                 {P(org), P(name), P(clock_->NowMs())});
  if (!r) {
    if (r.error().code == ErrorCode::kAlreadyExists) {
      return MakeError(ErrorCode::kAlreadyExists, fmt::format("a site named '{}' exists already", name));
    }
    return tl::unexpected(r.error());
  }
  return Site{r->Int(0, 0), org, std::string(name), false};
}

Result<std::vector<Site>> PgStore::ListSites(OrgId org) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "SELECT id, org_id, name, auto_register FROM sites WHERE org_id=$1 ORDER BY id", {P(org)}));
  std::vector<Site> out;
  for (int i = 0; i < r.Rows(); ++i) {
    out.push_back(Site{r.Int(i, 0), r.Int(i, 1), std::string(r.Text(i, 2)), r.Bool(i, 3)});
  }
  return out;
}

Result<Site> PgStore::GetSite(OrgId org, SiteId id) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "SELECT id, org_id, name, auto_register FROM sites WHERE id=$1 AND org_id=$2", {P(id), P(org)}));
  if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no site {}", id));
  return Site{r.Int(0, 0), r.Int(0, 1), std::string(r.Text(0, 2)), r.Bool(0, 3)};
}

Result<Site> PgStore::UpdateSite(OrgId org, SiteId id, std::optional<std::string> name,
                                 std::optional<bool> auto_register) {
  if (name && (name->empty() || name->size() > 200)) {
    return MakeError(ErrorCode::kInvalidArgument, "a site needs a name of 1-200 characters");
  }
  OS_RETURN_IF_ERROR(GetSite(org, id));
  auto r = Query(
      "UPDATE sites SET name=coalesce($1, name), auto_register=coalesce($2::boolean, auto_register) "
      "WHERE id=$3 AND org_id=$4",
      {P(name), P(auto_register), P(id), P(org)});
  if (!r && r.error().code == ErrorCode::kAlreadyExists) {
    return MakeError(ErrorCode::kAlreadyExists, fmt::format("a site named '{}' exists already", *name));
  }
  if (!r) return tl::unexpected(r.error());
  return GetSite(org, id);
}

Status PgStore::DeleteSite(OrgId org, SiteId id) {
  OS_RETURN_IF_ERROR(GetSite(org, id));
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "SELECT (SELECT count(*) FROM devices WHERE site_id=$1), (SELECT count(*) FROM tokens "
      "WHERE site_id=$1 AND (expires_at IS NULL OR expires_at > $2))",
      {P(id), P(clock_->NowMs())}));
  if (r.Int(0, 0) > 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("site {} still has {} device(s); move or delete them first", id,
                                 r.Int(0, 0)));
  }
  if (r.Int(0, 1) > 0) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("site {} still has an active gateway token; revoke it first", id));
  }
  OS_RETURN_IF_ERROR(Query("DELETE FROM sites WHERE id=$1 AND org_id=$2", {P(id), P(org)}));
  return Ok();
}

Result<Device> PgStore::CreateDevice(const NewDevice& device) {
  if (device.name.empty() || device.name.size() > 200) {
    return MakeError(ErrorCode::kInvalidArgument, "a device needs a name of 1-200 characters");
  }
  if (device.serial && (device.serial->empty() || device.serial->size() > 128)) {
    return MakeError(ErrorCode::kInvalidArgument, "a serial has 1-128 characters");
  }
  OS_RETURN_IF_ERROR(ValidateDeviceProfile(device.profile));
  OS_RETURN_IF_ERROR(GetOrganization(device.org));
  if (device.site) OS_RETURN_IF_ERROR(GetSite(device.org, *device.site));
  Device out;
  out.org_id = device.org;
  out.site_id = device.site;
  out.name = device.name;
  out.serial = device.serial;
  out.created_at = clock_->NowMs();
  auto r = Query(
      "INSERT INTO devices(org_id, site_id, name, serial, created_at, target_min, target_max, "
      "expected_interval_s, medicine_storage, calibration_date, calibration_due) "
      "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id",
      {P(device.org), P(device.site), P(device.name), P(device.serial), P(out.created_at),
       P(device.profile.target_min), P(device.profile.target_max), P(device.profile.expected_interval_s),
       P(device.profile.medicine_storage), P(device.profile.calibration_date),
       P(device.profile.calibration_due)});
  out.profile = device.profile;
  if (!r) {
    if (r.error().code == ErrorCode::kAlreadyExists) {
      return MakeError(ErrorCode::kAlreadyExists,
                       fmt::format("a device with serial '{}' exists already", device.serial.value_or("")));
    }
    return tl::unexpected(r.error());
  }
  out.id = r->Int(0, 0);
  return out;
}

Result<Device> PgStore::GetDevice(OrgId org, DeviceId id) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      fmt::format("SELECT {} FROM devices WHERE id=$1 AND org_id=$2", kDeviceColumns), {P(id), P(org)}));
  if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no device {}", id));
  return ReadDevice(r, 0);
}

Result<Device> PgStore::FindDeviceBySerial(OrgId org, std::string_view serial) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      fmt::format("SELECT {} FROM devices WHERE org_id=$1 AND serial=$2", kDeviceColumns),
      {P(org), P(serial)}));
  if (r.Rows() == 0) {
    return MakeError(ErrorCode::kNotFound, fmt::format("no device with serial '{}'", serial));
  }
  return ReadDevice(r, 0);
}

Result<std::vector<Device>> PgStore::ListDevices(OrgId org) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      fmt::format("SELECT {} FROM devices WHERE org_id=$1 ORDER BY id", kDeviceColumns), {P(org)}));
  std::vector<Device> out;
  for (int i = 0; i < r.Rows(); ++i) out.push_back(ReadDevice(r, i));
  return out;
}

Status PgStore::DecommissionDevice(OrgId org, DeviceId id) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "UPDATE devices SET decommissioned_at=coalesce(decommissioned_at, $1) WHERE id=$2 AND org_id=$3",
      {P(clock_->NowMs()), P(id), P(org)}));
  if (r.Affected() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no device {}", id));
  return Ok();
}

Result<OrgId> PgStore::OrganizationOfDevice(DeviceId device) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query("SELECT org_id FROM devices WHERE id=$1", {P(device)}));
  if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no device {}", device));
  return r.Int(0, 0);
}

Result<Device> PgStore::UpdateDevice(OrgId org, DeviceId id, const DeviceUpdate& update) {
  if (update.name && (update.name->empty() || update.name->size() > 200)) {
    return MakeError(ErrorCode::kInvalidArgument, "a device needs a name of 1-200 characters");
  }
  if (update.serial && *update.serial &&
      ((*update.serial)->empty() || (*update.serial)->size() > 128)) {
    return MakeError(ErrorCode::kInvalidArgument, "a serial has 1-128 characters");
  }
  if (update.profile) OS_RETURN_IF_ERROR(ValidateDeviceProfile(*update.profile));
  OS_ASSIGN_OR_RETURN(Device current, GetDevice(org, id));
  if (update.site && *update.site) OS_RETURN_IF_ERROR(GetSite(org, **update.site));
  const DeviceProfile& pr = update.profile ? *update.profile : current.profile;
  std::string name = update.name ? *update.name : current.name;
  std::optional<SiteId> site = update.site ? *update.site : current.site_id;
  std::optional<std::string> serial = update.serial ? *update.serial : current.serial;
  auto r = Query("UPDATE devices SET name=$1, site_id=$2, serial=$3, target_min=$6, target_max=$7, "
                 "expected_interval_s=$8, medicine_storage=$9, calibration_date=$10, calibration_due=$11 "
                 "WHERE id=$4 AND org_id=$5",
                 {P(name), P(site), P(serial), P(id), P(org), P(pr.target_min), P(pr.target_max),
                  P(pr.expected_interval_s), P(pr.medicine_storage), P(pr.calibration_date),
                  P(pr.calibration_due)});
  if (!r && r.error().code == ErrorCode::kAlreadyExists) {
    return MakeError(ErrorCode::kAlreadyExists,
                     fmt::format("a device with serial '{}' exists already", serial.value_or("")));
  }
  if (!r) return tl::unexpected(r.error());
  return GetDevice(org, id);
}

Result<User> PgStore::CreateUser(OrgId org, std::string_view email, Role role) {
  if (email.size() < 3 || email.size() > 254 || email.find('@') == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is not an email address", email));
  }
  OS_RETURN_IF_ERROR(GetOrganization(org));
  User u{0, org, std::string(email), role, clock_->NowMs()};
  auto r = Query(
      "INSERT INTO users(org_id, email, role, created_at) VALUES($1,$2,$3,$4) RETURNING id",
      {P(org), P(email), P(RoleName(role)), P(u.created_at)});
  if (!r && r.error().code == ErrorCode::kAlreadyExists) {
    return MakeError(ErrorCode::kAlreadyExists, fmt::format("{} is a user of this organisation already", email));
  }
  if (!r) return tl::unexpected(r.error());
  u.id = r->Int(0, 0);
  return u;
}

Result<User> PgStore::GetUser(OrgId org, UserId id) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "SELECT id, org_id, email, role, created_at FROM users WHERE id=$1 AND org_id=$2", {P(id), P(org)}));
  if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no user {}", id));
  User u{r.Int(0, 0), r.Int(0, 1), std::string(r.Text(0, 2)), Role::kViewer, r.Int(0, 4)};
  OS_ASSIGN_OR_RETURN(u.role, ParseRole(r.Text(0, 3)));
  return u;
}

Result<TokenRecord> PgStore::CreateToken(const TokenRecord& token) {
  if (token.public_id.empty() || token.secret_hash.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "a token needs a public id and a secret hash");
  }
  if (token.kind == TokenKind::kDevice) OS_RETURN_IF_ERROR(GetDevice(token.org_id, token.device.value_or(0)));
  if (token.kind == TokenKind::kGateway) OS_RETURN_IF_ERROR(GetSite(token.org_id, token.site.value_or(0)));
  if (token.kind == TokenKind::kUser) OS_RETURN_IF_ERROR(GetUser(token.org_id, token.user.value_or(0)));
  TokenRecord out = token;
  out.created_at = clock_->NowMs();
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "INSERT INTO tokens(public_id, kind, org_id, device_id, site_id, user_id, role, secret_hash, "
      "label, created_at, expires_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id",
      {P(out.public_id), P(TokenKindName(out.kind)), P(out.org_id), P(out.device), P(out.site),
       P(out.user), P(RoleName(out.role)), P(out.secret_hash), P(out.label), P(out.created_at),
       P(out.expires_at)}));
  out.id = r.Int(0, 0);
  return out;
}

Result<TokenRecord> PgStore::FindToken(std::string_view public_id) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      fmt::format("SELECT {} FROM tokens WHERE public_id=$1", kTokenColumns), {P(public_id)}));
  if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such token");
  return ReadToken(r, 0);
}

Result<std::vector<TokenRecord>> PgStore::ListTokens(OrgId org) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      fmt::format("SELECT {} FROM tokens WHERE org_id=$1 ORDER BY id", kTokenColumns), {P(org)}));
  std::vector<TokenRecord> out;
  for (int i = 0; i < r.Rows(); ++i) {
    OS_ASSIGN_OR_RETURN(auto t, ReadToken(r, i));
    out.push_back(std::move(t));
  }
  return out;
}

Status PgStore::ExpireToken(OrgId org, std::int64_t token_id, TimestampMs at) {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "UPDATE tokens SET expires_at=least(coalesce(expires_at, $1), $1) WHERE id=$2 AND org_id=$3",
      {P(at), P(token_id), P(org)}));
  if (r.Affected() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no token {}", token_id));
  return Ok();
}

Status PgStore::TouchTokens(const std::vector<std::pair<std::int64_t, TimestampMs>>& used) {
  if (used.empty()) return Ok();
  std::vector<std::int64_t> ids, ats;
  for (auto [id, at] : used) {
    ids.push_back(id);
    ats.push_back(at);
  }
  OS_RETURN_IF_ERROR(Query(
      "UPDATE tokens t SET last_used_at=greatest(coalesce(t.last_used_at, 0), u.at) "
      "FROM unnest($1::bigint[], $2::bigint[]) AS u(id, at) WHERE t.id=u.id",
      {ArrayLiteral(ids), ArrayLiteral(ats)}));
  return Ok();
}

// ================================================================================================
// Latest, request log

Result<std::vector<LatestValue>> PgStore::Latest(OrgId org, DeviceId device) {
  OS_RETURN_IF_ERROR(GetDevice(org, device));
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "SELECT s.metric, s.unit, l.ts, l.value FROM series s CROSS JOIN LATERAL "
      "(SELECT ts, value FROM readings r WHERE r.series_id=s.id ORDER BY ts DESC LIMIT 1) l "
      "WHERE s.device_id=$1 ORDER BY s.metric COLLATE \"C\"",
      {P(device)}));
  std::vector<LatestValue> out;
  for (int i = 0; i < r.Rows(); ++i) {
    out.push_back(LatestValue{std::string(r.Text(i, 0)), std::string(r.Text(i, 1)), r.Int(i, 2),
                              r.Double(i, 3)});
  }
  return out;
}

void PgStore::LogRequests(std::vector<ApiRequestLog> rows) {
  if (rows.empty() || !options_.writer) return;
  std::lock_guard lock(request_log_mu_);
  if (request_log_.size() > 100'000) return;  // the writer is far behind: drop rather than grow
  for (auto& r : rows) request_log_.push_back(std::move(r));
}


Status PgStore::FlushRequestLog() {
  std::vector<ApiRequestLog> rows;
  {
    std::lock_guard lock(request_log_mu_);
    rows.swap(request_log_);
  }
  if (rows.empty()) return Ok();
  OS_RETURN_IF_ERROR(EnsureWriterConn());
  std::string data;
  for (const auto& r : rows) {
    fmt::format_to(std::back_inserter(data), "{}\t{}\t", r.at, r.org ? std::to_string(*r.org) : "\\N");
    AppendCopyText(&data, r.principal);
    data += '\t';
    AppendCopyText(&data, r.method);
    data += '\t';
    AppendCopyText(&data, r.route);
    fmt::format_to(std::back_inserter(data), "\t{}\t{}\t", r.status, r.duration_us);
    AppendCopyText(&data, r.client);
    data += '\t';
    AppendCopyText(&data, r.request_id);
    data += '\n';
  }
  return wconn_->CopyIn(
      "COPY api_requests(at, org_id, principal, method, route, status, duration_us, client, request_id) "
      "FROM STDIN",
      data);
}

// ================================================================================================
// Ingest: the writer

std::future<Result<IngestResult>> PgStore::Ingest(OrgId org, std::vector<Reading> readings) {
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

// Partitions ahead of need are time-based work: the maintenance-lock holder creates them in
// RunRetention (the scheduler's hourly job). The writer only creates one on demand.
void PgStore::WriterLoop() {
  while (true) {
    std::vector<IngestJob> group;
    std::optional<TaskJob> task;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait_for(lock, std::chrono::milliseconds(500),
                         [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty() && stopping_) break;
      if (!queue_.empty() && std::holds_alternative<TaskJob>(queue_.front())) {
        task.emplace(std::move(std::get<TaskJob>(queue_.front())));
        queue_.pop_front();
      } else {
        // Group commit under load: each group pays for the rollup rows of every series it
        // touches (a 1h and a 1d bucket at least), so a busy writer should commit full groups
        // rather than alternate between a few batches and many. When fewer readings are queued
        // than the last group held, wait for the batches still coming, at most a quarter of the
        // last commit's time and never more than 5 ms (like PostgreSQL's commit_delay). An idle
        // writer (the last group was no larger than this one) starts at once.
        if (!queue_.empty() && last_group_readings_ > 0 && queued_readings_ < last_group_readings_) {
          auto deadline = std::chrono::steady_clock::now() +
                          std::min<std::chrono::steady_clock::duration>(last_commit_time_ / 4,
                                                                        std::chrono::milliseconds(5));
          while (queued_readings_ < last_group_readings_ && !stopping_) {
            if (queue_cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
          }
        }
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
      task->promise.set_value(task->fn());
    } else if (!group.empty()) {
      const auto started = std::chrono::steady_clock::now();
      std::size_t n = 0;
      for (const auto& job : group) n += job.readings.size();
      CommitGroup(group);
      last_commit_time_ = std::chrono::steady_clock::now() - started;
      last_group_readings_ = n;
    }
    if (auto st = FlushRequestLog(); !st) {
      spdlog::warn("store: request log rows dropped: {}", st.error().message);
    }
  }
  (void)FlushRequestLog();
}

namespace {
// The statement that takes the transaction advisory locks of `ids` (integers only, written in).
std::string LockSeriesSql(std::vector<int> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  // In id order, so two writers never wait on each other in a cycle.
  return fmt::format("SELECT count(pg_advisory_xact_lock({}, s)) FROM "
                     "(SELECT unnest('{}'::int[]) AS s ORDER BY 1) x",
                     kSeriesLockSpace, ArrayLiteral(std::vector<std::int64_t>(ids.begin(), ids.end())));
}
}  // namespace

Status PgStore::LockSeries(Conn* conn, std::vector<int> ids) {
  if (ids.empty()) return Ok();
  return conn->Exec(LockSeriesSql(std::move(ids))).map([](PgResult&&) {});
}

void PgStore::CommitGroup(std::vector<IngestJob>& group) {
  const TimestampMs started = clock_->NowMs();
  std::vector<IngestResult> results(group.size());
  committed_refs_.clear();
  Status st = CommitStaged(group, results);
  if (!st) {
    if (wconn_) {
      wconn_->Rollback();
      if (st.error().code == ErrorCode::kUnavailable) {
        wconn_.reset();
        pool_.Clear();
        newest_.clear();  // perhaps another server now (a fail-over): learn it again
      }
    }
    writer_healthy_ = st.error().code != ErrorCode::kUnavailable;
    spdlog::error("store: commit of {} batches failed: {}", group.size(), st.error().message);
    Error e = st.error();
    if (e.code == ErrorCode::kUnavailable) {
      e.message = fmt::format("the PostgreSQL store is unavailable, nothing was stored; retry "
                              "later ({})", e.message);
    }
    for (auto& job : group) job.promise.set_value(tl::unexpected(e));
    return;
  }
  writer_healthy_ = true;
  if (options_.metrics != nullptr) {
    options_.metrics->GetHistogram("opensense_writer_commit_seconds", "Group commit latency (one transaction).")
        .Observe(static_cast<double>(clock_->NowMs() - started) / 1000.0);
    options_.metrics->GetCounter("opensense_writer_batches_total", "Batches committed by the writer.").Inc(group.size());
  }
  // Durable: hand the stored readings on before acknowledging, so a caller whose batch is
  // acknowledged knows the alert evaluator has it queued (the listener only queues).
  commit_listener_.Deliver(committed_refs_, [&](std::size_t j) { return group[j].org; },
                           [&](std::size_t j, std::size_t i) -> const Reading& { return group[j].readings[i]; });
  committed_refs_.clear();
  for (std::size_t j = 0; j < group.size(); ++j) {
    IngestResult& res = results[j];
    res.accepted = group[j].readings.size() - res.duplicates - res.rejected.size();
    group[j].promise.set_value(std::move(res));
  }
}

Status PgStore::CommitStaged(const std::vector<IngestJob>& group, std::vector<IngestResult>& results) {
  const TimestampMs now = clock_->NowMs();
  OS_RETURN_IF_ERROR(EnsureWriterConn());
  Conn* c = wconn_.get();

  // Metadata of this group, read fresh: another process may have decommissioned a device or
  // changed a policy a moment ago.
  std::vector<std::int64_t> device_ids, org_ids;
  for (const auto& job : group) {
    org_ids.push_back(job.org);
    for (const auto& r : job.readings) device_ids.push_back(r.device);
  }
  std::sort(device_ids.begin(), device_ids.end());
  device_ids.erase(std::unique(device_ids.begin(), device_ids.end()), device_ids.end());
  std::sort(org_ids.begin(), org_ids.end());
  org_ids.erase(std::unique(org_ids.begin(), org_ids.end()), org_ids.end());
  struct DeviceState {
    OrgId org;
    bool decommissioned;
  };
  // One round trip (the arrays are integers only, so they are written into the script).
  OS_ASSIGN_OR_RETURN(std::vector<PgResult> meta, c->ExecScript(fmt::format(
      "SELECT id, org_id, decommissioned_at IS NOT NULL FROM devices WHERE id = ANY('{0}'::bigint[]); "
      "SELECT id, time_zone FROM organizations WHERE id = ANY('{1}'::bigint[]); "
      "SELECT org_id, data_class, unit, amount FROM retention_overrides "
      "WHERE org_id = ANY('{1}'::bigint[]) AND data_class IN ('raw_readings', 'rollup_5m')",
      ArrayLiteral(device_ids), ArrayLiteral(org_ids))));
  if (meta.size() != 3) return MakeError(ErrorCode::kInternal, "the writer's metadata script gave no result");
  std::unordered_map<DeviceId, DeviceState> devices;
  {
    const PgResult& r = meta[0];
    for (int i = 0; i < r.Rows(); ++i) devices[r.Int(i, 0)] = {r.Int(i, 1), r.Bool(i, 2)};
  }
  struct OrgState {
    std::optional<DayBucketer> days;
    TimestampMs raw_cutoff = std::numeric_limits<TimestampMs>::min();
    TimestampMs rollup5m_cutoff = std::numeric_limits<TimestampMs>::min();
  };
  std::unordered_map<OrgId, OrgState> orgs;
  {
    const PgResult& r = meta[1];
    const PgResult& o = meta[2];
    for (int i = 0; i < r.Rows(); ++i) {
      OS_ASSIGN_OR_RETURN(TimeZone zone, Zone(r.Text(i, 1)));
      RetentionPolicy policy;
      for (int k = 0; k < o.Rows(); ++k) {
        if (o.Int(k, 0) == r.Int(i, 0)) {
          policy.overrides[o.Text(k, 1) == "rollup_5m" ? DataClass::kRollup5m : DataClass::kRawReadings] =
              PeriodFrom(o.Text(k, 2), static_cast<int>(o.Int(k, 3)));
        }
      }
      OrgState& st = orgs[r.Int(i, 0)];
      st.days.emplace(zone);
      if (auto cut = RetentionCutoff(policy.For(DataClass::kRawReadings), now)) st.raw_cutoff = *cut;
      if (auto cut = RetentionCutoff(policy.For(DataClass::kRollup5m), now)) st.rollup5m_cutoff = *cut;
    }
  }

  // Series seen for the first time, created in one statement (a series row without readings is
  // harmless, so outside the group's transaction, by whichever process comes first). Its unit
  // is the first reading's, or the metric's default.
  {
    std::vector<std::int64_t> new_devices;
    std::vector<std::string> new_metrics, new_units;
    std::set<std::pair<DeviceId, std::string_view>> wanted;
    for (const auto& job : group) {
      for (const auto& r : job.readings) {
        auto dev = devices.find(r.device);
        if (dev == devices.end() || dev->second.org != job.org || !IsValidMetricName(r.metric) ||
            (!r.unit.empty() && !IsKnownUnit(r.unit))) {
          continue;
        }
        bool known = false;
        for (const auto& [metric, info] : series_[r.device]) known = known || metric == r.metric;
        if (known || !wanted.insert({r.device, r.metric}).second) continue;
        new_devices.push_back(r.device);
        new_metrics.push_back(r.metric);
        new_units.push_back(r.unit.empty() ? std::string(DefaultUnitFor(r.metric).value_or("")) : r.unit);
      }
    }
    if (!new_devices.empty()) {
      std::string metrics = "{", units = "{";
      for (std::size_t i = 0; i < new_metrics.size(); ++i) {
        // Metric names and units are validated: no quotes, commas or backslashes.
        metrics += (i > 0 ? ",\"" : "\"") + new_metrics[i] + "\"";
        units += (i > 0 ? ",\"" : "\"") + new_units[i] + "\"";
      }
      metrics += "}";
      units += "}";
      // A series created here has no reading yet: no 1h/1d bucket is stored (kFoldNone). The
      // statement is atomic, so a series never exists without its mark unless it came before
      // the marks (or from SQLite) with every bucket stored.
      OS_RETURN_IF_ERROR(c->Exec(
          fmt::format("WITH ins AS (INSERT INTO series(device_id, metric, unit) SELECT * FROM "
                      "unnest($1::bigint[], $2::text[], $3::text[]) ON CONFLICT (device_id, metric) "
                      "DO NOTHING RETURNING id) INSERT INTO rollup_folds SELECT id, {} FROM ins",
                      kFoldNone),
          {ArrayLiteral(new_devices), metrics, units}));
      OS_ASSIGN_OR_RETURN(PgResult got, c->Exec(
          "SELECT s.id, s.device_id, s.metric, s.unit FROM series s JOIN unnest($1::bigint[], $2::text[]) "
          "AS k(d, m) ON s.device_id=k.d AND s.metric=k.m",
          {ArrayLiteral(new_devices), metrics}));
      for (int i = 0; i < got.Rows(); ++i) {
        DeviceId d = got.Int(i, 1);
        series_[d].emplace_back(std::string(got.Text(i, 2)),
                                SeriesInfo{static_cast<int>(got.Int(i, 0)), std::string(got.Text(i, 3)),
                                           devices[d].org});
      }
    }
  }

  // Validation, then the staged rows: unique (series, ts) within the group, first write wins.
  struct Staged {
    int series;
    TimestampMs ts;
    double value;
    std::size_t job;
    std::size_t index = 0;  // of the reading in its job
  };
  std::vector<Staged> staged;
  std::unordered_set<std::pair<int, TimestampMs>, KeyHash> in_group;
  for (std::size_t j = 0; j < group.size(); ++j) {
    const IngestJob& job = group[j];
    IngestResult& res = results[j];
    auto org_it = orgs.find(job.org);
    if (org_it == orgs.end()) {
      for (std::size_t i = 0; i < job.readings.size(); ++i) {
        res.rejected.push_back({i, RejectReason::kUnknownDevice,
                                fmt::format("organisation {} does not exist", job.org)});
      }
      continue;
    }
    const TimestampMs raw_cutoff = org_it->second.raw_cutoff;
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
        reject(RejectReason::kInFuture,
               fmt::format("timestamp {} is more than 5 minutes in the future", FormatRfc3339(r.ts)));
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
      auto dev = devices.find(r.device);
      if (dev == devices.end() || dev->second.org != job.org) {
        reject(RejectReason::kUnknownDevice, fmt::format("no device {} in this organisation", r.device));
        continue;
      }
      if (dev->second.decommissioned) {
        reject(RejectReason::kDeviceDecommissioned, fmt::format("device {} is decommissioned", r.device));
        continue;
      }
      const SeriesInfo* series = nullptr;
      auto& known = series_[r.device];
      for (const auto& [metric, info] : known) {
        if (metric == r.metric) series = &info;
      }
      if (series == nullptr) {  // not created above: should not happen, but be safe
        std::string unit = r.unit.empty() ? std::string(DefaultUnitFor(r.metric).value_or("")) : r.unit;
        OS_RETURN_IF_ERROR(c->Exec(
            fmt::format("WITH ins AS (INSERT INTO series(device_id, metric, unit) VALUES($1,$2,$3) "
                        "ON CONFLICT (device_id, metric) DO NOTHING RETURNING id) "
                        "INSERT INTO rollup_folds SELECT id, {} FROM ins",
                        kFoldNone),
            {P(r.device), P(r.metric), P(unit)}));
        OS_ASSIGN_OR_RETURN(PgResult s, c->Exec(
            "SELECT id, unit FROM series WHERE device_id=$1 AND metric=$2", {P(r.device), P(r.metric)}));
        if (s.Rows() == 0) return MakeError(ErrorCode::kInternal, "series vanished after insert");
        known.emplace_back(r.metric, SeriesInfo{static_cast<int>(s.Int(0, 0)), std::string(s.Text(0, 1)), job.org});
        series = &known.back().second;
      }
      if (!r.unit.empty() && r.unit != series->unit) {
        reject(RejectReason::kUnitMismatch,
               fmt::format("{} of device {} is recorded in '{}', not '{}'", r.metric, r.device,
                           series->unit, r.unit.substr(0, 32)));
        continue;
      }
      if (!in_group.insert({series->id, r.ts}).second) {
        ++res.duplicates;
        continue;
      }
      staged.push_back({series->id, r.ts, r.value, j, i});
    }
  }
  if (staged.empty()) return Ok();

  std::set<int> months;
  for (const auto& s : staged) months.insert(MonthIndexOf(s.ts));
  OS_RETURN_IF_ERROR(EnsurePartitions(c, months));

  // The group's span of each series.
  struct Span {
    TimestampMs oldest, newest;
  };
  std::unordered_map<int, Span> spans;
  for (const auto& s : staged) {
    auto [it, added] = spans.try_emplace(s.series, Span{s.ts, s.ts});
    it->second.oldest = std::min(it->second.oldest, s.ts);
    it->second.newest = std::max(it->second.newest, s.ts);
  }
  std::vector<int> series_ids;
  series_ids.reserve(spans.size());
  for (const auto& [id, span] : spans) series_ids.push_back(id);
  // The rows in (series, ts) order: each series' rows go into its index leaf one after the
  // other, which costs the server about half of what the arrival order (one leaf per row) does.
  std::vector<std::size_t> order(staged.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return staged[a].series != staged[b].series ? staged[a].series < staged[b].series
                                                : staged[a].ts < staged[b].ts;
  });

  // One round trip: the transaction, the locks, and under them (no writer of these series is
  // midway) the newest reading of those the hint does not know yet.
  std::vector<std::int64_t> unknown;
  for (int id : series_ids) {
    if (newest_.count(id) == 0) unknown.push_back(id);
  }
  // Last, the series' fold marks (pg_fold.hpp), which only a holder of the locks moves.
  std::string begin = "BEGIN; " + LockSeriesSql(series_ids);
  if (!unknown.empty()) {
    begin += fmt::format(
        "; SELECT k.s, (SELECT max(ts) FROM readings r WHERE r.series_id=k.s) "
        "FROM unnest('{}'::int[]) AS k(s)",
        ArrayLiteral(unknown));
  }
  begin += fmt::format(
      "; SELECT k.s, f.fold_ts FROM unnest('{}'::int[]) AS k(s) LEFT JOIN rollup_folds f ON "
      "f.series_id=k.s",
      ArrayLiteral(std::vector<std::int64_t>(series_ids.begin(), series_ids.end())));
  OS_ASSIGN_OR_RETURN(std::vector<PgResult> begun, c->ExecScript(begin));
  if (begun.size() < 2) return MakeError(ErrorCode::kInternal, "the writer's lock script gave no result");
  if (!unknown.empty()) {
    const PgResult& r = begun[begun.size() - 2];
    for (int i = 0; i < r.Rows(); ++i) {
      newest_[static_cast<int>(r.Int(i, 0))] = r.IsNull(i, 1) ? kNoReading : r.Int(i, 1);
    }
  }
  std::unordered_map<int, TimestampMs> marks;
  {
    const PgResult& r = begun.back();
    for (int i = 0; i < r.Rows(); ++i) {
      marks[static_cast<int>(r.Int(i, 0))] = r.IsNull(i, 1) ? kFoldAll : r.Int(i, 1);
    }
  }

  // Fast path: a series whose rows are all newer than its newest stored reading cannot collide
  // with a stored row, so its rows are COPYed straight into `readings` (none is a duplicate) and
  // the buckets that start after that reading are COPYed straight into `rollups`. The hint can
  // be stale (another process may have stored the same rows since): each direct COPY runs
  // behind a savepoint, and a unique violation sends its rows the general way, so the outcome
  // is always exact.
  bool hint_stale = false;
  std::size_t fallbacks = 0, direct_stored = 0;
  auto fast = [&](int series) {
    return !hint_stale && spans.at(series).oldest > newest_.at(series);
  };
  auto reading_rows = [&](auto wanted) {
    BinaryCopy out;
    for (std::size_t k : order) {
      const Staged& s = staged[k];
      if (!wanted(s.series)) continue;
      out.Row(3);
      out.Int4(s.series);
      out.Int8(s.ts);
      out.Float8(s.value);
    }
    return out;
  };
  BinaryCopy direct = reading_rows(fast);
  if (direct.rows() > 0) {
    Status st = c->CopyIn(
        "SAVEPOINT direct_copy; COPY readings(series_id, ts, value) FROM STDIN WITH (FORMAT binary)",
        direct.Finish());
    if (!st && st.error().code != ErrorCode::kAlreadyExists) return st;
    if (!st) {
      OS_RETURN_IF_ERROR(c->Exec("ROLLBACK TO SAVEPOINT direct_copy"));
      hint_stale = true;
      ++fallbacks;
    } else {
      direct_stored = direct.rows();
    }
  }
  // The general path: the other rows through the staging table and ON CONFLICT DO NOTHING;
  // duplicates are the rows not returned.
  std::unordered_set<std::pair<int, TimestampMs>, KeyHash> inserted;
  bool all_inserted = true;
  BinaryCopy rest = reading_rows([&](int series) { return !fast(series); });
  if (rest.rows() > 0) {
    OS_ASSIGN_OR_RETURN(PgResult got, c->CopyScript(
        "COPY stage(series_id, ts, value) FROM STDIN WITH (FORMAT binary); "
        "INSERT INTO readings(series_id, ts, value) SELECT series_id, ts, value FROM stage "
        "ON CONFLICT DO NOTHING RETURNING series_id, ts",
        rest.Finish()));
    all_inserted = static_cast<std::size_t>(got.Rows()) == rest.rows();
    if (!all_inserted) {
      inserted.reserve(static_cast<std::size_t>(got.Rows()));
      for (int i = 0; i < got.Rows(); ++i) inserted.insert({static_cast<int>(got.Int(i, 0)), got.Int(i, 1)});
    }
  }

  // Rollups of exactly the rows inserted: new buckets COPYed, the others merged into the
  // stored buckets.
  std::unordered_map<int, OrgId> series_org;
  for (const auto& [device, list] : series_) {
    for (const auto& [metric, info] : list) series_org[info.id] = info.org;
  }
  std::vector<char> stored(staged.size());
  for (std::size_t k = 0; k < staged.size(); ++k) {
    const Staged& s = staged[k];
    stored[k] = fast(s.series) || all_inserted || inserted.count({s.series, s.ts}) != 0;
    if (!stored[k]) {
      ++results[s.job].duplicates;
    } else if (commit_listener_.active()) {
      committed_refs_.emplace_back(s.job, s.index);
    }
  }
  // In (series, ts) order each bucket's rows are one run: aggregate the run, then file it.
  // A bucket that starts after the series' newest stored reading (fast path) holds no stored
  // reading, so it is COPYed as new; the others are merged.
  // 1h and 1d buckets at or after the series' fold mark are not stored (they are derived from
  // the 5-minute rows until the series moves past them): their runs are dropped here, and the
  // buckets the group moves the series past are folded below.
  RollupMap add, fresh_buckets;
  struct Run {
    RollupKey key{-1, 0, 0};
    RollupAgg agg;
    TimestampMs newest = kFarFuture;  // of the run's series, when it went the fast path
    TimestampMs first_derived = kFarFuture;  // of the run's level
  };
  Run runs[3];
  auto file = [&](Run& run) {
    if (run.key.series < 0 || run.key.bucket >= run.first_derived) return;
    (run.key.bucket > run.newest ? fresh_buckets : add).emplace(run.key, run.agg);
  };
  struct Moved {
    TimestampMs oldest, newest;  // of the rows of the series stored by this group
  };
  std::unordered_map<int, Moved> moved;
  int series = -1;
  TimestampMs newest = kFarFuture;
  TimestampMs first_derived[3] = {kFarFuture, kFarFuture, kFarFuture};
  Moved* span = nullptr;
  DayBucketer* days = nullptr;  // it caches the last day it computed
  for (std::size_t k : order) {
    if (!stored[k]) continue;
    const Staged& s = staged[k];
    if (s.series != series) {
      series = s.series;
      newest = fast(series) ? newest_.at(series) : kFarFuture;
      days = &*orgs[series_org[series]].days;
      const TimestampMs mark = marks.count(series) ? marks[series] : kFoldAll;
      first_derived[kLevel1h] = mark;
      first_derived[kLevel1d] = mark == kFoldAll || mark == kFoldNone ? mark : days->DayStart(mark);
      span = &moved.try_emplace(series, Moved{s.ts, s.ts}).first->second;
    }
    span->newest = s.ts;  // rows are in ts order
    const TimestampMs buckets[3] = {FloorTo(s.ts, kBucket5m), FloorTo(s.ts, kBucket1h), days->DayStart(s.ts)};
    for (int level : {kLevel5m, kLevel1h, kLevel1d}) {
      Run& run = runs[level];
      if (run.key != RollupKey{series, level, buckets[level]}) {
        file(run);
        run = Run{{series, level, buckets[level]}, {}, newest, first_derived[level]};
      }
      run.agg.Add(s.ts, s.value);
    }
  }
  for (Run& run : runs) file(run);
  // The series this group moves past their open hour (or day): their marks move to the hour of
  // their newest row here, and the buckets in between are folded from the 5-minute rows (after
  // those rows are written, below).
  std::vector<FoldTask> fold_tasks;
  std::vector<std::pair<int, TimestampMs>> new_marks;
  std::vector<Unfold> unfolds;
  for (const auto& [id, m] : moved) {
    const TimestampMs mark = marks.count(id) ? marks[id] : kFoldAll;
    const TimestampMs to = FloorTo(m.newest, kBucket1h);
    OrgState& org = orgs[series_org[id]];
    if (mark == kFoldAll) {
      // Every bucket of this series is stored (it came before the marks, or from SQLite). From
      // now on its open hour and day are derived too: its 1h/1d rows from the hour of its
      // newest row here on are dropped and a mark set, provided the 5-minute rows they would
      // be derived from are all kept (none is past the 5-minute retention).
      const TimestampMs day = org.days->DayStart(to);
      if (day >= org.rollup5m_cutoff) unfolds.push_back({id, to, day});
      continue;
    }
    if (to <= mark) continue;
    AddFoldTasks(&fold_tasks, id, mark, to, m.oldest, &*org.days);
    new_marks.emplace_back(id, to);
  }
  if (!fresh_buckets.empty()) {
    Status st = c->CopyIn("SAVEPOINT rollup_new; COPY rollups FROM STDIN WITH (FORMAT binary)",
                          RollupRows(fresh_buckets).Finish());
    if (!st && st.error().code != ErrorCode::kAlreadyExists) return st;
    if (!st) {  // stored after all (by another process, or rollups kept past raw retention)
      OS_RETURN_IF_ERROR(c->Exec("ROLLBACK TO SAVEPOINT rollup_new"));
      add.merge(fresh_buckets);
      hint_stale = true;
      ++fallbacks;
    }
  }
  if (!add.empty()) {
    // Set-based: the group's partial aggregates go to the staging table in one COPY and are
    // merged into the stored buckets by one upsert that does RollupAgg::Merge in SQL. Its WHERE
    // takes only the cases where that is exact and identical to the C++ merge (both sums
    // decimal, rescaled values far from the int64 limits); a bucket it skips is not counted,
    // and then the whole merge goes back to the savepoint and runs in C++ instead (rare: a
    // non-decimal reading or a sum near 4.6e18 units).
    OS_ASSIGN_OR_RETURN(PgResult merged,
                        c->CopyScript(fmt::format("COPY rollup_stage FROM STDIN WITH (FORMAT binary); {}",
                                                  kMergeRollupsSql),
                                      RollupRows(add).Finish()));
    if (static_cast<std::size_t>(merged.Affected()) != add.size()) {
      OS_RETURN_IF_ERROR(c->Exec("ROLLBACK TO SAVEPOINT rollup_merge; DELETE FROM rollup_stage"));
      OS_RETURN_IF_ERROR(MergeRollupsInCpp(c, add));
    }
  }
  OS_RETURN_IF_ERROR(Fold(c, fold_tasks, new_marks, unfolds));
  OS_RETURN_IF_ERROR(c->Commit());
  if (options_.metrics != nullptr) {
    options_.metrics->GetCounter("opensense_pg_writer_direct_readings_total",
                                 "Readings COPYed straight into the readings table (the fast path).")
        .Inc(direct_stored);
    options_.metrics->GetCounter("opensense_pg_writer_fallbacks_total",
                                 "Direct COPYs that met a stored row and went the general way.")
        .Inc(fallbacks);
  }
  // Committed: each series now has a reading at its group's newest ts (stored by this group or
  // before). After a fallback the hint of these series was wrong: read it again next time.
  for (const auto& [id, span] : spans) {
    if (hint_stale) {
      newest_.erase(id);
    } else {
      TimestampMs& n = newest_[id];
      n = std::max(n, span.newest);
    }
  }
  return Ok();
}

// The stored buckets of `add`'s keys read, merged in C++ and written back (the general path of
// the rollup merge; see CommitStaged).
Status PgStore::MergeRollupsInCpp(Conn* c, RollupMap& add) {
  std::vector<std::int64_t> ks, kl, kb;
  for (const auto& [k, agg] : add) {
    ks.push_back(k.series);
    kl.push_back(k.level);
    kb.push_back(k.bucket);
  }
  OS_ASSIGN_OR_RETURN(PgResult old, c->Exec(
      fmt::format("SELECT r.series_id, r.level, r.{} FROM unnest($1::int[], $2::int[], $3::bigint[]) "
                  "AS k(s, l, b) JOIN rollups r ON r.series_id=k.s AND r.level=k.l AND r.bucket=k.b",
                  "bucket, r.count, r.min, r.max, r.first_ts, r.last_ts, r.scale, r.scaled_sum, r.double_sum"),
      {ArrayLiteral(ks), ArrayLiteral(kl), ArrayLiteral(kb)}));
  for (int i = 0; i < old.Rows(); ++i) {
    RollupKey k{static_cast<int>(old.Int(i, 0)), static_cast<int>(old.Int(i, 1)), old.Int(i, 2)};
    RollupAgg stored = ReadRollupAgg(old, i, 3);
    stored.Merge(add[k]);
    add[k] = stored;
  }
  OS_RETURN_IF_ERROR(c->CopyIn("COPY rollup_stage FROM STDIN WITH (FORMAT binary)", RollupRows(add).Finish()));
  return c->Exec(
             "INSERT INTO rollups SELECT * FROM rollup_stage ON CONFLICT (series_id, level, bucket) DO "
             "UPDATE SET count=excluded.count, min=excluded.min, max=excluded.max, "
             "first_ts=excluded.first_ts, last_ts=excluded.last_ts, scale=excluded.scale, "
             "scaled_sum=excluded.scaled_sum, double_sum=excluded.double_sum")
      .map([](PgResult&&) {});
}

// Stores the buckets of `tasks` from the 5-minute rows and sets the fold marks `marks`, in the
// caller's transaction and under its series locks (pg_fold.hpp).
Status PgStore::Fold(Conn* c, const std::vector<FoldTask>& tasks,
                     const std::vector<std::pair<int, TimestampMs>>& marks,
                     const std::vector<Unfold>& unfolds) {
  if (tasks.empty() && marks.empty() && unfolds.empty()) return Ok();
  std::string script = tasks.empty() ? "SELECT 1 WHERE false" : FoldSql(tasks);
  if (!marks.empty()) script += "; " + SetFoldMarksSql(marks);
  if (!unfolds.empty()) script += "; " + UnfoldSql(unfolds);
  OS_ASSIGN_OR_RETURN(std::vector<PgResult> done, c->ExecScript(script));
  if (done.empty()) return MakeError(ErrorCode::kInternal, "the rollup fold gave no result");
  const PgResult& left = done.front();
  if (left.Rows() == 0) return Ok();
  // Buckets whose sums are not all decimal, or that come near the int64 limits: merged in C++.
  BinaryCopy rows;
  std::vector<std::int64_t> ds, dl, db;
  for (int i = 0; i < left.Rows(); ++i) {
    const int series = static_cast<int>(left.Int(i, 0)), level = static_cast<int>(left.Int(i, 1));
    const TimestampMs bucket = left.Int(i, 2);
    TimestampMs end = bucket + kBucket1h;
    if (level == kLevel1d) {
      for (const FoldTask& t : tasks) {
        if (t.series == series && t.level == level && t.from == bucket) end = t.to;
      }
    }
    OS_ASSIGN_OR_RETURN(auto fives, ReadRollups(c, series, kLevel5m, bucket, end));
    RollupAgg agg;
    for (const auto& [b, a] : fives) agg.Merge(a);
    AppendRollupRow(&rows, {series, level, bucket}, agg);
    ds.push_back(series);
    dl.push_back(level);
    db.push_back(bucket);
  }
  OS_RETURN_IF_ERROR(c->Exec(fmt::format(
      "DELETE FROM rollups WHERE (series_id, level, bucket) IN (SELECT * FROM unnest('{}'::int[], "
      "'{}'::int[], '{}'::bigint[]))",
      ArrayLiteral(ds), ArrayLiteral(dl), ArrayLiteral(db))));
  return c->CopyIn("COPY rollups FROM STDIN WITH (FORMAT binary)", rows.Finish());
}

// A series' fold mark (kFoldAll when it has none), read under its lock.
Result<TimestampMs> PgStore::FoldMark(Conn* c, int series) {
  OS_ASSIGN_OR_RETURN(PgResult r, c->Exec("SELECT fold_ts FROM rollup_folds WHERE series_id=$1", {P(series)}));
  return r.Rows() == 0 ? kFoldAll : r.Int(0, 0);
}

// ================================================================================================
// Queries

Result<std::map<TimestampMs, RollupAgg>> PgStore::ReadRollups(Conn* conn, int series, int level,
                                                              TimestampMs from, TimestampMs to) {
  OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(
      fmt::format("SELECT {} FROM rollups WHERE series_id=$1 AND level=$2 AND bucket>=$3 AND "
                  "bucket<$4 ORDER BY bucket",
                  kRollupColumns),
      {P(series), P(level), P(from), P(to)}));
  std::map<TimestampMs, RollupAgg> out;
  for (int i = 0; i < r.Rows(); ++i) out.emplace_hint(out.end(), r.Int(i, 0), ReadRollupAgg(r, i, 1));
  return out;
}

Result<SeriesResult> PgStore::QuerySeries(const SeriesQuery& q) {
  if (q.to <= q.from) {
    return MakeError(ErrorCode::kInvalidArgument, "'to' must be after 'from' (the range is [from, to))");
  }
  return WithConn([&](Conn* conn) { return QuerySeriesOn(conn, q); });
}

Result<SeriesResult> PgStore::QuerySeriesOn(Conn* conn, const SeriesQuery& q) {
  // The device's organisation, its zone and the series in one round trip.
  OS_ASSIGN_OR_RETURN(PgResult head, conn->Exec(
      "SELECT d.org_id, o.time_zone, s.id, s.unit, f.fold_ts FROM devices d "
      "JOIN organizations o ON o.id=d.org_id LEFT JOIN series s ON s.device_id=d.id AND s.metric=$2 "
      "LEFT JOIN rollup_folds f ON f.series_id=s.id WHERE d.id=$1",
      {P(q.device), P(q.metric)}));
  if (head.Rows() == 0 || head.Int(0, 0) != q.org) {
    return MakeError(ErrorCode::kNotFound, fmt::format("no device {}", q.device));
  }
  SeriesResult out;
  out.device = q.device;
  out.metric = q.metric;
  out.resolution = q.resolution == Resolution::kAuto ? PickResolution(q.from, q.to) : q.resolution;
  if (head.IsNull(0, 2)) {
    out.unit = std::string(DefaultUnitFor(q.metric).value_or(""));
    return out;
  }
  const int sid = static_cast<int>(head.Int(0, 2));
  out.unit = std::string(head.Text(0, 3));
  if (out.resolution == Resolution::kRaw) {
    OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(
        "SELECT ts, value FROM readings WHERE series_id=$1 AND ts>=$2 AND ts<$3 ORDER BY ts LIMIT $4",
        {P(sid), P(q.from), P(q.to), P(static_cast<std::int64_t>(kMaxRawPoints))}));
    out.points.reserve(static_cast<std::size_t>(r.Rows()));
    for (int i = 0; i < r.Rows(); ++i) {
      double v = r.Double(i, 1);
      out.points.push_back(SeriesPoint{r.Int(i, 0), v, v, v, 1});
    }
    return out;
  }
  const int level = LevelOf(out.resolution);
  TimestampMs first_bucket;
  std::optional<TimeZone> zone;
  if (out.resolution == Resolution::k1d) {
    OS_ASSIGN_OR_RETURN(zone, Zone(head.Text(0, 1)));
    first_bucket = zone->DayOf(q.from).start;
  } else {
    first_bucket = FloorTo(q.from, out.resolution == Resolution::k5m ? kBucket5m : kBucket1h);
  }
  // 1h and 1d buckets from the fold mark on are not stored: derived from the 5-minute rows
  // (pg_fold.hpp), read in the same statement. Should the mark have moved on since the head
  // was read, the 5-minute rows from the old mark on still hold every reading there.
  const TimestampMs mark = head.IsNull(0, 4) ? kFoldAll : head.Int(0, 4);
  TimestampMs derived = kFoldAll;
  if (level != kLevel5m && mark != kFoldAll) {
    if (!zone) {
      OS_ASSIGN_OR_RETURN(zone, Zone(head.Text(0, 1)));
    }
    derived = std::max(first_bucket, FirstDerived(level, mark, *zone));
  }
  if (derived >= q.to && (level == kLevel5m || mark != kFoldAll)) {
    // Stored rows before the mark stay (a mark only moves forward, and what moves it writes the
    // rows first, in its transaction), so a mark moved since the head was read changes nothing.
    OS_ASSIGN_OR_RETURN(auto buckets, ReadRollups(conn, sid, level, first_bucket, q.to));
    out.points.reserve(buckets.size());
    for (const auto& [bucket, a] : buckets) out.points.push_back(a.ToPoint(bucket));
    return out;
  }
  if (derived >= q.to) {
    // A series without a mark, every bucket stored: the writer may give it one meanwhile and
    // drop its open hour and day to derivation. The rows and the mark come from one snapshot;
    // if it has a mark now, the query starts again with it (once in a series' life).
    OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(
        fmt::format("SELECT m.fold_ts, r.{} FROM (SELECT (SELECT fold_ts FROM rollup_folds WHERE "
                    "series_id=$1) AS fold_ts) m LEFT JOIN rollups r ON r.series_id=$1 AND r.level=$2 "
                    "AND r.bucket>=$3 AND r.bucket<$4 ORDER BY r.bucket",
                    "bucket, r.count, r.min, r.max, r.first_ts, r.last_ts, r.scale, r.scaled_sum, r.double_sum"),
        {P(sid), P(level), P(first_bucket), P(q.to)}));
    if (r.Rows() > 0 && !r.IsNull(0, 0)) return QuerySeriesOn(conn, q);
    for (int i = 0; i < r.Rows(); ++i) {
      if (!r.IsNull(i, 1)) out.points.push_back(ReadRollupAgg(r, i, 2).ToPoint(r.Int(i, 1)));
    }
    return out;
  }
  // The mark as this statement sees it comes last (level -1): if it moved since the head was
  // read, the query starts again with it (retention may delete the 5-minute rows below a mark
  // it has just moved).
  OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(
      fmt::format("SELECT level, {0} FROM rollups WHERE series_id=$1 AND level=$2 AND bucket>=$3 AND "
                  "bucket<$4 UNION ALL SELECT level, {0} FROM rollups WHERE series_id=$1 AND level=0 "
                  "AND bucket>=$4 AND bucket<$5 UNION ALL SELECT -1::smallint, fold_ts, NULL, NULL, "
                  "NULL, NULL, NULL, NULL, NULL, NULL FROM rollup_folds WHERE series_id=$1 "
                  "ORDER BY 1 DESC, 2",
                  kRollupColumns),
      {P(sid), P(level), P(first_bucket), P(derived), P(BucketsEnd(level, q.to, *zone))}));
  if (r.Rows() == 0 || r.Int(r.Rows() - 1, 0) != -1 || r.Int(r.Rows() - 1, 1) != mark) {
    return QuerySeriesOn(conn, q);
  }
  std::map<TimestampMs, RollupAgg> fives;
  for (int i = 0; i + 1 < r.Rows(); ++i) {
    if (r.Int(i, 0) == level) {
      out.points.push_back(ReadRollupAgg(r, i, 2).ToPoint(r.Int(i, 1)));
    } else {
      fives.emplace_hint(fives.end(), r.Int(i, 1), ReadRollupAgg(r, i, 2));
    }
  }
  DayBucketer days(*zone);
  for (const auto& [bucket, a] : Regroup(fives, level, &days)) {
    if (bucket < q.to) out.points.push_back(a.ToPoint(bucket));
  }
  return out;
}

// ================================================================================================
// Rollup rebuild

Status PgStore::WriteRollups(Conn* conn, int series, int level,
                             const std::map<TimestampMs, RollupAgg>& buckets, TimestampMs from,
                             TimestampMs to) {
  OS_RETURN_IF_ERROR(conn->Exec(
      "DELETE FROM rollups WHERE series_id=$1 AND level=$2 AND bucket>=$3 AND bucket<$4",
      {P(series), P(level), P(from), P(to)}));
  if (buckets.empty()) return Ok();
  BinaryCopy rows;
  for (const auto& [bucket, agg] : buckets) AppendRollupRow(&rows, {series, level, bucket}, agg);
  return conn->CopyIn("COPY rollups FROM STDIN WITH (FORMAT binary)", rows.Finish());
}

Status PgStore::RebuildSeries(Conn* conn, int series, OrgId org, TimestampMs from, TimestampMs to,
                              bool days_only) {
  OS_ASSIGN_OR_RETURN(PgResult zr, conn->Exec("SELECT time_zone FROM organizations WHERE id=$1", {P(org)}));
  if (zr.Rows() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", org));
  OS_ASSIGN_OR_RETURN(TimeZone zone, Zone(zr.Text(0, 0)));
  OS_ASSIGN_OR_RETURN(RetentionPolicy policy, LoadPolicy(conn, org));
  // 1h and 1d buckets from the fold mark on are not stored (derived from the 5-minute rows,
  // pg_fold.hpp): the ranges are cleared and rewritten only before it. The caller holds the lock.
  OS_ASSIGN_OR_RETURN(TimestampMs mark, FoldMark(conn, series));
  auto regroup = [&](const std::map<TimestampMs, RollupAgg>& fine, int level, auto bucket_of) {
    const TimestampMs limit = FirstDerived(level, mark, zone);
    std::map<TimestampMs, RollupAgg> out;
    for (const auto& [b, agg] : fine) {
      TimestampMs bucket = bucket_of(b);
      if (bucket < limit) out[bucket].Merge(agg);
    }
    return out;
  };
  if (!days_only) {
    // 5m from raw readings.
    TimestampMs a = FloorTo(from, kBucket5m), b = CeilTo(to, kBucket5m);
    OS_ASSIGN_OR_RETURN(PgResult raw, conn->Exec(
        "SELECT ts, value FROM readings WHERE series_id=$1 AND ts>=$2 AND ts<$3 ORDER BY ts",
        {P(series), P(a), P(b)}));
    std::map<TimestampMs, RollupAgg> fives;
    for (int i = 0; i < raw.Rows(); ++i) {
      fives[FloorTo(raw.Int(i, 0), kBucket5m)].Add(raw.Int(i, 0), raw.Double(i, 1));
    }
    OS_RETURN_IF_ERROR(WriteRollups(conn, series, kLevel5m, fives, a, b));
    // 1h from 5m.
    TimestampMs ha = FloorTo(from, kBucket1h), hb = CeilTo(to, kBucket1h);
    OS_ASSIGN_OR_RETURN(auto fine, ReadRollups(conn, series, kLevel5m, ha, hb));
    OS_RETURN_IF_ERROR(WriteRollups(conn, series, kLevel1h,
                                    regroup(fine, kLevel1h, [](TimestampMs t) { return FloorTo(t, kBucket1h); }),
                                    ha, hb));
  }
  // 1d from 5m (1h cannot serve zones with 30- or 45-minute offsets), only for days whose
  // 5-minute rollups are still kept.
  auto cutoff5m = RetentionCutoff(policy.For(DataClass::kRollup5m), clock_->NowMs());
  TimestampMs da = zone.DayOf(std::max(from, cutoff5m ? *cutoff5m : from)).start;
  if (cutoff5m && da < *cutoff5m) da = zone.DayOf(*cutoff5m).end;
  TimestampMs db = to >= kFarFuture / 2 ? to : zone.DayOf(to - 1).end;
  if (da < db) {
    DayBucketer days(zone);
    OS_ASSIGN_OR_RETURN(auto fine, ReadRollups(conn, series, kLevel5m, da, db));
    OS_RETURN_IF_ERROR(WriteRollups(conn, series, kLevel1d,
                                    regroup(fine, kLevel1d, [&](TimestampMs t) { return days.DayStart(t); }),
                                    da, db));
  }
  return Ok();
}

Status PgStore::RebuildRollups(OrgId org, DeviceId device, TimestampMs from, TimestampMs to) {
  if (to <= from) return MakeError(ErrorCode::kInvalidArgument, "'to' must be after 'from'");
  OS_RETURN_IF_ERROR(GetDevice(org, device));
  OS_RETURN_IF_ERROR(RequireWriter("rebuilding rollups"));
  return RunOnWriter([&]() -> Status {
    OS_RETURN_IF_ERROR(EnsureWriterConn());
    Conn* c = wconn_.get();
    OS_RETURN_IF_ERROR(c->Begin());
    auto body = [&]() -> Status {
      OS_ASSIGN_OR_RETURN(PgResult s, c->Exec("SELECT id FROM series WHERE device_id=$1 ORDER BY id",
                                              {P(device)}));
      std::vector<int> ids;
      for (int i = 0; i < s.Rows(); ++i) ids.push_back(static_cast<int>(s.Int(i, 0)));
      OS_RETURN_IF_ERROR(LockSeries(c, ids));
      for (int sid : ids) OS_RETURN_IF_ERROR(RebuildSeries(c, sid, org, from, to, false));
      return c->Commit();
    };
    Status st = body();
    if (!st) c->Rollback();
    return st;
  });
}

// ================================================================================================
// Retention

Result<bool> PgStore::HoldMaintenanceLock() {
  std::lock_guard lock(maintenance_mu_);
  if (maintenance_conn_ && !maintenance_conn_->Poisoned()) return true;
  maintenance_conn_.reset();
  OS_ASSIGN_OR_RETURN(auto c, Conn::Connect(pool_.info()));
  OS_ASSIGN_OR_RETURN(PgResult r, c->Exec(
      fmt::format("SELECT pg_try_advisory_lock({}, {})", kLockSpace, kMaintenanceLock)));
  if (!r.Bool(0, 0)) return false;
  // Held for the life of this session: when this process dies, another one takes over.
  maintenance_conn_ = std::move(c);
  return true;
}

namespace {
// The rows of `c` that belong to `org`, as a FROM/WHERE clause ($1 org, $2 cutoff).
std::string OldRowsClause(DataClass c) {
  if (c == DataClass::kRawReadings) {
    return "FROM readings r JOIN series s ON s.id=r.series_id JOIN devices d ON d.id=s.device_id "
           "WHERE d.org_id=$1 AND r.ts<$2";
  }
  if (c == DataClass::kApiRequestLogs) return "FROM api_requests r WHERE r.org_id=$1 AND r.at<$2";
  return fmt::format(
      "FROM rollups r JOIN series s ON s.id=r.series_id JOIN devices d ON d.id=s.device_id "
      "WHERE d.org_id=$1 AND r.level={} AND r.bucket<$2",
      LevelOf(c));
}
}  // namespace

Result<std::int64_t> PgStore::CountOld(Conn* conn, OrgId org, DataClass c, TimestampMs cutoff) {
  OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(fmt::format("SELECT count(*) {}", OldRowsClause(c)),
                                             {P(org), P(cutoff)}));
  return r.Int(0, 0);
}

Result<std::int64_t> PgStore::DeleteOldStep(Conn* conn, OrgId org, DataClass c, TimestampMs cutoff) {
  std::string sql;
  if (c == DataClass::kRawReadings) {
    sql = fmt::format("DELETE FROM readings WHERE (series_id, ts) IN (SELECT r.series_id, r.ts {} LIMIT {})",
                      OldRowsClause(c), kRetentionStep);
  } else if (c == DataClass::kApiRequestLogs) {
    sql = fmt::format("DELETE FROM api_requests WHERE id IN (SELECT r.id {} LIMIT {})",
                      OldRowsClause(c), kRetentionStep);
  } else {
    sql = fmt::format(
        "DELETE FROM rollups WHERE (series_id, level, bucket) IN (SELECT r.series_id, r.level, "
        "r.bucket {} LIMIT {})",
        OldRowsClause(c), kRetentionStep);
  }
  OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(sql, {P(org), P(cutoff)}));
  return r.Affected();
}

Result<std::int64_t> PgStore::DropOldPartitions(Conn* conn, TimestampMs cutoff) {
  // Partitions whose whole range is older than every organisation's cutoff: the cheap path.
  OS_ASSIGN_OR_RETURN(PgResult parts, conn->Exec(
      "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid=i.inhrelid "
      "WHERE i.inhparent='readings'::regclass ORDER BY 1"));
  std::int64_t rows = 0;
  for (int i = 0; i < parts.Rows(); ++i) {
    std::string name(parts.Text(i, 0));
    int y = 0, m = 0;
    if (std::sscanf(name.c_str(), "readings_y%dm%d", &y, &m) != 2) continue;
    int month = y * 12 + (m - 1);
    if (MonthStartMs(month + 1) > cutoff) continue;
    OS_RETURN_IF_ERROR(conn->Begin());
    auto body = [&]() -> Status {
      OS_ASSIGN_OR_RETURN(PgResult n, conn->Exec(fmt::format("SELECT count(*) FROM {}", name)));
      OS_RETURN_IF_ERROR(conn->Exec(fmt::format("DROP TABLE {}", name)));
      OS_RETURN_IF_ERROR(conn->Commit());
      rows += n.Int(0, 0);
      return Ok();
    };
    if (auto st = body(); !st) {
      conn->Rollback();
      return tl::unexpected(st.error());
    }
    spdlog::info("retention: dropped partition {}", name);
  }
  return rows;
}

// Moves the fold mark of the organisation's series that are behind `to` (hour-aligned) to it,
// storing their 1h and 1d buckets before it: retention may then delete the 5-minute rows they
// would have been derived from, and the 1h/1d rows past their own retention (pg_fold.hpp).
Status PgStore::FoldBefore(Conn* conn, OrgId org, const TimeZone& zone, TimestampMs to) {
  OS_ASSIGN_OR_RETURN(PgResult behind, conn->Exec(
      "SELECT f.series_id FROM rollup_folds f JOIN series s ON s.id=f.series_id "
      "JOIN devices d ON d.id=s.device_id WHERE d.org_id=$1 AND f.fold_ts<$2 AND f.fold_ts<>$3",
      {P(org), P(to), P(kFoldNone)}));
  if (behind.Rows() == 0) return Ok();
  std::vector<std::int64_t> ids;
  for (int i = 0; i < behind.Rows(); ++i) ids.push_back(behind.Int(i, 0));
  OS_RETURN_IF_ERROR(conn->Begin());
  auto body = [&]() -> Status {
    OS_RETURN_IF_ERROR(LockSeries(conn, std::vector<int>(ids.begin(), ids.end())));
    OS_ASSIGN_OR_RETURN(PgResult now, conn->Exec(
        fmt::format("SELECT series_id, fold_ts FROM rollup_folds WHERE series_id = ANY('{}'::int[])",
                    ArrayLiteral(ids))));
    DayBucketer days(zone);
    std::vector<FoldTask> tasks;
    std::vector<std::pair<int, TimestampMs>> marks;
    for (int i = 0; i < now.Rows(); ++i) {
      const int id = static_cast<int>(now.Int(i, 0));
      const TimestampMs mark = now.Int(i, 1);
      if (mark >= to || mark == kFoldNone) continue;  // moved meanwhile
      AddFoldTasks(&tasks, id, mark, to, mark, &days);
      marks.emplace_back(id, to);
    }
    OS_RETURN_IF_ERROR(Fold(conn, tasks, marks));
    return conn->Commit();
  };
  Status st = body();
  if (!st) conn->Rollback();
  return st;
}

Result<RetentionReport> PgStore::RunRetention(bool dry_run) {
  RetentionReport report;
  report.dry_run = dry_run;
  for (DataClass c : kAllDataClasses) report.classes.push_back({c, 0});
  if (!dry_run) {
    OS_RETURN_IF_ERROR(RequireWriter("the retention job"));
    OS_ASSIGN_OR_RETURN(bool leader, HoldMaintenanceLock());
    if (!leader) {
      spdlog::info("retention: another OpenSense process holds the maintenance lock; it runs the job");
      return report;
    }
    // Partitions ahead of need (the writer also creates them on demand).
    OS_RETURN_IF_ERROR(RunOnWriter([this]() -> Status {
      OS_RETURN_IF_ERROR(EnsureWriterConn());
      std::set<int> months;
      int now = MonthIndexOf(clock_->NowMs());
      for (int m = now; m <= now + kMonthsAhead; ++m) months.insert(m);
      return EnsurePartitions(wconn_.get(), months);
    }));
    OS_RETURN_IF_ERROR(FlushRequestLogOnWriter());
  }
  OS_ASSIGN_OR_RETURN(auto orgs, ListOrganizations());
  OS_ASSIGN_OR_RETURN(auto conn, pool_.Acquire());
  const TimestampMs now = clock_->NowMs();
  std::map<OrgId, RetentionPolicy> policies;
  std::optional<TimestampMs> min_raw_cutoff;
  bool any_forever = false;
  for (const Organization& org : orgs) {
    OS_ASSIGN_OR_RETURN(policies[org.id], LoadPolicy(conn.get(), org.id));
    auto cut = RetentionCutoff(policies[org.id].For(DataClass::kRawReadings), now);
    if (!cut) any_forever = true;
    else if (!min_raw_cutoff || *cut < *min_raw_cutoff) min_raw_cutoff = *cut;
  }
  auto entry_of = [&](DataClass c) -> std::int64_t& {
    for (auto& e : report.classes) {
      if (e.data_class == c) return e.rows;
    }
    return report.classes.front().rows;
  };
  if (!dry_run && !any_forever && min_raw_cutoff) {
    OS_ASSIGN_OR_RETURN(std::int64_t dropped, DropOldPartitions(conn.get(), *min_raw_cutoff));
    entry_of(DataClass::kRawReadings) += dropped;
  }
  for (const Organization& org : orgs) {
    // Buckets still derived from 5-minute rows that retention is about to delete (or 1h/1d
    // buckets past their own retention) are stored first. A dry run of a process that may not
    // write leaves them; they are then not counted.
    if (!dry_run || options_.writer) {
      OS_ASSIGN_OR_RETURN(TimeZone zone, Zone(org.time_zone));
      TimestampMs fold_to = kFoldNone;
      for (DataClass c : {DataClass::kRollup5m, DataClass::kRollup1h, DataClass::kRollup1d}) {
        if (auto cut = RetentionCutoff(policies[org.id].For(c), now)) {
          fold_to = std::max(fold_to, CeilTo(zone.DayOf(*cut).end, kBucket1h));
        }
      }
      if (fold_to != kFoldNone) OS_RETURN_IF_ERROR(FoldBefore(conn.get(), org.id, zone, fold_to));
    }
    for (DataClass c : kAllDataClasses) {
      if (c == DataClass::kAlertEvents || c == DataClass::kNotificationLogs) {
        continue;  // alert events are kept forever; notification logs arrive with their module
      }
      auto cutoff = RetentionCutoff(policies[org.id].For(c), now);
      if (!cutoff) continue;
      if (dry_run) {
        OS_ASSIGN_OR_RETURN(std::int64_t n, CountOld(conn.get(), org.id, c, *cutoff));
        entry_of(c) += n;
        continue;
      }
      // Small transactions (autocommit statements): ingest never waits long behind them.
      while (true) {
        OS_ASSIGN_OR_RETURN(std::int64_t n, DeleteOldStep(conn.get(), org.id, c, *cutoff));
        entry_of(c) += n;
        if (n < kRetentionStep) break;
      }
    }
  }
  // Requests without an organisation (refused tokens, health checks) follow the default.
  if (auto cutoff = RetentionCutoff(DefaultRetention(DataClass::kApiRequestLogs), now)) {
    if (dry_run) {
      OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(
          "SELECT count(*) FROM api_requests WHERE org_id IS NULL AND at<$1", {P(*cutoff)}));
      entry_of(DataClass::kApiRequestLogs) += r.Int(0, 0);
    } else {
      while (true) {
        OS_ASSIGN_OR_RETURN(PgResult r, conn->Exec(
            fmt::format("DELETE FROM api_requests WHERE id IN (SELECT id FROM api_requests WHERE "
                        "org_id IS NULL AND at<$1 LIMIT {})",
                        kRetentionStep),
            {P(*cutoff)}));
        entry_of(DataClass::kApiRequestLogs) += r.Affected();
        if (r.Affected() < kRetentionStep) break;
      }
    }
  }
  return report;
}

// ================================================================================================
// Maintenance, stats, readiness

Status PgStore::Compact() {
  OS_RETURN_IF_ERROR(RequireWriter("compaction"));
  // Nothing to compact: rows are in place once committed. A writer round trip flushes the
  // request log, as on SQLite.
  return FlushRequestLogOnWriter();
}

Result<StoreStats> PgStore::Stats() {
  OS_ASSIGN_OR_RETURN(PgResult r, Query(
      "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM series), "
      "(SELECT count(*) FROM pg_inherits WHERE inhparent='readings'::regclass), "
      "pg_database_size(current_database())"));
  StoreStats st;
  st.head_readings = 0;  // every acknowledged reading is in `readings`
  st.chunk_readings = r.Int(0, 0);
  st.series = r.Int(0, 1);
  st.chunks = r.Int(0, 2);  // partitions
  st.file_bytes = r.Int(0, 3);
  return st;
}

Status PgStore::Ready() {
  if (options_.writer) {
    std::lock_guard lock(queue_mu_);
    if (stopping_) return MakeError(ErrorCode::kUnavailable, "the store is shutting down");
    if (queued_readings_ * 10 >= options_.max_queued_readings * 9) {
      return MakeError(ErrorCode::kUnavailable, "the writer queue is nearly full");
    }
  }
  auto r = Query("SELECT 1");
  if (!r) return MakeError(ErrorCode::kUnavailable, r.error().message);
  return Ok();
}

// ================================================================================================

Result<std::unique_ptr<Store>> OpenPostgresStore(const StoreOptions& options) {
  OS_ASSIGN_OR_RETURN(ConnInfo info, ParseConnInfo(options.url));
  auto store = std::make_unique<PgStore>(options, std::move(info));
  OS_RETURN_IF_ERROR(store->Open());
  return std::unique_ptr<Store>(std::move(store));
}

Result<std::string> CreateDatabase(const std::string& admin_url, const std::string& name) {
  for (char ch : name) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) {
      return MakeError(ErrorCode::kInvalidArgument, "database names are a-z 0-9 _");
    }
  }
  OS_ASSIGN_OR_RETURN(ConnInfo info, ParseConnInfo(admin_url));
  OS_ASSIGN_OR_RETURN(auto conn, Conn::Connect(info));
  OS_ASSIGN_OR_RETURN(PgResult exists,
                      conn->Exec("SELECT 1 FROM pg_database WHERE datname=$1", {P(name)}));
  if (exists.Rows() == 0) OS_RETURN_IF_ERROR(conn->Exec(fmt::format("CREATE DATABASE {}", name)));
  auto q = admin_url.find('?');
  std::string base = admin_url.substr(0, q);
  std::string query = q == std::string::npos ? "" : admin_url.substr(q);
  auto slash = base.find('/', base.find("://") + 3);
  if (slash != std::string::npos) base = base.substr(0, slash);
  return base + "/" + name + query;
}

}  // namespace opensense::store::postgres
