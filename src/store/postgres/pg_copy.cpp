#include "store/postgres/pg_copy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <span>
#include <bit>
#include <optional>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "core/chunk_codec.hpp"
#include "core/rollup.hpp"
#include "core/rollup_codec.hpp"
#include "core/time_zone.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/postgres/pg_fold.hpp"
#include "store/postgres/pg_schema.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/store.hpp"

namespace opensense::store::postgres {

namespace {

using sqlite::Db;

// Every column of every table, the same in both schemas (pg_copy_test.cpp checks both).
constexpr CopiedTable kTables[] = {
    {"organizations", "id, name, time_zone, tier, created_at", true},
    {"sites", "id, org_id, name, created_at, auto_register", true},
    {"devices",
     "id, org_id, site_id, name, serial, decommissioned_at, created_at, target_min, target_max, "
     "expected_interval_s, medicine_storage, calibration_date, calibration_due",
     true},
    {"users", "id, org_id, email, role, created_at, removed_at", true},
    {"tokens",
     "id, public_id, kind, org_id, device_id, site_id, user_id, role, secret_hash, label, "
     "created_at, expires_at, last_used_at",
     true},
    {"retention_overrides", "org_id, data_class, unit, amount", false},
    {"series", "id, device_id, metric, unit", true},
    {"alert_rules", "id, org_id, name, definition, created_at, updated_at", true},
    {"alert_rule_state", "rule_id, device_id, org_id, state, updated_at", false},
    {"alerts",
     "id, org_id, rule_id, rule_name, device_id, kind, metric, severity, state, late, started_at, "
     "fired_at, raised_at, trigger_value, peak_value, peak_at, out_of_range_ms, escalation_level, "
     "acknowledged_at, acknowledged_by, ack_note, resolved_at, resolved_by, resolve_note",
     true},
    {"alert_events", "id, org_id, alert_id, device_id, kind, at, actor, note, details", true},
    {"notification_channels", "id, org_id, kind, name, target, secret, enabled, created_at", true},
    {"notification_outbox",
     "id, org_id, channel_id, channel_kind, recipient, subject, text_body, html_body, "
     "payload_json, idempotency_key, alert_id, event_id, created_at, next_attempt_at, attempts, "
     "state, last_error, done_at",
     true},
    {"notification_attempts",
     "id, outbox_id, org_id, at, channel_kind, recipient, status, provider_code, latency_ms, detail",
     true},
    {"magic_links",
     "id, token_hash, email, purpose, org_id, detail, client, created_at, expires_at, used_at", true},
    {"sessions",
     "id, id_hash, email, org_id, client, created_at, last_seen_at, expires_at, ended_at", true},
    {"audit_events",
     "id, org_id, at, actor, via, client, action, target, old_value, new_value", true},
    {"api_requests",
     "id, at, org_id, principal, method, route, status, duration_us, client, request_id", true},
};

constexpr NotCopiedAsIs kNotCopiedAsIs[] = {
    {"chunks", "",
     "the SQLite store's compressed readings: decoded into rows of `readings` (and back), "
     "checked per device"},
    {"rollups", "",
     "runs of rollup buckets: decoded into one row per bucket (and back), counted"},
    {"reading_log", "",
     "recent readings not yet compacted: the copy compacts the source first, which empties it"},
    {"series", "chunk_max_ts", "the newest compacted reading of the series, rewritten with the chunks"},
};

int ColumnCount(const CopiedTable& t) {
  return static_cast<int>(std::count(t.columns.begin(), t.columns.end(), ',')) + 1;
}

// A value the way both sides write it, for COPY and for checksums: integers and text as they
// are; a double in its shortest exact form (SQLite's text of a REAL keeps 15 digits only); a
// boolean as 1/0 (SQLite has none). The caller checks for NULL.
std::string SqliteValue(const sqlite::Stmt& s, int c) {
  return s.IsReal(c) ? fmt::format("{}", s.Double(c)) : s.Text(c);
}
constexpr Oid kBoolOid = 16, kFloat4Oid = 700, kFloat8Oid = 701;
std::string PgValue(const PgResult& r, int row, int c) {
  switch (r.TypeOid(c)) {
    case kBoolOid: return r.Bool(row, c) ? "1" : "0";
    case kFloat4Oid:
    case kFloat8Oid: return fmt::format("{}", r.Double(row, c));
    default: return std::string(r.Text(row, c));
  }
}

std::uint64_t Mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::uint64_t ReadingHash(TimestampMs ts, double value) {
  return Mix(static_cast<std::uint64_t>(ts) * 0x9E3779B97F4A7C15ull ^ std::bit_cast<std::uint64_t>(value));
}

// A row's values, NULL or as SqliteValue/PgValue write them, each length-prefixed.
void AppendField(std::string* row, const std::optional<std::string>& value) {
  if (!value) {
    *row += '-';
    return;
  }
  fmt::format_to(std::back_inserter(*row), "{}:", value->size());
  *row += *value;
}

std::uint64_t RowHash(std::string_view row) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : row) h = (h ^ c) * 0x100000001b3ull;
  return Mix(h);
}

