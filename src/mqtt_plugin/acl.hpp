// Broker-side authorisation of MQTT clients, as data: the ACL list that OpenSense's
// /internal/mqtt/auth hook answers (EMQX 5.8+ shape) and the rules that decide a publish, a
// subscription or a delivery from it. Used by the hook (to build and apply the list) and by the
// Mosquitto plugin (to answer every ACL check from memory).
//
// Pure functions, no I/O, no OpenSense library below them (the plugin is loaded into the broker
// and links only this). Threads: everything here is safe to call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace opensense::mqtt {

// The topic a device publishes its readings to: devices/<server id>/readings.
std::string ReadingsTopic(std::int64_t device_id);
// The filter the OpenSense subscriber uses (also behind $share/<group>/).
inline constexpr std::string_view kReadingsFilter = "devices/+/readings";

enum class AclAction { kPublish, kSubscribe, kAll };
enum class AclPermission { kAllow, kDeny };

// One rule of the list; rules are tried in order and the first whose action and topic match
// decides. `topic` is an MQTT topic filter ('+' one level, '#' the rest).
struct AclRule {
  AclPermission permission = AclPermission::kDeny;
  AclAction action = AclAction::kAll;
  std::string topic;
  bool operator==(const AclRule&) const = default;
};

// What a client asks for. A delivery to a subscriber (Mosquitto's READ check) is a kRead of the
// message's topic; it is allowed by a subscribe rule whose filter matches the topic.
enum class AclRequest { kPublish, kSubscribe, kRead };

// MQTT topic matching (MQTT 3.1.1 section 4.7): `filter` may hold '+' and a final '#'; `topic`
// is a topic name, or a subscription filter whose wildcards are compared literally (so the
// filter "devices/+/readings" allows subscribing to "devices/+/readings" and "devices/7/readings"
// but not to "#" or "devices/#"). Topics starting with '$' are not matched by a leading wildcard.
bool TopicMatches(std::string_view filter, std::string_view topic);

// "$share/<group>/<filter>" -> "<filter>"; anything else unchanged. A malformed share (empty or
// wildcard group, nothing after it) is returned unchanged, so it matches no rule.
std::string_view StripSharePrefix(std::string_view topic);

// The first matching rule's permission; deny when none matches. Subscription filters are
// checked without their $share/<group>/ prefix.
bool Allowed(const std::vector<AclRule>& rules, AclRequest request, std::string_view topic);

// ---- the rule lists OpenSense hands out --------------------------------------------------------

// A device may publish to its own readings topic; nothing else.
std::vector<AclRule> DeviceRules(std::int64_t device_id);
// A gateway may publish to the readings topics of these devices (its site's); nothing else.
std::vector<AclRule> GatewayRules(const std::vector<std::int64_t>& device_ids);
// The OpenSense subscriber may subscribe to (and receive) devices/+/readings, also as a shared
// subscription; nothing else, and no publish.
std::vector<AclRule> ServiceRules();

// The username a gateway logs in with: "site:<site id>"; nullopt for anything else.
inline constexpr std::string_view kGatewayUsernamePrefix = "site:";
std::optional<std::int64_t> GatewaySiteOf(std::string_view username);

// ---- the hook's answer ------------------------------------------------------------------------

// {"result":"allow"|"deny","is_superuser":false,"acl":[...],"expire_at":<unix s>}.
struct AuthAnswer {
  bool allow = false;
  std::vector<AclRule> acl;
  std::optional<std::int64_t> expire_at;  // Unix seconds (EMQX 5.8+)
};

std::string FormatAuthAnswer(const AuthAnswer& answer);
// Parses an answer (from an untrusted or broken peer: at most 4 MiB, 100,000 rules, topics of
// at most 65,535 bytes). kInvalidArgument for anything malformed; a missing or unknown result is
// a deny; an unknown permission or action makes the whole answer invalid (fail closed).
Result<AuthAnswer> ParseAuthAnswer(std::string_view body);

// GET /internal/mqtt/revoked?since=<ms> answers
// {"now": <ms>, "tokens": ["<token id>", ...], "sites": [{"id": <site>, "changed_at": <ms>}, ...]}:
// the device and gateway tokens that stopped working in (since, now] (revoked, or rotated and
// past their grace period), and the sites that got a new device then, with the newest device's
// creation time (their gateways' ACL lists are out of date).
struct SiteChange {
  std::int64_t site_id = 0;
  std::int64_t changed_at_ms = 0;
  bool operator==(const SiteChange&) const = default;
};
struct RevokedAnswer {
  std::int64_t now_ms = 0;
  std::vector<std::string> token_ids;
  std::vector<SiteChange> sites;
};
std::string FormatRevokedAnswer(const RevokedAnswer& answer);
// kInvalidArgument for anything malformed (at most 4 MiB, 1,000,000 ids of at most 64 bytes);
// "sites" may be missing (an older OpenSense).
Result<RevokedAnswer> ParseRevokedAnswer(std::string_view body);

// The token id (the public <token-id> part) of a presented device or gateway token, without
// checking anything else: "osd_<id>_<secret>" -> "<id>". Empty for anything else.
std::string_view TokenIdOf(std::string_view password);

}  // namespace opensense::mqtt
