// The Store: where organisations, devices and readings live. Backend-neutral: nothing
// SQLite- or PostgreSQL-specific crosses this header, and every backend passes the same
// conformance suite (tests/store_conformance_test.cpp).
//
// Threads: every method may be called from any thread. Writes of readings go through one
// writer per store (a queue; group commit); `Ingest` returns a future that completes only after
// the batch is durable. Metadata calls and queries use their own connections.
#pragma once

#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "core/retention.hpp"
#include "core/types.hpp"
#include "store/notify_store.hpp"
#include "store/people_store.hpp"
#include "store/alert_store.hpp"

namespace opensense::store {

enum class Synchronous { kFull, kNormal };

struct StoreOptions {
  // sqlite:///absolute/path/opensense.db or sqlite://relative/path.db (postgres:// later).
  std::string url;
  // Durability of each commit. kFull survives power loss; kNormal survives a process crash.
  Synchronous synchronous = Synchronous::kFull;
  // Start the single writer (ingest, rollups, retention, compaction). A process that only
  // reads or edits organisations and devices opens the store with writer = false, so it can
  // run beside `opensense serve`.
  bool writer = true;
  // Apply pending schema migrations on open. A schema newer than this binary always refuses.
  bool migrate = true;
  // Time source (not owned). nullptr means the system clock.
  const Clock* clock = nullptr;
  // Back-pressure: Ingest fails with kResourceExhausted when this many readings are queued.
  std::size_t max_queued_readings = 4'000'000;
  // Recent readings are logged append-only and kept in memory (the head); they are compacted
  // into per-series chunks once the head holds this many readings or is this old.
  std::size_t head_flush_readings = 256 * 1024;
  TimestampMs head_flush_age_ms = 10 * kMsPerMinute;
  // Compaction runs in slices of about this many readings (or a sixteenth of the head, if more),
  // each its own transaction, so ingest commits go on between slices instead of stalling.
  std::size_t flush_slice_readings = 16 * 1024;
  // How long a metadata write waits for the database lock.
  int busy_timeout_ms = 5000;
  // Where the writer reports its queue, commits and compactions (not owned; may be null).
  MetricsRegistry* metrics = nullptr;
};

struct NewOrganization {
  std::string name;
  std::string time_zone = "UTC";
  Tier tier = Tier::kFree;
};

struct NewDevice {
  OrgId org = 0;
  std::string name;
  std::optional<SiteId> site;
  std::optional<std::string> serial;
  DeviceProfile profile;  // validated (ValidateDeviceProfile)
};

// What the retention job deleted (or would delete, in a dry run) for one data class.
struct RetentionClassReport {
  DataClass data_class = DataClass::kRawReadings;
  std::int64_t rows = 0;  // readings for raw data, buckets for rollups, rows otherwise
};
struct RetentionReport {
  bool dry_run = false;
  std::vector<RetentionClassReport> classes;  // one entry per data class
};

// One API request, for the request log (kept 30 days).
struct ApiRequestLog {
  TimestampMs at = 0;
  std::optional<OrgId> org;
  std::string principal;  // "device:12", "user:3", "" when unauthenticated
  std::string method;
  std::string route;      // the route template, not the raw path
  int status = 0;
  std::int64_t duration_us = 0;
  std::string client;     // remote address
  std::string request_id; // http::Request::id: the X-Request-Id and the request_id of log lines
};

// The newest reading of one metric of a device.
struct LatestValue {
  std::string metric;
  std::string unit;
  TimestampMs ts = 0;
  double value = 0;
};

// One device's latest values (Store::LatestOfOrganization).
struct DeviceLatest {
  DeviceId device = 0;
  std::vector<LatestValue> values;  // by metric, as Latest
};

// Fields of a device to change; absent fields stay as they are.
struct DeviceUpdate {
  std::optional<std::string> name;
  std::optional<std::optional<SiteId>> site;
  std::optional<std::optional<std::string>> serial;
  std::optional<DeviceProfile> profile;  // replaces the whole profile; validated
};

struct StoreStats {
  std::int64_t head_readings = 0;   // acknowledged, logged, not yet compacted into chunks
  std::int64_t chunk_readings = 0;  // readings in compacted chunks
  std::int64_t chunks = 0;
  std::int64_t series = 0;
  std::int64_t file_bytes = 0;      // database size on disk (after checkpoint)
};

// Readings of one organisation that a commit made durable (accepted: neither rejected nor
// duplicates), in the order they were submitted.
struct CommittedReadings {
  OrgId org = 0;
  std::vector<Reading> readings;
};
// Called on the writer thread right after each durable commit that stored readings. It must
// return at once (queue and go): the alert evaluator hands the batches to its own thread.
using CommitListener = std::function<void(std::vector<CommittedReadings>&& committed)>;
// Which organisations the listener wants (empty: all). Called on the writer thread once per
// organisation of a commit; it must be cheap and thread-safe. Readings of organisations it
// refuses are not copied at all (ingest for an organisation without alert rules pays nothing).
using CommitFilter = std::function<bool(OrgId org)>;
// Names a registered commit listener (Store::AddCommitListener).
using CommitListenerId = std::uint64_t;

class Store {
 public:
  virtual ~Store() = default;

