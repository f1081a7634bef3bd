#include "ingest/mqtt/codec.hpp"

#include <fmt/format.h>

namespace opensense::mqtt {
namespace {

enum PacketType : std::uint8_t {
  kConnect = 1, kConnack = 2, kPublish = 3, kPuback = 4, kPubrec = 5, kPubrel = 6, kPubcomp = 7,
  kSubscribe = 8, kSuback = 9, kUnsubscribe = 10, kUnsuback = 11, kPingreq = 12, kPingresp = 13,
  kDisconnect = 14, kAuth = 15,
};

// MQTT 5 property identifiers (section 2.2.2.2).
enum Property : std::uint8_t {
  kPayloadFormat = 0x01, kMessageExpiry = 0x02, kContentType = 0x03, kResponseTopic = 0x08,
  kCorrelationData = 0x09, kSubscriptionId = 0x0B, kSessionExpiry = 0x11,
  kAssignedClientId = 0x12, kServerKeepAlive = 0x13, kAuthMethod = 0x15, kAuthData = 0x16,
  kRequestProblemInfo = 0x17, kWillDelay = 0x18, kRequestResponseInfo = 0x19,
  kResponseInfo = 0x1A, kServerReference = 0x1C, kReasonString = 0x1F, kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22, kTopicAlias = 0x23, kMaximumQos = 0x24, kRetainAvailable = 0x25,
  kUserProperty = 0x26, kMaximumPacketSize = 0x27, kWildcardAvailable = 0x28,
  kSubscriptionIdAvailable = 0x29, kSharedAvailable = 0x2A,
};

tl::unexpected<Error> Malformed(std::string what) {
  return MakeError(ErrorCode::kInvalidArgument, "malformed MQTT packet: " + std::move(what));
}

// ---- encoding -----------------------------------------------------------------------------

void PutVarint(std::string& out, std::uint32_t v) {
  do {
    std::uint8_t b = v % 128;
    v /= 128;
    if (v > 0) b |= 0x80;
    out += static_cast<char>(b);
  } while (v > 0);
}
void PutU16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xFF);
}
void PutU32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xFF);
}
Status PutString(std::string& out, std::string_view s) {
  if (s.size() > 0xFFFF) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("an MQTT string is at most 65535 bytes, not {}", s.size()));
  }
  PutU16(out, static_cast<std::uint16_t>(s.size()));
  out += s;
  return Ok();
}

// Fixed header + body.
Result<std::string> Frame(std::uint8_t first_byte, const std::string& body) {
  if (body.size() > kMaxRemainingLength) {
    return MakeError(ErrorCode::kInvalidArgument, "MQTT packet too large");
  }
  std::string out;
  out.reserve(body.size() + 5);
  out += static_cast<char>(first_byte);
  PutVarint(out, static_cast<std::uint32_t>(body.size()));
  out += body;
  return out;
}

// ---- decoding -----------------------------------------------------------------------------

// Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF) without U+0000 (MQTT 1.5.4).
bool ValidMqttUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  std::size_t left() const { return data_.size() - pos_; }
  bool done() const { return pos_ == data_.size(); }

  Result<std::uint8_t> U8(std::string_view what) {
    if (left() < 1) return Malformed(fmt::format("{} is cut short", what));
    return static_cast<std::uint8_t>(data_[pos_++]);
  }
  Result<std::uint16_t> U16(std::string_view what) {
    if (left() < 2) return Malformed(fmt::format("{} is cut short", what));
    const auto hi = static_cast<std::uint8_t>(data_[pos_]);
    const auto lo = static_cast<std::uint8_t>(data_[pos_ + 1]);
    pos_ += 2;
    return static_cast<std::uint16_t>((hi << 8) | lo);
  }
  Result<std::uint32_t> U32(std::string_view what) {
    if (left() < 4) return Malformed(fmt::format("{} is cut short", what));
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(data_[pos_ + i]);
    pos_ += 4;
    return v;
  }
  Result<std::uint32_t> Varint(std::string_view what) {
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      if (left() < 1) return Malformed(fmt::format("{} is cut short", what));
      const auto b = static_cast<std::uint8_t>(data_[pos_++]);
      value |= static_cast<std::uint32_t>(b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) return value;
    }
    return Malformed(fmt::format("{} is longer than 4 bytes", what));
  }
  Result<std::string_view> Bytes(std::size_t n, std::string_view what) {
    if (left() < n) return Malformed(fmt::format("{} is cut short", what));
    auto out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  Result<std::string_view> Binary(std::string_view what) {
    OS_ASSIGN_OR_RETURN(std::uint16_t n, U16(what));
    return Bytes(n, what);
  }
  Result<std::string> Utf8(std::string_view what) {
    OS_ASSIGN_OR_RETURN(std::string_view s, Binary(what));
    if (!ValidMqttUtf8(s)) return Malformed(fmt::format("{} is not valid UTF-8", what));
    return std::string(s);
  }
  std::string_view Rest() {
    auto out = data_.substr(pos_);
    pos_ = data_.size();
    return out;
  }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

// The properties a client cares about; the others are checked for shape and skipped.
struct Properties {
  std::optional<std::uint8_t> payload_format;
  std::optional<std::string> content_type;
  std::optional<std::uint16_t> receive_maximum;
  std::optional<std::uint32_t> maximum_packet_size;
  std::optional<std::string> assigned_client_id;
  std::optional<std::string> reason_string;
  bool topic_alias = false;
};

Result<Properties> ReadProperties(Reader& r) {
  OS_ASSIGN_OR_RETURN(std::uint32_t length, r.Varint("property length"));
  OS_ASSIGN_OR_RETURN(std::string_view block, r.Bytes(length, "properties"));
  Reader p(block);
  Properties out;
  while (!p.done()) {
    OS_ASSIGN_OR_RETURN(std::uint32_t id, p.Varint("property id"));
    switch (id) {
      case kPayloadFormat: {
        OS_ASSIGN_OR_RETURN(std::uint8_t v, p.U8("payload format"));
        if (v > 1) return Malformed("payload format indicator must be 0 or 1");
        out.payload_format = v;
        break;
      }
      case kRequestProblemInfo: case kRequestResponseInfo: case kMaximumQos:
      case kRetainAvailable: case kWildcardAvailable: case kSubscriptionIdAvailable:
      case kSharedAvailable:
        OS_RETURN_IF_ERROR(p.U8("property"));
        break;
      case kServerKeepAlive: case kTopicAliasMaximum:
        OS_RETURN_IF_ERROR(p.U16("property"));
        break;
      case kTopicAlias:
        OS_RETURN_IF_ERROR(p.U16("topic alias"));
        out.topic_alias = true;
        break;
      case kReceiveMaximum: {
        OS_ASSIGN_OR_RETURN(std::uint16_t v, p.U16("receive maximum"));
        if (v == 0) return Malformed("receive maximum 0");
        out.receive_maximum = v;
        break;
      }
      case kMessageExpiry: case kSessionExpiry: case kWillDelay:
        OS_RETURN_IF_ERROR(p.U32("property"));
        break;
      case kMaximumPacketSize: {
        OS_ASSIGN_OR_RETURN(std::uint32_t v, p.U32("maximum packet size"));
        if (v == 0) return Malformed("maximum packet size 0");
        out.maximum_packet_size = v;
        break;
      }
      case kSubscriptionId: {
        OS_ASSIGN_OR_RETURN(std::uint32_t v, p.Varint("subscription identifier"));
        if (v == 0) return Malformed("subscription identifier 0");
        break;
      }
      case kContentType: {
        OS_ASSIGN_OR_RETURN(out.content_type, p.Utf8("content type"));
        break;
      }
      case kAssignedClientId: {
        OS_ASSIGN_OR_RETURN(out.assigned_client_id, p.Utf8("assigned client id"));
        break;
      }
      case kReasonString: {
        OS_ASSIGN_OR_RETURN(out.reason_string, p.Utf8("reason string"));
        break;
      }
      case kResponseTopic: case kAuthMethod: case kResponseInfo: case kServerReference:
        OS_RETURN_IF_ERROR(p.Utf8("property"));
        break;
      case kCorrelationData: case kAuthData:
        OS_RETURN_IF_ERROR(p.Binary("property"));
        break;
      case kUserProperty:
        OS_RETURN_IF_ERROR(p.Utf8("user property name"));
        OS_RETURN_IF_ERROR(p.Utf8("user property value"));
        break;
      default:
        return Malformed(fmt::format("unknown property 0x{:02x}", id));
    }
  }
  return out;
}

Result<Packet> DecodeBody(std::uint8_t type, std::uint8_t flags, std::string_view body,
                          Version version) {
  const bool v5 = version == Version::kV5;
  Reader r(body);
  auto expect_flags = [&](std::uint8_t want) -> Status {
    if (flags != want) return Malformed(fmt::format("bad flags 0x{:x} for packet type {}", flags, type));
    return Ok();
  };
  auto finish = [&](Packet p) -> Result<Packet> {
    if (!r.done()) return Malformed(fmt::format("{} trailing bytes in packet type {}", r.left(), type));
    return p;
  };
  switch (type) {
    case kConnack: {
      OS_RETURN_IF_ERROR(expect_flags(0));
      Connack c;
      OS_ASSIGN_OR_RETURN(std::uint8_t ack_flags, r.U8("CONNACK flags"));
      if ((ack_flags & 0xFE) != 0) return Malformed("reserved CONNACK flag bits set");
      c.session_present = (ack_flags & 1) != 0;
      OS_ASSIGN_OR_RETURN(c.reason_code, r.U8("CONNACK reason code"));
      if (v5 && !r.done()) {
        OS_ASSIGN_OR_RETURN(Properties p, ReadProperties(r));
        c.receive_maximum = p.receive_maximum;
        c.maximum_packet_size = p.maximum_packet_size;
        c.assigned_client_id = std::move(p.assigned_client_id);
        c.reason_string = std::move(p.reason_string);
      }
      return finish(std::move(c));
    }
    case kPublish: {
      Publish p;
      p.dup = (flags & 0x08) != 0;
      p.qos = (flags >> 1) & 0x03;
      p.retain = (flags & 0x01) != 0;
      if (p.qos == 3) return Malformed("PUBLISH with QoS 3");
      if (p.qos == 0 && p.dup) return Malformed("PUBLISH with QoS 0 and DUP set");
      OS_ASSIGN_OR_RETURN(p.topic, r.Utf8("topic"));
      if (p.topic.find_first_of("+#") != std::string::npos) {
        return Malformed("PUBLISH topic contains a wildcard");
      }
      if (p.qos > 0) {
        OS_ASSIGN_OR_RETURN(p.packet_id, r.U16("packet id"));
        if (p.packet_id == 0) return Malformed("PUBLISH packet id 0");
      }
      if (v5) {
        OS_ASSIGN_OR_RETURN(Properties props, ReadProperties(r));
        if (props.topic_alias) return Malformed("topic alias used but never allowed");
        p.content_type = std::move(props.content_type);
        p.payload_format = props.payload_format;
      }
      if (p.topic.empty()) return Malformed("PUBLISH with an empty topic");
      p.payload = std::string(r.Rest());
      return p;
    }
    case kPuback: {
      OS_RETURN_IF_ERROR(expect_flags(0));
      Puback a;
      OS_ASSIGN_OR_RETURN(a.packet_id, r.U16("packet id"));
      if (v5 && !r.done()) {
        OS_ASSIGN_OR_RETURN(a.reason_code, r.U8("PUBACK reason code"));
        if (!r.done()) OS_RETURN_IF_ERROR(ReadProperties(r));
      }
      return finish(a);
    }
    case kSuback: case kUnsuback: {
      OS_RETURN_IF_ERROR(expect_flags(0));
      OS_ASSIGN_OR_RETURN(std::uint16_t id, r.U16("packet id"));
      if (v5) OS_RETURN_IF_ERROR(ReadProperties(r));
      if (type == kUnsuback) {
        r.Rest();  // v5 reason codes (one per filter); 3.1.1 has none
        return Unsuback{id};
      }
      Suback s{id, {}};
      std::string_view codes = r.Rest();
      if (codes.empty()) return Malformed("SUBACK without reason codes");
      for (char c : codes) s.reason_codes.push_back(static_cast<std::uint8_t>(c));
      return s;
    }
    case kPingresp:
      OS_RETURN_IF_ERROR(expect_flags(0));
      return finish(Pingresp{});
    case kDisconnect: {
      OS_RETURN_IF_ERROR(expect_flags(0));
      if (!v5) return Malformed("a 3.1.1 server never sends DISCONNECT");
      Disconnect d;
      if (!r.done()) {
        OS_ASSIGN_OR_RETURN(d.reason_code, r.U8("DISCONNECT reason code"));
        if (!r.done()) {
          OS_ASSIGN_OR_RETURN(Properties p, ReadProperties(r));
          d.reason_string = std::move(p.reason_string);
        }
      }
      return finish(std::move(d));
    }
    case 0:
      return Malformed("packet type 0 is reserved");
    default:
      return Malformed(fmt::format("packet type {} is not expected by a subscriber", type));
  }
}

}  // namespace

