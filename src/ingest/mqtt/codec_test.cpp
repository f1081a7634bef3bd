// Unit tests of the MQTT wire codec and message format sniffing: well-formed packets both ways,
// then malformed, huge and hostile input (every one refused cleanly, never a crash or a read
// past the end).
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "ingest/mqtt/codec.hpp"
#include "ingest/mqtt/message.hpp"

namespace opensense::mqtt {
namespace {

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

Result<std::optional<Decoded>> Decode(std::string_view in, Version v = Version::kV5,
                                      std::uint32_t max = 1 << 20) {
  return DecodePacket(in, v, max);
}

template <typename T>
T DecodeAs(std::string_view in, Version v = Version::kV5) {
  auto d = Decode(in, v);
  EXPECT_TRUE(d) << (d ? "" : d.error().message);
  if (!d || !*d) {
    ADD_FAILURE() << "incomplete";
    return T{};
  }
  EXPECT_EQ((*d)->size, in.size());
  const T* p = std::get_if<T>(&(*d)->packet);
  EXPECT_NE(p, nullptr);
  return p ? *p : T{};
}

void ExpectMalformed(std::string_view in, Version v = Version::kV5) {
  auto d = Decode(in, v);
  EXPECT_FALSE(d) << "accepted: " << testing::PrintToString(std::string(in));
  if (!d) {
    EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(MqttEncode, ConnectV5WithPersistentSessionAndReceiveMaximum) {
  ConnectOptions o;
  o.client_id = "ing";
  o.username = "opensense";
  o.password = "pw";
  o.keepalive_seconds = 30;
  o.session_expiry_seconds = 604800;
  o.receive_maximum = 10000;
  o.maximum_packet_size = 1 << 20;
  auto c = EncodeConnect(o);
  ASSERT_TRUE(c);
  const std::string expected =
      Bytes({0x10, 44, 0, 4}) + "MQTT" + Bytes({5, 0xC0, 0, 30}) +
      Bytes({13, 0x11, 0x00, 0x09, 0x3A, 0x80, 0x21, 0x27, 0x10, 0x27, 0x00, 0x10, 0x00, 0x00}) +
      Bytes({0, 3}) + "ing" + Bytes({0, 9}) + "opensense" + Bytes({0, 2}) + "pw";
  EXPECT_EQ(*c, expected);
}

TEST(MqttEncode, Connect311CleanSessionBitAndNoProperties) {
  ConnectOptions o;
  o.version = Version::kV311;
  o.client_id = "x";
  o.clean_start = true;
  auto c = EncodeConnect(o);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, Bytes({0x10, 13, 0, 4}) + "MQTT" + Bytes({4, 0x02, 0, 30, 0, 1}) + "x");
}

TEST(MqttEncode, SubscribeUnsubscribePubackPingDisconnect) {
  auto s = EncodeSubscribe(Version::kV5, 7, "$share/g/devices/+/readings", 1);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, Bytes({0x82, 33, 0, 7, 0, 0, 27}) + "$share/g/devices/+/readings" + Bytes({1}));
  auto u = EncodeUnsubscribe(Version::kV311, 8, "a/b");
  ASSERT_TRUE(u);
  EXPECT_EQ(*u, Bytes({0xA2, 7, 0, 8, 0, 3}) + "a/b");
  EXPECT_EQ(EncodePuback(0x1234), Bytes({0x40, 2, 0x12, 0x34}));
  EXPECT_EQ(EncodePingreq(), Bytes({0xC0, 0}));
  EXPECT_EQ(EncodeDisconnect(Version::kV5), Bytes({0xE0, 0}));
  EXPECT_EQ(EncodeDisconnect(Version::kV5, 0u), Bytes({0xE0, 7, 0, 5, 0x11, 0, 0, 0, 0}));
  EXPECT_FALSE(EncodeSubscribe(Version::kV5, 0, "a", 1));
  EXPECT_FALSE(EncodeSubscribe(Version::kV5, 1, std::string(70000, 'a'), 1));
}

TEST(MqttDecode, ConnackV5WithProperties) {
  const std::string in = Bytes({0x20, 11, 0x01, 0x00, 8, 0x21, 0x00, 0x14, 0x1F, 0, 2}) + "ok";
  auto c = DecodeAs<Connack>(in);
  EXPECT_TRUE(c.session_present);
  EXPECT_EQ(c.reason_code, 0);
  EXPECT_EQ(c.receive_maximum, 20);
  EXPECT_EQ(c.reason_string, "ok");
  auto refused = DecodeAs<Connack>(Bytes({0x20, 3, 0x00, 0x87, 0}));
  EXPECT_EQ(refused.reason_code, 0x87);
  EXPECT_EQ(ReasonCodeText(0x87, Version::kV5), "not authorized");
  auto v3 = DecodeAs<Connack>(Bytes({0x20, 2, 0x00, 0x05}), Version::kV311);
  EXPECT_EQ(ReasonCodeText(v3.reason_code, Version::kV311), "not authorized");
}

TEST(MqttDecode, PublishRoundTripsWithContentType) {
  PublishOptions o;
  o.qos = 1;
  o.packet_id = 42;
  o.content_type = "text/plain";
  auto bytes = EncodePublish(Version::kV5, "devices/12/readings", "t,x=1 v=2", o);
  ASSERT_TRUE(bytes);
  auto p = DecodeAs<Publish>(*bytes);
  EXPECT_EQ(p.topic, "devices/12/readings");
  EXPECT_EQ(p.qos, 1);
  EXPECT_EQ(p.packet_id, 42);
  EXPECT_EQ(p.content_type, "text/plain");
  EXPECT_EQ(p.payload, "t,x=1 v=2");
  // 3.1.1: no properties.
  auto b3 = EncodePublish(Version::kV311, "devices/1/readings", "[]", {.qos = 1, .packet_id = 3});
  ASSERT_TRUE(b3);
  auto p3 = DecodeAs<Publish>(*b3, Version::kV311);
  EXPECT_EQ(p3.payload, "[]");
  EXPECT_FALSE(p3.content_type);
}

TEST(MqttDecode, PublishSkipsOtherPropertiesAndKeepsPayloadFormat) {
  // topic "a", id 1, properties: payload format 1, message expiry, user property, subscription id.
  std::string props = Bytes({0x01, 1, 0x02, 0, 0, 0, 60, 0x26, 0, 1}) + "k" + Bytes({0, 1}) + "v" +
                      Bytes({0x0B, 0x81, 0x01});
  std::string body = Bytes({0, 1}) + "a" + Bytes({0, 1, static_cast<int>(props.size())}) + props + "pay";
  std::string in = Bytes({0x32, static_cast<int>(body.size())}) + body;
  auto p = DecodeAs<Publish>(in);
  EXPECT_EQ(p.payload_format, 1);
  EXPECT_EQ(p.payload, "pay");
}

TEST(MqttDecode, SubackPubackPingrespDisconnect) {
  auto s = DecodeAs<Suback>(Bytes({0x90, 4, 0, 7, 0, 0x01}));
  EXPECT_EQ(s.packet_id, 7);
  EXPECT_EQ(s.reason_codes, std::vector<std::uint8_t>{1});
  auto a = DecodeAs<Puback>(Bytes({0x40, 2, 0, 9}));
  EXPECT_EQ(a.packet_id, 9);
  auto a5 = DecodeAs<Puback>(Bytes({0x40, 4, 0, 9, 0x10, 0}));
  EXPECT_EQ(a5.reason_code, 0x10);
  DecodeAs<Pingresp>(Bytes({0xD0, 0}));
  auto d = DecodeAs<Disconnect>(Bytes({0xE0, 1, 0x8B}));
  EXPECT_EQ(d.reason_code, 0x8B);
  DecodeAs<Unsuback>(Bytes({0xB0, 4, 0, 3, 0, 0x00}));
}

TEST(MqttDecode, IncompleteInputAsksForMoreAtEveryCut) {
  auto bytes = EncodePublish(Version::kV5, "devices/12/readings", std::string(300, 'x'), {.qos = 1, .packet_id = 5});
  ASSERT_TRUE(bytes);
  for (std::size_t cut = 0; cut < bytes->size(); ++cut) {
    auto d = Decode(std::string_view(*bytes).substr(0, cut));
    ASSERT_TRUE(d) << cut;
    EXPECT_FALSE(*d) << cut;
  }
  // Two packets back to back: the first is decoded, its size says where the next starts.
  std::string two = *bytes + EncodePuback(1);
  auto d = Decode(two);
  ASSERT_TRUE(d && *d);
  EXPECT_EQ((*d)->size, bytes->size());
}

TEST(MqttDecode, RemainingLengthLimits) {
  // Five length bytes.
  ExpectMalformed(Bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}));
  // The largest 4-byte length is fine as a header but larger than the maximum packet size.
  auto huge = Decode(Bytes({0x30, 0xFF, 0xFF, 0xFF, 0x7F}));
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message.find("larger than the maximum"), std::string::npos);
  // Exactly at the limit is accepted, one byte over is refused before any payload arrives.
  auto at = EncodePublish(Version::kV5, "t", std::string(100, 'x'), {.qos = 0});
  ASSERT_TRUE(at);
  EXPECT_TRUE(DecodePacket(*at, Version::kV5, static_cast<std::uint32_t>(at->size())));
  EXPECT_FALSE(DecodePacket(at->substr(0, 3), Version::kV5, static_cast<std::uint32_t>(at->size() - 1)));
}

