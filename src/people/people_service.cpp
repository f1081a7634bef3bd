#include "people/people_service.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/tiers.hpp"

namespace opensense::people {

using nlohmann::json;

std::string MemberJson(const store::Member& m) {
  return json({{"id", m.id}, {"email", m.email}, {"role", RoleName(m.role)}}).dump();
}

PeopleService::PeopleService(store::Store* store, auth::TokenService* tokens, MailQueue* mail,
                             const Clock* clock, LoginOptions options)
    : store_(store),
      tokens_(tokens),
      mail_(mail != nullptr ? mail : &logging_mail_),
      clock_(clock),
      options_(std::move(options)) {}

Status PeopleService::QueueLink(const std::string& email, std::string_view purpose,
                                std::optional<OrgId> org, std::string detail, std::string_view client,
                                std::string_view kind, std::string_view subject,
                                std::string_view intro) {
  const TimestampMs now = clock_->NowMs();
  auto& people = store_->People();
  OS_ASSIGN_OR_RETURN(auto counts, people.CountMagicLinks(email, client, now - options_.link_rate_window_ms + 1));
  const int window_min = static_cast<int>(options_.link_rate_window_ms / kMsPerMinute);
  if (counts.first >= options_.links_per_address) {
    return MakeError(ErrorCode::kResourceExhausted,
                     fmt::format("too many sign-in links for this address; use the newest link sent, "
                                 "or ask again in {} minutes", window_min));
  }
  if (counts.second >= options_.links_per_client) {
    return MakeError(ErrorCode::kResourceExhausted,
                     fmt::format("too many sign-in links asked from your network address; try again "
                                 "in {} minutes", window_min));
  }
  const std::string token = NewSecret();
  store::MagicLinkRow row;
  row.token_hash = Sha256Hex(token);
  row.email = email;
  row.purpose = std::string(purpose);
  row.org = org;
  row.detail = std::move(detail);
  row.client = std::string(client.substr(0, 128));
  row.created_at = now;
  row.expires_at = now + options_.link_ttl_ms;
  OS_ASSIGN_OR_RETURN(auto stored, people.AddMagicLink(row));
  OutgoingEmail mail;
  mail.org = org;
  mail.kind = std::string(kind);
  mail.to = email;
  mail.subject = std::string(subject);
  const std::string url = MagicLinkUrl(options_, token);
  const int ttl_min = static_cast<int>(options_.link_ttl_ms / kMsPerMinute);
  mail.text_body = fmt::format(
      "{}\n\nOpen this link within {} minutes to sign in (it works once):\n\n{}\n\n"
      "If you did not ask for it, ignore this message; nobody can sign in without the link.\n",
      intro, ttl_min, url);
  mail.html_body = fmt::format(
      "<p>{}</p><p><a href=\"{}\">Sign in to OpenSense</a> (within {} minutes; the link works once)</p>"
      "<p>If you did not ask for it, ignore this message.</p>",
      intro, url, ttl_min);
  mail.idempotency_key = fmt::format("magic-link:{}", stored.id);
  return mail_->Enqueue(mail);
}

Status PeopleService::RequestLogin(std::string_view email, std::string_view client) {
  OS_ASSIGN_OR_RETURN(std::string normal, NormaliseEmail(email));
  return QueueLink(normal, "login", std::nullopt, "", client, "magic_link", "Your OpenSense sign-in link",
                   "Someone (hopefully you) asked to sign in to OpenSense with this address.");
}

Status PeopleService::RequestSignup(std::string_view email, std::string_view org_name,
                                    std::string_view client) {
  if (!options_.self_signup) {
    return MakeError(ErrorCode::kNotFound, "self-service sign-up is not enabled on this server");
  }
  OS_ASSIGN_OR_RETURN(std::string normal, NormaliseEmail(email));
  if (org_name.empty() || org_name.size() > 100) {
    return MakeError(ErrorCode::kInvalidArgument, "give the organisation a name of 1-100 characters");
  }
  return QueueLink(normal, "signup", std::nullopt, std::string(org_name), client, "magic_link",
                   "Create your OpenSense organisation",
                   fmt::format("Someone (hopefully you) asked to create the organisation \"{}\" on "
                               "OpenSense with this address.", org_name));
}

Result<bool> PeopleService::LinkLive(std::string_view token) {
  if (token.empty() || token.size() > 64) return false;
  return store_->People().MagicLinkLive(Sha256Hex(token), clock_->NowMs());
}

Result<PeopleService::Login> PeopleService::CompleteLogin(std::string_view token, std::string_view email,
                                                          std::string_view client,
                                                          std::optional<std::string_view> previous_secret) {
  auto& people = store_->People();
  const TimestampMs now = clock_->NowMs();
  std::string bound;
  if (!email.empty()) {
    auto normal = NormaliseEmail(email);
    if (!normal) return MakeError(ErrorCode::kNotFound, "this link is unknown, used or expired");
    bound = *normal;
  }
  if (token.empty() || token.size() > 64) {
    return MakeError(ErrorCode::kNotFound, "this link is unknown, used or expired");
  }
  OS_ASSIGN_OR_RETURN(auto link, people.ConsumeMagicLink(Sha256Hex(token), bound, now));
  // Session fixation: whatever session the browser held before is ended, and the new one gets
  // a fresh id.
  if (previous_secret) (void)Logout(*previous_secret);
  std::optional<OrgId> land = link.org;
  if (link.purpose == "signup") {
    store::NewOrganization org{link.detail, "UTC", Tier::kFree};
    OS_ASSIGN_OR_RETURN(auto created, CreateOrganisation(org, link.email,
                                                         Actor{link.email, "signup", std::string(client)}));
    land = created.id;
  }
  OS_ASSIGN_OR_RETURN(auto memberships, people.MembershipsOf(link.email));
  if (memberships.empty()) {
    return MakeError(ErrorCode::kPermissionDenied,
                     "this address is not a member of any organisation on this server; ask an admin "
                     "of your organisation to invite you");
  }
  const store::Member* member = &memberships.front();
  for (const auto& m : memberships) {
    if (land && m.org == *land) member = &m;
  }
  Login out;
  out.secret = NewSecret();
  store::SessionRow s;
  s.id_hash = Sha256Hex(out.secret);
  s.email = link.email;
  s.org = member->org;
  s.client = std::string(client.substr(0, 128));
  s.created_at = now;
  s.last_seen_at = now;
  s.expires_at = now + options_.session_absolute_ms;
  OS_ASSIGN_OR_RETURN(out.session, people.CreateSession(s));
  out.member = *member;
  out.memberships = std::move(memberships);
  (void)Record(out.member.org,
               Actor{fmt::format("user:{} <{}>", out.member.id, out.member.email), "session",
                     std::string(client)},
               "session.login", fmt::format("member:{}", out.member.id), "",
               json({{"purpose", link.purpose}}).dump());
  return out;
}

Result<PeopleService::Current> PeopleService::ResolveSession(std::string_view secret) {
  auto denied = [] { return MakeError(ErrorCode::kPermissionDenied, "the session ended; sign in again"); };
  if (secret.empty() || secret.size() > 64) return denied();
  auto& people = store_->People();
  auto s = people.FindSession(Sha256Hex(secret));
  if (!s) return s.error().code == ErrorCode::kNotFound ? denied() : tl::unexpected(s.error());
  const TimestampMs now = clock_->NowMs();
  if (CheckSession(options_, *s, now) != SessionState::kLive) {
    (void)people.EndSession(s->id, now);
    return denied();
  }
  auto memberships = people.MembershipsOf(s->email);
  if (!memberships) return tl::unexpected(memberships.error());
  for (const auto& m : *memberships) {
    if (m.org != s->org) continue;
    if (now - s->last_seen_at >= options_.session_touch_ms) {
      (void)people.TouchSession(s->id, now);
      s->last_seen_at = now;
    }
    return Current{*s, m};
  }
  return denied();  // removed from the organisation since
}

Status PeopleService::Logout(std::string_view secret) {
  if (secret.empty() || secret.size() > 64) return Ok();
  auto& people = store_->People();
  auto s = people.FindSession(Sha256Hex(secret));
  if (!s) return s.error().code == ErrorCode::kNotFound ? Ok() : Status(tl::unexpected(s.error()));
  return people.EndSession(s->id, clock_->NowMs());
}

Result<int> PeopleService::LogoutEverywhere(std::string_view email) {
  return store_->People().EndSessionsOf(email, clock_->NowMs());
}

Result<store::Member> PeopleService::SwitchOrganisation(const store::SessionRow& session, OrgId org) {
  auto& people = store_->People();
  OS_ASSIGN_OR_RETURN(auto memberships, people.MembershipsOf(session.email));
  for (const auto& m : memberships) {
    if (m.org != org) continue;
    OS_RETURN_IF_ERROR(people.SetSessionOrg(session.id, org));
    return m;
  }
  return MakeError(ErrorCode::kNotFound, fmt::format("you are not a member of organisation {}", org));
}

Result<Organization> PeopleService::CreateOrganisation(const store::NewOrganization& org,
                                                       std::optional<std::string_view> owner_email,
                                                       const Actor& actor) {
  std::string owner;
  if (owner_email) {
    OS_ASSIGN_OR_RETURN(owner, NormaliseEmail(*owner_email));
  }
  OS_ASSIGN_OR_RETURN(auto created, store_->CreateOrganization(org));
  (void)Record(created.id, actor, "org.create", fmt::format("org:{}", created.id), "",
               json({{"name", created.name}, {"tier", TierName(created.tier)},
                     {"time_zone", created.time_zone}}).dump());
  if (owner_email) {
    OS_ASSIGN_OR_RETURN(auto m, store_->People().AddMember(created.id, owner, Role::kOwner));
    (void)Record(created.id, actor, "member.add", fmt::format("member:{}", m.id), "", MemberJson(m));
  }
  return created;
}

Result<store::Member> PeopleService::Invite(OrgId org, std::string_view email, Role role, Role inviter,
                                            const Actor& actor) {
  OS_ASSIGN_OR_RETURN(std::string normal, NormaliseEmail(email));
  if (role > inviter) {
    return MakeError(ErrorCode::kPermissionDenied,
                     fmt::format("you hold the {} role and cannot grant {}", RoleName(inviter), RoleName(role)));
  }
  OS_ASSIGN_OR_RETURN(auto organisation, store_->GetOrganization(org));
  OS_ASSIGN_OR_RETURN(auto members, store_->People().ListMembers(org));
  const auto& limits = LimitsOf(organisation.tier);
  if (limits.max_members && static_cast<int>(members.size()) >= *limits.max_members) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("the {} tier allows {} members; remove one or upgrade",
                                 TierName(organisation.tier), *limits.max_members));
  }
  OS_ASSIGN_OR_RETURN(auto m, store_->People().AddMember(org, normal, role));
  OS_RETURN_IF_ERROR(Record(org, actor, "member.invite", fmt::format("member:{}", m.id), "", MemberJson(m)));
  OS_RETURN_IF_ERROR(QueueLink(normal, "invitation", org, "", actor.client, "invitation",
                               fmt::format("You are invited to {} on OpenSense", organisation.name),
                               fmt::format("You were invited to the organisation \"{}\" on OpenSense "
                                           "as {}.", organisation.name, RoleName(role))));
  return m;
}

