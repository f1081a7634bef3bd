#include "app/member_cmd.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <limits>

#include "auth/token_service.hpp"
#include "core/time_zone.hpp"
#include "notify/outbox_outbound.hpp"

namespace opensense::app {
namespace {

using nlohmann::json;

json MemberJson(const store::Member& m) {
  return {{"id", m.id}, {"org", m.org}, {"email", m.email}, {"role", RoleName(m.role)},
          {"created_at", FormatRfc3339(m.created_at)}};
}

int Failed(const Error& e) {
  fmt::print(stderr, "opensense: error: {}\n", e.message);
  return e.code == ErrorCode::kInvalidArgument || e.code == ErrorCode::kNotFound ? 2 : 1;
}

// The active member with this address (kNotFound says how to list them).
Result<store::Member> MemberByEmail(store::Store* store, OrgId org, const std::string& email) {
  OS_ASSIGN_OR_RETURN(std::string normal, people::NormaliseEmail(email));
  OS_ASSIGN_OR_RETURN(auto members, store->People().ListMembers(org));
  for (const auto& m : members) {
    if (m.email == normal) return m;
  }
  return MakeError(ErrorCode::kNotFound,
                   fmt::format("{} is not a member of organisation {}; `opensense member list --org {}` shows "
                               "who is",
                               normal, org, org));
}

}  // namespace

people::Actor OperatorActor() { return people::Actor{"operator:cli", "cli", ""}; }

people::LoginOptions LoginOptionsFor(const Config& cfg) {
  people::LoginOptions o;
  o.public_url = cfg.public_url.empty() ? "http://" + cfg.listen : cfg.public_url;
  o.self_signup = cfg.self_signup == "on";
  o.links_per_address = cfg.login_links_per_address;
  o.links_per_client = cfg.login_links_per_client;
  o.session_idle_ms = static_cast<TimestampMs>(cfg.session_idle_minutes) * kMsPerMinute;
  o.session_absolute_ms = static_cast<TimestampMs>(cfg.session_absolute_hours) * kMsPerHour;
  return o;
}

MemberCommands AddMemberCommand(CLI::App& app, MemberFlags* f) {
  MemberCommands c;
  c.root = app.add_subcommand("member", "Members of an organisation and their roles (recorded in its audit trail)");
  c.root->require_subcommand(1);
  c.list = c.root->add_subcommand("list", "List an organisation's members");
  c.invite = c.root->add_subcommand(
      "invite", "Add a member and mail them a sign-in link (the running server sends it)");
  c.role = c.root->add_subcommand("role", "Change a member's role (an organisation keeps at least one owner)");
  c.remove = c.root->add_subcommand("remove", "Remove a member; their API tokens stop (not the last owner)");
  for (auto* cmd : c.all()) {
    cmd->add_option("--org", f->org, "Organisation id")->required();
    cmd->add_flag("--json", f->json, "Machine-readable output");
  }
  for (auto* cmd : {c.invite, c.role, c.remove}) cmd->add_option("--email", f->email, "The member's address")->required();
  c.invite->add_option("--role", f->role, "viewer, member, admin or owner")->capture_default_str();
  c.role->add_option("--role", f->role, "viewer, member, admin or owner")->required();
  return c;
}

int RunMemberCommand(const MemberCommands& c, const MemberFlags& f, store::Store* store, const Config& cfg) {
  if (auto org = store->GetOrganization(f.org); !org) return Failed(org.error());
  if (*c.list) {
    auto members = store->People().ListMembers(f.org);
    if (!members) return Failed(members.error());
    if (f.json) {
      json arr = json::array();
      for (const auto& m : *members) arr.push_back(MemberJson(m));
      fmt::print("{}\n", arr.dump(2));
    } else {
      fmt::print("{:>6}  {:<40} {:<8} {}\n", "ID", "EMAIL", "ROLE", "SINCE");
      for (const auto& m : *members) {
        fmt::print("{:>6}  {:<40} {:<8} {}\n", m.id, m.email, RoleName(m.role), FormatRfc3339(m.created_at));
      }
    }
    return 0;
  }
  SystemClock clock;
  auth::TokenService tokens(store, &clock);
  notify::OutboxMailQueue mail(&store->Notify(), &clock);
  people::LoginOptions login = LoginOptionsFor(cfg);
  // The per-client limit on sign-in links guards against strangers asking for links; the
  // operator inviting a team is not one (the per-address limit still holds).
  login.links_per_client = std::numeric_limits<int>::max();
  people::PeopleService people_service(store, &tokens, &mail, &clock, login);
  const people::Actor actor = OperatorActor();
  if (*c.invite) {
    auto role = ParseRole(f.role);
    if (!role) return Failed(role.error());
    auto m = people_service.Invite(f.org, f.email, *role, Role::kOwner, actor);
    if (!m) return Failed(m.error());
    if (f.json) {
      fmt::print("{}\n", MemberJson(*m).dump(2));
    } else {
      fmt::print("invited {} to organisation {} as {} (member {}); the running server mails the sign-in link "
                 "(without a mail provider it writes it to its log)\n",
                 m->email, f.org, RoleName(m->role), m->id);
    }
    return 0;
  }
  auto member = MemberByEmail(store, f.org, f.email);
  if (!member) return Failed(member.error());
  if (*c.role) {
    auto role = ParseRole(f.role);
    if (!role) return Failed(role.error());
    auto m = people_service.ChangeRole(f.org, member->id, *role, Role::kOwner, actor);
    if (!m) return Failed(m.error());
    if (f.json) fmt::print("{}\n", MemberJson(*m).dump(2));
    else fmt::print("{} is now {} in organisation {} (was {})\n", m->email, RoleName(m->role), f.org, RoleName(member->role));
    return 0;
  }
  // remove
  if (auto st = people_service.RemoveMember(f.org, member->id, Role::kOwner, actor); !st) return Failed(st.error());
  if (f.json) {
    fmt::print("{}\n", json({{"id", member->id}, {"email", member->email}, {"removed", true}}).dump(2));
  } else {
    fmt::print("removed {} from organisation {}; their API tokens no longer work (a running server may accept "
               "one for up to 30 seconds more)\n",
               member->email, f.org);
  }
  return 0;
}

}  // namespace opensense::app