// An order-free checksum of a set of rows or readings: equal sets give equal sums.
struct Checksum {
  std::int64_t count = 0;
  std::uint64_t hash = 0;
  void Add(std::uint64_t h) {
    ++count;
    hash += h;
  }
  bool operator==(const Checksum&) const = default;
};

class Copier {
 public:
  Copier(const CopyOptions& o, Db* src, Conn* dst) : o_(o), src_(src), dst_(dst) {}

  void Progress(std::string_view phase, std::int64_t done, std::int64_t total) {
    if (o_.progress) o_.progress({std::string(phase), done, total});
  }

  // The next chunk_rows rows of a table after id `after` (a number or a parameter), or the whole
  // table when it has no id.
  std::string PageSql(const CopiedTable& t, std::string_view after) const {
    return t.has_id ? fmt::format("SELECT {} FROM {} WHERE id>{} ORDER BY id LIMIT {}", t.columns, t.name,
                                  after, o_.chunk_rows)
                    : fmt::format("SELECT {} FROM {}", t.columns, t.name);
  }

  Result<std::int64_t> SourceCount(const std::string& sql) {
    OS_ASSIGN_OR_RETURN(sqlite::Stmt s, src_->PrepareOnce(sql));
    OS_ASSIGN_OR_RETURN(bool row, s.Step());
    return row ? s.Int(0) : 0;
  }
  Result<std::int64_t> TargetCount(const std::string& sql, const std::vector<Param>& params = {}) {
    OS_ASSIGN_OR_RETURN(PgResult r, dst_->Exec(sql, params));
    return r.IsNull(0, 0) ? 0 : r.Int(0, 0);
  }

  Status CopyTable(const CopiedTable& t) {
    const int ncols = ColumnCount(t);
    OS_RETURN_IF_ERROR(dst_->Exec(fmt::format(
        "CREATE TEMP TABLE IF NOT EXISTS copy_{0} AS SELECT {1} FROM {0} LIMIT 0", t.name, t.columns)));
    OS_ASSIGN_OR_RETURN(std::int64_t total, SourceCount(fmt::format("SELECT count(*) FROM {}", t.name)));
    std::int64_t after = 0;
    if (t.has_id) {
      OS_ASSIGN_OR_RETURN(after, TargetCount(fmt::format("SELECT max(id) FROM {}", t.name)));
    }
    std::int64_t done = 0;
    if (after > 0) {
      OS_ASSIGN_OR_RETURN(done, SourceCount(fmt::format("SELECT count(*) FROM {} WHERE id<={}", t.name, after)));
    }
    Progress(t.name, done, total);
    while (true) {
      const std::string sql = PageSql(t, std::to_string(after));
      OS_ASSIGN_OR_RETURN(sqlite::Stmt s, src_->PrepareOnce(sql));
      std::string data;
      std::int64_t rows = 0;
      while (true) {
        OS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        for (int c = 0; c < ncols; ++c) {
          if (c > 0) data += '\t';
          if (s.IsNull(c)) data += "\\N";
          else AppendCopyText(&data, SqliteValue(s, c));
        }
        data += '\n';
        if (t.has_id) after = s.Int(0);
        ++rows;
      }
      if (rows == 0) break;
      OS_RETURN_IF_ERROR(dst_->Begin());
      Status st = dst_->CopyIn(fmt::format("COPY copy_{} FROM STDIN", t.name), data);
      if (st) {
        st = dst_->Exec(fmt::format("INSERT INTO {0}({1}) SELECT {1} FROM copy_{0} ON CONFLICT DO NOTHING; "
                                    "TRUNCATE copy_{0}",
                                    t.name, t.columns))
                 .map([](PgResult&&) {});
      }
      if (st) st = dst_->Commit();
      if (!st) {
        dst_->Rollback();
        return MakeError(st.error().code, fmt::format("copying {}: {}", t.name, st.error().message));
      }
      done += rows;
      Progress(t.name, done, total);
      if (!t.has_id || rows < o_.chunk_rows) break;
    }
    if (t.has_id) {
      // New rows made in PostgreSQL later get ids after the copied ones.
      OS_RETURN_IF_ERROR(dst_->Exec(fmt::format(
          "SELECT setval(pg_get_serial_sequence('{0}', 'id'), coalesce((SELECT max(id) FROM {0}), 0) + 1, "
          "false)",
          t.name)));
    }
    return Ok();
  }

