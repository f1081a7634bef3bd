// Helpers shared by the load drivers in bench/: a tiny SQLite wrapper for the bare baselines and
// for inspecting files, temp directories, timing and number formatting. Not part of any module.
#pragma once

#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <semaphore>
#include <thread>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "store/store.hpp"

namespace opensense::bench {

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// User + system CPU seconds of the whole process so far.
inline double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// Bytes this process handed to write()/pwrite() so far (the "wchar" line of /proc/self/io):
// WAL frames, checkpoint copies and file extensions alike. -1 when unavailable.
inline std::int64_t ProcessWrittenBytes() {
  std::FILE* f = std::fopen("/proc/self/io", "r");
  if (f == nullptr) return -1;
  char line[128];
  std::int64_t v = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    long long x = 0;
    if (std::sscanf(line, "wchar: %lld", &x) == 1) v = x;
  }
  std::fclose(f);
  return v;
}

// "1,234,567"
inline std::string Thousands(std::int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  int n = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (n > 0 && n % 3 == 0) out.push_back(',');
    out.push_back(*it);
    ++n;
  }
  if (v < 0) out.push_back('-');
  return {out.rbegin(), out.rend()};
}

// "912k", "1.45M" (rates)
inline std::string Rate(double v) {
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The p-th percentile (nearest rank) of `v`; 0 when empty.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// "21.37", "-0.05": hundredths as a decimal with two places (line protocol bodies).
inline void AppendCents(std::string& out, std::int32_t c) {
  if (c < 0) {
    out.push_back('-');
    c = -c;
  }
  out += std::to_string(c / 100);
  out.push_back('.');
  out.push_back(static_cast<char>('0' + (c % 100) / 10));
  out.push_back(static_cast<char>('0' + c % 10));
}

// A directory under `parent` removed (with its content) when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& parent, std::string_view prefix = "opensense-bench-") {
    std::string tmpl = fmt::format("{}/{}XXXXXX", parent, prefix);
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed under " + parent);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::int64_t FileBytes(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<std::int64_t>(n);
}

// Minimal SQLite access for the baselines and for looking at a closed store's file.
class Sql {
 public:
  explicit Sql(const std::string& path, bool read_only = false) {
    int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close_v2(db_);
      throw std::runtime_error(fmt::format("cannot open {}: {}", path, msg));
    }
  }
  ~Sql() {
    for (auto* s : stmts_) sqlite3_finalize(s);
    sqlite3_close_v2(db_);
  }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;

  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(fmt::format("sqlite: {} (in: {})", msg, sql));
    }
  }
  // Prepared statement owned by this object.
  sqlite3_stmt* Prepare(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(fmt::format("sqlite: {} (in: {})", sqlite3_errmsg(db_), sql));
    }
    stmts_.push_back(s);
    return s;
  }
  void Step(sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
      throw std::runtime_error(fmt::format("sqlite: {} (in: {})", sqlite3_errmsg(db_), sqlite3_sql(s)));
    }
    sqlite3_reset(s);
  }
  // Every row of a query as text cells.
  std::vector<std::vector<std::string>> Rows(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      throw std::runtime_error(fmt::format("sqlite: {} (in: {})", sqlite3_errmsg(db_), sql));
    }
    std::vector<std::vector<std::string>> out;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        const auto* p = sqlite3_column_text(s, i);
        row.emplace_back(p == nullptr ? "" : reinterpret_cast<const char*>(p));
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) throw std::runtime_error(fmt::format("sqlite: {} (in: {})", sqlite3_errmsg(db_), sql));
    return out;
  }
  std::int64_t Int(const std::string& sql) {
    auto rows = Rows(sql);
    if (rows.empty() || rows[0].empty() || rows[0][0].empty()) return 0;
    return std::stoll(rows[0][0]);
  }
  bool HasCompileOption(std::string_view opt) {
    for (const auto& r : Rows("PRAGMA compile_options")) {
      if (!r.empty() && r[0] == opt) return true;
    }
    return false;
  }
  sqlite3* raw() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
  std::vector<sqlite3_stmt*> stmts_;
};

