// Test helpers shared by the store tests: scratch directories and the list of backends that
// the conformance suite runs against.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "store/postgres/pg_store.hpp"
#include "store/store.hpp"

namespace opensense::store {

// A fresh directory under the system temp dir, removed with everything in it.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag) {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("opensense-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

struct Backend {
  std::string name;
  std::function<StoreOptions(const std::string& dir)> options;
};

inline void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

// The PostgreSQL cluster of this test run (scripts/pg-fixture.sh, the CTest fixture
// `postgres`): its admin URL, with OPENSENSE_STORE_PASSWORD set from the fixture. nullopt when
// the tests run outside CTest (no fixture): the postgres backend is then skipped, loudly.
inline std::optional<std::string> TestPostgresUrl() {
  const char* state = std::getenv("OPENSENSE_TEST_PG_STATE");
  std::ifstream url_file(std::string(state != nullptr ? state : "") + "/url");
  std::string url;
  if (state == nullptr || !std::getline(url_file, url) || url.empty()) {
    static bool warned = false;
    if (!warned) {
      std::fprintf(stderr,
                   "NOTE: no PostgreSQL test cluster (OPENSENSE_TEST_PG_STATE/url is absent): the "
                   "postgres backend is skipped. Run the tests through ctest to include it.\n");
      warned = true;
    }
    return std::nullopt;
  }
  std::ifstream pw_file(std::string(state) + "/password");
  std::string password;
  std::getline(pw_file, password);
  ::setenv("OPENSENSE_STORE_PASSWORD", password.c_str(), 1);
  return url;
}

// A fresh database on the test cluster, named after `dir` (unique per test).
inline std::string FreshPostgresDatabase(const std::string& admin_url, const std::string& dir) {
  std::string name = "t_";
  for (char c : std::filesystem::path(dir).filename().string()) {
    name += (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';
  }
  name = name.substr(0, 60);
  auto url = postgres::CreateDatabase(admin_url, name);
  if (!url) {
    std::fprintf(stderr, "cannot create test database %s: %s\n", name.c_str(),
                 url.error().message.c_str());
    return "postgres://127.0.0.1:1/unreachable";
  }
  return *url;
}

inline std::vector<Backend> Backends() {
  std::vector<Backend> out = {Backend{"sqlite", [](const std::string& dir) {
                                        StoreOptions o;
                                        o.url = "sqlite://" + dir + "/opensense.db";
                                        return o;
                                      }}};
  // Listed whenever gtest lists tests (CTest discovers them at build time, before the fixture
  // runs); run only when the fixture's cluster is there.
  auto admin = TestPostgresUrl();
  if (admin || GTEST_FLAG_GET(list_tests)) {
    out.push_back(Backend{"postgres", [admin = admin.value_or("")](const std::string& dir) {
                            StoreOptions o;
                            o.url = FreshPostgresDatabase(admin, dir);
                            return o;
                          }});
  }
  return out;
}

}  // namespace opensense::store