  Result<std::vector<Sample>> SourceReadings(std::int64_t series, TimestampMs after) {
    OS_ASSIGN_OR_RETURN(sqlite::Stmt s, src_->PrepareOnce(
        "SELECT data FROM chunks WHERE series_id=?1 AND end_ts>?2 ORDER BY start_ts"));
    s.Bind(1, series).Bind(2, after);
    std::vector<Sample> out;
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      OS_RETURN_IF_ERROR(DecodeChunkInto(s.Blob(0), &out));
    }
    std::erase_if(out, [&](const Sample& x) { return x.ts <= after; });
    return out;
  }

  Status FlushReadings(std::string* data, std::set<int>* months) {
    if (data->empty()) return Ok();
    for (int m : *months) {
      if (partitions_.insert(m).second) OS_RETURN_IF_ERROR(EnsurePartition(dst_, m));
    }
    months->clear();
    OS_RETURN_IF_ERROR(dst_->Begin());
    Status st = dst_->CopyIn("COPY copy_readings FROM STDIN", *data);
    if (st) {
      st = dst_->Exec("INSERT INTO readings SELECT * FROM copy_readings ON CONFLICT DO NOTHING; "
                      "TRUNCATE copy_readings")
               .map([](PgResult&&) {});
    }
    if (st) st = dst_->Commit();
    if (!st) {
      dst_->Rollback();
      return MakeError(st.error().code, fmt::format("copying readings: {}", st.error().message));
    }
    data->clear();
    return Ok();
  }

  Result<std::int64_t> CopyReadings() {
    OS_RETURN_IF_ERROR(dst_->Exec(
        "CREATE TEMP TABLE IF NOT EXISTS copy_readings AS SELECT * FROM readings LIMIT 0"));
    OS_ASSIGN_OR_RETURN(std::int64_t total, SourceCount("SELECT coalesce(sum(count), 0) FROM chunks"));
    OS_ASSIGN_OR_RETURN(auto series, SeriesIds());
    std::int64_t done = 0, copied = 0;
    std::string data;
    std::set<int> months;
    std::int64_t buffered = 0;
    Progress("readings", 0, total);
    for (std::int64_t sid : series) {
      OS_ASSIGN_OR_RETURN(std::int64_t have, SourceCount(fmt::format(
          "SELECT coalesce(sum(count), 0) FROM chunks WHERE series_id={}", sid)));
      // Resume: everything up to the newest copied reading of the series is there.
      OS_ASSIGN_OR_RETURN(PgResult mx, dst_->Exec("SELECT max(ts) FROM readings WHERE series_id=$1", {P(sid)}));
      TimestampMs after = mx.IsNull(0, 0) ? std::numeric_limits<TimestampMs>::min() : mx.Int(0, 0);
      OS_ASSIGN_OR_RETURN(std::vector<Sample> samples, SourceReadings(sid, after));
      done += have - static_cast<std::int64_t>(samples.size());
      for (const Sample& x : samples) {
        fmt::format_to(std::back_inserter(data), "{}\t{}\t{}\n", sid, x.ts, x.value);
        months.insert(MonthIndexOf(x.ts));
        if (++buffered >= o_.chunk_readings) {
          OS_RETURN_IF_ERROR(FlushReadings(&data, &months));
          done += buffered;
          copied += buffered;
          buffered = 0;
          Progress("readings", done, total);
        }
      }
    }
    OS_RETURN_IF_ERROR(FlushReadings(&data, &months));
    done += buffered;
    copied += buffered;
    Progress("readings", done, total);
    return copied;
  }

  Status CopyRollups() {
    OS_RETURN_IF_ERROR(dst_->Exec("CREATE TEMP TABLE IF NOT EXISTS copy_rollups AS SELECT * FROM rollups LIMIT 0"));
    OS_ASSIGN_OR_RETURN(std::int64_t total, SourceCount("SELECT coalesce(sum(buckets), 0) FROM rollups"));
    OS_ASSIGN_OR_RETURN(sqlite::Stmt s, src_->PrepareOnce(
        "SELECT series_id, level, data FROM rollups ORDER BY series_id, level, period"));
    std::string data;
    std::int64_t done = 0, buffered = 0;
    auto flush = [&]() -> Status {
      if (data.empty()) return Ok();
      OS_RETURN_IF_ERROR(dst_->Begin());
      // Rewritten whole on a rerun: the source's buckets are the truth.
      Status st = dst_->CopyIn("COPY copy_rollups FROM STDIN", data);
      if (st) {
        st = dst_->Exec(
                     "INSERT INTO rollups SELECT * FROM copy_rollups ON CONFLICT (series_id, level, bucket) "
                     "DO UPDATE SET count=excluded.count, min=excluded.min, max=excluded.max, "
                     "first_ts=excluded.first_ts, last_ts=excluded.last_ts, scale=excluded.scale, "
                     "scaled_sum=excluded.scaled_sum, double_sum=excluded.double_sum; TRUNCATE copy_rollups")
                 .map([](PgResult&&) {});
      }
      if (st) st = dst_->Commit();
      if (!st) {
        dst_->Rollback();
        return MakeError(st.error().code, fmt::format("copying rollups: {}", st.error().message));
      }
      done += buffered;
      buffered = 0;
      data.clear();
      Progress("rollups", done, total);
      return Ok();
    };
    std::vector<RollupBucket> buckets;
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      buckets.clear();
      OS_RETURN_IF_ERROR(DecodeRollupChunkInto(s.Blob(2), &buckets));
      for (const auto& b : buckets) {
        const RollupAgg& a = b.agg;
        fmt::format_to(std::back_inserter(data), "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", s.Int(0),
                       s.Int(1), b.bucket, a.count, a.min, a.max, a.first_ts, a.last_ts, a.scale,
                       a.scaled_sum, a.double_sum);
        ++buffered;
      }
      if (buffered >= o_.chunk_readings) OS_RETURN_IF_ERROR(flush());
    }
    return flush();
  }

  // ---- PostgreSQL -> SQLite ----------------------------------------------------------------

  Status SqliteTxn(const std::function<Status()>& body, std::string_view what) {
    OS_RETURN_IF_ERROR(src_->Exec("BEGIN IMMEDIATE"));
    Status st = body();
    if (st) st = src_->Exec("COMMIT");
    if (!st) {
      (void)src_->Exec("ROLLBACK");
      return MakeError(st.error().code, fmt::format("copying {}: {}", what, st.error().message));
    }
    return Ok();
  }

  Status CopyTableToSqlite(const CopiedTable& t) {
    const int ncols = ColumnCount(t);
    OS_ASSIGN_OR_RETURN(std::int64_t total, TargetCount(fmt::format("SELECT count(*) FROM {}", t.name)));
    std::int64_t after = 0, done = 0;
    if (t.has_id) {
      OS_ASSIGN_OR_RETURN(after, SourceCount(fmt::format("SELECT coalesce(max(id), 0) FROM {}", t.name)));
      OS_ASSIGN_OR_RETURN(done, TargetCount(fmt::format("SELECT count(*) FROM {} WHERE id<=$1", t.name), {P(after)}));
    }
    std::string marks;
    for (int c = 0; c < ncols; ++c) marks += c == 0 ? "?" : ",?";
    const std::string insert = fmt::format("INSERT OR IGNORE INTO {}({}) VALUES({})", t.name, t.columns, marks);
    const std::string select = PageSql(t, "$1");
    Progress(t.name, done, total);
    while (true) {
      OS_ASSIGN_OR_RETURN(PgResult r, t.has_id ? dst_->Exec(select, {P(after)}) : dst_->Exec(select));
      if (r.Rows() == 0) break;
      OS_RETURN_IF_ERROR(SqliteTxn([&]() -> Status {
        OS_ASSIGN_OR_RETURN(sqlite::Stmt ins, src_->PrepareOnce(insert));
        for (int i = 0; i < r.Rows(); ++i) {
          for (int c = 0; c < ncols; ++c) {
            // Booleans come back as t/f (SQLite keeps 1/0); doubles are bound exactly.
            if (r.IsNull(i, c)) {
              ins.BindNull(c + 1);
            } else if (r.TypeOid(c) == kBoolOid) {
              ins.Bind(c + 1, static_cast<std::int64_t>(r.Bool(i, c)));
            } else if (r.TypeOid(c) == kFloat4Oid || r.TypeOid(c) == kFloat8Oid) {
              ins.Bind(c + 1, r.Double(i, c));
            } else {
              ins.Bind(c + 1, r.Text(i, c));
            }
          }
          OS_RETURN_IF_ERROR(ins.Run());
          ins.Reset();
        }
        return Ok();
      }, t.name));
      if (t.has_id) after = r.Int(r.Rows() - 1, 0);
      done += r.Rows();
      Progress(t.name, done, total);
      if (!t.has_id || r.Rows() < o_.chunk_rows) break;
    }
    return Ok();
  }

  // Readings become compressed chunks as the SQLite store writes them (core/chunk_codec: at most
  // 1,024 readings and ~900 bytes a chunk), and the series' chunk_max_ts follows.
  Status WriteSqliteChunks(std::int64_t series, std::span<const Sample> samples) {
    OS_ASSIGN_OR_RETURN(sqlite::Stmt ins, src_->PrepareOnce(
        "INSERT OR REPLACE INTO chunks(series_id, start_ts, end_ts, count, data) VALUES(?,?,?,?,?)"));
    std::function<Status(std::span<const Sample>)> write = [&](std::span<const Sample> part) -> Status {
      if (part.empty()) return Ok();
      if (part.size() > 1024) {
        OS_RETURN_IF_ERROR(write(part.first(1024)));
        return write(part.subspan(1024));
      }
      std::string data = EncodeChunk(part);
      if (data.size() > 900 && part.size() > 1) {
        OS_RETURN_IF_ERROR(write(part.first(part.size() / 2)));
        return write(part.subspan(part.size() / 2));
      }
      ins.Bind(1, series).Bind(2, part.front().ts).Bind(3, part.back().ts)
          .Bind(4, static_cast<std::int64_t>(part.size())).BindBlob(5, data);
      OS_RETURN_IF_ERROR(ins.Run());
      ins.Reset();
      return Ok();
    };
    OS_RETURN_IF_ERROR(write(samples));
    OS_ASSIGN_OR_RETURN(sqlite::Stmt upd, src_->PrepareOnce(
        "UPDATE series SET chunk_max_ts=max(coalesce(chunk_max_ts, ?2), ?2) WHERE id=?1"));
    return upd.Bind(1, series).Bind(2, samples.back().ts).Run();
  }

  Result<std::int64_t> CopyReadingsToSqlite() {
    OS_ASSIGN_OR_RETURN(std::int64_t total, TargetCount("SELECT count(*) FROM readings"));
    OS_ASSIGN_OR_RETURN(auto series, SeriesIds());
    std::int64_t done = 0, copied = 0;
    Progress("readings", 0, total);
    for (std::int64_t sid : series) {
      // Resume after the newest reading already in chunks.
      OS_ASSIGN_OR_RETURN(std::int64_t have, SourceCount(fmt::format(
          "SELECT coalesce(sum(count), 0) FROM chunks WHERE series_id={}", sid)));
      OS_ASSIGN_OR_RETURN(std::int64_t after, SourceCount(fmt::format(
          "SELECT coalesce(max(end_ts), {}) FROM chunks WHERE series_id={}",
          std::numeric_limits<TimestampMs>::min(), sid)));
      done += have;
      while (true) {
        OS_ASSIGN_OR_RETURN(PgResult r, dst_->Exec(
            "SELECT ts, value FROM readings WHERE series_id=$1 AND ts>$2 ORDER BY ts LIMIT $3",
            {P(sid), P(after), P(o_.chunk_readings)}));
        if (r.Rows() == 0) break;
        std::vector<Sample> samples;
        samples.reserve(static_cast<std::size_t>(r.Rows()));
        for (int i = 0; i < r.Rows(); ++i) samples.push_back({r.Int(i, 0), r.Double(i, 1)});
        OS_RETURN_IF_ERROR(SqliteTxn([&] { return WriteSqliteChunks(sid, samples); }, "readings"));
        after = samples.back().ts;
        done += r.Rows();
        copied += r.Rows();
        Progress("readings", done, total);
        if (r.Rows() < o_.chunk_readings) break;
      }
    }
    Progress("readings", done, total);
    return copied;
  }

  struct BucketRow {
    int level;
    TimestampMs bucket;
    RollupAgg agg;
  };
  // The 1h and 1d buckets of a PostgreSQL series that are derived from its 5-minute rows rather
  // than stored (its open hour and day, pg_fold.hpp), as the store's queries derive them.
  Result<std::vector<BucketRow>> DerivedRollups(std::int64_t sid) {
    OS_ASSIGN_OR_RETURN(PgResult m, dst_->Exec(
        "SELECT f.fold_ts, o.time_zone FROM rollup_folds f JOIN series s ON s.id=f.series_id "
        "JOIN devices d ON d.id=s.device_id JOIN organizations o ON o.id=d.org_id WHERE f.series_id=$1",
        {P(sid)}));
    std::vector<BucketRow> out;
    if (m.Rows() == 0 || m.Int(0, 0) == kFoldAll) return out;
    const TimestampMs mark = m.Int(0, 0);
    OS_ASSIGN_OR_RETURN(TimeZone zone, TimeZone::Load(m.Text(0, 1)));
    const TimestampMs from = std::min(FirstDerived(kLevel1h, mark, zone), FirstDerived(kLevel1d, mark, zone));
    OS_ASSIGN_OR_RETURN(PgResult r, dst_->Exec(
        "SELECT bucket, count, min, max, first_ts, last_ts, scale, scaled_sum, double_sum FROM rollups "
        "WHERE series_id=$1 AND level=0 AND bucket>=$2 ORDER BY bucket",
        {P(sid), P(from)}));
    std::map<TimestampMs, RollupAgg> fives;
    for (int i = 0; i < r.Rows(); ++i) fives.emplace_hint(fives.end(), r.Int(i, 0), ReadRollupAgg(r, i, 1));
    DayBucketer days(zone);
    for (int level : {kLevel1h, kLevel1d}) {
      const TimestampMs first = FirstDerived(level, mark, zone);
      for (const auto& [bucket, agg] : Regroup(fives, level, &days)) {
        if (bucket >= first) out.push_back({level, bucket, agg});
      }
    }
    return out;
  }
  Result<std::int64_t> DerivedRollupCount() {
    OS_ASSIGN_OR_RETURN(PgResult s, dst_->Exec(
        "SELECT series_id FROM rollup_folds WHERE fold_ts<>$1 ORDER BY 1", {P(kFoldAll)}));
    std::int64_t n = 0;
    for (int i = 0; i < s.Rows(); ++i) {
      OS_ASSIGN_OR_RETURN(auto rows, DerivedRollups(s.Int(i, 0)));
      n += static_cast<std::int64_t>(rows.size());
    }
    return n;
  }

  Status CopyRollupsToSqlite() {
    // The SQLite store keeps runs of buckets in fixed windows per level (sqlite_store.cpp:
    // 4 hours of 5m buckets, 2 days of 1h, 48 days of 1d).
    constexpr TimestampMs kPeriod[3] = {4 * kMsPerHour, 2 * kMsPerDay, 48 * kMsPerDay};
    OS_ASSIGN_OR_RETURN(std::int64_t total, TargetCount("SELECT count(*) FROM rollups"));
    OS_ASSIGN_OR_RETURN(std::int64_t derived, DerivedRollupCount());
    total += derived;
    OS_ASSIGN_OR_RETURN(auto series, SeriesIds());
    std::int64_t done = 0;
    for (std::int64_t sid : series) {
      OS_ASSIGN_OR_RETURN(PgResult r, dst_->Exec(
          "SELECT level, bucket, count, min, max, first_ts, last_ts, scale, scaled_sum, double_sum "
          "FROM rollups WHERE series_id=$1 ORDER BY level, bucket",
          {P(sid)}));
      // The stored buckets and those PostgreSQL derives (pg_fold.hpp): SQLite stores them all.
      std::vector<BucketRow> rows;
      rows.reserve(static_cast<std::size_t>(r.Rows()));
      for (int i = 0; i < r.Rows(); ++i) {
        rows.push_back({static_cast<int>(r.Int(i, 0)), r.Int(i, 1), ReadRollupAgg(r, i, 2)});
      }
      OS_ASSIGN_OR_RETURN(auto more, DerivedRollups(sid));
      if (!more.empty()) {
        rows.insert(rows.end(), more.begin(), more.end());
        std::sort(rows.begin(), rows.end(), [](const BucketRow& a, const BucketRow& b) {
          return std::tie(a.level, a.bucket) < std::tie(b.level, b.bucket);
        });
      }
      OS_RETURN_IF_ERROR(SqliteTxn([&]() -> Status {
        OS_ASSIGN_OR_RETURN(sqlite::Stmt put, src_->PrepareOnce(
            "INSERT OR REPLACE INTO rollups(series_id, level, period, first_bucket, last_bucket, "
            "buckets, data) VALUES(?,?,?,?,?,?,?)"));
        std::vector<RollupBucket> run;
        int level = -1;
        TimestampMs period = 0;
        auto flush = [&]() -> Status {
          if (run.empty()) return Ok();
          put.Bind(1, sid).Bind(2, level).Bind(3, period).Bind(4, run.front().bucket)
              .Bind(5, run.back().bucket).Bind(6, static_cast<std::int64_t>(run.size()))
              .BindBlob(7, EncodeRollupChunk(run));
          OS_RETURN_IF_ERROR(put.Run());
          put.Reset();
          run.clear();
          return Ok();
        };
        for (const BucketRow& row : rows) {
          TimestampMs p = FloorTo(row.bucket, kPeriod[std::clamp(row.level, 0, 2)]);
          if (row.level != level || p != period) {
            OS_RETURN_IF_ERROR(flush());
            level = row.level;
            period = p;
          }
          run.push_back({row.bucket, row.agg});
        }
        return flush();
      }, "rollups"));
      done += static_cast<std::int64_t>(rows.size());
      Progress("rollups", done, total);
    }
    return Ok();
  }

  Result<std::vector<std::int64_t>> SeriesIds() {
    OS_ASSIGN_OR_RETURN(sqlite::Stmt s, src_->PrepareOnce("SELECT id FROM series ORDER BY id"));
    std::vector<std::int64_t> out;
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(s.Int(0));
    }
    return out;
  }

  Result<Checksum> SourceTableChecksum(const CopiedTable& t) {
    const int ncols = ColumnCount(t);
    OS_ASSIGN_OR_RETURN(sqlite::Stmt s, src_->PrepareOnce(fmt::format("SELECT {} FROM {}", t.columns, t.name)));
    Checksum sum;
    std::string row;
    while (true) {
      OS_ASSIGN_OR_RETURN(bool more, s.Step());
      if (!more) break;
      row.clear();
      for (int c = 0; c < ncols; ++c) {
        AppendField(&row, s.IsNull(c) ? std::nullopt : std::optional(SqliteValue(s, c)));
      }
      sum.Add(RowHash(row));
    }
    return sum;
  }

  Result<Checksum> TargetTableChecksum(const CopiedTable& t) {
    const int ncols = ColumnCount(t);
    // In pages by id: libpq holds a whole result in memory.
    const std::string select = PageSql(t, "$1");
    Checksum sum;
    std::string row;
    std::int64_t after = 0;  // ids start at 1
    while (true) {
      OS_ASSIGN_OR_RETURN(PgResult r, t.has_id ? dst_->Exec(select, {P(after)}) : dst_->Exec(select));
      for (int i = 0; i < r.Rows(); ++i) {
        row.clear();
        for (int c = 0; c < ncols; ++c) {
          AppendField(&row, r.IsNull(i, c) ? std::nullopt : std::optional(PgValue(r, i, c)));
        }
        sum.Add(RowHash(row));
      }
      if (!t.has_id || r.Rows() < o_.chunk_rows) break;
      after = r.Int(r.Rows() - 1, 0);
    }
    return sum;
  }

  Status Verify(CopyReport* report) {
    report->tables.clear();
    report->mismatched_devices.clear();
    bool ok = true;
    for (const CopiedTable& t : kTables) {
      OS_ASSIGN_OR_RETURN(Checksum a, SourceTableChecksum(t));
      OS_ASSIGN_OR_RETURN(Checksum b, TargetTableChecksum(t));
      report->tables.push_back({std::string(t.name), a.count, b.count, a.hash == b.hash});
      ok = ok && a == b;
    }
    // Per device: the count and an order-free checksum of every reading, on both sides.
    OS_ASSIGN_OR_RETURN(sqlite::Stmt s, src_->PrepareOnce("SELECT id, device_id FROM series ORDER BY id"));
    std::vector<std::pair<std::int64_t, DeviceId>> series;
    while (true) {
      OS_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      series.emplace_back(s.Int(0), s.Int(1));
    }
    std::set<DeviceId> bad;
    std::int64_t n = 0;
    for (auto [sid, device] : series) {
      OS_ASSIGN_OR_RETURN(std::vector<Sample> src, SourceReadings(sid, std::numeric_limits<TimestampMs>::min()));
      Checksum a, b;
      for (const Sample& x : src) a.Add(ReadingHash(x.ts, x.value));
      OS_ASSIGN_OR_RETURN(PgResult r, dst_->Exec("SELECT ts, value FROM readings WHERE series_id=$1", {P(sid)}));
      for (int i = 0; i < r.Rows(); ++i) b.Add(ReadingHash(r.Int(i, 0), r.Double(i, 1)));
      if (!(a == b)) bad.insert(device);
      Progress("verify", ++n, static_cast<std::int64_t>(series.size()));
    }
    report->mismatched_devices.assign(bad.begin(), bad.end());
    TableCheck readings{"readings", 0, 0, bad.empty()}, rollups{"rollups", 0, 0};
    OS_ASSIGN_OR_RETURN(readings.source, SourceCount("SELECT coalesce(sum(count), 0) FROM chunks"));
    OS_ASSIGN_OR_RETURN(readings.target, TargetCount("SELECT count(*) FROM readings"));
    OS_ASSIGN_OR_RETURN(rollups.source, SourceCount("SELECT coalesce(sum(buckets), 0) FROM rollups"));
    OS_ASSIGN_OR_RETURN(rollups.target, TargetCount("SELECT count(*) FROM rollups"));
    {
      // PostgreSQL derives each series' open hour and day from its 5-minute rows (pg_fold.hpp).
      OS_ASSIGN_OR_RETURN(std::int64_t derived, DerivedRollupCount());
      rollups.target += derived;
    }
    ok = ok && readings.source == readings.target && rollups.source == rollups.target;
    report->tables.push_back(readings);
    report->tables.push_back(rollups);
    report->verified = ok && bad.empty();
    return Ok();
  }

 private:
  const CopyOptions& o_;
  Db* src_;
  Conn* dst_;
  std::set<int> partitions_;
};

}  // namespace