Result<std::string> EncodeConnect(const ConnectOptions& o) {
  const bool v5 = o.version == Version::kV5;
  std::string body;
  OS_RETURN_IF_ERROR(PutString(body, "MQTT"));
  body += static_cast<char>(o.version);
  std::uint8_t flags = 0;
  if (o.clean_start) flags |= 0x02;
  if (o.username) flags |= 0x80;
  if (o.password) flags |= 0x40;
  body += static_cast<char>(flags);
  PutU16(body, o.keepalive_seconds);
  if (v5) {
    std::string props;
    if (o.session_expiry_seconds > 0) {
      props += static_cast<char>(kSessionExpiry);
      PutU32(props, o.session_expiry_seconds);
    }
    if (o.receive_maximum > 0) {
      props += static_cast<char>(kReceiveMaximum);
      PutU16(props, o.receive_maximum);
    }
    if (o.maximum_packet_size > 0) {
      props += static_cast<char>(kMaximumPacketSize);
      PutU32(props, o.maximum_packet_size);
    }
    PutVarint(body, static_cast<std::uint32_t>(props.size()));
    body += props;
  }
  OS_RETURN_IF_ERROR(PutString(body, o.client_id));
  if (o.username) OS_RETURN_IF_ERROR(PutString(body, *o.username));
  if (o.password) OS_RETURN_IF_ERROR(PutString(body, *o.password));
  return Frame(kConnect << 4, body);
}

