#include "store/postgres/pg_people_store.hpp"

#include <fmt/format.h>

namespace opensense::store::postgres {

namespace {

constexpr const char* kLinkColumns =
    "id, token_hash, email, purpose, org_id, detail, client, created_at, expires_at, used_at";
constexpr const char* kSessionColumns =
    "id, id_hash, email, org_id, client, created_at, last_seen_at, expires_at, ended_at";
constexpr const char* kMemberColumns = "id, org_id, email, role, created_at, removed_at";
constexpr const char* kAuditColumns =
    "id, org_id, at, actor, via, client, action, target, old_value, new_value";

std::string T(const PgResult& r, int row, int col) { return std::string(r.Text(row, col)); }

MagicLinkRow ReadLink(const PgResult& r, int i) {
  return {r.Int(i, 0), T(r, i, 1), T(r, i, 2), T(r, i, 3), r.OptInt(i, 4), T(r, i, 5),
          T(r, i, 6), r.Int(i, 7), r.Int(i, 8), r.OptInt(i, 9)};
}

SessionRow ReadSession(const PgResult& r, int i) {
  return {r.Int(i, 0), T(r, i, 1), T(r, i, 2), r.Int(i, 3), T(r, i, 4),
          r.Int(i, 5), r.Int(i, 6), r.Int(i, 7), r.OptInt(i, 8)};
}

Result<Member> ReadMember(const PgResult& r, int i) {
  Member m{r.Int(i, 0), r.Int(i, 1), T(r, i, 2), Role::kViewer, r.Int(i, 4), r.OptInt(i, 5)};
  OS_ASSIGN_OR_RETURN(m.role, ParseRole(r.Text(i, 3)));
  return m;
}

AuditEvent ReadAudit(const PgResult& r, int i) {
  return {r.Int(i, 0), r.Int(i, 1), r.Int(i, 2), T(r, i, 3), T(r, i, 4),
          T(r, i, 5), T(r, i, 6), T(r, i, 7), T(r, i, 8), T(r, i, 9)};
}

Result<std::vector<Member>> Members(const PgResult& r) {
  std::vector<Member> out;
  for (int i = 0; i < r.Rows(); ++i) {
    OS_ASSIGN_OR_RETURN(auto m, ReadMember(r, i));
    out.push_back(std::move(m));
  }
  return out;
}

class PgPeopleStore final : public PeopleStore {
 public:
  PgPeopleStore(Pool* pool, const Clock* clock) : pool_(pool), clock_(clock) {}

  Result<MagicLinkRow> AddMagicLink(const MagicLinkRow& link) override {
    OS_ASSIGN_OR_RETURN(PgResult r, Query(
        "INSERT INTO magic_links(token_hash, email, purpose, org_id, detail, client, created_at, "
        "expires_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id",
        {P(link.token_hash), P(link.email), P(link.purpose), P(link.org), P(link.detail),
         P(link.client), P(link.created_at), P(link.expires_at)}));
    MagicLinkRow out = link;
    out.id = r.Int(0, 0);
    return out;
  }

  Result<std::pair<int, int>> CountMagicLinks(std::string_view email, std::string_view client,
                                              TimestampMs since) override {
    OS_ASSIGN_OR_RETURN(PgResult r, Query(
        "SELECT (SELECT count(*) FROM magic_links WHERE email=$1 AND created_at>=$3), "
        "(SELECT count(*) FROM magic_links WHERE client=$2 AND created_at>=$3)",
        {P(email), P(client), P(since)}));
    return std::pair<int, int>{static_cast<int>(r.Int(0, 0)), static_cast<int>(r.Int(0, 1))};
  }

  Result<MagicLinkRow> ConsumeMagicLink(std::string_view token_hash, std::string_view email,
                                        TimestampMs now) override {
    static const std::string sql = fmt::format(
        "UPDATE magic_links SET used_at=$1 WHERE token_hash=$2 AND used_at IS NULL AND expires_at>$1 "
        "AND ($3='' OR email=$3) RETURNING {}", kLinkColumns);
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(now), P(token_hash), P(email)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "this link is unknown, used or expired");
    return ReadLink(r, 0);
  }

  Result<bool> MagicLinkLive(std::string_view token_hash, TimestampMs now) override {
    OS_ASSIGN_OR_RETURN(PgResult r, Query(
        "SELECT 1 FROM magic_links WHERE token_hash=$1 AND used_at IS NULL AND expires_at>$2",
        {P(token_hash), P(now)}));
    return r.Rows() > 0;
  }

  Result<SessionRow> CreateSession(const SessionRow& s) override {
    OS_ASSIGN_OR_RETURN(PgResult r, Query(
        "INSERT INTO sessions(id_hash, email, org_id, client, created_at, last_seen_at, expires_at) "
        "VALUES($1,$2,$3,$4,$5,$6,$7) RETURNING id",
        {P(s.id_hash), P(s.email), P(s.org), P(s.client), P(s.created_at), P(s.last_seen_at),
         P(s.expires_at)}));
    SessionRow out = s;
    out.id = r.Int(0, 0);
    return out;
  }

  Result<SessionRow> FindSession(std::string_view id_hash) override {
    static const std::string sql = fmt::format(
        "SELECT {} FROM sessions WHERE id_hash=$1 AND ended_at IS NULL", kSessionColumns);
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(id_hash)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such session");
    return ReadSession(r, 0);
  }

  Status TouchSession(std::int64_t id, TimestampMs at) override {
    return Update("UPDATE sessions SET last_seen_at=$1 WHERE id=$2 AND ended_at IS NULL", at, id);
  }
  Status SetSessionOrg(std::int64_t id, OrgId org) override {
    return Update("UPDATE sessions SET org_id=$1 WHERE id=$2 AND ended_at IS NULL", org, id);
  }
  Status EndSession(std::int64_t id, TimestampMs at) override {
    return Update("UPDATE sessions SET ended_at=$1 WHERE id=$2 AND ended_at IS NULL", at, id);
  }

