// `opensense store copy`: moves an installation from the embedded SQLite store to PostgreSQL,
// or back.
// Everything is copied with its ids: organisations, sites, devices, users, tokens (hashes
// only), retention overrides, series, readings, rollups, alert events and the request log.
// Chunked (one transaction per chunk), resumable (a rerun continues where the last one
// stopped: rows are inserted ON CONFLICT DO NOTHING and each series resumes after its newest
// copied reading), and verified at the end (row counts and per-device reading checksums).
//
// Neither side may be written to meanwhile: the copy takes the SQLite store's writer lock (so
// `opensense serve` on it must be stopped; stop it on PostgreSQL too) and, as a source,
// compacts it first. Verification is the same both ways.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
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
  std::function<void(const CopyProgress&)> progress;  // may be empty
};

struct TableCheck {
  std::string table;
  std::int64_t source = 0;
  std::int64_t target = 0;
};

struct CopyReport {
  std::vector<TableCheck> tables;   // row counts on both sides
  std::int64_t readings_copied = 0;  // by this run
  std::vector<DeviceId> mismatched_devices;  // reading count or checksum differs
  bool verified = false;  // every count and checksum agrees
};

Result<CopyReport> CopyStore(const CopyOptions& options);

}  // namespace opensense::store::postgres