TEST(MqttDecode, HostilePacketsAreRefused) {
  ExpectMalformed(Bytes({0x00, 0}));                          // reserved type 0
  ExpectMalformed(Bytes({0x10, 0}));                          // CONNECT: never sent to a client
  ExpectMalformed(Bytes({0x36, 5, 0, 1, 'a', 0, 1}));         // QoS 3
  ExpectMalformed(Bytes({0x38, 4, 0, 1, 'a', 0}));            // QoS 0 with DUP
  ExpectMalformed(Bytes({0x32, 5, 0, 1, 'a', 0, 0}));         // packet id 0
  ExpectMalformed(Bytes({0x30, 4, 0, 1, '#', 0}));            // wildcard in a PUBLISH topic
  ExpectMalformed(Bytes({0x30, 3, 0, 0, 0}));                 // empty topic (no alias)
  ExpectMalformed(Bytes({0x30, 4, 0, 1, 0, 0}));              // U+0000 in topic
  ExpectMalformed(Bytes({0x30, 5, 0, 2, 0xC0, 0x80, 0}));     // overlong NUL
  ExpectMalformed(Bytes({0x30, 6, 0, 3, 0xED, 0xA0, 0x80, 0}));  // surrogate
  ExpectMalformed(Bytes({0x30, 4, 0, 1, 0xFF, 0}));           // invalid byte
  ExpectMalformed(Bytes({0x30, 3, 0, 9, 'a'}));               // topic longer than the packet
  ExpectMalformed(Bytes({0x30, 6, 0, 1, 'a', 3, 0x23, 0}));   // topic alias property cut short
  ExpectMalformed(Bytes({0x30, 7, 0, 1, 'a', 3, 0x23, 0, 1})); // topic alias never allowed
  ExpectMalformed(Bytes({0x30, 5, 0, 1, 'a', 1, 0x7F}));      // unknown property
  ExpectMalformed(Bytes({0x30, 6, 0, 1, 'a', 9, 0x01, 0}));   // property length past the end
  ExpectMalformed(Bytes({0x30, 6, 0, 1, 'a', 2, 0x01, 7}));   // payload format 7
  ExpectMalformed(Bytes({0x20, 3, 0x02, 0, 0}));              // CONNACK reserved flag
  ExpectMalformed(Bytes({0x21, 3, 0, 0, 0}));                 // CONNACK header flags
  ExpectMalformed(Bytes({0x20, 4, 0, 0, 0, 0}));              // CONNACK trailing byte
  ExpectMalformed(Bytes({0x90, 3, 0, 1, 0}));                 // SUBACK without codes
  ExpectMalformed(Bytes({0xD0, 1, 0}));                       // PINGRESP with a body
  ExpectMalformed(Bytes({0xE0, 0}), Version::kV311);          // DISCONNECT from a 3.1.1 server
  ExpectMalformed(Bytes({0x40, 1, 0}));                       // PUBACK cut short
  ExpectMalformed(Bytes({0x50, 2, 0, 1}));                    // PUBREC: we never send QoS 2
  ExpectMalformed(Bytes({0xF0, 0}));                          // AUTH: not negotiated
}

