// libFuzzer target for the MQTT wire codec (src/ingest/mqtt/codec.cpp) as the subscriber uses
// it: arbitrary bytes from a broker are decoded packet after packet, for MQTT 5 and 3.1.1, with
// a small maximum packet size. Never a crash, never a packet larger than its input, and every
// PUBLISH decoded survives an encode/decode round trip unchanged.
//
//   scripts/fuzz.sh 600
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ingest/mqtt/codec.hpp"
#include "ingest/mqtt/message.hpp"

namespace {

using namespace opensense::mqtt;

void Check(bool ok) {
  if (!ok) std::abort();
}

void DecodeStream(std::string_view in, Version version, std::uint32_t max) {
  while (!in.empty()) {
    auto d = DecodePacket(in, version, max);
    if (!d || !*d) return;
    Check((*d)->size > 0 && (*d)->size <= in.size() && (*d)->size <= max);
    if (const auto* p = std::get_if<Publish>(&(*d)->packet)) {
      (void)DeviceIdFromTopic(p->topic);
      (void)MessageFormat(p->content_type, p->payload);
      PublishOptions o;
      o.qos = p->qos;
      o.packet_id = p->packet_id;
      o.dup = p->dup;
      o.retain = p->retain;
      if (version == Version::kV5) o.content_type = p->content_type;
      auto again = EncodePublish(version, p->topic, p->payload, o);
      Check(static_cast<bool>(again));
      auto back = DecodePacket(*again, version, static_cast<std::uint32_t>(again->size()));
      Check(back && *back);
      const auto* q = std::get_if<Publish>(&(*back)->packet);
      Check(q != nullptr && q->topic == p->topic && q->payload == p->payload && q->qos == p->qos &&
            q->packet_id == p->packet_id && q->content_type == o.content_type);
    }
    in.remove_prefix((*d)->size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  DecodeStream(in, Version::kV5, 1 << 20);
  DecodeStream(in, Version::kV311, 1 << 20);
  DecodeStream(in, Version::kV5, 64);
  return 0;
}
