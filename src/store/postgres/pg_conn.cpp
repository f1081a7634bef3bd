#include "store/postgres/pg_conn.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace opensense::store::postgres {

Param P(std::int64_t v) { return std::to_string(v); }
Param P(int v) { return std::to_string(v); }
Param P(double v) { return fmt::format("{}", v); }
Param P(std::string_view v) { return std::string(v); }
Param P(const char* v) { return std::string(v); }
Param P(bool v) { return std::string(v ? "t" : "f"); }

void AppendCopyText(std::string* out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '\\': *out += "\\\\"; break;
      case '\t': *out += "\\t"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      default: *out += c;
    }
  }
}

std::string ArrayLiteral(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

BinaryCopy::BinaryCopy() {
  static constexpr char kHeader[] = "PGCOPY\n\377\r\n\0";  // signature, then flags and extension length
  data_.append(kHeader, sizeof(kHeader) - 1);
  data_.append(8, '\0');
}

void BinaryCopy::Row(int fields) {
  ++rows_;
  data_ += static_cast<char>((fields >> 8) & 0xff);
  data_ += static_cast<char>(fields & 0xff);
}

void BinaryCopy::Float8(double v) { Field(std::bit_cast<std::uint64_t>(v)); }

std::string_view BinaryCopy::Finish() {
  if (!finished_) data_.append("\xff\xff", 2);  // a field count of -1
  finished_ = true;
  return data_;
}

PgResult& PgResult::operator=(PgResult&& o) noexcept {
  if (this != &o) {
    if (r_ != nullptr) PQclear(r_);
    r_ = o.r_;
    o.r_ = nullptr;
  }
  return *this;
}

PgResult::~PgResult() {
  if (r_ != nullptr) PQclear(r_);
}

std::int64_t PgResult::Int(int row, int col) const {
  std::string_view t = Text(row, col);
  std::int64_t v = 0;
  std::from_chars(t.data(), t.data() + t.size(), v);
  return v;
}

double PgResult::Double(int row, int col) const {
  // PostgreSQL prints float8 in the shortest form that reads back exactly.
  return std::strtod(PQgetvalue(r_, row, col), nullptr);
}

std::int64_t PgResult::Affected() const {
  const char* n = PQcmdTuples(r_);
  return n == nullptr || *n == '\0' ? 0 : std::strtoll(n, nullptr, 10);
}

Result<ConnInfo> ParseConnInfo(const std::string& url) {
  constexpr std::string_view kSchemes[] = {"postgres://", "postgresql://"};
  std::string_view rest;
  for (auto s : kSchemes) {
    if (url.rfind(s, 0) == 0) rest = std::string_view(url).substr(s.size());
  }
  if (rest.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "a PostgreSQL store URL looks like postgres://host:port/db?sslmode=require");
  }
  std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  auto at = authority.rfind('@');
  bool password_in_url = at != std::string_view::npos &&
                         authority.substr(0, at).find(':') != std::string_view::npos;
  auto q = rest.find('?');
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    while (!query.empty()) {
      std::string_view param = query.substr(0, query.find('&'));
      if (param.substr(0, param.find('=')) == "password") password_in_url = true;
      if (param.size() == query.size()) break;
      query.remove_prefix(param.size() + 1);
    }
  }
  ConnInfo info;
  info.url = url;
  if (password_in_url) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the store URL contains a password; set OPENSENSE_STORE_PASSWORD in the "
                     "environment (or the secrets file, or libpq's PGPASSFILE) instead");
  }
  if (const char* pw = std::getenv("OPENSENSE_STORE_PASSWORD"); pw != nullptr) info.password = pw;
  return info;
}

Result<std::unique_ptr<Conn>> Conn::Connect(const ConnInfo& info) {
  std::vector<const char*> keys = {"dbname", "connect_timeout", "application_name"};
  std::vector<const char*> values = {info.url.c_str(), "5", "opensense"};
  if (!info.password.empty()) {
    keys.push_back("password");
    values.push_back(info.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (c == nullptr) return MakeError(ErrorCode::kUnavailable, "out of memory connecting to PostgreSQL");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c);
    PQfinish(c);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot connect to PostgreSQL: {}; check that the server runs "
                                 "and the store URL and OPENSENSE_STORE_PASSWORD are right",
                                 msg));
  }
  auto conn = std::unique_ptr<Conn>(new Conn(c));
  // Acknowledged means committed; times are integers (ms), so the session zone does not matter.
  OS_RETURN_IF_ERROR(conn->Exec(
      "SET synchronous_commit = on; SET jit = off; SET client_min_messages = warning; "
      "SET TIME ZONE 'UTC'"));
  return conn;
}

Conn::~Conn() { PQfinish(conn_); }

