#include "store/sqlite/sqlite_people_store.hpp"

#include <fmt/format.h>

#include "core/clock.hpp"
#include "store/sqlite/sqlite_db.hpp"

namespace opensense::store::sqlite {

namespace {

constexpr const char* kLinkColumns =
    "id, token_hash, email, purpose, org_id, detail, client, created_at, expires_at, used_at";
constexpr const char* kSessionColumns =
    "id, id_hash, email, org_id, client, created_at, last_seen_at, expires_at, ended_at";
constexpr const char* kMemberColumns = "id, org_id, email, role, created_at, removed_at";
constexpr const char* kAuditColumns =
    "id, org_id, at, actor, via, client, action, target, old_value, new_value";

std::optional<std::int64_t> OptInt(const Stmt* s, int col) {
  if (s->IsNull(col)) return std::nullopt;
  return s->Int(col);
}

MagicLinkRow ReadLink(const Stmt* s) {
  return {s->Int(0), s->Text(1), s->Text(2), s->Text(3), OptInt(s, 4), s->Text(5),
          s->Text(6), s->Int(7), s->Int(8), OptInt(s, 9)};
}

SessionRow ReadSession(const Stmt* s) {
  return {s->Int(0), s->Text(1), s->Text(2), s->Int(3), s->Text(4),
          s->Int(5), s->Int(6), s->Int(7), OptInt(s, 8)};
}

Result<Member> ReadMember(const Stmt* s) {
  Member m{s->Int(0), s->Int(1), s->Text(2), Role::kViewer, s->Int(4), OptInt(s, 5)};
  OS_ASSIGN_OR_RETURN(m.role, ParseRole(s->Text(3)));
  return m;
}

AuditEvent ReadAudit(const Stmt* s) {
  return {s->Int(0), s->Int(1), s->Int(2), s->Text(3), s->Text(4),
          s->Text(5), s->Text(6), s->Text(7), s->Text(8), s->Text(9)};
}

// Steps `s` to the end, reading each row with `read`; resets the statement.
template <typename T, typename Fn>
Result<std::vector<T>> All(Stmt* s, Fn read) {
  std::vector<T> out;
  while (true) {
    auto row = s->Step();
    if (!row) {
      s->Reset();
      return tl::unexpected(row.error());
    }
    if (!*row) break;
    if constexpr (std::is_same_v<decltype(read(s)), Result<T>>) {
      auto v = read(s);
      if (!v) {
        s->Reset();
        return tl::unexpected(v.error());
      }
      out.push_back(std::move(*v));
    } else {
      out.push_back(read(s));
    }
  }
  s->Reset();
  return out;
}

template <typename T, typename Fn>
Result<T> One(Stmt* s, Fn read, std::string_view what) {
  OS_ASSIGN_OR_RETURN(auto all, (All<T>(s, read)));
  if (all.empty()) return MakeError(ErrorCode::kNotFound, std::string(what));
  return std::move(all.front());
}

class SqlitePeopleStore final : public PeopleStore {
 public:
  SqlitePeopleStore(std::unique_ptr<Db> db, const Clock* clock)
      : owned_(std::move(db)), db_(owned_.get()), mu_(&own_mu_), clock_(clock) {}

  Result<MagicLinkRow> AddMagicLink(const MagicLinkRow& link) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO magic_links(token_hash, email, purpose, org_id, detail, client, created_at, "
        "expires_at) VALUES(?,?,?,?,?,?,?,?)"));
    s->Bind(1, link.token_hash).Bind(2, link.email).Bind(3, link.purpose);
    if (link.org) s->Bind(4, *link.org); else s->BindNull(4);
    s->Bind(5, link.detail).Bind(6, link.client).Bind(7, link.created_at).Bind(8, link.expires_at);
    OS_RETURN_IF_ERROR(s->Run());
    MagicLinkRow out = link;
    out.id = db_->LastInsertRowid();
    return out;
  }

