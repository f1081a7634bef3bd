// Test helpers shared by the store tests: scratch directories and the list of backends that
// the conformance suite runs against.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

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

inline std::vector<Backend> Backends() {
  return {Backend{"sqlite", [](const std::string& dir) {
                    StoreOptions o;
                    o.url = "sqlite://" + dir + "/opensense.db";
                    return o;
                  }}};
}

}  // namespace opensense::store
