#include "app/store_copy.hpp"

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>

#include "store/postgres/pg_copy.hpp"

namespace opensense::app {

CLI::App* AddStoreCommand(CLI::App& app, StoreCopyFlags* flags) {
  auto* store_cmd = app.add_subcommand("store", "Move an installation between stores");
  store_cmd->require_subcommand(1);
  auto* copy = store_cmd->add_subcommand(
      "copy",
      "Copy everything (organisations, devices, members, tokens, readings, rollups, alert rules, "
      "alerts and their events, notification channels and outbox, sessions, audit trail, request "
      "log) between a SQLite store and PostgreSQL, in chunks; rerun to resume; verified at the "
      "end. Stop `opensense serve` on both first");
  copy->add_option("--from", flags->from,
                   "Source store URL (sqlite:///path/opensense.db or postgres://host:port/db)")
      ->required();
  copy->add_option("--to", flags->to,
                   "Target store URL (the other kind; the PostgreSQL password comes from "
                   "OPENSENSE_STORE_PASSWORD)")
      ->required();
  copy->add_flag("--verify-only", flags->verify_only,
                 "Only compare row counts and checksums (per table, per device) of source and target");
  copy->add_flag("--json", flags->json, "Print the report as JSON");
  return copy;
}

namespace {

// One line redrawn in place on a terminal; a line per 10 % otherwise (logs, CI).
class ProgressBar {
 public:
  ProgressBar() : tty_(::isatty(2) != 0) {}
  void Show(const store::postgres::CopyProgress& p) {
    int pct = p.total > 0 ? static_cast<int>(p.done * 100 / p.total) : 100;
    if (!tty_) {
      if (p.phase != phase_ || pct / 10 != last_ / 10 || p.done == p.total) {
        if (p.phase != phase_ || pct != last_) {
          fmt::print(stderr, "{}: {} / {} ({}%)\n", p.phase, p.done, p.total, pct);
        }
      }
    } else {
      auto now = std::chrono::steady_clock::now();
      if (p.phase == phase_ && p.done != p.total && now - drawn_ < std::chrono::milliseconds(100)) return;
      drawn_ = now;
      constexpr int kWidth = 30;
      int filled = pct * kWidth / 100;
      fmt::print(stderr, "\r{:<14} [{}{}] {:>12} / {:<12} {:>3}%", p.phase, std::string(filled, '#'),
                 std::string(kWidth - filled, '.'), p.done, p.total, pct);
      if (p.done == p.total) fmt::print(stderr, "\n");
    }
    phase_ = p.phase;
    last_ = pct;
  }

 private:
  bool tty_;
  std::string phase_;
  int last_ = -1;
  std::chrono::steady_clock::time_point drawn_{};
};

}  // namespace

int RunStoreCopy(const StoreCopyFlags& flags) {
  ProgressBar bar;
  store::postgres::CopyOptions o;
  o.from = flags.from;
  o.to = flags.to;
  o.verify_only = flags.verify_only;
  o.progress = [&](const store::postgres::CopyProgress& p) { bar.Show(p); };
  auto report = store::postgres::CopyStore(o);
  if (!report) {
    if (report.error().code == ErrorCode::kInvalidArgument) {
      fmt::print(stderr, "opensense: store copy: {}\n", report.error().message);
      return 2;
    }
    fmt::print(stderr,
               "opensense: store copy stopped: {}\nNothing copied so far is lost: rerun the same "
               "command to resume.\n",
               report.error().message);
    return 1;
  }
  if (flags.json) {
    nlohmann::json tables = nlohmann::json::array();
    for (const auto& t : report->tables) {
      tables.push_back({{"table", t.table},
                        {"source", t.source},
                        {"target", t.target},
                        {"checksums_match", t.checksums_match}});
    }
    nlohmann::json j = {{"verified", report->verified},
                        {"readings_copied", report->readings_copied},
                        {"tables", tables},
                        {"mismatched_devices", report->mismatched_devices}};
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("{:<22} {:>14} {:>14}\n", "TABLE", "SOURCE", "TARGET");
    for (const auto& t : report->tables) {
      const bool same = t.source == t.target && t.checksums_match;
      fmt::print("{:<22} {:>14} {:>14}{}\n", t.table, t.source, t.target, same ? "" : "  DIFFERS");
    }
    if (!flags.verify_only) fmt::print("{} readings copied by this run\n", report->readings_copied);
  }
  if (!report->verified) {
    std::string tables, devices;
    for (const auto& t : report->tables) {
      if (t.source != t.target || !t.checksums_match) tables += (tables.empty() ? "" : ", ") + t.table;
    }
    for (auto d : report->mismatched_devices) devices += (devices.empty() ? "" : ", ") + std::to_string(d);
    fmt::print(stderr,
               "opensense: verification FAILED: the target differs from the source (tables: {}{}). "
               "Do not switch over; rerun `opensense store copy` to resume, or copy into an empty "
               "database.\n",
               tables, devices.empty() ? "" : "; devices: " + devices);
    return 1;
  }
  fmt::print(stderr, "verified: row counts and checksums of every table and device agree\n");
  return 0;
}

}  // namespace opensense::app
