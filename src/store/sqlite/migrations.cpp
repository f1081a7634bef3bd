#include "store/sqlite/migrations.hpp"

#include <fmt/format.h>

#include <array>

namespace opensense::store::sqlite {

namespace {

// Never edit a shipped migration: append a new one.
constexpr std::array<const char*, 9> kMigrations = {
    // 1: organisations, sites, devices.
    R"sql(
CREATE TABLE organizations(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  time_zone TEXT NOT NULL,
  tier TEXT NOT NULL CHECK (tier IN ('free','team','enterprise')),
  created_at INTEGER NOT NULL);
CREATE TABLE sites(
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (org_id, name));
CREATE TABLE devices(
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  site_id INTEGER REFERENCES sites(id),
  name TEXT NOT NULL,
  serial TEXT,
  decommissioned_at INTEGER,
  created_at INTEGER NOT NULL);
CREATE UNIQUE INDEX devices_org_serial ON devices(org_id, serial) WHERE serial IS NOT NULL;
CREATE INDEX devices_org ON devices(org_id);
)sql",
    // 2: readings. Recent readings are appended to reading_log (one row per group commit, all
    // series interleaved: one sequential write per commit) and compacted into per-series
    // chunks; rollup chunks hold the aggregates of the compacted chunks.
    R"sql(
CREATE TABLE series(
  id INTEGER PRIMARY KEY,
  device_id INTEGER NOT NULL REFERENCES devices(id),
  metric TEXT NOT NULL,
  unit TEXT NOT NULL,
  chunk_max_ts INTEGER,
  UNIQUE (device_id, metric));
CREATE TABLE reading_log(
  seq INTEGER PRIMARY KEY,
  created_at INTEGER NOT NULL,
  entries BLOB NOT NULL);
CREATE TABLE chunks(
  series_id INTEGER NOT NULL,
  start_ts INTEGER NOT NULL,
  end_ts INTEGER NOT NULL,
  count INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (series_id, start_ts)) WITHOUT ROWID;
CREATE TABLE rollups(
  series_id INTEGER NOT NULL,
  level INTEGER NOT NULL,          -- 0: 5 minutes, 1: 1 hour, 2: 1 local day
  period INTEGER NOT NULL,         -- start of the fixed window the chunk covers
  first_bucket INTEGER NOT NULL,
  last_bucket INTEGER NOT NULL,
  buckets INTEGER NOT NULL,
  data BLOB NOT NULL,              -- core/rollup_codec
  PRIMARY KEY (series_id, level, period)) WITHOUT ROWID;
)sql",
    // 3: retention overrides and the append-only alert event log (kept forever).
    R"sql(
CREATE TABLE retention_overrides(
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  data_class TEXT NOT NULL,
  unit TEXT NOT NULL CHECK (unit IN ('days','months','forever')),
  amount INTEGER NOT NULL,
  PRIMARY KEY (org_id, data_class)) WITHOUT ROWID;
CREATE TABLE alert_events(
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  alert_id INTEGER NOT NULL,
  device_id INTEGER REFERENCES devices(id),
  kind TEXT NOT NULL,
  at INTEGER NOT NULL,
  actor TEXT,
  note TEXT,
  details TEXT);
CREATE INDEX alert_events_org_at ON alert_events(org_id, at);
CREATE TRIGGER alert_events_no_update BEFORE UPDATE ON alert_events
BEGIN SELECT RAISE(ABORT, 'alert events are append-only'); END;
CREATE TRIGGER alert_events_no_delete BEFORE DELETE ON alert_events
BEGIN SELECT RAISE(ABORT, 'alert events are append-only'); END;
)sql",
    // 4: users, bearer tokens (only bcrypt hashes), the API request log, gateway
    // auto-registration.
    R"sql(
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  email TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('viewer','member','admin','owner')),
  created_at INTEGER NOT NULL,
  UNIQUE (org_id, email));
CREATE TABLE tokens(
  id INTEGER PRIMARY KEY,
  public_id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('device','gateway','user')),
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  device_id INTEGER REFERENCES devices(id),
  site_id INTEGER REFERENCES sites(id),
  user_id INTEGER REFERENCES users(id),
  role TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  label TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  last_used_at INTEGER);
