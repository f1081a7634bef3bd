#include "api/channels_routes.hpp"

#include <fmt/format.h>

#include "core/time_zone.hpp"
#include "notify/channels.hpp"
#include "notify/delivery.hpp"
#include "notify/dispatcher.hpp"
#include "notify/webhook/webhook.hpp"

namespace opensense::api::internal {
namespace {

using http::Request;
using http::Response;
using P = const auth::Principal&;

constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 500;

json ChannelJson(const store::NotificationChannel& c) {
  return {{"id", c.id},           {"kind", c.kind},       {"name", c.name},
          {"target", c.target},   {"enabled", c.enabled}, {"created_at", FormatRfc3339(c.created_at)}};
}

json OptTime(const std::optional<TimestampMs>& t) { return t ? json(FormatRfc3339(*t)) : json(nullptr); }

json MessageJson(const store::OutboxMessage& m) {
  return {{"id", m.id},
          {"channel_id", m.channel ? json(*m.channel) : json(nullptr)},
          {"kind", m.channel_kind},
          {"recipient", m.recipient},
          {"subject", m.subject},
          {"alert_id", m.alert_id ? json(*m.alert_id) : json(nullptr)},
          {"event_id", m.event_id ? json(*m.event_id) : json(nullptr)},
          {"state", m.state},
          {"attempts", m.attempts},
          {"last_error", m.last_error},
          {"created_at", FormatRfc3339(m.created_at)},
          {"next_attempt_at", m.state == "pending" ? json(FormatRfc3339(m.next_attempt_at)) : json(nullptr)},
          {"done_at", OptTime(m.done_at)}};
}

json AttemptJson(const store::NotificationAttempt& a) {
  return {{"id", a.id},
          {"outbox_id", a.outbox_id},
          {"at", FormatRfc3339(a.at)},
          {"kind", a.channel_kind},
          {"recipient", a.recipient},
          {"status", a.status},
          {"provider_code", a.provider_code ? json(*a.provider_code) : json(nullptr)},
          {"latency_ms", a.latency_ms},
          {"detail", a.detail}};
}

Response BadRequest(std::string message) {
  return FromError(Error{ErrorCode::kInvalidArgument, std::move(message)});
}

// The fields of a channel body; unknown fields and wrong types are refused.
struct ChannelFields {
  std::optional<std::string> kind, name, target;
  std::optional<bool> enabled;
};

Result<ChannelFields> ReadFields(const Request& req, bool allow_kind) {
  OS_ASSIGN_OR_RETURN(json body, ParseJsonBody(req));
  ChannelFields f;
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    if (k == "enabled") {
      if (!it->is_boolean()) return MakeError(ErrorCode::kInvalidArgument, "enabled: must be true or false");
      f.enabled = it->get<bool>();
      continue;
    }
    if (k != "name" && k != "target" && !(allow_kind && k == "kind")) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("unknown field '{}' (allowed: {}name, target, enabled)",
                                   notify::CleanText(k, 40), allow_kind ? "kind, " : ""));
    }
    if (!it->is_string()) return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: must be a string", k));
    std::string v = it->get<std::string>();
    if (k == "kind") f.kind = std::move(v);
    else if (k == "name") f.name = std::move(v);
    else f.target = std::move(v);
  }
  return f;
}

}  // namespace

