#include "app/channels_cmd.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>

#include "core/time_zone.hpp"
#include "notify/channels.hpp"
#include "notify/delivery.hpp"
#include "notify/webhook/webhook.hpp"

namespace opensense::app {
namespace {

using nlohmann::json;

json ChannelJson(const store::NotificationChannel& c) {
  return {{"id", c.id},         {"org", c.org},         {"kind", c.kind},
          {"name", c.name},     {"target", c.target},   {"enabled", c.enabled},
          {"created_at", FormatRfc3339(c.created_at)}};
}

int Failed(const Error& e) {
  fmt::print(stderr, "opensense: {}\n", e.message);
  return e.code == ErrorCode::kInvalidArgument || e.code == ErrorCode::kNotFound ? 2 : 1;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

}  // namespace

ChannelCommands AddChannelCommand(CLI::App& app, ChannelFlags* f) {
  ChannelCommands c;
  c.root = app.add_subcommand("channel", "Notification channels of an organisation (email, telegram, webhook)");
  c.root->require_subcommand(1);
  c.list = c.root->add_subcommand("list", "List an organisation's channels");
  c.create = c.root->add_subcommand("create", "Create a channel (a webhook's signing secret is printed once)");
  c.remove = c.root->add_subcommand("delete", "Delete a channel (its queued messages are cancelled)");
  c.test = c.root->add_subcommand("test", "Queue a test message; the running server delivers it");
  for (auto* cmd : c.all()) {
    cmd->add_option("--org", f->org, "Organisation id")->required();
    cmd->add_flag("--json", f->json, "Machine-readable output");
  }
  c.create->add_option("--kind", f->kind, "email, telegram or webhook")->required();
  c.create->add_option("--name", f->name, "A name people recognise, e.g. 'Kitchen team'")->required();
  c.create->add_option("--target", f->target,
                       "email: addresses, comma-separated; telegram: chat id; webhook: https URL")
      ->required();
  for (auto* cmd : {c.remove, c.test}) cmd->add_option("--channel", f->id, "Channel id")->required();
  return c;
}

int RunChannelCommand(const ChannelCommands& c, const ChannelFlags& f, store::Store* store) {
  auto& n = store->Notify();
  if (*c.list) {
    auto list = n.ListChannels(f.org);
    if (!list) return Failed(list.error());
    if (f.json) {
      json arr = json::array();
      for (const auto& ch : *list) arr.push_back(ChannelJson(ch));
      fmt::print("{}\n", arr.dump(2));
    } else if (list->empty()) {
      fmt::print("organisation {} has no notification channels; add one with `opensense channel "
                 "create --org {} --kind email --name NAME --target you@example.com`\n", f.org, f.org);
    } else {
      for (const auto& ch : *list) {
        fmt::print("{:>5}  {:<8}  {:<24}  {}{}\n", ch.id, ch.kind, ch.name, ch.target, ch.enabled ? "" : "  (disabled)");
      }
    }
    return 0;
  }
  if (*c.create) {
    if (auto st = notify::ValidateChannel(f.kind, f.name, f.target, {}); !st) return Failed(st.error());
    store::NotificationChannel ch;
    ch.org = f.org;
    ch.kind = f.kind;
    ch.name = f.name;
    ch.target = f.target;
    ch.created_at = SystemClock().NowMs();
    if (ch.kind == "webhook") ch.secret = notify::webhook::NewSecret();
    auto created = n.CreateChannel(ch);
    if (!created) return Failed(created.error());
    if (f.json) {
      json j = ChannelJson(*created);
      if (!created->secret.empty()) j["secret"] = created->secret;
      fmt::print("{}\n", j.dump(2));
    } else {
      fmt::print("created {} channel {} '{}' -> {}\n", created->kind, created->id, created->name, created->target);
      if (!created->secret.empty()) {
        fmt::print("signing secret (shown once; give it to the receiver, see docs/security.md): {}\n",
                   created->secret);
      }
    }
    return 0;
  }
  auto ch = n.GetChannel(f.org, f.id);
  if (!ch) return Failed(ch.error());
  if (*c.remove) {
    if (auto st = n.DeleteChannel(f.org, f.id); !st) return Failed(st.error());
    if (f.json) fmt::print("{}\n", json({{"id", f.id}, {"deleted", true}}).dump(2));
    else fmt::print("deleted channel {} '{}'\n", ch->id, ch->name);
    return 0;
  }
  // test
  if (!ch->enabled) return Failed(Error{ErrorCode::kInvalidArgument, "the channel is disabled"});
  const TimestampMs now = SystemClock().NowMs();
  json ids = json::array();
  for (const auto& row : notify::OutboxRowsFor(*ch, notify::TestMessage(*ch, notify::RandomToken(), now), now)) {
    auto id = n.Enqueue(row);
    if (!id) return Failed(id.error());
    if (*id) ids.push_back(**id);
  }
  if (f.json) {
    fmt::print("{}\n", json({{"channel_id", ch->id}, {"queued", ids}}).dump(2));
  } else {
    fmt::print("queued {} test message(s) for channel {} '{}'; `opensense serve` delivers them (see "
               "GET /api/v1/notifications for the attempts)\n", ids.size(), ch->id, ch->name);
  }
  return 0;
}

notify::DispatcherOptions NotifyOptionsFor(const Config& cfg) {
  notify::DispatcherOptions o;
  o.postmark_base_url = cfg.postmark_base_url;
  o.postmark_token = Env("OPENSENSE_POSTMARK_TOKEN");
  o.mail_from = cfg.mail_from;
  o.message_stream = cfg.postmark_message_stream;
  o.telegram_base_url = cfg.telegram_base_url;
  o.telegram_token = Env("OPENSENSE_TELEGRAM_TOKEN");
  o.operator_channel.email = cfg.operator_email;
  o.operator_channel.telegram_chat = cfg.operator_telegram_chat;
  o.operator_channel.webhook_url = cfg.operator_webhook_url;
  o.operator_channel.webhook_secret = Env("OPENSENSE_OPERATOR_WEBHOOK_SECRET");
  o.request_timeout = std::chrono::seconds(cfg.notify_timeout_seconds);
  o.max_attempts = cfg.notify_max_attempts;
  // Test hook: lets the fake webhook receivers of the integration tests listen on 127.0.0.1.
  o.url_policy.allow_http_loopback = !Env("OPENSENSE_TEST_WEBHOOK_LOOPBACK").empty();
  return o;
}

}  // namespace opensense::app
