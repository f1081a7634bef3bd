// Storage of the people module (src/people): memberships (the users table), magic links,
// sessions and the audit trail. Reached through Store::People(); one SQLite and one PostgreSQL
// implementation (store/sqlite/sqlite_people_store.cpp, store/postgres/pg_people_store.cpp) pass
// the same tests (src/people/people_store_test.cpp).
//
// Secrets never reach this interface: magic-link tokens and session ids arrive as their SHA-256
// hex digests. Every membership and audit call is scoped to an organisation; magic links and
// sessions belong to an e-mail address (which may be a member of several organisations).
//
// Threads: every method may be called from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.hpp"

namespace opensense::store {

struct MagicLinkRow {
  std::int64_t id = 0;
  std::string token_hash;  // SHA-256 hex of the token
  std::string email;       // normalised (lower case)
  std::string purpose;     // "login", "invitation", "signup"
  std::optional<OrgId> org;  // invitation: the organisation to land in
  std::string detail;      // signup: the organisation name asked for
  std::string client;      // who asked (client address)
  TimestampMs created_at = 0;
  TimestampMs expires_at = 0;
  std::optional<TimestampMs> used_at;
  bool operator==(const MagicLinkRow&) const = default;
};

struct SessionRow {
  std::int64_t id = 0;
  std::string id_hash;  // SHA-256 hex of the cookie value
  std::string email;
  OrgId org = 0;        // the current organisation
  std::string client;
  TimestampMs created_at = 0;
  TimestampMs last_seen_at = 0;
  TimestampMs expires_at = 0;  // absolute timeout
  std::optional<TimestampMs> ended_at;
  bool operator==(const SessionRow&) const = default;
};

struct Member {
  UserId id = 0;
  OrgId org = 0;
  std::string email;
  Role role = Role::kViewer;
  TimestampMs created_at = 0;
  std::optional<TimestampMs> removed_at;  // removed members keep their row (tokens, audit)
  bool operator==(const Member&) const = default;
};

// One audit-trail row. Append-only: the database refuses UPDATE and DELETE.
struct AuditEvent {
  std::int64_t id = 0;
  OrgId org = 0;
  TimestampMs at = 0;
  std::string actor;      // "user:7 <ann@example.com>", "operator" (CLI)
  std::string via;        // "session", "token:12", "cli"
  std::string client;     // client address, "" for the CLI
  std::string action;     // "device.create", "member.role", "retention.change", ...
  std::string target;     // "device:12", "member:3", "retention:raw_readings"
  std::string old_value;  // JSON, "" when nothing existed
  std::string new_value;  // JSON, "" when it is gone
  bool operator==(const AuditEvent&) const = default;
};

struct AuditFilter {
  OrgId org = 0;
  std::optional<TimestampMs> from;  // inclusive
  std::optional<TimestampMs> to;    // exclusive
  std::optional<std::string> action_prefix;  // "device" matches "device.create", ...
  std::optional<std::string> target;
  std::optional<std::string> actor_contains;
  std::int64_t before_id = 0;  // > 0: only older rows (paging)
  int limit = 1000;
};

class PeopleStore {
 public:
  virtual ~PeopleStore() = default;

  // ---- magic links -------------------------------------------------------------------------
  virtual Result<MagicLinkRow> AddMagicLink(const MagicLinkRow& link) = 0;
  // Links created since `since` for the address, and for the client address.
  virtual Result<std::pair<int, int>> CountMagicLinks(std::string_view email, std::string_view client,
                                                      TimestampMs since) = 0;
  // Marks the link used and returns it, in one statement: kNotFound unless the hash is known,
  // unused, not expired at `now` and (when `email` is not empty) bound to that address.
  virtual Result<MagicLinkRow> ConsumeMagicLink(std::string_view token_hash, std::string_view email,
                                                TimestampMs now) = 0;
  // Whether a live (unused, unexpired) link has this hash; reads only (the confirmation page).
  virtual Result<bool> MagicLinkLive(std::string_view token_hash, TimestampMs now) = 0;

  // ---- sessions ----------------------------------------------------------------------------
  virtual Result<SessionRow> CreateSession(const SessionRow& session) = 0;
  // kNotFound unless the session exists and has not ended (timeouts are the caller's rule).
  virtual Result<SessionRow> FindSession(std::string_view id_hash) = 0;
  virtual Status TouchSession(std::int64_t id, TimestampMs at) = 0;
  virtual Status SetSessionOrg(std::int64_t id, OrgId org) = 0;
  virtual Status EndSession(std::int64_t id, TimestampMs at) = 0;
  // Ends every open session of the address; returns how many.
  virtual Result<int> EndSessionsOf(std::string_view email, TimestampMs at) = 0;

  // ---- members (rows of the users table) ---------------------------------------------------
  // Active memberships of an address, by organisation id.
  virtual Result<std::vector<Member>> MembershipsOf(std::string_view email) = 0;
  virtual Result<std::vector<Member>> ListMembers(OrgId org) = 0;  // active only
  virtual Result<Member> GetMember(OrgId org, UserId id) = 0;      // removed ones too
  // Adds the address with `role`, or brings a removed member back with it; kAlreadyExists when
  // the address is an active member.
  virtual Result<Member> AddMember(OrgId org, std::string_view email, Role role) = 0;
  virtual Result<Member> SetMemberRole(OrgId org, UserId id, Role role) = 0;
  virtual Status RemoveMember(OrgId org, UserId id, TimestampMs at) = 0;

  // ---- audit trail (kept forever) ----------------------------------------------------------
  virtual Result<AuditEvent> AppendAudit(const AuditEvent& event) = 0;
  // Newest first.
  virtual Result<std::vector<AuditEvent>> ListAudit(const AuditFilter& filter) = 0;
};

}  // namespace opensense::store