// PostgreSQL -> SQLite: the SQLite file is created (or migrated) by the store itself, whose
// writer lock is held meanwhile; rows, chunks and rollup runs are then written directly.
Result<CopyReport> CopyToSqlite(const CopyOptions& options) {
  const std::string path = options.to.substr(std::string_view("sqlite://").size());
  StoreOptions so;
  so.url = options.to;
  auto target = OpenStore(so);
  if (!target) {
    return MakeError(target.error().code,
                     fmt::format("cannot open the target store ({}); stop `opensense serve` on it first",
                                 target.error().message));
  }
  StoreOptions from;
  from.url = options.from;
  from.writer = false;
  from.migrate = false;
  OS_ASSIGN_OR_RETURN(auto source, OpenStore(from));  // checks the schema version
  source->Close();
  OS_ASSIGN_OR_RETURN(auto sqlite_db, Db::Open(path, /*create=*/false, 5000));
  OS_ASSIGN_OR_RETURN(ConnInfo info, ParseConnInfo(options.from));
  OS_ASSIGN_OR_RETURN(auto pg, Conn::Connect(info));
  Copier copier(options, sqlite_db.get(), pg.get());
  CopyReport report;
  if (!options.verify_only) {
    for (const CopiedTable& t : kTables) OS_RETURN_IF_ERROR(copier.CopyTableToSqlite(t));
    OS_ASSIGN_OR_RETURN(report.readings_copied, copier.CopyReadingsToSqlite());
    OS_RETURN_IF_ERROR(copier.CopyRollupsToSqlite());
  }
  OS_RETURN_IF_ERROR(copier.Verify(&report));
  (*target)->Close();
  return report;
}

