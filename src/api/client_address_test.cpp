#include "api/client_address.hpp"

#include <gtest/gtest.h>

namespace opensense::api {
namespace {

TrustedProxies Trust(std::string_view text) {
  auto t = TrustedProxies::Parse(text);
  EXPECT_TRUE(t) << text;
  return t ? *t : TrustedProxies();
}

TEST(TrustedProxies, ParsesAddressesAndRefusesOthers) {
  EXPECT_TRUE(Trust("").empty());
  EXPECT_TRUE(Trust(" 127.0.0.1 , ::1 ").Contains("127.0.0.1"));
  EXPECT_TRUE(Trust("0:0:0:0:0:0:0:1").Contains("[::1]"));
  for (auto bad : {"localhost", "127.0.0.1/8", "1.2.3", "127.0.0.1,,x", "*"}) {
    auto t = TrustedProxies::Parse(bad);
    EXPECT_FALSE(t) << bad;
  }
}

TEST(ClientAddress, ForwardedForOnlyFromATrustedPeer) {
  const TrustedProxies caddy = Trust("127.0.0.1");
  // No trusted proxies configured (the default): the header is never believed.
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", "203.0.113.9", TrustedProxies()), "127.0.0.1:4000");
  // The peer is not the proxy: a client cannot spoof its address.
  EXPECT_EQ(ClientAddress("198.51.100.7:4000", "203.0.113.9", caddy), "198.51.100.7:4000");
  // Through the proxy.
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", "127.0.0.2", caddy), "127.0.0.2");
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", "2001:DB8::1", caddy), "2001:db8::1");
  // The right-most untrusted entry: what the proxy saw; what the client claimed is ignored.
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", "10.9.9.9, 203.0.113.9", caddy), "203.0.113.9");
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", "203.0.113.9, 127.0.0.1", caddy), "203.0.113.9");
  // No header, garbage, or only proxies: the peer.
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", std::nullopt, caddy), "127.0.0.1:4000");
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", "evil'); DROP", caddy), "127.0.0.1:4000");
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", "127.0.0.1", caddy), "127.0.0.1:4000");
  EXPECT_EQ(ClientAddress("127.0.0.1:4000", "", caddy), "127.0.0.1:4000");
  EXPECT_EQ(ClientAddress("[::1]:4000", "192.0.2.1", Trust("::1")), "192.0.2.1");
}

TEST(ClientAddress, PeerHost) {
  EXPECT_EQ(PeerHost("127.0.0.1:80"), "127.0.0.1");
  EXPECT_EQ(PeerHost("[::1]:80"), "::1");
  EXPECT_EQ(PeerHost("::1"), "::1");
  EXPECT_EQ(PeerHost("127.0.0.1"), "127.0.0.1");
}

}  // namespace
}  // namespace opensense::api
