#include "core/time_zone.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace opensense {
namespace {

// Expected instants were computed independently (Python datetime / zoneinfo), not with cctz.
constexpr TimestampMs k20240120T1000Z = 1705744800000;

TimeZone MustLoad(std::string_view name) {
  auto tz = TimeZone::Load(name);
  EXPECT_TRUE(tz.has_value()) << name << ": " << (tz ? "" : tz.error().ToString());
  return tz ? *tz : TimeZone::Utc();
}

// ---------------------------------------------------------------------------------------------
// ParseTimestamp

TEST(ParseTimestamp, Rfc3339WithZ) {
  auto ts = ParseTimestamp("2024-01-20T10:00:00Z");
  ASSERT_TRUE(ts) << ts.error().ToString();
  EXPECT_EQ(*ts, k20240120T1000Z);
}

TEST(ParseTimestamp, LowerCaseTAndZ) {
  auto ts = ParseTimestamp("2024-01-20t10:00:00z");
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, k20240120T1000Z);
}

TEST(ParseTimestamp, SpaceSeparatorAllowedByRfc3339) {
  auto ts = ParseTimestamp("2024-01-20 10:00:00Z");
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, k20240120T1000Z);
}

TEST(ParseTimestamp, PositiveOffsetIsAheadOfUtc) {
  // 10:00 at +05:30 is 04:30Z.
  auto ts = ParseTimestamp("2024-01-20T10:00:00+05:30");
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, 1705725000000);
}

TEST(ParseTimestamp, NegativeOffsetIsBehindUtc) {
  // 10:00 at -08:00 is 18:00Z.
  auto ts = ParseTimestamp("2024-01-20T10:00:00-08:00");
  ASSERT_TRUE(ts);
  EXPECT_EQ(*ts, 1705773600000);
}

TEST(ParseTimestamp, ZeroOffsetsEqualZ) {
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00+00:00").value(), k20240120T1000Z);
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00-00:00").value(), k20240120T1000Z);
}

TEST(ParseTimestamp, OffsetCrossingMidnightAndYear) {
  // 2024-01-01T01:00+05:30 is 2023-12-31T19:30Z.
  EXPECT_EQ(ParseTimestamp("2024-01-01T01:00:00+05:30").value(),
            ParseTimestamp("2023-12-31T19:30:00Z").value());
}

TEST(ParseTimestamp, Fractions) {
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00.5Z").value(), k20240120T1000Z + 500);
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00.05Z").value(), k20240120T1000Z + 50);
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00.123Z").value(), k20240120T1000Z + 123);
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00.000Z").value(), k20240120T1000Z);
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00.999Z").value(), k20240120T1000Z + 999);
  // Beyond milliseconds the digits are truncated, never rounded into the next second.
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00.123456789Z").value(), k20240120T1000Z + 123);
  EXPECT_EQ(ParseTimestamp("2024-01-20T10:00:00.999999Z").value(), k20240120T1000Z + 999);
}

TEST(ParseTimestamp, FractionWithOffset) {
  EXPECT_EQ(ParseTimestamp("2024-01-20T15:30:00.250+05:30").value(), k20240120T1000Z + 250);
}

TEST(ParseTimestamp, EpochMilliseconds) {
  EXPECT_EQ(ParseTimestamp("1705744800000").value(), k20240120T1000Z);
  EXPECT_EQ(ParseTimestamp("0").value(), 0);
  EXPECT_EQ(ParseTimestamp("9223372036854775807").value(), INT64_MAX);
}

TEST(ParseTimestamp, NegativeEpochMilliseconds) {
  EXPECT_EQ(ParseTimestamp("-1").value(), -1);
  EXPECT_EQ(ParseTimestamp("-14182940000").value(), -14182940000);
  EXPECT_EQ(ParseTimestamp("-9223372036854775808").value(), INT64_MIN);
}

TEST(ParseTimestamp, Before1970Rfc3339) {
  EXPECT_EQ(ParseTimestamp("1969-07-20T20:17:40Z").value(), -14182940000);
  EXPECT_EQ(ParseTimestamp("1969-12-31T23:59:59.500Z").value(), -500);
  EXPECT_EQ(ParseTimestamp("1900-01-01T00:00:00Z").value(), -2208988800000);
}

