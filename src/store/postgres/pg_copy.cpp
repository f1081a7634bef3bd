#include "store/postgres/pg_copy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "core/chunk_codec.hpp"
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
    {"api_requests", "id, at, org_id, principal, method, route, status, duration_us, client", true},
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

Result<CopyReport> CopyStore(const CopyOptions& options) {
  constexpr std::string_view kSqlite = "sqlite://";
  if (options.from.rfind(kSqlite, 0) != 0 ||
      (options.to.rfind("postgres://", 0) != 0 && options.to.rfind("postgresql://", 0) != 0)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "store copy moves an installation from SQLite to PostgreSQL: --from "
                     "sqlite:///path/opensense.db --to postgres://host:port/db");
  }
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
