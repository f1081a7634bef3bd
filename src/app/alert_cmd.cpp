#include "app/alert_cmd.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace opensense::app {
namespace {

using nlohmann::json;

std::string Text(const json& a, const char* key) {
  auto it = a.find(key);
  if (it == a.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : NumberText(*it);
}

// `: "the note"`, or nothing without a note.
std::string Note(const json& a, const char* key) {
  const std::string note = a.value(key, "");
  return note.empty() ? "" : ": " + json(note).dump();
}

void PrintAlert(const json& a) {
  fmt::print("alert {}: {}, {} (rule {} '{}', device {}){}\n", Text(a, "id"), Text(a, "state"), Text(a, "severity"),
             Text(a, "rule"), Text(a, "rule_name"), Text(a, "device"), a.value("late", false) ? ", found late" : "");
  fmt::print("  {} {} (peak {} at {}), out of range {} s\n", Text(a, "metric"), Text(a, "value"), Text(a, "peak"),
             Text(a, "peak_at"), Text(a, "out_of_range_seconds"));
  fmt::print("  started {}, fired {}\n", Text(a, "started_at"), Text(a, "fired_at"));
  if (a.value("acknowledged", false)) {
    fmt::print("  acknowledged {} by {}{}\n", Text(a, "acknowledged_at"), Text(a, "acknowledged_by"),
               Note(a, "ack_note"));
  }
  if (a.contains("resolved_at") && !a["resolved_at"].is_null()) {
    fmt::print("  resolved {} by {}{}\n", Text(a, "resolved_at"), Text(a, "resolved_by"), Note(a, "resolve_note"));
  }
}

}  // namespace

AlertCommands AddAlertCommand(CLI::App& app, AlertFlags* f) {
  AlertCommands c;
  c.root = app.add_subcommand("alert", "Alerts of the token's organisation, through the running server's API");
  c.root->require_subcommand(1);
  c.list = c.root->add_subcommand("list", "List alerts, newest first");
  c.show = c.root->add_subcommand("show", "Show one alert and its events (fired, escalated, acknowledged, ...)");
  c.ack = c.root->add_subcommand("ack", "Acknowledge an alert (member role)");
  c.resolve = c.root->add_subcommand("resolve", "Resolve an alert by hand (admin role, with a note)");
  for (auto* cmd : c.all()) AddApiClientFlags(cmd, &f->client);
  for (auto* cmd : {c.show, c.ack, c.resolve}) cmd->add_option("id", f->id, "Alert id")->required();
  c.ack->add_option("--note", f->note, "The corrective action (required when the rule says so)");
  c.resolve->add_option("--note", f->note, "Why it is resolved")->required();
  c.list->add_option("--state", f->state, "firing, acknowledged, resolved or open (firing or acknowledged)");
  c.list->add_option("--device", f->device, "Only this device's")->type_name("ID");
  c.list->add_option("--rule", f->rule, "Only this rule's")->type_name("ID");
  c.list->add_option("--from", f->from, "Started at or after (RFC 3339 or epoch ms)");
  c.list->add_option("--to", f->to, "Started before (RFC 3339 or epoch ms)");
  c.list->add_option("--limit", f->limit, "At most this many (1-1000)");
  return c;
}

int RunAlertCommand(const AlertCommands& c, const AlertFlags& f, const ApiClient& client) {
  const bool json_out = f.client.json;
  if (*c.list) {
    std::string query;
    auto add = [&query](std::string_view key, const std::string& value) {
      if (value.empty() || value == "0") return;
      query += fmt::format("{}{}={}", query.empty() ? "?" : "&", key, QueryEscape(value));
    };
    add("state", f.state);
    add("device", std::to_string(f.device));
    add("rule", std::to_string(f.rule));
    add("from", f.from);
    add("to", f.to);
    add("limit", std::to_string(f.limit));
    auto a = client.Call("GET", "/api/v1/alerts" + query);
    if (!a) return ReportClientError(a.error());
    if (a->status != 200) return ReportApiError(*a, "alert");
    if (json_out) {
      fmt::print("{}\n", a->body.dump(2));
    } else if (a->body.empty()) {
      fmt::print("no alerts{}\n", query.empty() ? "" : " match");
    } else {
      fmt::print("{:>6}  {:<12} {:<8} {:<28} {:>6} {:>8}  {}\n", "ID", "STATE", "SEVERITY", "RULE", "DEVICE",
                 "VALUE", "STARTED");
      for (const auto& al : a->body) {
        fmt::print("{:>6}  {:<12} {:<8} {:<28} {:>6} {:>8}  {}\n", Text(al, "id"), Text(al, "state"),
                   Text(al, "severity"), Text(al, "rule_name"), Text(al, "device"), Text(al, "value"),
                   Text(al, "started_at"));
      }
    }
    return 0;
  }
  const std::string path = fmt::format("/api/v1/alerts/{}", f.id);
  auto a = *c.show ? client.Call("GET", path)
                   : client.Call("POST", path + (*c.ack ? "/ack" : "/resolve"), json({{"note", f.note}}));
  if (!a) return ReportClientError(a.error());
  if (a->status != 200) return ReportApiError(*a, "alert");
  if (json_out) {
    fmt::print("{}\n", a->body.dump(2));
    return 0;
  }
  if (*c.ack) fmt::print("acknowledged ");
  if (*c.resolve) fmt::print("resolved ");
  PrintAlert(a->body);
  if (*c.show) {
    fmt::print("events:\n");
    for (const auto& e : a->body.value("events", json::array())) {
      fmt::print("  {}  {:<12} {}{}\n", Text(e, "at"), Text(e, "kind"), Text(e, "actor"), Note(e, "note"));
    }
  }
  return 0;
}

}  // namespace opensense::app