Result<std::string> EncodeSubscribe(Version version, std::uint16_t packet_id,
                                    std::string_view topic_filter, std::uint8_t qos) {
  if (packet_id == 0 || qos > 2 || topic_filter.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "SUBSCRIBE needs a packet id, QoS 0-2 and a filter");
  }
  std::string body;
  PutU16(body, packet_id);
  if (version == Version::kV5) body += '\0';
  OS_RETURN_IF_ERROR(PutString(body, topic_filter));
  body += static_cast<char>(qos);
  return Frame((kSubscribe << 4) | 0x02, body);
}

Result<std::string> EncodeUnsubscribe(Version version, std::uint16_t packet_id,
                                      std::string_view topic_filter) {
  if (packet_id == 0 || topic_filter.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "UNSUBSCRIBE needs a packet id and a filter");
  }
  std::string body;
  PutU16(body, packet_id);
  if (version == Version::kV5) body += '\0';
  OS_RETURN_IF_ERROR(PutString(body, topic_filter));
  return Frame((kUnsubscribe << 4) | 0x02, body);
}

Result<std::string> EncodePublish(Version version, std::string_view topic, std::string_view payload,
                                  const PublishOptions& o) {
  if (o.qos > 2 || (o.qos > 0 && o.packet_id == 0) || topic.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "PUBLISH needs a topic, QoS 0-2 and a packet id for QoS > 0");
  }
  std::string body;
  OS_RETURN_IF_ERROR(PutString(body, topic));
  if (o.qos > 0) PutU16(body, o.packet_id);
  if (version == Version::kV5) {
    std::string props;
    if (o.content_type) {
      props += static_cast<char>(kContentType);
      OS_RETURN_IF_ERROR(PutString(props, *o.content_type));
    }
    PutVarint(body, static_cast<std::uint32_t>(props.size()));
    body += props;
  }
  body += payload;
  std::uint8_t first = static_cast<std::uint8_t>((kPublish << 4) | (o.qos << 1));
  if (o.dup) first |= 0x08;
  if (o.retain) first |= 0x01;
  return Frame(first, body);
}