// Where the pages of a closed database file go: one entry per table or index (dbstat).
struct PageUse {
  std::string name;
  std::int64_t bytes = 0;    // pages x page size
  std::int64_t payload = 0;  // bytes of row content in those pages
};
struct FileUse {
  bool dbstat = false;  // false: only page_count/freelist figures are available
  std::int64_t file_bytes = 0;
  std::int64_t page_size = 0;
  std::int64_t page_count = 0;
  std::int64_t freelist = 0;
  std::vector<PageUse> objects;  // largest first
  std::int64_t BytesOf(std::string_view name) const {
    for (const auto& o : objects) {
      if (o.name == name) return o.bytes;
    }
    return 0;
  }
};

inline FileUse InspectFile(const std::string& path) {
  FileUse u;
  u.file_bytes = FileBytes(path);
  Sql db(path, /*read_only=*/true);
  u.page_size = db.Int("PRAGMA page_size");
  u.page_count = db.Int("PRAGMA page_count");
  u.freelist = db.Int("PRAGMA freelist_count");
  u.dbstat = db.HasCompileOption("ENABLE_DBSTAT_VTAB");
  if (u.dbstat) {
    for (const auto& r : db.Rows("SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name "
                                 "ORDER BY 2 DESC")) {
      u.objects.push_back({r[0], std::stoll(r[1]), std::stoll(r[2])});
    }
  }
  return u;
}

// A throwaway PostgreSQL 15 cluster (scripts/pg-fixture.sh under `source_dir`: 127.0.0.1, a temp
// directory), stopped and deleted when this dies. Sets OPENSENSE_STORE_PASSWORD for the store.
class PgFixtureCluster {
 public:
  PgFixtureCluster(const std::string& source_dir, std::string_view tag)
      : script_(source_dir + "/scripts/pg-fixture.sh"),
        state_((std::filesystem::temp_directory_path() / fmt::format("{}_cluster_{}", tag, ::getpid())).string()) {
    if (std::system((script_ + " start " + state_ + " >&2").c_str()) != 0) {
      throw std::runtime_error("could not start a PostgreSQL cluster");
    }
    std::ifstream u(state_ + "/url"), p(state_ + "/password"), d(state_ + "/datadir");
    std::string pw;
    std::getline(u, url_);
    std::getline(p, pw);
    std::getline(d, datadir_);
    ::setenv("OPENSENSE_STORE_PASSWORD", pw.c_str(), 1);
  }
  ~PgFixtureCluster() {
    (void)std::system((script_ + " stop " + state_).c_str());
    std::error_code ec;
    std::filesystem::remove_all(state_, ec);
  }
  PgFixtureCluster(const PgFixtureCluster&) = delete;
  PgFixtureCluster& operator=(const PgFixtureCluster&) = delete;
  const std::string& url() const { return url_; }  // the admin URL
  const std::string& datadir() const { return datadir_; }

 private:
  std::string script_, state_, url_, datadir_;
};

// Keeps up to `inflight` batches outstanding against a store, as concurrent clients would: one
// producer calls Submit; a waiter thread takes completions in FIFO order (the writer commits in
// order) and calls `on_done(index, result)` on its own thread. Finish() waits for the last one.
class InFlightSubmitter {
 public:
  using OnDone = std::function<void(std::size_t index, const Result<IngestResult>& result)>;
  InFlightSubmitter(store::Store* store, OrgId org, std::size_t inflight, std::size_t total, OnDone on_done)
      : store_(store), org_(org), slots_(static_cast<std::ptrdiff_t>(inflight)), total_(total),
        on_done_(std::move(on_done)), waiter_([this] { Wait(); }) {}
  ~InFlightSubmitter() { Finish(); }

  void Submit(std::vector<Reading> batch) {
    slots_.acquire();
    auto f = store_->Ingest(org_, std::move(batch));
    {
      std::lock_guard lock(mu_);
      pending_.push_back(std::move(f));
    }
    cv_.notify_one();
  }
  void Finish() {
    if (waiter_.joinable()) waiter_.join();
  }

 private:
  void Wait() {
    for (std::size_t i = 0; i < total_; ++i) {
      std::future<Result<IngestResult>> f;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !pending_.empty(); });
        f = std::move(pending_.front());
        pending_.pop_front();
      }
      on_done_(i, f.get());
      slots_.release();
    }
  }
  store::Store* store_;
  OrgId org_;
  std::counting_semaphore<4096> slots_;
  std::size_t total_;
  OnDone on_done_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::future<Result<IngestResult>>> pending_;
  std::thread waiter_;  // last: starts after everything it uses
};

}  // namespace opensense::bench
