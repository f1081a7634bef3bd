// libFuzzer target for what the Mosquitto plugin reads from the network: the HTTP response of
// OpenSense's hooks (ParseHttpResponse) and the JSON answers inside it (ParseAuthAnswer,
// ParseRevokedAnswer). Arbitrary bytes give an answer or an error, never a crash; an allowed
// answer's rules decide topics without crashing either.
//
//   scripts/fuzz.sh 600
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mqtt_plugin/acl.hpp"
#include "mqtt_plugin/hook_client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace opensense::mqtt;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto reply = ParseHttpResponse(text, 1 << 16); reply) {
    if (reply->status < 100 || reply->status > 599 || reply->body.size() > (1 << 16)) std::abort();
  }
  if (auto answer = ParseAuthAnswer(text); answer) {
    if (answer->acl.size() > 100'000) std::abort();
    for (const auto& rule : answer->acl) {
      if (rule.topic.empty()) std::abort();
      (void)TopicMatches(rule.topic, "devices/1/readings");
      (void)TopicMatches(rule.topic, text.substr(0, 64));
    }
    (void)Allowed(answer->acl, AclRequest::kSubscribe, text.substr(0, 128));
    // What the hook would send back must parse to the same decision.
    auto again = ParseAuthAnswer(FormatAuthAnswer(*answer));
    if (!again || again->allow != answer->allow) std::abort();
  }
  if (auto revoked = ParseRevokedAnswer(text); revoked) {
    for (const auto& id : revoked->token_ids) {
      if (id.empty() || id.size() > 64) std::abort();
    }
  }
  (void)StripSharePrefix(text);
  (void)TokenIdOf(text);
  return 0;
}