Status PeopleService::CheckOwnerChange(OrgId org, const store::Member& target, Role new_role,
                                       Role actor_role) {
  if ((target.role == Role::kOwner || new_role == Role::kOwner) && actor_role != Role::kOwner) {
    return MakeError(ErrorCode::kPermissionDenied, "only an owner can grant, change or remove the owner role");
  }
  if (new_role > actor_role) {
    return MakeError(ErrorCode::kPermissionDenied,
                     fmt::format("you hold the {} role and cannot grant {}", RoleName(actor_role), RoleName(new_role)));
  }
  if (target.role == Role::kOwner && new_role != Role::kOwner) {
    OS_ASSIGN_OR_RETURN(auto members, store_->People().ListMembers(org));
    int owners = 0;
    for (const auto& m : members) owners += m.role == Role::kOwner ? 1 : 0;
    if (owners <= 1) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "an organisation keeps at least one owner; make someone else owner first");
    }
  }
  return Ok();
}

Result<store::Member> PeopleService::ChangeRole(OrgId org, UserId id, Role role, Role actor_role,
                                                const Actor& actor) {
  auto& people = store_->People();
  OS_ASSIGN_OR_RETURN(auto before, people.GetMember(org, id));
  if (before.removed_at) return MakeError(ErrorCode::kNotFound, "no such member");
  OS_RETURN_IF_ERROR(CheckOwnerChange(org, before, role, actor_role));
  OS_ASSIGN_OR_RETURN(auto after, people.SetMemberRole(org, id, role));
  OS_RETURN_IF_ERROR(Record(org, actor, "member.role", fmt::format("member:{}", id), MemberJson(before),
                            MemberJson(after)));
  return after;
}

