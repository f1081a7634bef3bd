#include "app/rule_cmd.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

namespace opensense::app {
namespace {

using nlohmann::json;

std::string Scope(const json& r) {
  if (r.contains("device")) return fmt::format("device {}", NumberText(r["device"]));
  if (r.contains("site")) return fmt::format("site {}", NumberText(r["site"]));
  return "organisation";
}

// "temperature > 8 for 10 min", "no reading for 30 min", "battery < 10".
std::string Condition(const json& r) {
  const std::string kind = r.value("kind", "threshold");
  if (kind == "offline") return fmt::format("no reading for {} min", NumberText(r.value("offline_after_minutes", json(0))));
  const std::string metric = r.value("metric", "");
  std::string c;
  if (r.contains("above") && r.contains("below")) {
    c = fmt::format("{} outside {} .. {}", metric, NumberText(r["below"]), NumberText(r["above"]));
  } else if (r.contains("above")) {
    c = fmt::format("{} > {}", metric, NumberText(r["above"]));
  } else if (r.contains("below")) {
    c = fmt::format("{} < {}", metric, NumberText(r["below"]));
  }
  const std::int64_t delay = r.value("delay_minutes", std::int64_t{0});
  if (delay > 0) c += fmt::format(" for {} min", delay);
  return c;
}

std::string Recipients(const json& list) {
  std::string out;
  for (const auto& r : list) {
    if (!out.empty()) out += ", ";
    if (r.contains("email")) {
      out += r["email"].get<std::string>();
    } else {
      out += fmt::format("channel {} ({}{})", NumberText(r.value("channel", json(0))), r.value("kind", ""),
                         r.contains("to") ? " " + r["to"].get<std::string>() : "");
    }
  }
  return out.empty() ? "nobody" : out;
}

void PrintRule(const json& r) {
  fmt::print("rule {} '{}' ({})\n", NumberText(r["id"]), r.value("name", ""),
             r.value("enabled", true) ? "enabled" : "disabled");
  fmt::print("  watches   {}: {}\n", Scope(r), Condition(r));
  fmt::print("  severity  {}{}\n", r.value("severity", ""), r.value("require_note", false) ? ", acknowledging needs a note" : "");
  fmt::print("  notify    {}\n", Recipients(r.value("notify", json::array())));
  for (const auto& step : r.value("escalation", json::array())) {
    fmt::print("  after {} min unacknowledged: {}\n", NumberText(step["after_minutes"]),
               Recipients(step.value("notify", json::array())));
  }
  if (r.contains("reminder_minutes")) fmt::print("  reminders every {} min\n", NumberText(r["reminder_minutes"]));
  if (r.contains("schedule")) fmt::print("  schedule  {}\n", r["schedule"].dump());
  if (r.contains("quiet")) fmt::print("  quiet     {}\n", r["quiet"].dump());
  fmt::print("  created   {}, updated {}\n", r.value("created_at", ""), r.value("updated_at", ""));
}

// The JSON of --file (an object), or an empty object without one. kInvalidArgument when it
// cannot be read or is not a JSON object.
Result<json> FileJson(const std::string& path) {
  if (path.empty()) return json::object();
  std::string text;
  if (path == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    std::ifstream in(path);
    if (!in) return MakeError(ErrorCode::kInvalidArgument, fmt::format("--file: cannot read {}", path));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("--file: {} is not a JSON object (a rule as docs/api.md describes it)",
                                 path == "-" ? "standard input" : path));
  }
  return j;
}

// The convenience flags as fields of a definition (or of a merge patch).
json FlagsJson(const RuleFlags& f) {
  json j = json::object();
  if (f.name) j["name"] = *f.name;
  if (f.kind) j["kind"] = *f.kind;
  if (f.metric) j["metric"] = *f.metric;
  if (f.severity) j["severity"] = *f.severity;
  // One scope replaces the other (a merge patch removes a field with null).
  if (f.device) {
    j["device"] = *f.device;
    j["site"] = nullptr;
  }
  if (f.site) {
    j["site"] = *f.site;
    j["device"] = nullptr;
  }
  if (f.above) j["above"] = *f.above;
  if (f.below) j["below"] = *f.below;
  if (f.hysteresis) j["hysteresis"] = *f.hysteresis;
  if (f.delay_minutes) j["delay_minutes"] = *f.delay_minutes;
  if (f.offline_after_minutes) j["offline_after_minutes"] = *f.offline_after_minutes;
  if (f.reminder_minutes) j["reminder_minutes"] = *f.reminder_minutes;
  if (f.enabled) j["enabled"] = *f.enabled;
  if (f.require_note) j["require_note"] = *f.require_note;
  if (!f.notify_emails.empty()) {
    json list = json::array();
    for (const auto& e : f.notify_emails) list.push_back({{"email", e}});
    j["notify"] = list;
  }
  return j;
}

json WithoutNulls(json j) {
  for (auto it = j.begin(); it != j.end();) {
    it = it->is_null() ? j.erase(it) : std::next(it);
  }
  return j;
}

}  // namespace

