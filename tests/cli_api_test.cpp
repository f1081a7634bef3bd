// The operator's commands against the real binary: `rule` and `alert` talk to a running
// `opensense serve` over its API (the server's alert service holds the rules), `member` works on
// the store beside it through the people service (audit trail, last-owner rule, invitation mail
// delivered by the server's dispatcher).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "api/http/client.hpp"
#include "backup/subprocess.hpp"
#include "opensense_process.hpp"
#include "shell_helpers.hpp"

namespace {

using json = nlohmann::json;
using opensense::testing::OpenSenseProcess;
using opensense::testing::ReadFile;
using opensense::testing::Shell;
using opensense::backup::ShellQuote;

struct CliRun {
  int code = -1;
  std::string out, err;
  json Json() const { return json::parse(out, nullptr, false); }
};

long long NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class CliApi : public ::testing::Test {
 protected:
  // `opensense args...` with exactly `env` (and PATH) as its environment, stdin from `input`.
  CliRun Run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {},
             const std::string& input = "/dev/null") {
    std::string cmd = "cd " + ShellQuote(os_.DataDir() + "/..") + " && env -i PATH=/usr/bin:/bin";
    for (const auto& [k, v] : env) cmd += " " + k + "=" + ShellQuote(v);
    cmd += " " + ShellQuote(OPENSENSE_BINARY);
    for (const auto& a : args) cmd += " " + ShellQuote(a);
    const std::string err = os_.DataDir() + "/../cli.err";
    cmd += " <" + ShellQuote(input) + " 2>" + ShellQuote(err);
    auto r = Shell(cmd);
    return CliRun{r.code, r.output, ReadFile(err)};
  }
  // A store command (--data-dir of the running server's store).
  CliRun Store(std::vector<std::string> args) {
    args.insert(args.end(), {"--data-dir", os_.DataDir()});
    return Run(args);
  }
  // A `rule`/`alert` command with the token as OPENSENSE_TOKEN and the server as OPENSENSE_URL.
  CliRun Api(const std::vector<std::string>& args, const std::string& token, const std::string& input = "/dev/null") {
    return Run(args, {{"OPENSENSE_URL", "http://" + os_.address()}, {"OPENSENSE_TOKEN", token}}, input);
  }
  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = os_.DataDir() + "/../" + name;
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0600);
    return path;
  }
  // org create: {id, token}.
  std::pair<std::string, std::string> Org(const std::string& name, const std::string& owner) {
    auto r = Store({"org", "create", "--name", name, "--owner-email", owner, "--json"});
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    auto j = r.Json();
    return {std::to_string(j["id"].get<long long>()), j["token"].get<std::string>()};
  }

  OpenSenseProcess os_;
};

