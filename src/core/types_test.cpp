#include "core/types.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace opensense {
namespace {

// ---------------------------------------------------------------------------------------------
// Tier

TEST(Tier, NamesRoundTrip) {
  for (Tier t : {Tier::kFree, Tier::kTeam, Tier::kEnterprise}) {
    auto parsed = ParseTier(TierName(t));
    ASSERT_TRUE(parsed) << TierName(t);
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(TierName(Tier::kFree), "free");
  EXPECT_EQ(TierName(Tier::kTeam), "team");
  EXPECT_EQ(TierName(Tier::kEnterprise), "enterprise");
}

TEST(Tier, UnknownRefused) {
  for (const char* name : {"", "Free", "TEAM", "pro", "enterprise ", " team", "premium"}) {
    auto parsed = ParseTier(name);
    ASSERT_FALSE(parsed) << name;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find("free, team or enterprise"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Resolution

TEST(Resolution, NamesRoundTrip) {
  std::set<std::string_view> names;
  for (Resolution r :
       {Resolution::kRaw, Resolution::k5m, Resolution::k1h, Resolution::k1d, Resolution::kAuto}) {
    auto parsed = ParseResolution(ResolutionName(r));
    ASSERT_TRUE(parsed) << ResolutionName(r);
    EXPECT_EQ(*parsed, r);
    EXPECT_TRUE(names.insert(ResolutionName(r)).second);
  }
  EXPECT_EQ(ResolutionName(Resolution::kRaw), "raw");
  EXPECT_EQ(ResolutionName(Resolution::k5m), "5m");
  EXPECT_EQ(ResolutionName(Resolution::k1h), "1h");
  EXPECT_EQ(ResolutionName(Resolution::k1d), "1d");
  EXPECT_EQ(ResolutionName(Resolution::kAuto), "auto");
}

TEST(Resolution, UnknownRefused) {
  for (const char* name : {"", "RAW", "5min", "1H", "1 d", "day", "1w", "auto "}) {
    auto parsed = ParseResolution(name);
    ASSERT_FALSE(parsed) << name;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find(name), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// RejectReason

TEST(RejectReason, NamesAreDistinctSnakeCase) {
  std::set<std::string_view> names;
  for (RejectReason r :
       {RejectReason::kNotFinite, RejectReason::kInFuture, RejectReason::kOlderThanRetention,
        RejectReason::kUnknownDevice, RejectReason::kDeviceDecommissioned,
        RejectReason::kBadMetricName, RejectReason::kUnknownUnit, RejectReason::kUnitMismatch}) {
    std::string_view name = RejectReasonName(r);
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name;
    for (char c : name) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << name;
  }
  EXPECT_EQ(RejectReasonName(RejectReason::kNotFinite), "not_finite");
  EXPECT_EQ(RejectReasonName(RejectReason::kOlderThanRetention), "older_than_retention");
}

TEST(Time, Constants) {
  EXPECT_EQ(kMsPerSecond, 1000);
  EXPECT_EQ(kMsPerMinute, 60'000);
  EXPECT_EQ(kMsPerHour, 3'600'000);
  EXPECT_EQ(kMsPerDay, 86'400'000);
}

// ---------------------------------------------------------------------------------------------
// Result / Error

TEST(ErrorCode, NamesAreDistinct) {
  std::set<std::string_view> names;
  for (ErrorCode c :
       {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kAlreadyExists,
        ErrorCode::kPermissionDenied, ErrorCode::kFailedPrecondition, ErrorCode::kResourceExhausted,
        ErrorCode::kUnavailable, ErrorCode::kConflict, ErrorCode::kInternal}) {
    EXPECT_TRUE(names.insert(ErrorCodeName(c)).second) << ErrorCodeName(c);
  }
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotFound), "not_found");
}

TEST(Error, ToStringHasCodeAndMessage) {
  Error e{ErrorCode::kNotFound, "no device 42"};
  EXPECT_EQ(e.ToString(), "not_found: no device 42");
}

TEST(Result, MakeErrorAndOk) {
  Result<int> r = MakeError(ErrorCode::kConflict, "busy");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kConflict);
  EXPECT_EQ(r.error().message, "busy");
  Status ok = Ok();
  EXPECT_TRUE(ok);
}

Result<int> Half(int x) {
  if (x % 2 != 0) return MakeError(ErrorCode::kInvalidArgument, "odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  OS_ASSIGN_OR_RETURN(int h, Half(x));
  OS_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  OS_RETURN_IF_ERROR(Half(x));
  return Ok();
}

TEST(Result, AssignOrReturn) {
  EXPECT_EQ(Quarter(8).value(), 2);
  auto r = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "odd");
  EXPECT_FALSE(Quarter(5));
}

TEST(Result, ReturnIfError) {
  EXPECT_TRUE(CheckEven(4));
  Status st = CheckEven(3);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Clock

TEST(ManualClock, SetAndAdvance) {
  ManualClock clock(1000);
  const Clock& c = clock;
  EXPECT_EQ(c.NowMs(), 1000);
  clock.Advance(500);
  EXPECT_EQ(c.NowMs(), 1500);
  clock.Advance(-2000);
  EXPECT_EQ(c.NowMs(), -500);
  clock.Set(42);
  EXPECT_EQ(c.NowMs(), 42);
}

TEST(SystemClock, IsAfter2024AndMonotonicEnough) {
  SystemClock clock;
  TimestampMs a = clock.NowMs();
  TimestampMs b = clock.NowMs();
  EXPECT_GT(a, 1704067200000);  // 2024-01-01T00:00Z
  EXPECT_LE(a, b + 1000);
}

}  // namespace
}  // namespace opensense