std::span<const CopiedTable> CopiedTables() { return kTables; }
std::span<const NotCopiedAsIs> ColumnsNotCopiedAsIs() { return kNotCopiedAsIs; }

Result<CopyReport> CopyStore(const CopyOptions& options) {
  constexpr std::string_view kSqlite = "sqlite://";
  auto is_pg = [](const std::string& u) {
    return u.rfind("postgres://", 0) == 0 || u.rfind("postgresql://", 0) == 0;
  };
  const bool to_pg = options.from.rfind(kSqlite, 0) == 0 && is_pg(options.to);
  const bool to_sqlite = is_pg(options.from) && options.to.rfind(kSqlite, 0) == 0;
  if (!to_pg && !to_sqlite) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "store copy moves an installation between SQLite and PostgreSQL: --from "
                     "sqlite:///path/opensense.db --to postgres://host:port/db, or the reverse");
  }
  if (to_sqlite) return CopyToSqlite(options);
  const std::string path = options.from.substr(kSqlite.size());
  // Holding the source's writer keeps `opensense serve` (and any other writer) away during the
  // copy; compacting first puts every reading in a chunk and in the rollups.
  StoreOptions so;
  so.url = options.from;
  so.migrate = false;
  auto source = OpenStore(so);
  if (!source) {
    return MakeError(source.error().code,
                     fmt::format("cannot open the source store for copying ({}); stop `opensense "
                                 "serve` on it first",
                                 source.error().message));
  }
  if (!options.verify_only) OS_RETURN_IF_ERROR((*source)->Compact());
  OS_ASSIGN_OR_RETURN(auto src, Db::Open(path, /*create=*/false, 5000));

  StoreOptions to;
  to.url = options.to;
  to.writer = false;  // migrates the target; the copy then uses a connection of its own
  OS_ASSIGN_OR_RETURN(auto target, OpenStore(to));
  target->Close();
  OS_ASSIGN_OR_RETURN(ConnInfo info, ParseConnInfo(options.to));
  OS_ASSIGN_OR_RETURN(auto dst, Conn::Connect(info));

  Copier copier(options, src.get(), dst.get());
  CopyReport report;
  if (!options.verify_only) {
    for (const CopiedTable& t : kTables) OS_RETURN_IF_ERROR(copier.CopyTable(t));
    OS_ASSIGN_OR_RETURN(report.readings_copied, copier.CopyReadings());
    OS_RETURN_IF_ERROR(copier.CopyRollups());
  }
  OS_RETURN_IF_ERROR(copier.Verify(&report));
  (*source)->Close();
  return report;
}

}  // namespace opensense::store::postgres
