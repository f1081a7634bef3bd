// `opensense member list|invite|role|remove`: an organisation's members, for the operator, on
// the store directly beside a running server (like `org create`). Every change goes through
// people::PeopleService, so its rules hold here too (the tier's member limit, at least one
// owner, a removed member's tokens revoked) and each is an audit event of the organisation by
// "operator:cli". An invitation mail joins the outbox; the running server delivers it.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "app/config.hpp"
#include "people/login.hpp"
#include "people/people_service.hpp"
#include "store/store.hpp"

namespace opensense::app {

struct MemberFlags {
  OrgId org = 0;
  std::string email;
  std::string role = "viewer";
  bool json = false;
};

struct MemberCommands {
  CLI::App* root = nullptr;
  CLI::App* list = nullptr;
  CLI::App* invite = nullptr;
  CLI::App* role = nullptr;
  CLI::App* remove = nullptr;
  std::vector<CLI::App*> all() const { return {list, invite, role, remove}; }
};

// Adds `member` and its subcommands to `app`.
MemberCommands AddMemberCommand(CLI::App& app, MemberFlags* flags);
// Runs the parsed subcommand against `store`. Exit status: 0 done, 2 bad input or no such
// member, 1 otherwise (the last owner, the tier's limit, ...).
int RunMemberCommand(const MemberCommands& cmds, const MemberFlags& flags, store::Store* store, const Config& cfg);

// Who a change from the operator's shell is recorded as.
people::Actor OperatorActor();
// Sign-in links (public_url, self_signup) for `serve` and the operator's commands.
people::LoginOptions LoginOptionsFor(const Config& cfg);

}  // namespace opensense::app
