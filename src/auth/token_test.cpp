#include <gtest/gtest.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <thread>
#include <vector>

#include "auth/token_format.hpp"
#include "auth/token_service.hpp"
#include "store/test_util.hpp"

namespace opensense::auth {
namespace {

constexpr TimestampMs kNow = 1768478400000;

TEST(TokenFormat, RoundTripsAndRefusesEveryDamagedForm) {
  TokenParts parts{TokenKind::kGateway, RandomBase62(kTokenIdLength), RandomBase62(kSecretLength)};
  std::string text = FormatToken(parts);
  EXPECT_EQ(text.rfind("osg_", 0), 0u);
  auto back = ParseToken(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->kind, TokenKind::kGateway);
  EXPECT_EQ(back->token_id, parts.token_id);
  EXPECT_EQ(back->secret, parts.secret);
  // Every single-character change and every truncation is refused before any lookup.
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::string bad = text;
    bad[i] = bad[i] == 'a' ? 'b' : 'a';
    EXPECT_FALSE(ParseToken(bad)) << i;
    EXPECT_FALSE(ParseToken(text.substr(0, i))) << i;
  }
  EXPECT_FALSE(ParseToken(text + "x"));
  EXPECT_FALSE(ParseToken(""));
  EXPECT_EQ(ParseToken("osx_" + text.substr(4)).error().code, ErrorCode::kPermissionDenied);
}

TEST(TokenFormat, SecretsAreLongAndRandom) {
  EXPECT_GE(kSecretLength * 5.95, 128.0);  // log2(62) = 5.95 bits per character
  EXPECT_NE(RandomBase62(24), RandomBase62(24));
}

std::string Hex(const std::array<unsigned char, 32>& d) {
  std::string out;
  for (unsigned char c : d) out += fmt::format("{:02x}", c);
  return out;
}

// RFC 4231 test case 2, and OpenSSL's one-shot HMAC for a 32-byte key like the cache's, from
// several threads at once (each thread has its own scratch context).
TEST(KeyedMac, IsHmacSha256) {
  const std::string jefe = "Jefe";
  KeyedMac rfc({reinterpret_cast<const unsigned char*>(jefe.data()), jefe.size()});
  EXPECT_EQ(Hex(rfc("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  std::array<unsigned char, 32> key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>(i * 7 + 1);
  KeyedMac mac(key);
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string data = fmt::format("osk_{}_{}", t, std::string(static_cast<std::size_t>(i % 90), 'x'));
        std::array<unsigned char, 32> want{};
        unsigned int len = 0;
        HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(data.data()), data.size(), want.data(), &len);
        if (mac(data) != want) ++wrong[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

TEST(Bcrypt, HashesAndVerifies) {
  auto h = BcryptHash("s3cret", 4);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->rfind("$2b$04$", 0), 0u);
  EXPECT_TRUE(BcryptVerify("s3cret", *h));
  EXPECT_FALSE(BcryptVerify("s3creT", *h));
  EXPECT_FALSE(BcryptVerify("s3cret", "garbage"));
  EXPECT_FALSE(BcryptHash(std::string(72, 'x'), 4));
}

class TokenServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    auto o = store::Backends()[0].options(dir_.path());
    o.clock = &clock_;
    store_ = std::move(*store::OpenStore(o));
    org_ = store_->CreateOrganization({"A", "UTC", Tier::kFree})->id;
    other_ = store_->CreateOrganization({"B", "UTC", Tier::kFree})->id;
    device_ = store_->CreateDevice({org_, "Fridge", std::nullopt, std::nullopt})->id;
    TokenServiceOptions opts;
    opts.bcrypt_cost = 4;
    tokens_ = std::make_unique<TokenService>(store_.get(), &clock_, opts);
  }
  store::ScratchDir dir_{"auth"};
  ManualClock clock_{kNow};
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<TokenService> tokens_;
  OrgId org_ = 0, other_ = 0;
  DeviceId device_ = 0;
};

TEST_F(TokenServiceTest, VerifiesOnceWithBcryptThenFromTheCache) {
  auto issued = tokens_->IssueDeviceToken(org_, device_);
  ASSERT_TRUE(issued) << issued.error().message;
  EXPECT_NE(issued->record.secret_hash.find("$2b$"), std::string::npos);
  EXPECT_EQ(issued->token.find(issued->record.secret_hash), std::string::npos);
  auto p = tokens_->Verify(issued->token);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->org, org_);
  EXPECT_EQ(p->device, device_);
  EXPECT_EQ(p->Describe(), "device:" + std::to_string(device_));
  EXPECT_EQ(tokens_->bcrypt_verifications(), 1u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(tokens_->Verify(issued->token));
  EXPECT_EQ(tokens_->bcrypt_verifications(), 1u);
  // After the TTL the token is checked against the store again.
  clock_.Advance(31 * kMsPerSecond);
  ASSERT_TRUE(tokens_->Verify(issued->token));
  EXPECT_EQ(tokens_->bcrypt_verifications(), 2u);
}

TEST_F(TokenServiceTest, AWrongSecretWithARealIdIsRefused) {
  auto issued = tokens_->IssueDeviceToken(org_, device_);
  ASSERT_TRUE(tokens_->Verify(issued->token));
  auto parts = *ParseToken(issued->token);
  parts.secret = RandomBase62(kSecretLength);
  auto forged = tokens_->Verify(FormatToken(parts));  // valid checksum, wrong secret
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code, ErrorCode::kPermissionDenied);
  parts = *ParseToken(issued->token);
  parts.kind = TokenKind::kUser;  // same id and secret, other prefix
  EXPECT_FALSE(tokens_->Verify(FormatToken(parts)));
}

TEST_F(TokenServiceTest, RotationStopsTheOldTokenAtOnceOrAfterTheGrace) {
  auto first = tokens_->IssueDeviceToken(org_, device_);
  ASSERT_TRUE(tokens_->Verify(first->token));
  auto second = tokens_->RotateDeviceToken(org_, device_, 0);
  ASSERT_TRUE(second);
  EXPECT_FALSE(tokens_->Verify(first->token)) << "cached old token must be dropped at once";
  EXPECT_TRUE(tokens_->Verify(second->token));
  auto third = tokens_->RotateDeviceToken(org_, device_, 10 * kMsPerMinute);
  ASSERT_TRUE(third);
  EXPECT_TRUE(tokens_->Verify(second->token));  // within the grace period
  EXPECT_TRUE(tokens_->Verify(third->token));
  clock_.Advance(10 * kMsPerMinute);
  EXPECT_FALSE(tokens_->Verify(second->token));
  EXPECT_TRUE(tokens_->Verify(third->token));
  EXPECT_EQ(tokens_->RotateDeviceToken(other_, device_, 0).error().code, ErrorCode::kNotFound);
}

TEST_F(TokenServiceTest, RevocationAndDecommissioning) {
  auto user = store_->CreateUser(org_, "ana@example.com", Role::kOwner);
  auto key = tokens_->IssueUserToken(org_, user->id, Role::kOwner, "laptop");
  ASSERT_TRUE(key);
  auto p = tokens_->Verify(key->token);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->role, Role::kOwner);
  EXPECT_EQ(tokens_->Revoke(other_, key->record.id).error().code, ErrorCode::kNotFound);
  ASSERT_TRUE(tokens_->Revoke(org_, key->record.id));
  EXPECT_FALSE(tokens_->Verify(key->token));
  auto dev = tokens_->IssueDeviceToken(org_, device_);
  ASSERT_TRUE(tokens_->Verify(dev->token));
  ASSERT_TRUE(tokens_->RevokeDeviceTokens(org_, device_));
  EXPECT_FALSE(tokens_->Verify(dev->token));
  ASSERT_TRUE(store_->DecommissionDevice(org_, device_));
  EXPECT_EQ(tokens_->IssueDeviceToken(org_, device_).error().code, ErrorCode::kFailedPrecondition);
}

TEST_F(TokenServiceTest, LastUsedIsWrittenAtMostOnceAMinute) {
  auto issued = tokens_->IssueDeviceToken(org_, device_);
  ASSERT_TRUE(tokens_->Verify(issued->token));
  EXPECT_EQ(store_->FindToken(issued->record.public_id)->last_used_at, kNow);
  clock_.Advance(30 * kMsPerSecond);
  ASSERT_TRUE(tokens_->Verify(issued->token));
  EXPECT_EQ(store_->FindToken(issued->record.public_id)->last_used_at, kNow);
  clock_.Advance(31 * kMsPerSecond);
  ASSERT_TRUE(tokens_->Verify(issued->token));
  EXPECT_EQ(store_->FindToken(issued->record.public_id)->last_used_at, kNow + 61 * kMsPerSecond);
}

}  // namespace
}  // namespace opensense::auth