TEST(ParseTimestamp, LeapDayInLeapYear) {
  EXPECT_EQ(ParseTimestamp("2024-02-29T12:34:56.789Z").value(), 1709210096789);
}

TEST(ParseTimestamp, RejectsImpossibleCalendarDates) {
  EXPECT_FALSE(ParseTimestamp("2024-02-30T00:00:00Z"));
  EXPECT_FALSE(ParseTimestamp("2023-02-29T00:00:00Z"));  // not a leap year
  EXPECT_FALSE(ParseTimestamp("2024-04-31T00:00:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-13-01T00:00:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-00-10T00:00:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-01-00T00:00:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-01-32T00:00:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T24:00:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:60:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:61Z"));
}

TEST(ParseTimestamp, RejectsBadOffsets) {
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00+24:00"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00+05:60"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00+05"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00+0530"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00+05:3"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00+05:30Z"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00+"));
}

TEST(ParseTimestamp, RejectsMissingZoneDesignator) {
  // Local time without an offset is ambiguous; RFC 3339 requires one.
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00"));
  EXPECT_FALSE(ParseTimestamp("2024-01-20T10:00:00.123"));
}

TEST(ParseTimestamp, RejectsGarbage) {
  for (const char* text : {"hello",
                           "now",
                           "-",
                           "--1",
                           "+1",
                           "1.5",
                           "1e3",
                           " 1",
                           "1 ",
                           "0x10",
                           "2024-01-20",
                           "2024-01-20T10:00Z",
                           "2024/01/20T10:00:00Z",
                           "2024-01-20X10:00:00Z",
                           "2024-1-20T10:00:00Z",
                           "2024-01-20T10:00:00.Z",
                           "2024-01-20T10:00:00ZZ",
                           "2024-01-20T10:00:00Z ",
                           " 2024-01-20T10:00:00Z",
                           "20240120T100000Z",
                           "99999999999999999999",
                           "-99999999999999999999",
                           "２０２４"}) {
    auto ts = ParseTimestamp(text);
    EXPECT_FALSE(ts) << text << " parsed as " << *ts;
    if (!ts) {
      EXPECT_EQ(ts.error().code, ErrorCode::kInvalidArgument) << text;
    }
  }
}

TEST(ParseTimestamp, RejectsEmpty) {
  auto ts = ParseTimestamp("");
  ASSERT_FALSE(ts);
  EXPECT_EQ(ts.error().code, ErrorCode::kInvalidArgument);
}

TEST(ParseTimestamp, RejectsOverlongInputAndKeepsMessageShort) {
  std::string fraction = "2024-01-20T10:00:00." + std::string(100, '0') + "Z";
  EXPECT_FALSE(ParseTimestamp(fraction));
  std::string digits(65, '1');
  EXPECT_FALSE(ParseTimestamp(digits));
  std::string huge(1 << 20, '7');
  auto ts = ParseTimestamp(huge);
  ASSERT_FALSE(ts);
  // The message echoes the input but must not carry a megabyte of it back to the user.
  EXPECT_LT(ts.error().message.size(), 300u);
}