  Result<std::pair<int, int>> CountMagicLinks(std::string_view email, std::string_view client,
                                              TimestampMs since) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "SELECT (SELECT count(*) FROM magic_links WHERE email=? AND created_at>=?), "
        "(SELECT count(*) FROM magic_links WHERE client=? AND created_at>=?)"));
    s->Bind(1, email).Bind(2, since).Bind(3, client).Bind(4, since);
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    std::pair<int, int> out{0, 0};
    if (row) out = {static_cast<int>(s->Int(0)), static_cast<int>(s->Int(1))};
    s->Reset();
    return out;
  }

  Result<MagicLinkRow> ConsumeMagicLink(std::string_view token_hash, std::string_view email,
                                        TimestampMs now) override {
    std::lock_guard lock(*mu_);
    static const std::string sql = fmt::format(
        "UPDATE magic_links SET used_at=? WHERE token_hash=? AND used_at IS NULL AND expires_at>? "
        "AND (?='' OR email=?) RETURNING {}", kLinkColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, now).Bind(2, token_hash).Bind(3, now).Bind(4, email).Bind(5, email);
    return One<MagicLinkRow>(s, ReadLink, "this link is unknown, used or expired");
  }

  Result<bool> MagicLinkLive(std::string_view token_hash, TimestampMs now) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "SELECT 1 FROM magic_links WHERE token_hash=? AND used_at IS NULL AND expires_at>?"));
    s->Bind(1, token_hash).Bind(2, now);
    OS_ASSIGN_OR_RETURN(bool row, s->Step());
    s->Reset();
    return row;
  }

  Result<SessionRow> CreateSession(const SessionRow& session) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO sessions(id_hash, email, org_id, client, created_at, last_seen_at, expires_at) "
        "VALUES(?,?,?,?,?,?,?)"));
    s->Bind(1, session.id_hash).Bind(2, session.email).Bind(3, session.org).Bind(4, session.client);
    s->Bind(5, session.created_at).Bind(6, session.last_seen_at).Bind(7, session.expires_at);
    OS_RETURN_IF_ERROR(s->Run());
    SessionRow out = session;
    out.id = db_->LastInsertRowid();
    return out;
  }

  Result<SessionRow> FindSession(std::string_view id_hash) override {
    std::lock_guard lock(*mu_);
    static const std::string sql =
        fmt::format("SELECT {} FROM sessions WHERE id_hash=? AND ended_at IS NULL", kSessionColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, id_hash);
    return One<SessionRow>(s, ReadSession, "no such session");
  }

  Status TouchSession(std::int64_t id, TimestampMs at) override {
    return Update("UPDATE sessions SET last_seen_at=? WHERE id=? AND ended_at IS NULL", at, id);
  }
  Status SetSessionOrg(std::int64_t id, OrgId org) override {
    return Update("UPDATE sessions SET org_id=? WHERE id=? AND ended_at IS NULL", org, id);
  }
  Status EndSession(std::int64_t id, TimestampMs at) override {
    return Update("UPDATE sessions SET ended_at=? WHERE id=? AND ended_at IS NULL", at, id);
  }

  Result<int> EndSessionsOf(std::string_view email, TimestampMs at) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "UPDATE sessions SET ended_at=? WHERE email=? AND ended_at IS NULL"));
    OS_RETURN_IF_ERROR(s->Bind(1, at).Bind(2, email).Run());
    return db_->Changes();
  }

  Result<std::vector<Member>> MembershipsOf(std::string_view email) override {
    std::lock_guard lock(*mu_);
    static const std::string sql = fmt::format(
        "SELECT {} FROM users WHERE email=? AND removed_at IS NULL ORDER BY org_id", kMemberColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, email);
    return All<Member>(s, ReadMember);
  }

  Result<std::vector<Member>> ListMembers(OrgId org) override {
    std::lock_guard lock(*mu_);
    static const std::string sql = fmt::format(
        "SELECT {} FROM users WHERE org_id=? AND removed_at IS NULL ORDER BY id", kMemberColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, org);
    return All<Member>(s, ReadMember);
  }

  Result<Member> GetMember(OrgId org, UserId id) override {
    std::lock_guard lock(*mu_);
    return GetMemberLocked(org, id);
  }

  Result<Member> AddMember(OrgId org, std::string_view email, Role role) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(db_));
    OS_ASSIGN_OR_RETURN(Stmt * org_check, db_->Prepare("SELECT 1 FROM organizations WHERE id=?"));
    org_check->Bind(1, org);
    OS_ASSIGN_OR_RETURN(bool org_exists, org_check->Step());
    org_check->Reset();
    if (!org_exists) return MakeError(ErrorCode::kNotFound, fmt::format("no organisation {}", org));
    OS_ASSIGN_OR_RETURN(Stmt * find, db_->Prepare(
        "SELECT id, removed_at IS NOT NULL FROM users WHERE org_id=? AND email=?"));
    find->Bind(1, org).Bind(2, email);
    OS_ASSIGN_OR_RETURN(bool found, find->Step());
    std::int64_t id = found ? find->Int(0) : 0;
    bool removed = found && find->Int(1) != 0;
    find->Reset();
    if (found && !removed) {
      return MakeError(ErrorCode::kAlreadyExists, fmt::format("{} is a member already", email));
    }
    if (found) {
      OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare("UPDATE users SET removed_at=NULL, role=? WHERE id=?"));
      OS_RETURN_IF_ERROR(s->Bind(1, RoleName(role)).Bind(2, id).Run());
    } else {
      OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
          "INSERT INTO users(org_id, email, role, created_at) VALUES(?,?,?,?)"));
      OS_RETURN_IF_ERROR(s->Bind(1, org).Bind(2, email).Bind(3, RoleName(role)).Bind(4, NowMs()).Run());
      id = db_->LastInsertRowid();
    }
    OS_RETURN_IF_ERROR(tx.Commit());
    return GetMemberLocked(org, id);
  }

  Result<Member> SetMemberRole(OrgId org, UserId id, Role role) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "UPDATE users SET role=? WHERE id=? AND org_id=? AND removed_at IS NULL"));
    OS_RETURN_IF_ERROR(s->Bind(1, RoleName(role)).Bind(2, id).Bind(3, org).Run());
    if (db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, "no such member");
    return GetMemberLocked(org, id);
  }

  Status RemoveMember(OrgId org, UserId id, TimestampMs at) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "UPDATE users SET removed_at=? WHERE id=? AND org_id=? AND removed_at IS NULL"));
    OS_RETURN_IF_ERROR(s->Bind(1, at).Bind(2, id).Bind(3, org).Run());
    if (db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, "no such member");
    return Ok();
  }

  Result<AuditEvent> AppendAudit(const AuditEvent& e) override {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(
        "INSERT INTO audit_events(org_id, at, actor, via, client, action, target, old_value, "
        "new_value) VALUES(?,?,?,?,?,?,?,?,?)"));
    s->Bind(1, e.org).Bind(2, e.at).Bind(3, e.actor).Bind(4, e.via).Bind(5, e.client);
    s->Bind(6, e.action).Bind(7, e.target).Bind(8, e.old_value).Bind(9, e.new_value);
    OS_RETURN_IF_ERROR(s->Run());
    AuditEvent out = e;
    out.id = db_->LastInsertRowid();
    return out;
  }

  Result<std::vector<AuditEvent>> ListAudit(const AuditFilter& f) override {
    std::lock_guard lock(*mu_);
    static const std::string sql = fmt::format(
        "SELECT {} FROM audit_events WHERE org_id=? AND (? IS NULL OR at>=?) AND (? IS NULL OR at<?) "
        "AND (? IS NULL OR action=? OR substr(action, 1, length(?)+1)=?||'.') "
        "AND (? IS NULL OR target=?) AND (? IS NULL OR instr(actor, ?)>0) AND (?=0 OR id<?) "
        "ORDER BY id DESC LIMIT ?", kAuditColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    int i = 1;
    s->Bind(i++, f.org);
    auto opt_int = [&](const std::optional<TimestampMs>& v) {
      for (int k = 0; k < 2; ++k) {
        if (v) s->Bind(i++, *v); else s->BindNull(i++);
      }
    };
    auto opt_text = [&](const std::optional<std::string>& v, int times) {
      for (int k = 0; k < times; ++k) {
        if (v) s->Bind(i++, *v); else s->BindNull(i++);
      }
    };
    opt_int(f.from);
    opt_int(f.to);
    opt_text(f.action_prefix, 4);
    opt_text(f.target, 2);
    opt_text(f.actor_contains, 2);
    s->Bind(i, f.before_id);
    s->Bind(i + 1, f.before_id);
    s->Bind(i + 2, static_cast<std::int64_t>(f.limit));
    return All<AuditEvent>(s, ReadAudit);
  }

 private:
  Result<Member> GetMemberLocked(OrgId org, UserId id) {
    static const std::string sql =
        fmt::format("SELECT {} FROM users WHERE id=? AND org_id=?", kMemberColumns);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql.c_str()));
    s->Bind(1, id).Bind(2, org);
    return One<Member>(s, ReadMember, "no such member");
  }

  Status Update(const char* sql, std::int64_t a, std::int64_t b) {
    std::lock_guard lock(*mu_);
    OS_ASSIGN_OR_RETURN(Stmt * s, db_->Prepare(sql));
    OS_RETURN_IF_ERROR(s->Bind(1, a).Bind(2, b).Run());
    if (db_->Changes() == 0) return MakeError(ErrorCode::kNotFound, "no such session");
    return Ok();
  }

  TimestampMs NowMs() const { return clock_->NowMs(); }

  std::unique_ptr<Db> owned_;
  std::mutex own_mu_;
  Db* db_;
  std::mutex* mu_;
  const Clock* clock_;
};

}  // namespace

std::unique_ptr<PeopleStore> MakeSqlitePeopleStore(std::unique_ptr<Db> db, const Clock* clock) {
  return std::make_unique<SqlitePeopleStore>(std::move(db), clock);
}

}  // namespace opensense::store::sqlite
