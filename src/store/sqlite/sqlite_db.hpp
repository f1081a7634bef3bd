// Thin RAII wrapper over the SQLite C API, private to the store module.
// A Db is used by one thread at a time; statements are prepared once and cached per Db.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/result.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace opensense::store::sqlite {

class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&& o) noexcept : stmt_(o.stmt_) { o.stmt_ = nullptr; }
  ~Stmt();

  // Binding (1-based indexes). Returns *this for chaining.
  Stmt& Bind(int index, std::int64_t v);
  Stmt& Bind(int index, int v) { return Bind(index, static_cast<std::int64_t>(v)); }
  Stmt& Bind(int index, double v);
  Stmt& Bind(int index, std::string_view text);
  Stmt& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  Stmt& BindBlob(int index, std::string_view blob);
  Stmt& BindNull(int index);

  // Steps once: true when a row is available, false when done; an error otherwise.
  Result<bool> Step();
  // Steps to completion (for statements that return no rows).
  Status Run();
  // Resets for reuse and clears bindings.
  void Reset();

  std::int64_t Int(int col) const;
  double Double(int col) const;
  std::string Text(int col) const;
  std::string_view Blob(int col) const;  // valid until the next Step/Reset
  bool IsNull(int col) const;
  // A REAL value: Text() would print it with 15 significant digits only; Double() is exact.
  bool IsReal(int col) const;

  sqlite3_stmt* raw() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class Db {
 public:
  // Opens (creating if asked) the database file at `path`.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, bool create, int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status Exec(std::string_view sql);
  // A cached prepared statement, reset and ready to bind. The reference stays valid for the
  // lifetime of the Db; do not use the same statement twice at once.
  Result<Stmt*> Prepare(const char* sql);
  // A fresh statement owned by the caller (for dynamic SQL).
  Result<Stmt> PrepareOnce(std::string_view sql);

  std::int64_t LastInsertRowid() const;
  int Changes() const;
  const std::string& path() const { return path_; }
  sqlite3* raw() const { return db_; }

  // Maps the current SQLite error to an Error with context.
  Error LastError(std::string_view context) const;

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  std::unordered_map<const char*, std::unique_ptr<Stmt>> cache_;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless Commit() succeeded.
class Transaction {
 public:
  static Result<Transaction> Begin(Db* db);
  Transaction(Transaction&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Transaction(const Transaction&) = delete;
  ~Transaction();
  Status Commit();

 private:
  explicit Transaction(Db* db) : db_(db) {}
  Db* db_;
};

}  // namespace opensense::store::sqlite
