#include "store/postgres/pg_copy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <span>
#include <bit>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "core/chunk_codec.hpp"
#include "core/rollup.hpp"
#include "core/rollup_codec.hpp"
#include "store/postgres/pg_conn.hpp"
#include "store/postgres/pg_schema.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/sqlite/sqlite_db.hpp"
#include "store/store.hpp"

namespace opensense::store::postgres {

namespace {

using sqlite::Db;

// The metadata tables, in foreign-key order, with the columns both schemas share.
struct TableSpec {
  const char* name;
  const char* columns;
  bool has_id;  // ordered and resumed by `id`; otherwise copied whole
};
constexpr TableSpec kTables[] = {
    {"organizations", "id, name, time_zone, tier, created_at", true},
    {"sites", "id, org_id, name, created_at, auto_register", true},
    {"devices", "id, org_id, site_id, name, serial, decommissioned_at, created_at", true},
    {"users", "id, org_id, email, role, created_at", true},
    {"tokens",
     "id, public_id, kind, org_id, device_id, site_id, user_id, role, secret_hash, label, "
     "created_at, expires_at, last_used_at",
     true},
    {"retention_overrides", "org_id, data_class, unit, amount", false},
    {"series", "id, device_id, metric, unit", true},
    {"alert_events", "id, org_id, alert_id, device_id, kind, at, actor, note, details", true},
    {"api_requests", "id, at, org_id, principal, method, route, status, duration_us, client, request_id",
     true},
};
constexpr std::int64_t kMetadataChunk = 5'000;

// An order-free checksum of a series' readings: equal sets give equal sums.
std::uint64_t ReadingHash(TimestampMs ts, double value) {
  std::uint64_t x = static_cast<std::uint64_t>(ts) * 0x9E3779B97F4A7C15ull ^ std::bit_cast<std::uint64_t>(value);
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct SeriesSum {
  std::int64_t count = 0;
  std::uint64_t hash = 0;
  bool operator==(const SeriesSum&) const = default;
};

class Copier {
 public:
  Copier(const CopyOptions& o, Db* src, Conn* dst) : o_(o), src_(src), dst_(dst) {}

  void Progress(const std::string& phase, std::int64_t done, std::int64_t total) {
    if (o_.progress) o_.progress({phase, done, total});
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

  Status CopyTable(const TableSpec& t) {
    const int ncols = static_cast<int>(std::count(t.columns, t.columns + std::strlen(t.columns), ',')) + 1;
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
      std::string sql = t.has_id ? fmt::format("SELECT {} FROM {} WHERE id>{} ORDER BY id LIMIT {}",
                                               t.columns, t.name, after, kMetadataChunk)
                                 : fmt::format("SELECT {} FROM {}", t.columns, t.name);
      OS_ASSIGN_OR_RETURN(sqlite::Stmt s, src_->PrepareOnce(sql));
      std::string data;
      std::int64_t rows = 0;
      while (true) {
        OS_ASSIGN_OR_RETURN(bool row, s.Step());
        if (!row) break;
        for (int c = 0; c < ncols; ++c) {
          if (c > 0) data += '\t';
          if (s.IsNull(c)) data += "\\N";
          else AppendCopyText(&data, s.Text(c));
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
      if (!t.has_id || rows < kMetadataChunk) break;
    }
    if (t.has_id) {
      // New rows made in PostgreSQL later get ids after the copied ones.
      OS_RETURN_IF_ERROR(dst_->Exec(fmt::format(
          "SELECT setval(pg_get_serial_sequence('{0}', 'id'), greatest((SELECT max(id) FROM {0}), 1))",
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

  Status SqliteTxn(const std::function<Status()>& body, const char* what) {
    OS_RETURN_IF_ERROR(src_->Exec("BEGIN IMMEDIATE"));
    Status st = body();
    if (st) st = src_->Exec("COMMIT");
    if (!st) {
      (void)src_->Exec("ROLLBACK");
      return MakeError(st.error().code, fmt::format("copying {}: {}", what, st.error().message));
    }
    return Ok();
  }

  Status CopyTableToSqlite(const TableSpec& t) {
    const std::string cols = t.columns;
    const int ncols = static_cast<int>(std::count(cols.begin(), cols.end(), ',')) + 1;
    OS_ASSIGN_OR_RETURN(std::int64_t total, TargetCount(fmt::format("SELECT count(*) FROM {}", t.name)));
    std::int64_t after = 0, done = 0;
    if (t.has_id) {
      OS_ASSIGN_OR_RETURN(after, SourceCount(fmt::format("SELECT coalesce(max(id), 0) FROM {}", t.name)));
      OS_ASSIGN_OR_RETURN(done, TargetCount(fmt::format("SELECT count(*) FROM {} WHERE id<=$1", t.name), {P(after)}));
    }
    std::string marks;
    for (int c = 0; c < ncols; ++c) marks += c == 0 ? "?" : ",?";
    const std::string insert = fmt::format("INSERT OR IGNORE INTO {}({}) VALUES({})", t.name, cols, marks);
    // Booleans come back from PostgreSQL as t/f; SQLite keeps 1/0 (sites.auto_register).
    int bool_col = -1;
    if (auto at = cols.find("auto_register"); at != std::string::npos) {
      bool_col = static_cast<int>(std::count(cols.begin(), cols.begin() + static_cast<std::ptrdiff_t>(at), ','));
    }
    const std::string select =
        t.has_id ? fmt::format("SELECT {} FROM {} WHERE id>$1 ORDER BY id LIMIT {}", cols, t.name, kMetadataChunk)
                 : fmt::format("SELECT {} FROM {}", cols, t.name);
    Progress(t.name, done, total);
    while (true) {
      OS_ASSIGN_OR_RETURN(PgResult r, t.has_id ? dst_->Exec(select, {P(after)}) : dst_->Exec(select));
      if (r.Rows() == 0) break;
      OS_RETURN_IF_ERROR(SqliteTxn([&]() -> Status {
        OS_ASSIGN_OR_RETURN(sqlite::Stmt ins, src_->PrepareOnce(insert));
        for (int i = 0; i < r.Rows(); ++i) {
          for (int c = 0; c < ncols; ++c) {
            if (r.IsNull(i, c)) {
              ins.BindNull(c + 1);
            } else if (c == bool_col) {
              ins.Bind(c + 1, static_cast<std::int64_t>(r.Bool(i, c)));
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
      if (!t.has_id || r.Rows() < kMetadataChunk) break;
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

  Status CopyRollupsToSqlite() {
    // The SQLite store keeps runs of buckets in fixed windows per level (sqlite_store.cpp:
    // 4 hours of 5m buckets, 2 days of 1h, 48 days of 1d).
    constexpr TimestampMs kPeriod[3] = {4 * kMsPerHour, 2 * kMsPerDay, 48 * kMsPerDay};
    OS_ASSIGN_OR_RETURN(std::int64_t total, TargetCount("SELECT count(*) FROM rollups"));
    OS_ASSIGN_OR_RETURN(auto series, SeriesIds());
    std::int64_t done = 0;
    for (std::int64_t sid : series) {
      OS_ASSIGN_OR_RETURN(PgResult r, dst_->Exec(
          "SELECT level, bucket, count, min, max, first_ts, last_ts, scale, scaled_sum, double_sum "
          "FROM rollups WHERE series_id=$1 ORDER BY level, bucket",
          {P(sid)}));
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
        for (int i = 0; i < r.Rows(); ++i) {
          int lv = static_cast<int>(r.Int(i, 0));
          TimestampMs bucket = r.Int(i, 1);
          TimestampMs p = FloorTo(bucket, kPeriod[std::clamp(lv, 0, 2)]);
          if (lv != level || p != period) {
            OS_RETURN_IF_ERROR(flush());
            level = lv;
            period = p;
          }
          RollupAgg a;
          a.count = r.Int(i, 2);
          a.min = r.Double(i, 3);
          a.max = r.Double(i, 4);
          a.first_ts = r.Int(i, 5);
          a.last_ts = r.Int(i, 6);
          a.scale = static_cast<int>(r.Int(i, 7));
          a.scaled_sum = r.Int(i, 8);
          a.double_sum = r.Double(i, 9);
          run.push_back({bucket, a});
        }
        return flush();
      }, "rollups"));
      done += r.Rows();
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

  Status Verify(CopyReport* report) {
    report->tables.clear();
    report->mismatched_devices.clear();
    bool ok = true;
    for (const TableSpec& t : kTables) {
      TableCheck c{t.name, 0, 0};
      OS_ASSIGN_OR_RETURN(c.source, SourceCount(fmt::format("SELECT count(*) FROM {}", t.name)));
      OS_ASSIGN_OR_RETURN(c.target, TargetCount(fmt::format("SELECT count(*) FROM {}", t.name)));
      ok = ok && c.source == c.target;
      report->tables.push_back(c);
    }
    TableCheck readings{"readings", 0, 0}, rollups{"rollups", 0, 0};
    OS_ASSIGN_OR_RETURN(readings.source, SourceCount("SELECT coalesce(sum(count), 0) FROM chunks"));
    OS_ASSIGN_OR_RETURN(readings.target, TargetCount("SELECT count(*) FROM readings"));
    OS_ASSIGN_OR_RETURN(rollups.source, SourceCount("SELECT coalesce(sum(buckets), 0) FROM rollups"));
    OS_ASSIGN_OR_RETURN(rollups.target, TargetCount("SELECT count(*) FROM rollups"));
    ok = ok && readings.source == readings.target && rollups.source == rollups.target;
    report->tables.push_back(readings);
    report->tables.push_back(rollups);
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
      SeriesSum a, b;
      for (const Sample& x : src) {
        ++a.count;
        a.hash += ReadingHash(x.ts, x.value);
      }
      OS_ASSIGN_OR_RETURN(PgResult r, dst_->Exec("SELECT ts, value FROM readings WHERE series_id=$1", {P(sid)}));
      for (int i = 0; i < r.Rows(); ++i) {
        ++b.count;
        b.hash += ReadingHash(r.Int(i, 0), r.Double(i, 1));
      }
      if (!(a == b)) bad.insert(device);
      Progress("verify", ++n, static_cast<std::int64_t>(series.size()));
    }
    report->mismatched_devices.assign(bad.begin(), bad.end());
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
    for (const TableSpec& t : kTables) OS_RETURN_IF_ERROR(copier.CopyTableToSqlite(t));
    OS_ASSIGN_OR_RETURN(report.readings_copied, copier.CopyReadingsToSqlite());
    OS_RETURN_IF_ERROR(copier.CopyRollupsToSqlite());
  }
  OS_RETURN_IF_ERROR(copier.Verify(&report));
  (*target)->Close();
  return report;
}

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
    for (const TableSpec& t : kTables) OS_RETURN_IF_ERROR(copier.CopyTable(t));
    OS_ASSIGN_OR_RETURN(report.readings_copied, copier.CopyReadings());
    OS_RETURN_IF_ERROR(copier.CopyRollups());
  }
  OS_RETURN_IF_ERROR(copier.Verify(&report));
  (*source)->Close();
  return report;
}

}  // namespace opensense::store::postgres