  Result<int> EndSessionsOf(std::string_view email, TimestampMs at) override {
    OS_ASSIGN_OR_RETURN(PgResult r, Query(
        "UPDATE sessions SET ended_at=$1 WHERE email=$2 AND ended_at IS NULL", {P(at), P(email)}));
    return static_cast<int>(r.Affected());
  }

  Result<std::vector<Member>> MembershipsOf(std::string_view email) override {
    static const std::string sql = fmt::format(
        "SELECT {} FROM users WHERE email=$1 AND removed_at IS NULL ORDER BY org_id", kMemberColumns);
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(email)}));
    return Members(r);
  }

  Result<std::vector<Member>> ListMembers(OrgId org) override {
    static const std::string sql = fmt::format(
        "SELECT {} FROM users WHERE org_id=$1 AND removed_at IS NULL ORDER BY id", kMemberColumns);
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(org)}));
    return Members(r);
  }

  Result<Member> GetMember(OrgId org, UserId id) override {
    static const std::string sql =
        fmt::format("SELECT {} FROM users WHERE id=$1 AND org_id=$2", kMemberColumns);
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(id), P(org)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such member");
    return ReadMember(r, 0);
  }

  Result<Member> AddMember(OrgId org, std::string_view email, Role role) override {
    OS_ASSIGN_OR_RETURN(PgResult o, Query("SELECT 1 FROM organizations WHERE id=$1", {P(org)}));
    if (o.Rows() == 0) return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", org));
    // Insert, or bring a removed member back; an active member stays as it is (no row).
    static const std::string sql = fmt::format(
        "INSERT INTO users(org_id, email, role, created_at) VALUES($1,$2,$3,$4) "
        "ON CONFLICT (org_id, email) DO UPDATE SET removed_at=NULL, role=EXCLUDED.role "
        "WHERE users.removed_at IS NOT NULL RETURNING {}", kMemberColumns);
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(org), P(email), P(RoleName(role)), P(clock_->NowMs())}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kAlreadyExists, fmt::format("{} is a member already", email));
    return ReadMember(r, 0);
  }

  Result<Member> SetMemberRole(OrgId org, UserId id, Role role) override {
    static const std::string sql = fmt::format(
        "UPDATE users SET role=$1 WHERE id=$2 AND org_id=$3 AND removed_at IS NULL RETURNING {}",
        kMemberColumns);
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(RoleName(role)), P(id), P(org)}));
    if (r.Rows() == 0) return MakeError(ErrorCode::kNotFound, "no such member");
    return ReadMember(r, 0);
  }

  Status RemoveMember(OrgId org, UserId id, TimestampMs at) override {
    OS_ASSIGN_OR_RETURN(PgResult r, Query(
        "UPDATE users SET removed_at=$1 WHERE id=$2 AND org_id=$3 AND removed_at IS NULL",
        {P(at), P(id), P(org)}));
    if (r.Affected() == 0) return MakeError(ErrorCode::kNotFound, "no such member");
    return Ok();
  }

  Result<AuditEvent> AppendAudit(const AuditEvent& e) override {
    OS_ASSIGN_OR_RETURN(PgResult r, Query(
        "INSERT INTO audit_events(org_id, at, actor, via, client, action, target, old_value, "
        "new_value) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id",
        {P(e.org), P(e.at), P(e.actor), P(e.via), P(e.client), P(e.action), P(e.target),
         P(e.old_value), P(e.new_value)}));
    AuditEvent out = e;
    out.id = r.Int(0, 0);
    return out;
  }

  Result<std::vector<AuditEvent>> ListAudit(const AuditFilter& f) override {
    static const std::string sql = fmt::format(
        "SELECT {} FROM audit_events WHERE org_id=$1 AND ($2::bigint IS NULL OR at>=$2) "
        "AND ($3::bigint IS NULL OR at<$3) "
        "AND ($4::text IS NULL OR action=$4 OR left(action, length($4)+1)=$4||'.') "
        "AND ($5::text IS NULL OR target=$5) AND ($6::text IS NULL OR strpos(actor, $6)>0) "
        "AND ($7=0 OR id<$7) ORDER BY id DESC LIMIT $8", kAuditColumns);
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(f.org), P(f.from), P(f.to), P(f.action_prefix),
                                                P(f.target), P(f.actor_contains), P(f.before_id),
                                                P(f.limit)}));
    std::vector<AuditEvent> out;
    for (int i = 0; i < r.Rows(); ++i) out.push_back(ReadAudit(r, i));
    return out;
  }

 private:
  Result<PgResult> Query(std::string_view sql, const std::vector<Param>& params) {
    for (int attempt = 0;; ++attempt) {
      OS_ASSIGN_OR_RETURN(auto lease, pool_->Acquire());
      auto result = lease->Exec(sql, params);
      if (result || result.error().code != ErrorCode::kUnavailable || attempt > 0) return result;
      pool_->Clear();  // a connection that died with its server: once more on a fresh one
    }
  }

  Status Update(const char* sql, std::int64_t a, std::int64_t b) {
    OS_ASSIGN_OR_RETURN(PgResult r, Query(sql, {P(a), P(b)}));
    if (r.Affected() == 0) return MakeError(ErrorCode::kNotFound, "no such session");
    return Ok();
  }

  Pool* pool_;
  const Clock* clock_;
};

}  // namespace

std::unique_ptr<PeopleStore> MakePgPeopleStore(Pool* pool, const Clock* clock) {
  return std::make_unique<PgPeopleStore>(pool, clock);
}

}  // namespace opensense::store::postgres