TEST_F(CliApi, RulesAndAlertsThroughTheRunningServer) {
  std::filesystem::create_directories(os_.DataDir());
  auto [org_a, token_a] = Org("Bistro", "owner@bistro.example");
  auto [org_b, token_b] = Org("Other", "owner@other.example");
  auto device = Store({"device", "create", "--org", org_a, "--name", "Walk-in", "--json"}).Json();
  ASSERT_TRUE(device.contains("token")) << device.dump();
  const std::string dev = std::to_string(device["id"].get<long long>());
  auto theirs = Store({"channel", "create", "--org", org_b, "--kind", "email", "--name", "Them", "--target",
                       "them@other.example", "--json"}).Json();
  ASSERT_TRUE(theirs.contains("id")) << theirs.dump();
  ASSERT_TRUE(os_.Start()) << os_.Log();

  // Create from a file, from standard input and from flags; list shows them.
  const std::string file = WriteFile("rule.json", R"({"name": "Walk-in too warm", "device": )" + dev +
                                                      R"(, "above": 8, "severity": "critical"})");
  auto created = Api({"rule", "create", "--file", file, "--json"}, token_a);
  ASSERT_EQ(created.code, 0) << created.err;
  const std::string warm = std::to_string(created.Json()["id"].get<long long>());
  const std::string stdin_rule = WriteFile("stdin.json", R"({"name": "Battery low", "kind": "battery", "below": 10})");
  auto from_stdin = Api({"rule", "create", "--file", "-", "--json"}, token_a, stdin_rule);
  ASSERT_EQ(from_stdin.code, 0) << from_stdin.err;
  EXPECT_EQ(from_stdin.Json()["kind"], "battery");
  auto flags = Api({"rule", "create", "--name", "Too cold", "--device", dev, "--below", "-30", "--for", "15",
                    "--severity", "warning", "--notify-email", "chef@bistro.example"},
                   token_a);
  ASSERT_EQ(flags.code, 0) << flags.err;
  EXPECT_NE(flags.out.find("temperature < -30 for 15 min"), std::string::npos) << flags.out;
  EXPECT_NE(flags.out.find("chef@bistro.example"), std::string::npos) << flags.out;
  auto list = Api({"rule", "list", "--json"}, token_a);
  ASSERT_EQ(list.code, 0) << list.err;
  ASSERT_EQ(list.Json().size(), 3u) << list.out;
  EXPECT_EQ(list.Json()[2]["delay_minutes"], 15);
  auto table = Api({"rule", "list"}, token_a);
  EXPECT_NE(table.out.find("Walk-in too warm"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("temperature > 8"), std::string::npos) << table.out;
  auto gone = Api({"rule", "delete", std::to_string(from_stdin.Json()["id"].get<long long>())}, token_a);
  EXPECT_EQ(gone.code, 0) << gone.err;
  EXPECT_EQ(Api({"rule", "list", "--json"}, token_a).Json().size(), 2u);

  // Bad input is refused by the server with its message, exit 2: a threshold rule without a
  // threshold, a channel of another organisation.
  auto bad = Api({"rule", "create", "--name", "x"}, token_a);
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("needs above, below"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("HTTP 400"), std::string::npos) << bad.err;
  const std::string their_channel = std::to_string(theirs["id"].get<long long>());
  auto foreign = Api({"rule", "update", warm, "--file",
                      WriteFile("patch.json", R"({"notify": [{"channel": )" + their_channel +
                                                  R"(, "kind": "email", "to": "a@b.example"}]})")},
                     token_a);
  EXPECT_EQ(foreign.code, 2);
  EXPECT_NE(foreign.err.find("no notification channel " + their_channel), std::string::npos) << foreign.err;

  // Update: the running server judges with the new threshold at once.
  auto updated = Api({"rule", "update", warm, "--above", "6", "--name", "Walk-in above 6", "--json"}, token_a);
  ASSERT_EQ(updated.code, 0) << updated.err;
  EXPECT_EQ(updated.Json()["above"], 6);
  EXPECT_EQ(updated.Json()["severity"], "critical");
  auto posted = opensense::http::Fetch(os_.address(), "POST", "/api/v1/ingest",
                                       {{"Authorization", "Bearer " + device["token"].get<std::string>()},
                                        {"Content-Type", "application/json"}},
                                       json::array({{{"ts", NowMs()}, {"temperature", 7.0}}}).dump());
  ASSERT_TRUE(posted && posted->status == 200) << (posted ? posted->body : posted.error().message);
  // The evaluator thread judges the commit; wait for its alert (bounded).
  json alerts;
  for (int i = 0; i < 200 && (alerts.is_null() || alerts.empty()); ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    alerts = Api({"alert", "list", "--json"}, token_a).Json();
  }
  ASSERT_EQ(alerts.size(), 1u) << alerts.dump() << os_.Log();
  EXPECT_EQ(alerts[0]["rule_name"], "Walk-in above 6");
  EXPECT_EQ(alerts[0]["state"], "firing");
  const std::string alert = std::to_string(alerts[0]["id"].get<long long>());
  auto human = Api({"alert", "list", "--state", "firing"}, token_a);
  EXPECT_NE(human.out.find("Walk-in above 6"), std::string::npos) << human.out;

  // Acknowledge with a note; show lists the event; resolve.
  auto acked = Api({"alert", "ack", alert, "--note", "moved stock to the spare fridge", "--json"}, token_a);
  ASSERT_EQ(acked.code, 0) << acked.err;
  EXPECT_EQ(acked.Json()["state"], "acknowledged");
  auto shown = Api({"alert", "show", alert}, token_a);
  ASSERT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("acknowledged"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("moved stock to the spare fridge"), std::string::npos) << shown.out;
  auto events = Api({"alert", "show", alert, "--json"}, token_a).Json()["events"];
  ASSERT_EQ(events.size(), 2u) << events.dump();
  EXPECT_EQ(events[1]["kind"], "acknowledged");
  EXPECT_EQ(events[1]["note"], "moved stock to the spare fridge");
  auto again = Api({"alert", "ack", alert, "--note", "twice"}, token_a);
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("HTTP 409"), std::string::npos) << again.err;
  // --url and --token-file instead of the environment.
  auto resolved = Run({"alert", "resolve", alert, "--note", "door seal replaced", "--json", "--url",
                       "http://" + os_.address() + "/", "--token-file", WriteFile("token", token_a + "\n")});
  ASSERT_EQ(resolved.code, 0) << resolved.err;
  EXPECT_EQ(resolved.Json()["state"], "resolved");
  EXPECT_EQ(resolved.Json()["resolve_note"], "door seal replaced");

  // Another organisation's token sees none of it.
  EXPECT_EQ(Api({"rule", "list", "--json"}, token_b).Json(), json::array());
  EXPECT_EQ(Api({"alert", "list", "--json"}, token_b).Json(), json::array());
  auto hidden = Api({"alert", "show", alert}, token_b);
  EXPECT_EQ(hidden.code, 2);
  EXPECT_NE(hidden.err.find("HTTP 404"), std::string::npos) << hidden.err;
  EXPECT_NE(hidden.err.find("opensense alert list"), std::string::npos) << hidden.err;
  EXPECT_EQ(Api({"rule", "update", warm, "--above", "1"}, token_b).code, 2);
  EXPECT_EQ(Api({"rule", "show", warm, "--json"}, token_a).Json()["above"], 6) << "untouched by the other token";

  // A wrong token, no token, no server: the reason and what to do.
  auto wrong = Api({"rule", "list"}, "osk_not_a_real_token");
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("HTTP 401"), std::string::npos) << wrong.err;
  EXPECT_NE(wrong.err.find("set OPENSENSE_TOKEN to a user API token (osk_...)"), std::string::npos) << wrong.err;
  auto none = Run({"alert", "list", "--url", "http://" + os_.address()});
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("OPENSENSE_TOKEN"), std::string::npos) << none.err;
  auto away = Run({"rule", "list"}, {{"OPENSENSE_URL", "http://127.0.0.1:1"}, {"OPENSENSE_TOKEN", token_a}});
  EXPECT_EQ(away.code, 1);
  EXPECT_NE(away.err.find("no answer from http://127.0.0.1:1"), std::string::npos) << away.err;
  // The client's variables do not upset the other commands' configuration check.
  auto beside = Run({"org", "list", "--data-dir", os_.DataDir()},
                    {{"OPENSENSE_URL", "http://" + os_.address()}, {"OPENSENSE_TOKEN", token_a}});
  EXPECT_EQ(beside.code, 0) << beside.err;
}

