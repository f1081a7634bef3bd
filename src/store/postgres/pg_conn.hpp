// A thin libpq wrapper for the PostgreSQL store: one connection with text-parameter queries and
// COPY, results as RAII objects, errors as Result (connection trouble is kUnavailable), and a
// small pool of reusable connections (a new backend pays ~0.5 s on its first query here, so
// connections are kept).
//
// Threads: a Conn is used by one thread at a time; the Pool may be used from any thread.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace opensense::store::postgres {

// One query parameter in text form; nullopt is SQL NULL.
using Param = std::optional<std::string>;
Param P(std::int64_t v);
Param P(int v);
Param P(double v);
Param P(std::string_view v);
Param P(const char* v);
Param P(bool v);
template <typename T>
Param P(const std::optional<T>& v) {
  return v ? P(*v) : std::nullopt;
}
// Appends `s` escaped for COPY's text format (backslash, tab, newline, carriage return).
void AppendCopyText(std::string* out, std::string_view s);
// A bigint[] literal: {1,2,3}.
std::string ArrayLiteral(const std::vector<std::int64_t>& values);

// Input for `COPY ... FROM STDIN WITH (FORMAT binary)`: the header, then each row as its field
// count and the fields in the table's column types (network byte order), then the trailer.
// The server parses no text. Used by one thread at a time, like Conn.
class BinaryCopy {
 public:
  BinaryCopy();
  void Row(int fields);
  void Int2(std::int16_t v) { Field(static_cast<std::uint16_t>(v)); }
  void Int4(std::int32_t v) { Field(static_cast<std::uint32_t>(v)); }
  void Int8(std::int64_t v) { Field(static_cast<std::uint64_t>(v)); }
  void Float8(double v);
  std::size_t rows() const { return rows_; }
  // The whole input (the trailer appended on the first call).
  std::string_view Finish();

 private:
  template <typename U>
  void Field(U v) {  // length, then the value big-endian
    char buf[4 + sizeof(U)] = {0, 0, 0, static_cast<char>(sizeof(U))};
    for (std::size_t i = 0; i < sizeof(U); ++i) {
      buf[4 + i] = static_cast<char>((v >> (8 * (sizeof(U) - 1 - i))) & 0xff);
    }
    data_.append(buf, sizeof(buf));
  }
  std::string data_;
  std::size_t rows_ = 0;
  bool finished_ = false;
};

class PgResult {
 public:
  explicit PgResult(PGresult* r = nullptr) : r_(r) {}
  PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PgResult& operator=(PgResult&& o) noexcept;
  ~PgResult();
  int Rows() const { return r_ ? PQntuples(r_) : 0; }
  bool IsNull(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string_view Text(int row, int col) const {
    return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
  }
  std::int64_t Int(int row, int col) const;
  double Double(int row, int col) const;
  bool Bool(int row, int col) const { return Text(row, col) == "t"; }
  // The column's type (pg_type.oid: 16 boolean, 701 double precision, ...).
  Oid TypeOid(int col) const { return PQftype(r_, col); }
  std::optional<std::int64_t> OptInt(int row, int col) const {
    if (IsNull(row, col)) return std::nullopt;
    return Int(row, col);
  }
  std::int64_t Affected() const;  // rows changed by INSERT/UPDATE/DELETE

 private:
  PGresult* r_;
};

struct ConnInfo {
  std::string url;       // postgres://host:port/db?sslmode=...
  std::string password;  // from OPENSENSE_STORE_PASSWORD; empty: libpq's own (PGPASSFILE)
};

// The URL checked for what OpenSense refuses (a password in it) and the password from the
// environment.
Result<ConnInfo> ParseConnInfo(const std::string& url);

class Conn {
 public:
  static Result<std::unique_ptr<Conn>> Connect(const ConnInfo& info);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  Result<PgResult> Exec(std::string_view sql, const std::vector<Param>& params = {});
  // Statements without parameters sent as one script (one round trip); each one's result.
  // The first error skips the rest of the script and is what is returned.
  Result<std::vector<PgResult>> ExecScript(std::string_view sql);
  // A script with one `COPY ... FROM STDIN` among its statements, fed `data` (text format, or
  // what BinaryCopy::Finish gives for `WITH (FORMAT binary)`): two round trips in all, however
  // many statements stand before and after the COPY. Returns the last statement's result.
  Result<PgResult> CopyScript(std::string_view sql, std::string_view data);
  Status CopyIn(std::string_view copy_sql, std::string_view data) {
    return CopyScript(copy_sql, data).map([](PgResult&&) {});
  }
  Status Begin() { return Exec("BEGIN").map([](PgResult&&) {}); }
  Status Commit() { return Exec("COMMIT").map([](PgResult&&) {}); }
  void Rollback();
  bool Ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  // Marks the connection as unusable (the pool drops it).
  void Poison() { poisoned_ = true; }
  bool Poisoned() const { return poisoned_ || !Ok(); }

 private:
  explicit Conn(PGconn* c) : conn_(c) {}
  Error ErrorFrom(PGresult* r, std::string_view what);
  PGconn* conn_;
  bool poisoned_ = false;
};

// Reusable connections. Acquire() hands out an idle one or opens a new one; a lease returns it
// on destruction unless it went bad.
class Pool {
 public:
  Pool(ConnInfo info, std::size_t max_idle) : info_(std::move(info)), max_idle_(max_idle) {}
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Conn> c) : pool_(pool), conn_(std::move(c)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = default;
    ~Lease();
    Conn* operator->() { return conn_.get(); }
    Conn* get() { return conn_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<Conn> conn_;
  };
  Result<Lease> Acquire();
  const ConnInfo& info() const { return info_; }
  void Clear();

 private:
  ConnInfo info_;
  std::size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_;
};

}  // namespace opensense::store::postgres