RuleCommands AddRuleCommand(CLI::App& app, RuleFlags* f) {
  RuleCommands c;
  c.root = app.add_subcommand("rule", "Alert rules of the token's organisation, through the running server's API");
  c.root->require_subcommand(1);
  c.list = c.root->add_subcommand("list", "List the alert rules");
  c.show = c.root->add_subcommand("show", "Show one alert rule");
  c.create = c.root->add_subcommand("create", "Create an alert rule from --file and/or flags");
  c.update = c.root->add_subcommand("update", "Change an alert rule: --file holds a JSON merge patch; flags set fields");
  c.remove = c.root->add_subcommand("delete", "Delete an alert rule (its open alerts are resolved; the record stays)");
  for (auto* cmd : c.all()) AddApiClientFlags(cmd, &f->client);
  for (auto* cmd : {c.show, c.update, c.remove}) cmd->add_option("id", f->id, "Rule id")->required();
  for (auto* cmd : {c.create, c.update}) {
    cmd->add_option("--file", f->file, "The rule as JSON (docs/api.md), or - for standard input")->type_name("PATH");
    cmd->add_option("--name", f->name, "Name, e.g. 'Walk-in too warm'");
    cmd->add_option("--kind", f->kind, "threshold (default), offline or battery");
    cmd->add_option("--device", f->device, "Watch one device")->type_name("ID");
    cmd->add_option("--site", f->site, "Watch every device of a site (neither: the whole organisation)")->type_name("ID");
    cmd->add_option("--metric", f->metric, "Metric watched (default temperature)");
    cmd->add_option("--above", f->above, "Out of range above this value");
    cmd->add_option("--below", f->below, "Out of range below this value (both: outside the band)");
    cmd->add_option("--for", f->delay_minutes, "Minutes out of range before the alert fires (delay_minutes)")->type_name("MIN");
    cmd->add_option("--hysteresis", f->hysteresis, "Back in range only when inside by this margin");
    cmd->add_option("--offline-after", f->offline_after_minutes, "Offline rules: minutes without a reading")->type_name("MIN");
    cmd->add_option("--severity", f->severity, "warning (default) or critical");
    cmd->add_option("--notify-email", f->notify_emails, "Tell this address (repeat for more; replaces the list)")
        ->type_name("ADDRESS")
        ->allow_extra_args(false);
    cmd->add_option("--reminder", f->reminder_minutes, "Remind every MIN minutes while unacknowledged (0: never)")
        ->type_name("MIN");
    cmd->add_option("--require-note", f->require_note, "Acknowledging needs a corrective-action note")->type_name("BOOL");
    cmd->add_option("--enabled", f->enabled, "Whether the rule judges readings")->type_name("BOOL");
  }
  return c;
}

int RunRuleCommand(const RuleCommands& c, const RuleFlags& f, const ApiClient& client) {
  const bool json_out = f.client.json;
  const std::string one = fmt::format("/api/v1/alert-rules/{}", f.id);
  if (*c.list) {
    auto a = client.Call("GET", "/api/v1/alert-rules");
    if (!a) return ReportClientError(a.error());
    if (a->status != 200) return ReportApiError(*a, "rule");
    if (json_out) {
      fmt::print("{}\n", a->body.dump(2));
    } else if (a->body.empty()) {
      fmt::print("no alert rules yet; create one with `opensense rule create --name 'Fridge too warm' --above 8 --for 15`\n");
    } else {
      fmt::print("{:>5}  {:<28} {:<12} {:<34} {:<9} {}\n", "ID", "NAME", "SCOPE", "CONDITION", "SEVERITY", "STATE");
      for (const auto& r : a->body) {
        fmt::print("{:>5}  {:<28} {:<12} {:<34} {:<9} {}\n", NumberText(r["id"]), r.value("name", ""), Scope(r),
                   Condition(r), r.value("severity", ""), r.value("enabled", true) ? "enabled" : "disabled");
      }
    }
    return 0;
  }
  if (*c.remove) {
    auto a = client.Call("DELETE", one);
    if (!a) return ReportClientError(a.error());
    if (a->status != 200) return ReportApiError(*a, "rule");
    if (json_out) fmt::print("{}\n", a->body.dump(2));
    else fmt::print("deleted rule {} (its open alerts were resolved; their records stay)\n", f.id);
    return 0;
  }
  ApiAnswer answer;
  if (*c.show) {
    auto a = client.Call("GET", one);
    if (!a) return ReportClientError(a.error());
    answer = std::move(*a);
  } else {
    auto file = FileJson(f.file);
    if (!file) return ReportClientError(file.error());
    // Flags win over the file's fields; a null (the other scope) removes a field in a patch and
    // is simply left out of a new rule.
    json body = *file;
    const json flag_fields = FlagsJson(f);
    for (const auto& [key, value] : flag_fields.items()) body[key] = value;
    if (*c.create) body = WithoutNulls(std::move(body));
    if (body.empty()) {
      return ReportClientError(Error{ErrorCode::kInvalidArgument,
                                     "give the rule with --file PATH (- for standard input) or with flags, e.g. "
                                     "--name 'Fridge too warm' --above 8 --for 15"});
    }
    auto a = *c.create ? client.Call("POST", "/api/v1/alert-rules", body) : client.Call("PATCH", one, body);
    if (!a) return ReportClientError(a.error());
    answer = std::move(*a);
  }
  if (answer.status != 200 && answer.status != 201) return ReportApiError(answer, "rule");
  if (json_out) {
    fmt::print("{}\n", answer.body.dump(2));
    return 0;
  }
  if (*c.create) fmt::print("created ");
  if (*c.update) fmt::print("updated ");
  PrintRule(answer.body);
  return 0;
}

}  // namespace opensense::app