CREATE INDEX tokens_org ON tokens(org_id);
CREATE TABLE api_requests(
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  org_id INTEGER,
  principal TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  status INTEGER NOT NULL,
  duration_us INTEGER NOT NULL,
  client TEXT NOT NULL);
CREATE INDEX api_requests_at ON api_requests(at);
ALTER TABLE sites ADD COLUMN auto_register INTEGER NOT NULL DEFAULT 0;
)sql",
    // 5: alert rules, the state of each rule per device, alerts (issue 5; store/alert_store.hpp).
    // alert_events (migration 3) gets an index by alert.
    R"sql(
CREATE TABLE alert_rules(
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  definition TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL);
CREATE INDEX alert_rules_org ON alert_rules(org_id);
CREATE TABLE alert_rule_state(
  rule_id INTEGER NOT NULL,
  device_id INTEGER NOT NULL,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  state TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (rule_id, device_id)) WITHOUT ROWID;
CREATE INDEX alert_rule_state_org ON alert_rule_state(org_id);
CREATE TABLE alerts(
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  rule_id INTEGER NOT NULL,
  rule_name TEXT NOT NULL,
  device_id INTEGER NOT NULL REFERENCES devices(id),
  kind TEXT NOT NULL,
  metric TEXT NOT NULL,
  severity TEXT NOT NULL CHECK (severity IN ('warning','critical')),
  state TEXT NOT NULL CHECK (state IN ('firing','acknowledged','resolved')),
  late INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER NOT NULL,
  fired_at INTEGER NOT NULL,
  raised_at INTEGER NOT NULL,
  trigger_value REAL NOT NULL,
  peak_value REAL,
  peak_at INTEGER,
  out_of_range_ms INTEGER NOT NULL DEFAULT 0,
  escalation_level INTEGER NOT NULL DEFAULT 0,
  acknowledged_at INTEGER,
  acknowledged_by TEXT NOT NULL DEFAULT '',
  ack_note TEXT NOT NULL DEFAULT '',
  resolved_at INTEGER,
  resolved_by TEXT NOT NULL DEFAULT '',
  resolve_note TEXT NOT NULL DEFAULT '');
CREATE INDEX alerts_org_fired ON alerts(org_id, fired_at);
CREATE INDEX alerts_org_state ON alerts(org_id, state);
CREATE INDEX alert_events_alert ON alert_events(alert_id);
)sql",
    // 6: people: membership removal, magic links (login, invitation, sign-up), sessions and
    // the append-only audit trail (kept forever). Secrets are stored as SHA-256 hex only.
    R"sql(
ALTER TABLE users ADD COLUMN removed_at INTEGER;
CREATE INDEX users_email ON users(email);
CREATE TABLE magic_links(
  id INTEGER PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  email TEXT NOT NULL,
  purpose TEXT NOT NULL CHECK (purpose IN ('login','invitation','signup')),
  org_id INTEGER REFERENCES organizations(id),
  detail TEXT NOT NULL DEFAULT '',
  client TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER);
CREATE INDEX magic_links_email ON magic_links(email, created_at);
CREATE INDEX magic_links_client ON magic_links(client, created_at);
CREATE TABLE sessions(
  id INTEGER PRIMARY KEY,
  id_hash TEXT NOT NULL UNIQUE,
  email TEXT NOT NULL,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  client TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  ended_at INTEGER);
CREATE INDEX sessions_email ON sessions(email);
CREATE TABLE audit_events(
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  via TEXT NOT NULL,
  client TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  old_value TEXT NOT NULL,
  new_value TEXT NOT NULL);
CREATE INDEX audit_events_org ON audit_events(org_id, id);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
)sql",
    // 7: the notification outbox (store/outbox.hpp) and the delivery-attempt log (kept 90
    // days), and the organisations' notification channels (store/notify_store.hpp).
    R"sql(
