#include "mqtt_plugin/acl.hpp"

#include <nlohmann/json.hpp>

namespace opensense::mqtt {

namespace {

constexpr std::size_t kMaxAnswerBytes = 4 << 20;
constexpr std::size_t kMaxRules = 100'000;
constexpr std::size_t kMaxTopicBytes = 65'535;

// Splits off the next level of a topic: "a/b/c" -> "a", rest "b/c"; the last level leaves
// `rest` empty and `more` false.
std::string_view NextLevel(std::string_view& rest, bool& more) {
  auto slash = rest.find('/');
  std::string_view level = rest.substr(0, slash);
  more = slash != std::string_view::npos;
  rest = more ? rest.substr(slash + 1) : std::string_view();
  return level;
}

bool ActionCovers(AclAction action, AclRequest request) {
  switch (action) {
    case AclAction::kAll: return true;
    case AclAction::kPublish: return request == AclRequest::kPublish;
    case AclAction::kSubscribe: return request == AclRequest::kSubscribe || request == AclRequest::kRead;
  }
  return false;
}

std::string_view ActionName(AclAction a) {
  switch (a) {
    case AclAction::kPublish: return "publish";
    case AclAction::kSubscribe: return "subscribe";
    case AclAction::kAll: return "all";
  }
  return "all";
}

}  // namespace

std::string ReadingsTopic(std::int64_t device_id) {
  return "devices/" + std::to_string(device_id) + "/readings";
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  if (filter.empty()) return false;
  if (!topic.empty() && topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  bool filter_more = true, topic_more = true, topic_done = false;
  std::string_view f = filter, t = topic;
  while (true) {
    std::string_view fl = NextLevel(f, filter_more);
    if (fl == "#") return !filter_more;  // '#' must be last; it matches the parent level too
    if (topic_done) return false;
    std::string_view tl = NextLevel(t, topic_more);
    if (fl != "+" && fl != tl) return false;
    if (!topic_more) topic_done = true;
    if (!filter_more) return topic_done;
  }
}

std::string_view StripSharePrefix(std::string_view topic) {
  constexpr std::string_view kShare = "$share/";
  if (topic.substr(0, kShare.size()) != kShare) return topic;
  std::string_view rest = topic.substr(kShare.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return topic;
  std::string_view group = rest.substr(0, slash);
  if (group.find_first_of("+#") != std::string_view::npos) return topic;
  std::string_view filter = rest.substr(slash + 1);
  if (filter.empty()) return topic;
  return filter;
}

bool Allowed(const std::vector<AclRule>& rules, AclRequest request, std::string_view topic) {
  if (topic.empty()) return false;
  if (request == AclRequest::kSubscribe) {
    std::string_view stripped = StripSharePrefix(topic);
    if (stripped == topic && topic.substr(0, 7) == "$share/") return false;  // malformed share
    topic = stripped;
  }
  for (const auto& r : rules) {
    if (!ActionCovers(r.action, request)) continue;
    if (TopicMatches(r.topic, topic)) return r.permission == AclPermission::kAllow;
  }
  return false;
}

std::vector<AclRule> DeviceRules(std::int64_t device_id) {
  return {{AclPermission::kAllow, AclAction::kPublish, ReadingsTopic(device_id)},
          {AclPermission::kDeny, AclAction::kAll, "#"}};
}

std::vector<AclRule> GatewayRules(const std::vector<std::int64_t>& device_ids) {
  std::vector<AclRule> rules;
  rules.reserve(device_ids.size() + 1);
  for (auto id : device_ids) rules.push_back({AclPermission::kAllow, AclAction::kPublish, ReadingsTopic(id)});
  rules.push_back({AclPermission::kDeny, AclAction::kAll, "#"});
  return rules;
}

std::vector<AclRule> ServiceRules() {
  return {{AclPermission::kAllow, AclAction::kSubscribe, std::string(kReadingsFilter)},
          {AclPermission::kAllow, AclAction::kSubscribe, "$share/+/" + std::string(kReadingsFilter)},
          {AclPermission::kDeny, AclAction::kAll, "#"}};
}

std::optional<std::int64_t> GatewaySiteOf(std::string_view username) {
  if (username.substr(0, kGatewayUsernamePrefix.size()) != kGatewayUsernamePrefix) return std::nullopt;
  std::string_view digits = username.substr(kGatewayUsernamePrefix.size());
  if (digits.empty() || digits.size() > 18 || digits.front() == '0') return std::nullopt;
  std::int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string FormatAuthAnswer(const AuthAnswer& answer) {
  nlohmann::json j;
  j["result"] = answer.allow ? "allow" : "deny";
  j["is_superuser"] = false;
  if (answer.allow) {
    nlohmann::json acl = nlohmann::json::array();
    for (const auto& r : answer.acl) {
      acl.push_back({{"permission", r.permission == AclPermission::kAllow ? "allow" : "deny"},
                     {"action", ActionName(r.action)},
                     {"topic", r.topic}});
    }
    j["acl"] = std::move(acl);
    if (answer.expire_at) j["expire_at"] = *answer.expire_at;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<AuthAnswer> ParseAuthAnswer(std::string_view body) {
  auto bad = [](std::string what) { return MakeError(ErrorCode::kInvalidArgument, "auth answer: " + what); };
  if (body.size() > kMaxAnswerBytes) return bad("too large");
  nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  AuthAnswer a;
  auto result = j.find("result");
  a.allow = result != j.end() && result->is_string() && result->get_ref<const std::string&>() == "allow";
  if (auto su = j.find("is_superuser"); su != j.end() && su->is_boolean() && su->get<bool>()) {
    return bad("superusers are not used by OpenSense");
  }
  if (auto exp = j.find("expire_at"); exp != j.end()) {
    if (!exp->is_number_integer()) return bad("expire_at is not an integer");
    a.expire_at = exp->get<std::int64_t>();
  }
  auto acl = j.find("acl");
  if (acl == j.end()) return a;
  if (!acl->is_array()) return bad("acl is not a list");
  if (acl->size() > kMaxRules) return bad("too many acl rules");
  for (const auto& item : *acl) {
    if (!item.is_object()) return bad("an acl rule is not an object");
    auto str = [&](const char* key) -> const std::string* {
      auto it = item.find(key);
      return it != item.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
    };
    const std::string* perm = str("permission");
    const std::string* action = str("action");
    const std::string* topic = str("topic");
    if (perm == nullptr || action == nullptr || topic == nullptr) return bad("an acl rule misses a field");
    AclRule r;
    if (*perm == "allow") r.permission = AclPermission::kAllow;
    else if (*perm == "deny") r.permission = AclPermission::kDeny;
    else return bad("unknown permission");
    if (*action == "publish") r.action = AclAction::kPublish;
    else if (*action == "subscribe") r.action = AclAction::kSubscribe;
    else if (*action == "all") r.action = AclAction::kAll;
    else return bad("unknown action");
    if (topic->empty() || topic->size() > kMaxTopicBytes) return bad("bad acl topic");
    r.topic = *topic;
    a.acl.push_back(std::move(r));
  }
  return a;
}

std::string FormatRevokedAnswer(const RevokedAnswer& answer) {
  nlohmann::json j;
  j["now"] = answer.now_ms;
  j["tokens"] = answer.token_ids;
  nlohmann::json sites = nlohmann::json::array();
  for (const auto& s : answer.sites) sites.push_back({{"id", s.site_id}, {"changed_at", s.changed_at_ms}});
  j["sites"] = std::move(sites);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<RevokedAnswer> ParseRevokedAnswer(std::string_view body) {
  auto bad = [](std::string what) { return MakeError(ErrorCode::kInvalidArgument, "revoked answer: " + what); };
  if (body.size() > kMaxAnswerBytes) return bad("too large");
  nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  auto now = j.find("now");
  auto tokens = j.find("tokens");
  if (now == j.end() || !now->is_number_integer()) return bad("'now' is missing");
  if (tokens == j.end() || !tokens->is_array() || tokens->size() > 1'000'000) return bad("'tokens' is not a list");
  RevokedAnswer a;
  a.now_ms = now->get<std::int64_t>();
  for (const auto& t : *tokens) {
    if (!t.is_string() || t.get_ref<const std::string&>().empty() || t.get_ref<const std::string&>().size() > 64) {
      return bad("a token id is not a short string");
    }
    a.token_ids.push_back(t.get<std::string>());
  }
  if (auto sites = j.find("sites"); sites != j.end()) {
    if (!sites->is_array() || sites->size() > 1'000'000) return bad("'sites' is not a list");
    for (const auto& s : *sites) {
      auto id = s.is_object() ? s.find("id") : s.end();
      auto at = s.is_object() ? s.find("changed_at") : s.end();
      if (!s.is_object() || id == s.end() || at == s.end() || !id->is_number_integer() ||
          !at->is_number_integer() || id->get<std::int64_t>() <= 0) {
        return bad("a site is not {\"id\": <positive integer>, \"changed_at\": <ms>}");
      }
      a.sites.push_back({id->get<std::int64_t>(), at->get<std::int64_t>()});
    }
  }
  return a;
}

std::string_view TokenIdOf(std::string_view password) {
  if (password.size() < 6) return {};
  std::string_view prefix = password.substr(0, 4);
  if (prefix != "osd_" && prefix != "osg_") return {};
  std::string_view rest = password.substr(4);
  auto sep = rest.find('_');
  if (sep == std::string_view::npos || sep == 0 || sep > 64) return {};
  return rest.substr(0, sep);
}

}  // namespace opensense::mqtt