  virtual int SchemaVersion() const = 0;

  // Organisations.
  virtual Result<Organization> CreateOrganization(const NewOrganization& org) = 0;
  virtual Result<Organization> GetOrganization(OrgId id) = 0;
  virtual Result<std::vector<Organization>> ListOrganizations() = 0;
  // Changes the zone that 1-day rollups follow and rebuilds them from 5-minute rollups.
  virtual Status SetOrganizationTimeZone(OrgId id, std::string_view time_zone) = 0;
  virtual Status SetOrganizationTier(OrgId id, Tier tier) = 0;
  virtual Result<RetentionPolicy> GetRetentionPolicy(OrgId id) = 0;
  // Validated against the tier and the minimums (ValidateRetentionOverride).
  virtual Status SetRetention(OrgId id, DataClass data_class, RetentionPeriod period) = 0;

  // Sites and devices. Every call is scoped to `org`: another organisation's rows are NotFound.
  virtual Result<Site> CreateSite(OrgId org, std::string_view name) = 0;
  virtual Result<std::vector<Site>> ListSites(OrgId org) = 0;
  virtual Result<Site> GetSite(OrgId org, SiteId id) = 0;
  virtual Result<Site> UpdateSite(OrgId org, SiteId id, std::optional<std::string> name,
                                  std::optional<bool> auto_register) = 0;
  // Refused (kFailedPrecondition) while devices belong to the site.
  virtual Status DeleteSite(OrgId org, SiteId id) = 0;
  virtual Result<Device> UpdateDevice(OrgId org, DeviceId id, const DeviceUpdate& update) = 0;
  virtual Result<Device> CreateDevice(const NewDevice& device) = 0;
  virtual Result<Device> GetDevice(OrgId org, DeviceId id) = 0;
  virtual Result<Device> FindDeviceBySerial(OrgId org, std::string_view serial) = 0;
  virtual Result<std::vector<Device>> ListDevices(OrgId org) = 0;
  // New readings are refused; history stays for its retention.
  virtual Status DecommissionDevice(OrgId org, DeviceId id) = 0;
  // The organisation a device belongs to (kNotFound if there is no such device). NOT scoped to
  // an organisation: only for the MQTT subscriber, which learns the device from the topic
  // `devices/<id>/readings`. That is safe because the broker's ACL (Mosquitto plugin / EMQX
  // hook) lets only that device's token, or its site's gateway token, publish to the topic.
  // Never call it with an id taken from a request of a user.
  virtual Result<OrgId> OrganizationOfDevice(DeviceId device) = 0;

