#include "core/retention.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/time_zone.hpp"

namespace opensense {
namespace {

using Unit = RetentionPeriod::Unit;

TimestampMs At(std::string_view rfc3339) { return ParseTimestamp(rfc3339).value(); }

// ---------------------------------------------------------------------------------------------
// Defaults (ARCHITECTURE.md, "Rollups and retention")

TEST(DefaultRetention, MatchesTheArchitectureTable) {
  EXPECT_EQ(DefaultRetention(DataClass::kRawReadings), RetentionPeriod::Months(13));
  EXPECT_EQ(DefaultRetention(DataClass::kRollup5m), RetentionPeriod::Months(5 * 12));
  EXPECT_EQ(DefaultRetention(DataClass::kRollup1h), RetentionPeriod::Months(5 * 12));
  EXPECT_EQ(DefaultRetention(DataClass::kRollup1d), RetentionPeriod::Forever());
  EXPECT_EQ(DefaultRetention(DataClass::kAlertEvents), RetentionPeriod::Forever());
  EXPECT_EQ(DefaultRetention(DataClass::kApiRequestLogs), RetentionPeriod::Days(30));
  EXPECT_EQ(DefaultRetention(DataClass::kNotificationLogs), RetentionPeriod::Days(90));
}

TEST(DefaultRetention, FormattedForHumans) {
  EXPECT_EQ(FormatRetentionPeriod(DefaultRetention(DataClass::kRawReadings)), "13 months");
  EXPECT_EQ(FormatRetentionPeriod(DefaultRetention(DataClass::kRollup5m)), "5 years");
  EXPECT_EQ(FormatRetentionPeriod(DefaultRetention(DataClass::kRollup1d)), "forever");
  EXPECT_EQ(FormatRetentionPeriod(DefaultRetention(DataClass::kApiRequestLogs)), "30 days");
  EXPECT_EQ(FormatRetentionPeriod(RetentionPeriod::Days(1)), "1 day");
  EXPECT_EQ(FormatRetentionPeriod(RetentionPeriod::Months(1)), "1 month");
  EXPECT_EQ(FormatRetentionPeriod(RetentionPeriod::Months(12)), "1 year");
}

TEST(RetentionPolicy, OverridesReplaceOnlyTheirClass) {
  RetentionPolicy policy;
  EXPECT_EQ(policy.For(DataClass::kRawReadings), RetentionPeriod::Months(13));
  policy.overrides[DataClass::kRawReadings] = RetentionPeriod::Months(24);
  EXPECT_EQ(policy.For(DataClass::kRawReadings), RetentionPeriod::Months(24));
  EXPECT_EQ(policy.For(DataClass::kApiRequestLogs), RetentionPeriod::Days(30));
}

// ---------------------------------------------------------------------------------------------
// ParseRetentionPeriod

TEST(ParseRetentionPeriod, AcceptedForms) {
  struct Case {
    const char* text;
    RetentionPeriod want;
  };
  for (const Case& c :
       {Case{"13 months", RetentionPeriod::Months(13)},
        Case{"13 month", RetentionPeriod::Months(13)}, Case{"13mo", RetentionPeriod::Months(13)},
        Case{"13 mo", RetentionPeriod::Months(13)}, Case{"1 month", RetentionPeriod::Months(1)},
        Case{"5 years", RetentionPeriod::Months(60)}, Case{"5y", RetentionPeriod::Months(60)},
        Case{"1 year", RetentionPeriod::Months(12)}, Case{"30 days", RetentionPeriod::Days(30)},
        Case{"30d", RetentionPeriod::Days(30)}, Case{"1 day", RetentionPeriod::Days(1)},
        Case{"365 days", RetentionPeriod::Days(365)}, Case{"forever", RetentionPeriod::Forever()},
        Case{"1000 years", RetentionPeriod::Months(12000)}}) {
    auto p = ParseRetentionPeriod(c.text);
    ASSERT_TRUE(p) << c.text << ": " << p.error().ToString();
    EXPECT_EQ(*p, c.want) << c.text;
  }
}

TEST(ParseRetentionPeriod, RejectedForms) {
  for (const char* text : {"",
                           " ",
                           "months",
                           "13",
                           "0 days",
                           "0 months",
                           "-5 days",
                           "+5 days",
                           "13 weeks",
                           "13 m",
                           "13 Months",
                           "13 MONTHS",
                           " 13 months",
                           "13 months ",
                           "1.5 years",
                           "13 months ago",
                           "Forever",
                           "forever ",
                           "never",
                           "1001 years",
                           "1000000 days",
                           "9999999 months",
                           "00000000001 days",
                           "5 y ears",
                           "5yy",
                           "d",
                           "13\tmonths"}) {
    auto p = ParseRetentionPeriod(text);
    EXPECT_FALSE(p) << "'" << text << "' parsed";
    if (!p) {
      EXPECT_EQ(p.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(p.error().message.find("forever"), std::string::npos) << p.error().message;
    }
  }
}

TEST(ParseRetentionPeriod, FormatParsesBack) {
  for (RetentionPeriod p :
       {RetentionPeriod::Months(13), RetentionPeriod::Months(60), RetentionPeriod::Months(1),
        RetentionPeriod::Months(12), RetentionPeriod::Days(1), RetentionPeriod::Days(90),
        RetentionPeriod::Forever()}) {
    auto parsed = ParseRetentionPeriod(FormatRetentionPeriod(p));
    ASSERT_TRUE(parsed) << FormatRetentionPeriod(p);
    EXPECT_EQ(*parsed, p) << FormatRetentionPeriod(p);
  }
}

// ---------------------------------------------------------------------------------------------
// ValidateRetentionOverride

TEST(ValidateRetentionOverride, FreeTierCannotChangeAnything) {
  for (DataClass c : kAllDataClasses) {
    for (RetentionPeriod p : {DefaultRetention(c), RetentionPeriod::Forever(),
                              RetentionPeriod::Months(120), RetentionPeriod::Days(3650)}) {
      Status st = ValidateRetentionOverride(Tier::kFree, c, p);
      ASSERT_FALSE(st) << DataClassName(c);
      EXPECT_EQ(st.error().code, ErrorCode::kPermissionDenied);
      EXPECT_NE(st.error().message.find("free"), std::string::npos) << st.error().message;
    }
  }
}

TEST(ValidateRetentionOverride, ShorterThanDefaultRefusedNamingTheMinimum) {
  for (Tier tier : {Tier::kTeam, Tier::kEnterprise}) {
    Status st =
        ValidateRetentionOverride(tier, DataClass::kRawReadings, RetentionPeriod::Months(12));
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(st.error().message.find("13 months"), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().message.find("minimum"), std::string::npos) << st.error().message;

    st = ValidateRetentionOverride(tier, DataClass::kRollup5m, RetentionPeriod::Months(59));
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("5 years"), std::string::npos) << st.error().message;

    st = ValidateRetentionOverride(tier, DataClass::kApiRequestLogs, RetentionPeriod::Days(29));
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("30 days"), std::string::npos) << st.error().message;

    st = ValidateRetentionOverride(tier, DataClass::kNotificationLogs, RetentionPeriod::Days(1));
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("90 days"), std::string::npos) << st.error().message;
  }
}

