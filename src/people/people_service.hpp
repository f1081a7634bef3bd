// Organisations, members, magic-link login, sessions and the audit trail, on top of
// store::PeopleStore, the token service and the mail queue. The HTTP routes
// (api/people_routes.cpp) and the CLI (`opensense org ...`, `opensense member ...`) call this.
//
// Known and unknown addresses take the same path by construction: RequestLogin never reads the
// members; it counts recent links (rate limit), writes one magic_links row and queues one mail,
// whatever the address. Whether the address belongs to an organisation is decided only when the
// link is used (CompleteLogin).
//
// Threads: every method may be called from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/token_service.hpp"
#include "core/outbound.hpp"
#include "people/login.hpp"
#include "store/store.hpp"

namespace opensense::people {

// Who made a change, for the audit trail.
struct Actor {
  std::string who;     // "user:7 <ann@example.com>", "operator"
  std::string via;     // "session", "token:12", "cli"
  std::string client;  // client address; "" for the CLI
};

class PeopleService {
 public:
  // `mail` may be null: a LoggingMailQueue (the link in the log; the local demo) is used.
  PeopleService(store::Store* store, auth::TokenService* tokens, MailQueue* mail, const Clock* clock,
                LoginOptions options);

  const LoginOptions& options() const { return options_; }
  // Sets public_url once the listening address is known (`serve --listen HOST:0` without a
  // public_url setting). Only before requests are served: options() is read without a lock.
  void SetPublicUrl(std::string url) { options_.public_url = std::move(url); }

  // ---- magic links -------------------------------------------------------------------------
  // Always OK for a well-formed address (kInvalidArgument otherwise) unless the address or the
  // client asked too often (kResourceExhausted, with what to do).
  Status RequestLogin(std::string_view email, std::string_view client);
  // Self-service sign-up (when enabled; kNotFound otherwise): the link creates a free
  // organisation named `org_name` with the address as its owner.
  Status RequestSignup(std::string_view email, std::string_view org_name, std::string_view client);
  // Whether the token is a live link (reads only: the confirmation page).
  Result<bool> LinkLive(std::string_view token);

  struct Login {
    std::string secret;  // the new session id: goes into the cookie, never stored
    store::SessionRow session;
    store::Member member;  // the membership in the current organisation
    std::vector<store::Member> memberships;
  };
  // Uses the link (once; kNotFound if unknown, used, expired or bound to another address when
  // `email` is given), ends the session `previous_secret` names (no fixation) and opens a new
  // one in: the invitation's organisation, else the organisation the sign-up created, else the
  // address's first organisation (lowest id); the session can switch later.
  Result<Login> CompleteLogin(std::string_view token, std::string_view email, std::string_view client,
                              std::optional<std::string_view> previous_secret);

  // ---- sessions ----------------------------------------------------------------------------
  struct Current {
    store::SessionRow session;
    store::Member member;
  };
  // kPermissionDenied unless the secret names a live session (idle and absolute timeouts) whose
  // address is still a member of its organisation.
  Result<Current> ResolveSession(std::string_view secret);
  Status Logout(std::string_view secret);
  Result<int> LogoutEverywhere(std::string_view email);
  Result<store::Member> SwitchOrganisation(const store::SessionRow& session, OrgId org);

  // ---- organisations and members -----------------------------------------------------------
  // Creates the organisation and (when given) its first owner.
  Result<Organization> CreateOrganisation(const store::NewOrganization& org,
                                          std::optional<std::string_view> owner_email,
                                          const Actor& actor);
  // Adds the member and mails an invitation link. `inviter` bounds the role; the tier bounds
  // the number of members.
  Result<store::Member> Invite(OrgId org, std::string_view email, Role role, Role inviter,
                               const Actor& actor);
  Result<store::Member> ChangeRole(OrgId org, UserId id, Role role, Role actor_role, const Actor& actor);
  // Removes the member and revokes their API tokens in the organisation.
  Status RemoveMember(OrgId org, UserId id, Role actor_role, const Actor& actor);

  // ---- audit trail -------------------------------------------------------------------------
  // Appends one event (old/new are JSON text, "" for none). Failures are logged and returned.
  Status Record(OrgId org, const Actor& actor, std::string_view action, std::string_view target,
                std::string old_json, std::string new_json);

 private:
  Status QueueLink(const std::string& email, std::string_view purpose, std::optional<OrgId> org,
                   std::string detail, std::string_view client, std::string_view kind,
                   std::string_view subject, std::string_view intro);
  Status CheckOwnerChange(OrgId org, const store::Member& target, Role new_role, Role actor_role);

  store::Store* store_;
  auth::TokenService* tokens_;
  LoggingMailQueue logging_mail_;
  MailQueue* mail_;
  const Clock* clock_;
  LoginOptions options_;
};

// The JSON of a member (audit values, API answers).
std::string MemberJson(const store::Member& m);

}  // namespace opensense::people