void RegisterChannelRoutes(ApiContext& ctx, http::Router& r) {
  ApiContext* m = &ctx;
  const notify::UrlPolicy policy{ctx.options.webhook_allow_http_loopback};
  auto channel_param = [m](Request& req, P p) -> Result<store::NotificationChannel> {
    auto id = ParseId(req.params["id"]);
    if (!id) return MakeError(ErrorCode::kNotFound, "no such notification channel");
    return m->store->Notify().GetChannel(p.org, *id);
  };

  m->Route(r, "GET", "/api/v1/channels", "List the organisation's notification channels",
           m->User(Role::kAdmin, [m](Request&, P p) {
             auto list = m->store->Notify().ListChannels(p.org);
             if (!list) return FromError(list.error());
             json arr = json::array();
             for (const auto& c : *list) arr.push_back(ChannelJson(c));
             return Response::Json(200, arr.dump());
           }));
  m->Route(r, "POST", "/api/v1/channels",
           "Create a channel: email, telegram or webhook (a webhook's signing secret is in the answer, once)",
           m->User(Role::kAdmin, [m, policy](Request& req, P p) {
             auto f = ReadFields(req, /*allow_kind=*/true);
             if (!f) return FromError(f.error());
             if (!f->kind || !f->name || !f->target) return BadRequest("give kind, name and target");
             if (auto st = notify::ValidateChannel(*f->kind, *f->name, *f->target, policy); !st) {
               return FromError(st.error());
             }
             store::NotificationChannel c;
             c.org = p.org;
             c.kind = *f->kind;
             c.name = *f->name;
             c.target = *f->target;
             c.enabled = f->enabled.value_or(true);
             c.created_at = m->clock->NowMs();
             if (c.kind == "webhook") c.secret = notify::webhook::NewSecret();
             auto created = m->store->Notify().CreateChannel(c);
             if (!created) return FromError(created.error());
             json out = ChannelJson(*created);
             m->Audit(req, p, "channel.create", fmt::format("channel:{}", created->id), nullptr, out);
             if (created->kind == "webhook") out["secret"] = created->secret;
             return Response::Json(201, out.dump());
           }));
  m->Route(r, "GET", "/api/v1/channels/{id}", "One notification channel",
           m->User(Role::kAdmin, [channel_param](Request& req, P p) {
             auto c = channel_param(req, p);
             return c ? Response::Json(200, ChannelJson(*c).dump()) : FromError(c.error());
           }));
  m->Route(r, "PATCH", "/api/v1/channels/{id}", "Rename a channel, change its target, enable or disable it",
           m->User(Role::kAdmin, [m, policy, channel_param](Request& req, P p) {
             auto c = channel_param(req, p);
             if (!c) return FromError(c.error());
             auto f = ReadFields(req, /*allow_kind=*/false);
             if (!f) return FromError(f.error());
             if (auto st = notify::ValidateChannel(c->kind, f->name.value_or(c->name),
                                                   f->target.value_or(c->target), policy);
                 !st) {
               return FromError(st.error());
             }
             auto updated = m->store->Notify().UpdateChannel(p.org, c->id, {f->name, f->target, f->enabled});
             if (!updated) return FromError(updated.error());
             json after = ChannelJson(*updated);
             m->Audit(req, p, "channel.update", fmt::format("channel:{}", c->id), ChannelJson(*c), after);
             return Response::Json(200, after.dump());
           }));
  m->Route(r, "DELETE", "/api/v1/channels/{id}", "Delete a channel (its queued messages are cancelled)",
           m->User(Role::kAdmin, [m, channel_param](Request& req, P p) {
             auto c = channel_param(req, p);
             if (!c) return FromError(c.error());
             auto st = m->store->Notify().DeleteChannel(p.org, c->id);
             if (!st) return FromError(st.error());
             m->Audit(req, p, "channel.delete", fmt::format("channel:{}", c->id), ChannelJson(*c), nullptr);
             return Response::Json(200, json({{"id", c->id}, {"deleted", true}}).dump());
           }));
  m->Route(r, "POST", "/api/v1/channels/{id}/test", "Send a test message through the channel (via the outbox)",
           m->User(Role::kAdmin, [m, channel_param](Request& req, P p) {
             auto c = channel_param(req, p);
             if (!c) return FromError(c.error());
             if (!c->enabled) return BadRequest("the channel is disabled: enable it first (PATCH {\"enabled\": true})");
             const TimestampMs now = m->clock->NowMs();
             const auto message = notify::TestMessage(*c, notify::RandomToken(), now);
             json ids = json::array();
             for (const auto& row : notify::OutboxRowsFor(*c, message, now)) {
               auto id = m->store->Notify().Enqueue(row);
               if (!id) return FromError(id.error());
               if (*id) ids.push_back(**id);
             }
             if (m->options.notification_queued) m->options.notification_queued();
             return Response::Json(202, json({{"channel_id", c->id}, {"queued", ids}}).dump());
           }));
  m->Route(r, "GET", "/api/v1/notifications",
           "Recent notifications and delivery attempts of the organisation (?limit=, newest first)",
           m->User(Role::kViewer, [m](Request& req, P p) {
             int limit = kDefaultLimit;
             if (auto l = req.Query("limit")) {
               auto n = ParseId(*l);
               if (!n || *n > kMaxLimit) return BadRequest(fmt::format("limit: give 1..{}", kMaxLimit));
               limit = static_cast<int>(*n);
             }
             auto messages = m->store->Notify().RecentMessages(p.org, limit);
             if (!messages) return FromError(messages.error());
             auto attempts = m->store->Notify().RecentAttempts(p.org, limit);
             if (!attempts) return FromError(attempts.error());
             json out = {{"messages", json::array()}, {"attempts", json::array()}};
             for (const auto& x : *messages) out["messages"].push_back(MessageJson(x));
             for (const auto& x : *attempts) out["attempts"].push_back(AttemptJson(x));
             return Response::Json(200, out.dump());
           }));
}

}  // namespace opensense::api::internal