TEST(ValidateRetentionOverride, ForeverClassesCannotBeShortened) {
  for (DataClass c : {DataClass::kRollup1d, DataClass::kAlertEvents}) {
    Status st = ValidateRetentionOverride(Tier::kEnterprise, c, RetentionPeriod::Months(1200));
    ASSERT_FALSE(st) << DataClassName(c);
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_FALSE(ValidateRetentionOverride(Tier::kTeam, c, RetentionPeriod::Days(100000)));
  }
}

TEST(ValidateRetentionOverride, DefaultAndLongerAcceptedForPaidTiers) {
  for (Tier tier : {Tier::kTeam, Tier::kEnterprise}) {
    EXPECT_TRUE(
        ValidateRetentionOverride(tier, DataClass::kRawReadings, RetentionPeriod::Months(13)));
    EXPECT_TRUE(
        ValidateRetentionOverride(tier, DataClass::kRawReadings, RetentionPeriod::Months(24)));
    EXPECT_TRUE(
        ValidateRetentionOverride(tier, DataClass::kRollup5m, RetentionPeriod::Months(120)));
    EXPECT_TRUE(ValidateRetentionOverride(tier, DataClass::kRollup1h, RetentionPeriod::Months(61)));
    EXPECT_TRUE(
        ValidateRetentionOverride(tier, DataClass::kApiRequestLogs, RetentionPeriod::Days(31)));
    EXPECT_TRUE(
        ValidateRetentionOverride(tier, DataClass::kNotificationLogs, RetentionPeriod::Days(365)));
  }
}