Error Conn::ErrorFrom(PGresult* r, std::string_view what) {
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = r != nullptr ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
  if (msg.empty()) msg = PQerrorMessage(conn_);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  std::string_view s = state != nullptr ? state : "";
  ErrorCode code = ErrorCode::kInternal;
  if (PQstatus(conn_) != CONNECTION_OK || s.substr(0, 2) == "08" || s == "57P01" ||
      s == "57P02" || s == "57P03" || s == "53300") {
    code = ErrorCode::kUnavailable;
    poisoned_ = true;
  } else if (s == "23505") {
    code = ErrorCode::kAlreadyExists;
  } else if (s == "40001" || s == "40P01") {
    code = ErrorCode::kConflict;
  } else if (s.substr(0, 2) == "22" || s.substr(0, 2) == "23") {
    code = ErrorCode::kInvalidArgument;
  }
  std::string head(what.substr(0, 60));
  return Error{code, fmt::format("PostgreSQL: {} (in: {})", msg, head)};
}

Result<PgResult> Conn::Exec(std::string_view sql, const std::vector<Param>& params) {
  std::string text(sql);
  PGresult* r;
  if (params.empty()) {
    r = PQexec(conn_, text.c_str());
  } else {
    std::vector<const char*> values(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      values[i] = params[i] ? params[i]->c_str() : nullptr;
    }
    r = PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr, values.data(),
                     nullptr, nullptr, 0);
  }
  PgResult res(r);
  ExecStatusType st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return tl::unexpected(ErrorFrom(r, sql));
  return res;
}

Result<std::vector<PgResult>> Conn::ExecScript(std::string_view sql) {
  std::string text(sql);
  if (PQsendQuery(conn_, text.c_str()) != 1) return tl::unexpected(ErrorFrom(nullptr, sql));
  std::vector<PgResult> out;
  std::optional<Error> error;
  while (PGresult* r = PQgetResult(conn_)) {
    PgResult res(r);
    const ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      if (!error) error = ErrorFrom(r, sql);
      continue;  // read to the end: the connection is then ready for the next query
    }
    out.push_back(std::move(res));
  }
  if (error) return tl::unexpected(*error);
  return out;
}

Result<PgResult> Conn::CopyScript(std::string_view sql, std::string_view data) {
  std::string text(sql);
  if (PQsendQuery(conn_, text.c_str()) != 1) return tl::unexpected(ErrorFrom(nullptr, sql));
  std::optional<Error> error;
  PgResult last;
  bool copying = false;
  auto take = [&](PGresult* r) {
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      last = PgResult(r);
    } else {
      if (!error) error = ErrorFrom(r, sql);
      PQclear(r);
    }
  };
  // The statements before the COPY; an error there skips the rest of the script.
  while (PGresult* r = PQgetResult(conn_)) {
    if (PQresultStatus(r) == PGRES_COPY_IN) {
      PQclear(r);
      copying = true;
      break;
    }
    take(r);
  }
  if (copying) {
    constexpr std::size_t kPiece = 1 << 20;
    bool ok = true;
    for (std::size_t off = 0; ok && off < data.size(); off += kPiece) {
      std::size_t n = std::min(kPiece, data.size() - off);
      ok = PQputCopyData(conn_, data.data() + off, static_cast<int>(n)) == 1;
    }
    if (PQputCopyEnd(conn_, ok ? nullptr : "client error") != 1) ok = false;
    // The COPY's own result, then those of the statements after it.
    while (PGresult* r = PQgetResult(conn_)) take(r);
    if (!ok && !error) error = ErrorFrom(nullptr, sql);
  } else if (!error) {
    error = Error{ErrorCode::kInternal, fmt::format("no COPY FROM STDIN in: {}", sql.substr(0, 60))};
  }
  if (error) return tl::unexpected(*error);
  return last;
}

void Conn::Rollback() {
  if (PQstatus(conn_) != CONNECTION_OK) return;
  if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
  PGresult* r = PQexec(conn_, "ROLLBACK");
  if (r != nullptr) PQclear(r);
}

Pool::Lease::~Lease() {
  if (!conn_ || pool_ == nullptr) return;
  if (conn_->Poisoned()) return;
  conn_->Rollback();
  std::lock_guard lock(pool_->mu_);
  if (pool_->idle_.size() < pool_->max_idle_) pool_->idle_.push_back(std::move(conn_));
}

Result<Pool::Lease> Pool::Acquire() {
  {
    std::lock_guard lock(mu_);
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (!c->Poisoned()) return Lease(this, std::move(c));
    }
  }
  OS_ASSIGN_OR_RETURN(auto c, Conn::Connect(info_));
  return Lease(this, std::move(c));
}

void Pool::Clear() {
  std::lock_guard lock(mu_);
  idle_.clear();
}

}  // namespace opensense::store::postgres