std::string EncodePuback(std::uint16_t packet_id) {
  std::string out;
  out += static_cast<char>(kPuback << 4);
  out += '\x02';
  PutU16(out, packet_id);
  return out;
}

std::string EncodePingreq() { return std::string("\xC0\x00", 2); }

std::string EncodeDisconnect(Version version, std::optional<std::uint32_t> session_expiry) {
  if (version != Version::kV5 || !session_expiry) return std::string("\xE0\x00", 2);
  std::string body;
  body += '\0';  // normal disconnection
  std::string props;
  props += static_cast<char>(kSessionExpiry);
  PutU32(props, *session_expiry);
  PutVarint(body, static_cast<std::uint32_t>(props.size()));
  body += props;
  return *Frame(kDisconnect << 4, body);
}

Result<std::optional<Decoded>> DecodePacket(std::string_view input, Version version,
                                            std::uint32_t max_packet_size) {
  if (input.empty()) return std::optional<Decoded>();
  const auto first = static_cast<std::uint8_t>(input[0]);
  std::uint32_t length = 0;
  std::size_t header = 1;
  for (int i = 0;; ++i) {
    if (i == 4) return Malformed("remaining length is longer than 4 bytes");
    if (header >= input.size()) return std::optional<Decoded>();  // need more
    const auto b = static_cast<std::uint8_t>(input[header++]);
    length |= static_cast<std::uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) break;
  }
  const std::uint64_t total = header + static_cast<std::uint64_t>(length);
  if (total > max_packet_size) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("MQTT packet of {} bytes is larger than the maximum {}", total,
                                 max_packet_size));
  }
  if (input.size() < total) return std::optional<Decoded>();
  OS_ASSIGN_OR_RETURN(Packet p, DecodeBody(first >> 4, first & 0x0F, input.substr(header, length), version));
  return std::optional<Decoded>(Decoded{std::move(p), static_cast<std::size_t>(total)});
}

std::optional<std::int64_t> DeviceIdFromTopic(std::string_view topic) {
  constexpr std::string_view kPrefix = "devices/";
  constexpr std::string_view kSuffix = "/readings";
  if (topic.size() <= kPrefix.size() + kSuffix.size()) return std::nullopt;
  if (topic.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  if (topic.substr(topic.size() - kSuffix.size()) != kSuffix) return std::nullopt;
  const std::string_view digits =
      topic.substr(kPrefix.size(), topic.size() - kPrefix.size() - kSuffix.size());
  if (digits.empty() || digits.size() > 18 || digits[0] == '0') return std::nullopt;
  std::int64_t id = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    id = id * 10 + (c - '0');
  }
  return id;
}

std::string_view ReasonCodeText(std::uint8_t code, Version version) {
  if (version == Version::kV311) {
    switch (code) {
      case 0: return "accepted";
      case 1: return "unacceptable protocol version";
      case 2: return "client identifier rejected";
      case 3: return "server unavailable";
      case 4: return "bad user name or password";
      case 5: return "not authorized";
      default: return "unknown return code";
    }
  }
  switch (code) {
    case 0x00: return "success";
    case 0x01: return "granted QoS 1";
    case 0x02: return "granted QoS 2";
    case 0x80: return "unspecified error";
    case 0x81: return "malformed packet";
    case 0x82: return "protocol error";
    case 0x83: return "implementation specific error";
    case 0x84: return "unsupported protocol version";
    case 0x85: return "client identifier not valid";
    case 0x86: return "bad user name or password";
    case 0x87: return "not authorized";
    case 0x88: return "server unavailable";
    case 0x89: return "server busy";
    case 0x8A: return "banned";
    case 0x8B: return "server shutting down";
    case 0x8E: return "session taken over";
    case 0x8F: return "topic filter invalid";
    case 0x93: return "receive maximum exceeded";
    case 0x95: return "packet too large";
    case 0x97: return "quota exceeded";
    case 0x9E: return "shared subscriptions not supported";
    default: return "other reason";
  }
}

}  // namespace opensense::mqtt