Status PeopleService::RemoveMember(OrgId org, UserId id, Role actor_role, const Actor& actor) {
  auto& people = store_->People();
  OS_ASSIGN_OR_RETURN(auto before, people.GetMember(org, id));
  if (before.removed_at) return MakeError(ErrorCode::kNotFound, "no such member");
  OS_RETURN_IF_ERROR(CheckOwnerChange(org, before, Role::kViewer, actor_role));
  OS_RETURN_IF_ERROR(people.RemoveMember(org, id, clock_->NowMs()));
  OS_ASSIGN_OR_RETURN(auto tokens, store_->ListTokens(org));
  for (const auto& t : tokens) {
    const bool live = !t.expires_at || *t.expires_at > clock_->NowMs();
    if (t.kind == TokenKind::kUser && t.user == id && live) OS_RETURN_IF_ERROR(tokens_->Revoke(org, t.id));
  }
  return Record(org, actor, "member.remove", fmt::format("member:{}", id), MemberJson(before), "");
}

Status PeopleService::Record(OrgId org, const Actor& actor, std::string_view action,
                             std::string_view target, std::string old_json, std::string new_json) {
  store::AuditEvent e;
  e.org = org;
  e.at = clock_->NowMs();
  e.actor = actor.who;
  e.via = actor.via;
  e.client = actor.client;
  e.action = std::string(action);
  e.target = std::string(target);
  e.old_value = std::move(old_json);
  e.new_value = std::move(new_json);
  auto r = store_->People().AppendAudit(e);
  if (!r) {
    spdlog::error("audit: cannot record {} {} for organisation {}: {}", action, target, org, r.error().message);
    return tl::unexpected(r.error());
  }
  return Ok();
}

}  // namespace opensense::people