TEST_F(CliApi, MembersAreManagedByTheOperatorAndAudited) {
  std::filesystem::create_directories(os_.DataDir());
  auto [org, token] = Org("Bakery", "owner@bakery.example");
  ASSERT_TRUE(os_.Start()) << os_.Log();

  auto invited = Store({"member", "invite", "--org", org, "--email", "Ann@Bakery.example", "--role", "admin",
                        "--public-url", "https://opensense.example.com", "--json"});
  ASSERT_EQ(invited.code, 0) << invited.err;
  EXPECT_EQ(invited.Json()["email"], "ann@bakery.example");
  EXPECT_EQ(invited.Json()["role"], "admin");
  auto list = Store({"member", "list", "--org", org, "--json"});
  ASSERT_EQ(list.code, 0) << list.err;
  ASSERT_EQ(list.Json().size(), 2u) << list.out;
  // The running server's dispatcher delivers the invitation from the outbox (the dev mailer
  // writes it to the log): a sign-in link on the public URL.
  bool mailed = false;
  for (int i = 0; i < 200 && !mailed; ++i) {
    const std::string log = os_.Log();
    mailed = log.find("You are invited to Bakery") != std::string::npos &&
             log.find("https://opensense.example.com/auth/magic?token=") != std::string::npos;
    if (!mailed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(mailed) << os_.Log();

  auto role = Store({"member", "role", "--org", org, "--email", "ann@bakery.example", "--role", "member"});
  ASSERT_EQ(role.code, 0) << role.err;
  EXPECT_NE(role.out.find("is now member"), std::string::npos) << role.out;
  // The last owner can be neither demoted nor removed.
  auto demote = Store({"member", "role", "--org", org, "--email", "owner@bakery.example", "--role", "admin"});
  EXPECT_EQ(demote.code, 1);
  EXPECT_NE(demote.err.find("at least one owner"), std::string::npos) << demote.err;
  auto last = Store({"member", "remove", "--org", org, "--email", "owner@bakery.example"});
  EXPECT_EQ(last.code, 1);
  EXPECT_NE(last.err.find("at least one owner"), std::string::npos) << last.err;
  auto removed = Store({"member", "remove", "--org", org, "--email", "ann@bakery.example", "--json"});
  ASSERT_EQ(removed.code, 0) << removed.err;
  EXPECT_EQ(removed.Json()["removed"], true);
  auto twice = Store({"member", "remove", "--org", org, "--email", "ann@bakery.example"});
  EXPECT_EQ(twice.code, 2);
  EXPECT_NE(twice.err.find("member list --org"), std::string::npos) << twice.err;
  EXPECT_EQ(Store({"member", "invite", "--org", org, "--email", "bob@bakery.example", "--role", "boss"}).code, 2);
  EXPECT_EQ(Store({"member", "list", "--org", org, "--json"}).Json().size(), 1u);

  // Every change is in the organisation's audit trail, by the operator.
  auto audit = opensense::http::Fetch(os_.address(), "GET", "/api/v1/audit?actor=operator:cli",
                                      {{"Authorization", "Bearer " + token}});
  ASSERT_TRUE(audit && audit->status == 200) << (audit ? audit->body : audit.error().message);
  std::multiset<std::string> actions;
  const json trail = json::parse(audit->body);
  for (const auto& e : trail["events"]) {
    EXPECT_EQ(e["actor"], "operator:cli");
    EXPECT_EQ(e["via"], "cli");
    actions.insert(e["action"].get<std::string>());
  }
  EXPECT_EQ(actions, (std::multiset<std::string>{"org.create", "member.add", "token.create", "member.invite",
                                                  "member.role", "member.remove"}))
      << audit->body;
}

}  // namespace
