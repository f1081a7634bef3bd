// `opensense store copy`: moves an installation from the embedded SQLite store to PostgreSQL,
// or back.
// Every table a user's work lives in is copied with its ids, so rows keep pointing at each
// other (CopiedTables() lists them, every column): organisations, sites, devices with their
// profiles, users and memberships, tokens (hashes only), retention overrides, series, alert
// rules and their per-device state, alerts and alert events, notification channels, the outbox
// (pending messages are delivered by the server on the target) and its delivery attempts,
// magic links, sessions, the audit trail and the request log; readings and rollups are decoded
// from the SQLite store's chunks (ColumnsNotCopiedAsIs() lists what is not copied column for
// column, and why). PostgreSQL's id sequences are advanced past the copied ids.
// Chunked (one transaction per chunk), resumable (a rerun continues where the last one
// stopped: rows are inserted ON CONFLICT DO NOTHING, each table resumes after its highest
// copied id and each series after its newest copied reading), and verified at the end (per
// table a row count and an order-free checksum of every column of every row; per device a
// count and checksum of its readings).
//
// Neither side may be written to meanwhile: the copy takes the SQLite store's writer lock (so
// `opensense serve` on it must be stopped; stop it on PostgreSQL too) and, as a source,
// compacts it first. Verification is the same both ways.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/types.hpp"

namespace opensense::store::postgres {

struct CopyProgress {
  std::string phase;  // "organizations", ..., "readings", "rollups", "verify"
  std::int64_t done = 0;
  std::int64_t total = 0;
};

struct CopyOptions {
  std::string from;  // sqlite:///path/opensense.db or postgres://host:port/db
  std::string to;    // the other kind
  bool verify_only = false;
  std::int64_t chunk_readings = 50'000;  // readings per transaction
  std::int64_t chunk_rows = 5'000;        // rows of the other tables per transaction
  std::function<void(const CopyProgress&)> progress;  // may be empty
};

struct TableCheck {
  std::string table;
  std::int64_t source = 0;  // rows
  std::int64_t target = 0;
  // The checksums of every row agree (readings: of every device); rollups are only counted.
  bool checksums_match = true;
};

struct CopyReport {
  std::vector<TableCheck> tables;   // every copied table, then readings and rollups
  std::int64_t readings_copied = 0;  // by this run
  std::vector<DeviceId> mismatched_devices;  // reading count or checksum differs
  bool verified = false;  // every count and checksum agrees
};

Result<CopyReport> CopyStore(const CopyOptions& options);

// A table copied row for row, with every column as it is.
struct CopiedTable {
  std::string_view name;
  std::string_view columns;  // "id, org_id, ...": all of them, the same on both sides
  bool has_id;               // chunked and resumed by `id`; otherwise copied whole
};
// In foreign-key order.
std::span<const CopiedTable> CopiedTables();

// A table or column of the SQLite schema that is not copied as it is, and why.
struct NotCopiedAsIs {
  std::string_view table;
  std::string_view column;  // empty: the whole table
  std::string_view why;
};
// A test (pg_copy_test.cpp) fails when the SQLite schema has a table or column that is neither
// here nor in CopiedTables(): a migration that adds one must extend the copy or say here why not.
std::span<const NotCopiedAsIs> ColumnsNotCopiedAsIs();

}  // namespace opensense::store::postgres