TEST(ValidateRetentionOverride, ForeverAcceptedForEveryClassOnPaidTiers) {
  for (Tier tier : {Tier::kTeam, Tier::kEnterprise}) {
    for (DataClass c : kAllDataClasses) {
      EXPECT_TRUE(ValidateRetentionOverride(tier, c, RetentionPeriod::Forever()))
          << DataClassName(c);
    }
  }
}

TEST(ValidateRetentionOverride, WrongUnitRefused) {
  // 400 days is longer than 13 months, but readings are counted in calendar months.
  Status st =
      ValidateRetentionOverride(Tier::kTeam, DataClass::kRawReadings, RetentionPeriod::Days(400));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(st.error().message.find("months"), std::string::npos) << st.error().message;

  st = ValidateRetentionOverride(Tier::kTeam, DataClass::kApiRequestLogs,
                                 RetentionPeriod::Months(2));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(st.error().message.find("days"), std::string::npos) << st.error().message;
}

// ---------------------------------------------------------------------------------------------
// RetentionCutoff

TEST(RetentionCutoff, ForeverHasNoCutoff) {
  EXPECT_EQ(RetentionCutoff(RetentionPeriod::Forever(), At("2024-01-20T10:00:00Z")), std::nullopt);
}

TEST(RetentionCutoff, DaysAreExact24HourDays) {
  EXPECT_EQ(RetentionCutoff(RetentionPeriod::Days(30), At("2024-03-31T12:00:00.123Z")),
            At("2024-03-01T12:00:00.123Z"));
  EXPECT_EQ(RetentionCutoff(RetentionPeriod::Days(90), At("2024-01-20T10:00:00Z")),
            At("2023-10-22T10:00:00Z"));
}

TEST(RetentionCutoff, MonthsAreCalendarMonthsInUtc) {
  EXPECT_EQ(RetentionCutoff(RetentionPeriod::Months(13), At("2024-01-20T10:00:00Z")),
            At("2022-12-20T10:00:00Z"));
  // 2025-03-31 - 13 months = 2024-02-31 -> clamped to 2024-02-29.
  EXPECT_EQ(RetentionCutoff(RetentionPeriod::Months(13), At("2025-03-31T23:30:00Z")),
            At("2024-02-29T23:30:00Z"));
  EXPECT_EQ(RetentionCutoff(RetentionPeriod::Months(60), At("2024-02-29T00:00:00Z")),
            At("2019-02-28T00:00:00Z"));
}

// ---------------------------------------------------------------------------------------------
// DataClass names

TEST(DataClassName, RoundTripsForAllClasses) {
  std::set<std::string_view> names;
  for (DataClass c : kAllDataClasses) {
    std::string_view name = DataClassName(c);
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << "duplicate name " << name;
    auto parsed = ParseDataClass(name);
    ASSERT_TRUE(parsed) << name;
    EXPECT_EQ(*parsed, c) << name;
  }
  EXPECT_EQ(names.size(), 7u);
}

TEST(DataClassName, StableNames) {
  EXPECT_EQ(DataClassName(DataClass::kRawReadings), "raw_readings");
  EXPECT_EQ(DataClassName(DataClass::kRollup5m), "rollup_5m");
  EXPECT_EQ(DataClassName(DataClass::kRollup1h), "rollup_1h");
  EXPECT_EQ(DataClassName(DataClass::kRollup1d), "rollup_1d");
  EXPECT_EQ(DataClassName(DataClass::kAlertEvents), "alert_events");
  EXPECT_EQ(DataClassName(DataClass::kApiRequestLogs), "api_request_logs");
  EXPECT_EQ(DataClassName(DataClass::kNotificationLogs), "notification_logs");
}

TEST(ParseDataClass, UnknownRefused) {
  for (const char* name : {"", "raw", "Raw_Readings", "raw_readings ", "unknown", "backups"}) {
    auto c = ParseDataClass(name);
    ASSERT_FALSE(c) << name;
    EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace opensense