CREATE TABLE notification_outbox(
  id INTEGER PRIMARY KEY,
  org_id INTEGER REFERENCES organizations(id),
  channel_id INTEGER,
  channel_kind TEXT NOT NULL CHECK (channel_kind IN ('email','telegram','webhook')),
  recipient TEXT NOT NULL DEFAULT '',
  subject TEXT NOT NULL DEFAULT '',
  text_body TEXT NOT NULL DEFAULT '',
  html_body TEXT NOT NULL DEFAULT '',
  payload_json TEXT NOT NULL DEFAULT '',
  idempotency_key TEXT NOT NULL UNIQUE,
  alert_id INTEGER,
  event_id INTEGER,
  created_at INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sent','failed','cancelled')),
  last_error TEXT NOT NULL DEFAULT '',
  done_at INTEGER);
CREATE INDEX notification_outbox_due ON notification_outbox(next_attempt_at) WHERE state = 'pending';
CREATE INDEX notification_outbox_org ON notification_outbox(org_id, created_at);
CREATE TABLE notification_attempts(
  id INTEGER PRIMARY KEY,
  outbox_id INTEGER NOT NULL,
  org_id INTEGER,
  at INTEGER NOT NULL,
  channel_kind TEXT NOT NULL,
  recipient TEXT NOT NULL,
  status TEXT NOT NULL,            -- sent | retry | failed
  provider_code INTEGER,           -- HTTP status, or null when no answer came
  latency_ms INTEGER NOT NULL,
  detail TEXT NOT NULL DEFAULT '');
CREATE INDEX notification_attempts_at ON notification_attempts(at);
CREATE INDEX notification_attempts_outbox ON notification_attempts(outbox_id);
CREATE TABLE notification_channels(
  id INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES organizations(id),
  kind TEXT NOT NULL CHECK (kind IN ('email','telegram','webhook')),
  name TEXT NOT NULL,
  target TEXT NOT NULL,
  secret TEXT NOT NULL DEFAULT '',
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL);
CREATE INDEX notification_channels_org ON notification_channels(org_id);
)sql",
    // 8: what compliance reports need about a device (core/types.hpp DeviceProfile):
    // target range, expected reading interval, medicine-storage flag, calibration dates.
    R"sql(
ALTER TABLE devices ADD COLUMN target_min REAL;
ALTER TABLE devices ADD COLUMN target_max REAL;
ALTER TABLE devices ADD COLUMN expected_interval_s INTEGER;
ALTER TABLE devices ADD COLUMN medicine_storage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN calibration_date TEXT;
ALTER TABLE devices ADD COLUMN calibration_due TEXT;
)sql",
    // 9: the request id of each API request-log row (http::Request::id), which JSON log
    // lines carry too.
    R"sql(ALTER TABLE api_requests ADD COLUMN request_id TEXT NOT NULL DEFAULT '';)sql",
};

}  // namespace

int LatestVersion() { return static_cast<int>(kMigrations.size()); }

Result<int> CurrentVersion(Db* db) {
  OS_ASSIGN_OR_RETURN(Stmt * stmt, db->Prepare("PRAGMA user_version"));
  OS_ASSIGN_OR_RETURN(bool row, stmt->Step());
  int v = row ? static_cast<int>(stmt->Int(0)) : 0;
  stmt->Reset();
  return v;
}

Status Migrate(Db* db, int target) {
  OS_ASSIGN_OR_RETURN(int current, CurrentVersion(db));
  if (current > LatestVersion()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("the database {} has schema version {}, newer than this binary "
                                 "knows ({}); upgrade opensense before using it",
                                 db->path(), current, LatestVersion()));
  }
  for (int v = current + 1; v <= target && v <= LatestVersion(); ++v) {
    OS_ASSIGN_OR_RETURN(auto txn, Transaction::Begin(db));
    // Re-check inside the write lock: another process may have migrated meanwhile.
    OS_ASSIGN_OR_RETURN(int now, CurrentVersion(db));
    if (now >= v) continue;
    auto st = db->Exec(kMigrations[v - 1]);
    if (!st) {
      return MakeError(ErrorCode::kInternal,
                       fmt::format("migration {} failed: {}", v, st.error().message));
    }
    OS_RETURN_IF_ERROR(db->Exec(fmt::format("PRAGMA user_version = {}", v)));
    OS_RETURN_IF_ERROR(txn.Commit());
  }
  return Ok();
}

}  // namespace opensense::store::sqlite