TEST(MqttDecode, RandomBytesNeverCrash) {
  std::mt19937 rng(1234);
  std::size_t decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    if (!s.empty() && (i % 2) == 0) s[0] = static_cast<char>(0x30 | (rng() % 4) << 1);  // mostly PUBLISH
    auto d = Decode(s, (i % 3) == 0 ? Version::kV311 : Version::kV5, 256);
    if (d && *d) {
      EXPECT_LE((*d)->size, s.size());
      ++decoded;
    }
  }
  EXPECT_GT(decoded, 0u);
}

TEST(MqttTopic, DeviceIdFromTopic) {
  EXPECT_EQ(DeviceIdFromTopic("devices/12/readings"), 12);
  EXPECT_EQ(DeviceIdFromTopic("devices/922337203685477580/readings"), 922337203685477580);
  for (const char* bad : {"devices//readings", "devices/012/readings", "devices/-1/readings",
                          "devices/1x/readings", "devices/1/readings/", "devices/1/reading",
                          "device/1/readings", "devices/9223372036854775807999/readings",
                          "devices/1/2/readings", "", "devices/readings"}) {
    EXPECT_FALSE(DeviceIdFromTopic(bad)) << bad;
  }
}

TEST(MqttMessage, ContentTypeDecidesElseSniff) {
  using ingest::PayloadFormat;
  EXPECT_EQ(*MessageFormat(std::string("text/plain"), "[{\"n\":1}]"), PayloadFormat::kLineProtocol);
  EXPECT_EQ(*MessageFormat(std::string("application/senml+json"), "x"), PayloadFormat::kSenML);
  EXPECT_FALSE(MessageFormat(std::string("image/png"), "x"));
  EXPECT_EQ(*MessageFormat(std::nullopt, R"([{"bn":"x:","n":"temperature","v":3}])"), PayloadFormat::kSenML);
  EXPECT_EQ(*MessageFormat(std::nullopt, R"( [ { "n":"t","v":3}])"), PayloadFormat::kSenML);
  EXPECT_EQ(*MessageFormat(std::nullopt, R"([])"), PayloadFormat::kSenML);
  EXPECT_EQ(*MessageFormat(std::nullopt, R"({"ts":1,"temperature":3})"), PayloadFormat::kOpenSenseJson);
  EXPECT_EQ(*MessageFormat(std::nullopt, R"([{"ts":1,"temperature":3}])"), PayloadFormat::kOpenSenseJson);
  EXPECT_EQ(*MessageFormat(std::nullopt, "fridge temperature=3.2"), PayloadFormat::kLineProtocol);
  EXPECT_EQ(*MessageFormat(std::nullopt, ""), PayloadFormat::kLineProtocol);
  EXPECT_EQ(*MessageFormat(std::nullopt, "[{\"unterminated"), PayloadFormat::kSenML);
}

}  // namespace
}  // namespace opensense::mqtt
