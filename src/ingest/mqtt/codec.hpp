// The MQTT 3.1.1 / 5.0 wire codec used by OpenSense's own subscriber (and by tests and the
// benchmark as a publisher). Pure: no I/O, no clock, no state; every function may be called from
// any thread. Decoding treats its input as hostile: lengths are checked before they are used,
// the remaining length is at most 4 bytes (268,435,455) and never more than the caller's
// maximum packet size, strings must be well-formed UTF-8 without U+0000, and a packet must use
// exactly the bytes its header announces. Nothing throws out of this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/result.hpp"

namespace opensense::mqtt {

enum class Version : std::uint8_t { kV311 = 4, kV5 = 5 };

// The largest remaining length the 4-byte variable-length integer can express.
inline constexpr std::uint32_t kMaxRemainingLength = 268'435'455;

struct ConnectOptions {
  Version version = Version::kV5;
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::uint16_t keepalive_seconds = 30;
  // false: resume the session the broker keeps for client_id (3.1.1: clean session = 0).
  bool clean_start = false;
  // MQTT 5 only: how long the broker keeps the session after a disconnect.
  std::uint32_t session_expiry_seconds = 0;
  // MQTT 5 only: QoS 1/2 messages the broker may send before we acknowledge (0: not sent).
  std::uint16_t receive_maximum = 0;
  // MQTT 5 only: the largest packet we accept (0: not sent).
  std::uint32_t maximum_packet_size = 0;
};

// Encoders. Each returns the whole packet. Strings longer than 65,535 bytes are kInvalidArgument.
Result<std::string> EncodeConnect(const ConnectOptions& options);
Result<std::string> EncodeSubscribe(Version version, std::uint16_t packet_id,
                                    std::string_view topic_filter, std::uint8_t qos);
Result<std::string> EncodeUnsubscribe(Version version, std::uint16_t packet_id,
                                      std::string_view topic_filter);
struct PublishOptions {
  std::uint8_t qos = 1;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;             // required for QoS > 0
  std::optional<std::string> content_type;  // MQTT 5 only
};
Result<std::string> EncodePublish(Version version, std::string_view topic, std::string_view payload,
                                  const PublishOptions& options);
std::string EncodePuback(std::uint16_t packet_id);
std::string EncodePingreq();
// MQTT 5: `session_expiry_seconds` set sends the property (0 ends the session now).
std::string EncodeDisconnect(Version version, std::optional<std::uint32_t> session_expiry_seconds = {});

// Decoded packets (those a client receives).
struct Connack {
  bool session_present = false;
  std::uint8_t reason_code = 0;  // 0 = accepted (3.1.1 return codes are 0..5)
  std::optional<std::uint16_t> receive_maximum;
  std::optional<std::uint32_t> maximum_packet_size;
  std::optional<std::string> assigned_client_id;
  std::optional<std::string> reason_string;
};
struct Publish {
  bool dup = false;
  std::uint8_t qos = 0;
  bool retain = false;
  std::string topic;
  std::uint16_t packet_id = 0;  // 0 for QoS 0
  std::optional<std::string> content_type;
  std::optional<std::uint8_t> payload_format;  // 1: UTF-8 text
  std::string payload;
};
struct Puback {  // also what a publisher receives
  std::uint16_t packet_id = 0;
  std::uint8_t reason_code = 0;
};
struct Suback {
  std::uint16_t packet_id = 0;
  std::vector<std::uint8_t> reason_codes;  // granted QoS, or >= 0x80 for a failure
};
struct Unsuback {
  std::uint16_t packet_id = 0;
};
struct Pingresp {};
struct Disconnect {
  std::uint8_t reason_code = 0;
  std::optional<std::string> reason_string;
};

using Packet = std::variant<Connack, Publish, Puback, Suback, Unsuback, Pingresp, Disconnect>;

struct Decoded {
  Packet packet;
  std::size_t size = 0;  // bytes consumed from the input
};

// Decodes the first packet in `input`. nullopt: more bytes are needed (never more than
// max_packet_size in all). kInvalidArgument: the stream is malformed or the packet is larger
// than max_packet_size or is a type a client never receives; the connection must be closed.
Result<std::optional<Decoded>> DecodePacket(std::string_view input, Version version,
                                            std::uint32_t max_packet_size);

// "devices/<decimal id>/readings" -> the id (1..2^63-1); anything else nullopt.
std::optional<std::int64_t> DeviceIdFromTopic(std::string_view topic);

// A human-readable name for a CONNACK / SUBACK reason code ("not authorized", ...).
std::string_view ReasonCodeText(std::uint8_t code, Version version);

}  // namespace opensense::mqtt