TEST(ParseTimestamp, ErrorMessageSaysWhatToUse) {
  auto ts = ParseTimestamp("yesterday");
  ASSERT_FALSE(ts);
  EXPECT_NE(ts.error().message.find("yesterday"), std::string::npos);
  EXPECT_NE(ts.error().message.find("RFC 3339"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// FormatRfc3339

TEST(FormatRfc3339, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(FormatRfc3339(k20240120T1000Z), "2024-01-20T10:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(k20240120T1000Z + 7), "2024-01-20T10:00:00.007Z");
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00.000Z");
}

TEST(FormatRfc3339, NegativeTimestampsFloorToThePreviousSecond) {
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339(-500), "1969-12-31T23:59:59.500Z");
  EXPECT_EQ(FormatRfc3339(-1000), "1969-12-31T23:59:59.000Z");
}

TEST(FormatRfc3339, RoundTripsThroughParseTimestamp) {
  std::vector<TimestampMs> samples = {0,
                                      1,
                                      -1,
                                      999,
                                      -999,
                                      -1001,
                                      k20240120T1000Z,
                                      k20240120T1000Z + 123,
                                      1709210096789,     // 2024-02-29
                                      -2208988800000,    // 1900-01-01
                                      -62135596800000,   // 0001-01-01
                                      253402300799999};  // 9999-12-31T23:59:59.999
  // Steps stay within years 0001..9999 on both sides of the epoch.
  for (TimestampMs step = 1; step < 60000000000000; step = step * 7 + 13) {
    samples.push_back(step);
    samples.push_back(-step);
  }
  for (TimestampMs ts : samples) {
    std::string text = FormatRfc3339(ts);
    auto parsed = ParseTimestamp(text);
    ASSERT_TRUE(parsed) << ts << " -> " << text;
    EXPECT_EQ(*parsed, ts) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// TimeZone::Load

TEST(TimeZoneLoad, KnownZones) {
  for (const char* name :
       {"UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "America/Argentina/Buenos_Aires",
        "America/Port-au-Prince", "Etc/GMT+5", "Etc/GMT-14"}) {
    auto tz = TimeZone::Load(name);
    ASSERT_TRUE(tz) << name << ": " << tz.error().ToString();
    EXPECT_EQ(tz->name(), name);
  }
}

TEST(TimeZoneLoad, UnknownZoneRefused) {
  for (const char* name : {"Mars/Olympus_Mons", "Europe/Berlinn", "europe/berlin_x", "Berlin"}) {
    auto tz = TimeZone::Load(name);
    ASSERT_FALSE(tz) << name;
    EXPECT_EQ(tz.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(tz.error().message.find(name), std::string::npos) << tz.error().message;
  }
}

TEST(TimeZoneLoad, EmptyAndOverlongRefused) {
  EXPECT_FALSE(TimeZone::Load(""));
  EXPECT_FALSE(TimeZone::Load("Europe/" + std::string(100, 'B')));
}

TEST(TimeZoneLoad, PathTraversalRefused) {
  for (const char* name :
       {"../../../../etc/passwd", "Europe/../../../etc/passwd", "..", "/etc/localtime",
        "/usr/share/zoneinfo/Europe/Berlin",
        // cctz maps "file:<path>" straight to <path>: an absolute path by another name.
        "file:/usr/share/zoneinfo/Europe/Berlin", "file:/etc/passwd",
        // Aliases of real zones that are not IANA names.
        "./Europe/Berlin", "Europe//Berlin", "Europe/./Berlin", "Europe/Berlin/",
        // Debian's zoneinfo/localtime is a symlink to the host's /etc/localtime.
        "localtime", "Europe\\Berlin", "Europe/Berlin\n"}) {
    auto tz = TimeZone::Load(name);
    EXPECT_FALSE(tz) << name;
    if (!tz) {
      EXPECT_EQ(tz.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(TimeZoneLoad, EmbeddedNulRefused) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(TimeZone::Load("Europe/Berlin\0../../etc/passwd"sv));
  EXPECT_FALSE(TimeZone::Load("UTC\0"sv));
}

TEST(TimeZone, UtcIsNamedUtc) { EXPECT_EQ(TimeZone::Utc().name(), "UTC"); }

TEST(TimeZone, FormatLocal) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  EXPECT_EQ(berlin.FormatLocal(k20240120T1000Z), "2024-01-20 11:00:00");
  EXPECT_EQ(berlin.FormatLocal(1718402400000), "2024-06-15 00:00:00");  // CEST
  EXPECT_EQ(MustLoad("Asia/Kolkata").FormatLocal(k20240120T1000Z, "%H:%M"), "15:30");
  EXPECT_EQ(TimeZone::Utc().FormatLocal(-1), "1969-12-31 23:59:59");
}

// ---------------------------------------------------------------------------------------------
// DayOf

void ExpectDay(const TimeZone& tz, TimestampMs ts, TimestampMs start, TimestampMs end) {
  Interval day = tz.DayOf(ts);
  EXPECT_EQ(day.start, start) << tz.name() << " ts=" << ts << " (" << FormatRfc3339(ts) << ")";
  EXPECT_EQ(day.end, end) << tz.name() << " ts=" << ts << " (" << FormatRfc3339(ts) << ")";
  EXPECT_TRUE(day.Contains(ts));
}

TEST(DayOf, BerlinOrdinaryDayIs24Hours) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  // 2024-06-15, CEST (+02:00): 2024-06-14T22:00Z .. 2024-06-15T22:00Z.
  const TimestampMs start = 1718402400000, end = 1718488800000;
  EXPECT_EQ(end - start, 24 * kMsPerHour);
  ExpectDay(berlin, start, start, end);
  ExpectDay(berlin, start + 12 * kMsPerHour, start, end);
  ExpectDay(berlin, end - 1, start, end);
  // Winter: 2024-01-20 (+01:00) is 2024-01-19T23:00Z .. 2024-01-20T23:00Z.
  ExpectDay(berlin, k20240120T1000Z, k20240120T1000Z - 11 * kMsPerHour,
            k20240120T1000Z + 13 * kMsPerHour);
}

TEST(DayOf, BerlinSpringForwardDayIs23Hours) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  // 2024-03-31 00:00 CET = 2024-03-30T23:00Z; 2024-04-01 00:00 CEST = 2024-03-31T22:00Z.
  const TimestampMs start = 1711839600000, end = 1711922400000;
  EXPECT_EQ(end - start, 23 * kMsPerHour);
  ExpectDay(berlin, start, start, end);
  ExpectDay(berlin, 1711846800000 - 1, start, end);  // just before the 02:00 -> 03:00 jump
  ExpectDay(berlin, 1711846800000, start, end);      // the jump itself
  ExpectDay(berlin, end - 1, start, end);
  // One ms before local midnight belongs to the previous (24 h) day.
  ExpectDay(berlin, start - 1, 1711753200000, start);
  // Local midnight at the end starts the next day.
  EXPECT_EQ(berlin.DayOf(end).start, end);
}

TEST(DayOf, BerlinFallBackDayIs25Hours) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  // 2024-10-27 00:00 CEST = 2024-10-26T22:00Z; 2024-10-28 00:00 CET = 2024-10-27T23:00Z.
  const TimestampMs start = 1729980000000, end = 1730070000000;
  EXPECT_EQ(end - start, 25 * kMsPerHour);
  ExpectDay(berlin, start, start, end);
  ExpectDay(berlin, 1729990800000 - 1, start, end);  // first 02:59:59.999 (CEST)
  ExpectDay(berlin, 1729990800000, start, end);      // second 02:00 (CET)
  ExpectDay(berlin, end - 1, start, end);
  EXPECT_EQ(berlin.DayOf(start - 1).end, start);
  EXPECT_EQ(berlin.DayOf(end).start, end);
  EXPECT_EQ(berlin.DayOf(end).end, end + 24 * kMsPerHour);
}

TEST(DayOf, KolkataDaysStartAt1830Utc) {
  TimeZone kolkata = MustLoad("Asia/Kolkata");
  const TimestampMs midnight = 1705775400000;  // 2024-01-20T18:30Z = 2024-01-21 00:00 IST
  ExpectDay(kolkata, midnight, midnight, midnight + kMsPerDay);
  ExpectDay(kolkata, midnight - 1, midnight - kMsPerDay, midnight);
  ExpectDay(kolkata, k20240120T1000Z, 1705689000000, midnight);
}

TEST(DayOf, KathmanduFortyFiveMinuteOffset) {
  TimeZone kathmandu = MustLoad("Asia/Kathmandu");
  const TimestampMs midnight = 1705774500000;  // 2024-01-20T18:15Z = 2024-01-21 00:00 +05:45
  ExpectDay(kathmandu, midnight, midnight, midnight + kMsPerDay);
  ExpectDay(kathmandu, midnight - 1, 1705688100000, midnight);
  ExpectDay(kathmandu, midnight + 15 * kMsPerMinute, midnight, 1705860900000);
}

TEST(DayOf, UtcBefore1970) {
  TimeZone utc = TimeZone::Utc();
  ExpectDay(utc, -1, -kMsPerDay, 0);
  ExpectDay(utc, -kMsPerDay, -kMsPerDay, 0);
  ExpectDay(utc, -kMsPerDay - 1, -2 * kMsPerDay, -kMsPerDay);
  ExpectDay(utc, -999, -kMsPerDay, 0);  // sub-second part must floor, not truncate
  ExpectDay(utc, -14182940000, -14182940000 - (20 * 3600 + 17 * 60 + 40) * 1000LL,
            -14182940000 + (3 * 3600 + 42 * 60 + 20) * 1000LL);                // 1969-07-20
  ExpectDay(utc, -2208988800000, -2208988800000, -2208988800000 + kMsPerDay);  // 1900-01-01
  ExpectDay(utc, 0, 0, kMsPerDay);
}

TEST(DayOf, LoadedUtcMatchesBuiltInUtc) {
  TimeZone utc = MustLoad("UTC");
  for (TimestampMs ts : {TimestampMs{-1}, TimestampMs{0}, k20240120T1000Z}) {
    EXPECT_EQ(utc.DayOf(ts).start, TimeZone::Utc().DayOf(ts).start);
  }
}

TEST(DayOf, MidnightSkippedByDstStartsAtTheTransition) {
  // Sao Paulo, 2018-11-04: 00:00 -03 jumped to 01:00 -02, so the day starts at 03:00Z.
  TimeZone sao_paulo = MustLoad("America/Sao_Paulo");
  const TimestampMs start = 1541300400000, end = 1541383200000;
  EXPECT_EQ(end - start, 23 * kMsPerHour);
  ExpectDay(sao_paulo, start, start, end);
  ExpectDay(sao_paulo, end - 1, start, end);
  EXPECT_EQ(sao_paulo.DayOf(start - 1).end, start);
  EXPECT_EQ(sao_paulo.DayOf(start - 1).start, 1541214000000);
  // Havana, 2024-03-10: same at 00:00 -05 -> 01:00 -04.
  TimeZone havana = MustLoad("America/Havana");
  ExpectDay(havana, 1710046800000, 1710046800000, 1710129600000);
  ExpectDay(havana, 1710046800000 - 1, 1709960400000, 1710046800000);
}

TEST(DayOf, RepeatedMidnightStartsAtTheFirstOccurrence) {
  // Havana, 2023-11-05: 01:00 -04 fell back to 00:00 -05, so midnight happened twice
  // (04:00Z and 05:00Z); the day starts at the first and lasts 25 hours.
  TimeZone havana = MustLoad("America/Havana");
  const TimestampMs start = 1699156800000, end = 1699246800000;
  EXPECT_EQ(end - start, 25 * kMsPerHour);
  ExpectDay(havana, start, start, end);
  ExpectDay(havana, start + kMsPerHour, start, end);  // the second midnight
  ExpectDay(havana, end - 1, start, end);
  ExpectDay(havana, start - 1, 1699070400000, start);
}

TEST(DayOf, FallBackAcrossMidnightMakesA25HourDayBefore) {
  // Sao Paulo, 2018-02-18: 00:00 -02 fell back to 23:00 -03 on the 17th.
  TimeZone sao_paulo = MustLoad("America/Sao_Paulo");
  const TimestampMs start = 1518832800000, end = 1518922800000;
  EXPECT_EQ(end - start, 25 * kMsPerHour);
  ExpectDay(sao_paulo, start, start, end);
  ExpectDay(sao_paulo, end - 1, start, end);
  ExpectDay(sao_paulo, end - kMsPerHour - 1, start, end);  // 23:59:59.999 the first time
}

TEST(DayOf, DaysTileTheTimeLineWithoutGapsOrOverlaps) {
  for (const char* name : {"UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu",
                           "America/Havana", "America/Sao_Paulo", "Australia/Lord_Howe"}) {
    TimeZone tz = MustLoad(name);
    TimestampMs t = 1514764800000;  // 2018-01-01T00:00Z
    Interval day = tz.DayOf(t);
    for (int i = 0; i < 2 * 366; ++i) {
      ASSERT_LT(day.start, day.end) << name;
      ASSERT_GE(day.end - day.start, 23 * kMsPerHour) << name;
      ASSERT_LE(day.end - day.start, 25 * kMsPerHour) << name;
      Interval next = tz.DayOf(day.end);
      ASSERT_EQ(next.start, day.end) << name << " at " << FormatRfc3339(day.end);
      ASSERT_EQ(tz.DayOf(day.end - 1).start, day.start) << name;
      ASSERT_EQ(tz.FormatLocal(day.start, "%F"), tz.FormatLocal(day.end - 1, "%F")) << name;
      ASSERT_NE(tz.FormatLocal(day.start, "%F"), tz.FormatLocal(next.start, "%F")) << name;
      day = next;
    }
  }
}

TEST(DayOf, EndsOfTheInt64RangeSaturateInsteadOfOverflowing) {
  // A query may send any epoch ms; the day around INT64_MIN starts before it and the day around
  // INT64_MAX ends after it, and neither boundary may wrap around.
  for (const char* name : {"UTC", "Europe/Berlin"}) {
    TimeZone tz = MustLoad(name);
    Interval low = tz.DayOf(INT64_MIN);
    EXPECT_EQ(low.start, INT64_MIN) << name;
    EXPECT_GT(low.end, INT64_MIN) << name;
    EXPECT_LT(low.end, INT64_MIN + 2 * kMsPerDay) << name;
    Interval high = tz.DayOf(INT64_MAX);
    EXPECT_EQ(high.end, INT64_MAX) << name;
    EXPECT_LT(high.start, INT64_MAX) << name;
    EXPECT_GT(high.start, INT64_MAX - 2 * kMsPerDay) << name;
  }
  // The boundaries that are representable are real UTC midnights.
  Interval utc_low = TimeZone::Utc().DayOf(INT64_MIN);
  EXPECT_EQ(utc_low.end % kMsPerDay, 0);
  EXPECT_EQ(TimeZone::Utc().DayOf(INT64_MAX).start % kMsPerDay, 0);
}

// ---------------------------------------------------------------------------------------------
// DayBucketer

TEST(DayBucketer, AgreesWithDayOfAcrossDays) {
  for (const char* name : {"UTC", "Europe/Berlin", "Asia/Kolkata", "America/Havana"}) {
    TimeZone tz = MustLoad(name);
    DayBucketer bucketer(tz);
    EXPECT_EQ(bucketer.zone().name(), name);
    // Every 7 minutes for 12 days around the Berlin spring-forward, including exact midnights.
    for (TimestampMs ts = 1711839600000 - 6 * kMsPerDay; ts < 1711839600000 + 6 * kMsPerDay;
         ts += 7 * kMsPerMinute) {
      ASSERT_EQ(bucketer.DayStart(ts), tz.DayOf(ts).start) << name << " " << FormatRfc3339(ts);
    }
  }
}

TEST(DayBucketer, HandlesOutOfOrderAndBoundaryInstants) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  DayBucketer bucketer(berlin);
  const std::vector<TimestampMs> seq = {1729980000000,
                                        1730070000000 - 1,
                                        1730070000000,
                                        1729980000000 - 1,
                                        1729980000000 + 1,
                                        0,
                                        -1,
                                        k20240120T1000Z,
                                        1711839600000 - 1,
                                        1711839600000,
                                        1711922400000,
                                        1711922400000 - 1};
  for (TimestampMs ts : seq) {
    EXPECT_EQ(bucketer.DayStart(ts), berlin.DayOf(ts).start) << FormatRfc3339(ts);
  }
}

TEST(DayBucketer, FirstCallAtEpochZeroIsNotMistakenForTheEmptyCache) {
  DayBucketer bucketer(TimeZone::Utc());
  EXPECT_EQ(bucketer.DayStart(0), 0);
  EXPECT_EQ(bucketer.DayStart(-1), -kMsPerDay);
}

// ---------------------------------------------------------------------------------------------
// SubtractCalendarMonthsUtc

TEST(SubtractCalendarMonthsUtc, EndOfMarchClampsToLeapDay) {
  // 2024-03-31T12:34:56.789Z - 1 month = 2024-02-29T12:34:56.789Z.
  EXPECT_EQ(SubtractCalendarMonthsUtc(1711888496789, 1), 1709210096789);
}

TEST(SubtractCalendarMonthsUtc, EndOfMarchClampsTo28FebruaryOutsideLeapYears) {
  // 2023-03-31T12:34:56.789Z - 1 month = 2023-02-28T12:34:56.789Z.
  EXPECT_EQ(SubtractCalendarMonthsUtc(1680266096789, 1), 1677587696789);
}

TEST(SubtractCalendarMonthsUtc, ThirteenMonthsAcrossYearEnd) {
  // 2024-01-31 - 13 months = 2022-12-31.
  EXPECT_EQ(SubtractCalendarMonthsUtc(1706659200000, 13), 1672444800000);
  // 2024-02-29T07:08:09.010Z - 12 months = 2023-02-28 (clamped), time of day kept.
  EXPECT_EQ(SubtractCalendarMonthsUtc(1709190489010, 12), 1677568089010);
  // 2024-01-31 - 25 months = 2021-12-31.
  EXPECT_EQ(SubtractCalendarMonthsUtc(1706659200000, 25), 1640908800000);
}

TEST(SubtractCalendarMonthsUtc, KeepsTimeOfDay) {
  const TimestampMs ts = ParseTimestamp("2024-05-15T23:59:59.999Z").value();
  EXPECT_EQ(SubtractCalendarMonthsUtc(ts, 3), ParseTimestamp("2024-02-15T23:59:59.999Z").value());
  EXPECT_EQ(SubtractCalendarMonthsUtc(ts, 13), ParseTimestamp("2023-04-15T23:59:59.999Z").value());
}

TEST(SubtractCalendarMonthsUtc, ZeroMonthsIsIdentity) {
  for (TimestampMs ts :
       {TimestampMs{0}, TimestampMs{-1}, k20240120T1000Z, TimestampMs{1711888496789}}) {
    EXPECT_EQ(SubtractCalendarMonthsUtc(ts, 0), ts);
  }
}

TEST(SubtractCalendarMonthsUtc, BeforeAndAcrossTheEpoch) {
  // 1970-01-01T00:00:00.000Z - 1 month = 1969-12-01.
  EXPECT_EQ(SubtractCalendarMonthsUtc(0, 1), ParseTimestamp("1969-12-01T00:00:00Z").value());
  // 1969-12-31T23:59:59.999Z - 1 month = 1969-11-30T23:59:59.999Z.
  EXPECT_EQ(SubtractCalendarMonthsUtc(-1, 1), ParseTimestamp("1969-11-30T23:59:59.999Z").value());
  // 1970-03-31T06:00Z - 2 months = 1970-01-31T06:00Z.
  EXPECT_EQ(SubtractCalendarMonthsUtc(ParseTimestamp("1970-03-31T06:00:00Z").value(), 2),
            ParseTimestamp("1970-01-31T06:00:00Z").value());
}

TEST(SubtractCalendarMonthsUtc, SixtyMonthsIsFiveYears) {
  EXPECT_EQ(SubtractCalendarMonthsUtc(ParseTimestamp("2029-02-28T01:02:03Z").value(), 60),
            ParseTimestamp("2024-02-28T01:02:03Z").value());
  EXPECT_EQ(SubtractCalendarMonthsUtc(ParseTimestamp("2028-02-29T01:02:03Z").value(), 60),
            ParseTimestamp("2023-02-28T01:02:03Z").value());
}

TEST(SubtractCalendarMonthsUtc, SaturatesAtTheEndsOfTheInt64Range) {
  EXPECT_EQ(SubtractCalendarMonthsUtc(INT64_MIN, 13), INT64_MIN);
  EXPECT_EQ(SubtractCalendarMonthsUtc(INT64_MIN + 1, 1), INT64_MIN);
  EXPECT_EQ(SubtractCalendarMonthsUtc(INT64_MIN, 0), INT64_MIN);
  EXPECT_EQ(SubtractCalendarMonthsUtc(INT64_MAX, -13), INT64_MAX);
  // INT64_MAX is 292278994-08-17T07:12:55.807Z; 13 months earlier is 292278993-07-17, 396 days.
  EXPECT_EQ(SubtractCalendarMonthsUtc(INT64_MAX, 13), INT64_MAX - 396 * kMsPerDay);
  EXPECT_EQ(SubtractCalendarMonthsUtc(INT64_MAX, 0), INT64_MAX);
  // Any int number of months is representable as a shift; only the sum can leave the range.
  const TimestampMs far_past = SubtractCalendarMonthsUtc(0, std::numeric_limits<int>::max());
  EXPECT_LT(far_past, -5'000'000'000'000'000'000);
  EXPECT_EQ(far_past % kMsPerDay, 0);
  EXPECT_EQ(SubtractCalendarMonthsUtc(INT64_MIN / 2, std::numeric_limits<int>::max()), INT64_MIN);
  EXPECT_EQ(SubtractCalendarMonthsUtc(INT64_MAX / 2, std::numeric_limits<int>::min()), INT64_MAX);
}

}  // namespace
}  // namespace opensense