  // Users (the people module extends this) and tokens.
  virtual Result<User> CreateUser(OrgId org, std::string_view email, Role role) = 0;
  virtual Result<User> GetUser(OrgId org, UserId id) = 0;
  // Stores a token; id and created_at are assigned. public_id must be unique.
  virtual Result<TokenRecord> CreateToken(const TokenRecord& token) = 0;
  virtual Result<TokenRecord> FindToken(std::string_view public_id) = 0;
  virtual Result<std::vector<TokenRecord>> ListTokens(OrgId org) = 0;
  // The token stops working at `at` (now: revocation; later: a rotation's grace period).
  // Never extends an earlier expiry.
  virtual Status ExpireToken(OrgId org, std::int64_t token_id, TimestampMs at) = 0;
  // Coalesced last-use times (the caller writes each token at most once a minute).
  virtual Status TouchTokens(const std::vector<std::pair<std::int64_t, TimestampMs>>& used) = 0;

  // The newest reading of every metric of a device.
  virtual Result<std::vector<LatestValue>> Latest(OrgId org, DeviceId device) = 0;
  // Latest of every device of the organisation that has a reading, by device id (decommissioned
  // devices too). The default asks Latest device by device; a backend may read it all at once.
  virtual Result<std::vector<DeviceLatest>> LatestOfOrganization(OrgId org);
  // Queues request-log rows for the writer (batched; never blocks the request).
  virtual void LogRequests(std::vector<ApiRequestLog> rows) = 0;

  // Queues readings of one organisation for the writer. The future completes after the
  // commit with the fate of every record, or with an error if nothing was stored
  // (kResourceExhausted when the queue is full, kUnavailable when the store is closing).
  virtual std::future<Result<IngestResult>> Ingest(OrgId org, std::vector<Reading> readings) = 0;

  // Points of one series in [from, to); rollup levels never scan raw readings.
  virtual Result<SeriesResult> QuerySeries(const SeriesQuery& query) = 0;

  // A number that changes whenever anything QuerySeries may answer for `device` may have
  // changed: readings committed for it, rollups rebuilt, retention, compaction, time zone or
  // device changes. It changes before the writes are acknowledged, so an answer kept with the
  // number read before its query is current while the number stays the same (api's chart
  // cache). nullopt: this store cannot tell, because another process may write (PostgreSQL, or
  // a store opened without its writer). No I/O.
  virtual std::optional<std::uint64_t> SeriesDataVersion(DeviceId device) {
    (void)device;
    return std::nullopt;
  }

  // Recomputes the rollups of one device over [from, to) from the finer level (5m from raw,
  // 1h and 1d from 5m). Buckets that straddle the range are recomputed whole.
  virtual Status RebuildRollups(OrgId org, DeviceId device, TimestampMs from, TimestampMs to) = 0;

  // Deletes data older than each organisation's retention, in small chunks.
  virtual Result<RetentionReport> RunRetention(bool dry_run) = 0;

  // Compacts the head into chunks and checkpoints, so the file holds everything compactly.
  virtual Status Compact() = 0;
  virtual Result<StoreStats> Stats() = 0;
  // OK when the store answers a query, the writer runs, and its queue is below 90 % full.
  virtual Status Ready() = 0;

  // Alert rules, rule state, alerts and alert events (store/alert_store.hpp).
  virtual AlertStore& Alerts() = 0;
  // Hands every commit's readings (of the organisations `wants`) to `listener`. Several may be
  // registered (the alert evaluator, the dashboard's live updates); each gets its own copy, one
  // after the other on the writer thread, so each must return at once.
  virtual CommitListenerId AddCommitListener(CommitListener listener, CommitFilter wants = {}) = 0;
  // Unregisters it: commits after the return do not reach it (a delivery already running may
  // still finish).
  virtual void RemoveCommitListener(CommitListenerId id) = 0;

  // Notification channels, the outbox and the delivery-attempt log (store/notify_store.hpp).
  virtual NotifyStore& Notify() = 0;

  // Memberships, magic links, sessions and the audit trail (store/people_store.hpp).
  virtual PeopleStore& People() = 0;

  // Completes every queued batch, stops the writer and closes connections. Idempotent.
  virtual void Close() = 0;
};

// Opens (and migrates) the store named by options.url.
Result<std::unique_ptr<Store>> OpenStore(const StoreOptions& options);

// The highest schema version this binary knows.
int LatestSchemaVersion();

}  // namespace opensense::store
