// Hostile and edge-case input for the ingest parsers, and content types. The ordinary cases are
// golden files (golden_test.cpp, tests/data/ingest/).
#include "ingest/payload.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/validation.hpp"

namespace opensense::ingest {
namespace {

using testing::HasSubstr;
using testing::StartsWith;

constexpr TimestampMs kNow = 1705744800000;  // 2024-01-20T10:00:00Z

ParseOptions Options(bool gateway = false) {
  ParseOptions options;
  options.gateway = gateway;
  options.now_ms = kNow;
  return options;
}

// The message of a refused document (and a test failure if it was not refused).
std::string DocumentError(PayloadFormat format, std::string_view body,
                          const ParseOptions& options = Options()) {
  auto result = Parse(format, body, options);
  if (result) {
    ADD_FAILURE() << "accepted: " << body.substr(0, 200) << " (" << result->records.size()
                  << " records, " << result->errors.size() << " errors)";
    return "";
  }
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument) << result.error().ToString();
  EXPECT_FALSE(result.error().message.empty());
  return result.error().message;
}

ParseResult Parsed(PayloadFormat format, std::string_view body,
                   const ParseOptions& options = Options()) {
  auto result = Parse(format, body, options);
  if (!result) {
    ADD_FAILURE() << "refused: " << result.error().message;
    return {};
  }
  return std::move(*result);
}

constexpr PayloadFormat kJsonFormats[] = {PayloadFormat::kSenML, PayloadFormat::kOpenSenseJson};

// ---- content types

TEST(FormatFromContentTypeTest, AcceptsTheThreeMediaTypesCaseInsensitively) {
  EXPECT_EQ(FormatFromContentType("application/senml+json"), PayloadFormat::kSenML);
  EXPECT_EQ(FormatFromContentType("Application/SenML+JSON"), PayloadFormat::kSenML);
  EXPECT_EQ(FormatFromContentType("application/json"), PayloadFormat::kOpenSenseJson);
  EXPECT_EQ(FormatFromContentType("APPLICATION/JSON"), PayloadFormat::kOpenSenseJson);
  EXPECT_EQ(FormatFromContentType("text/plain"), PayloadFormat::kLineProtocol);
  EXPECT_EQ(FormatFromContentType("Text/Plain"), PayloadFormat::kLineProtocol);
}

TEST(FormatFromContentTypeTest, IgnoresParametersAndWhitespace) {
  EXPECT_EQ(FormatFromContentType("application/json; charset=utf-8"),
            PayloadFormat::kOpenSenseJson);
  EXPECT_EQ(FormatFromContentType("text/plain; charset=utf-8"), PayloadFormat::kLineProtocol);
  EXPECT_EQ(FormatFromContentType("text/plain;charset=UTF-8"), PayloadFormat::kLineProtocol);
  EXPECT_EQ(FormatFromContentType("text/plain; charset=iso-8859-1; q=1"),
            PayloadFormat::kLineProtocol);
  EXPECT_EQ(FormatFromContentType("  application/senml+json ; charset=utf-8"),
            PayloadFormat::kSenML);
}

TEST(FormatFromContentTypeTest, RefusesOtherTypesWithTheAcceptedOnes) {
  for (std::string_view type : {"application/xml", "application/senml+cbor", "text/csv",
                                "application/jsonx", "json", "text/plainx", "*/*"}) {
    auto format = FormatFromContentType(type);
    ASSERT_FALSE(format) << type;
    EXPECT_EQ(format.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(format.error().message, StartsWith("unsupported Content-Type '"));
    EXPECT_THAT(format.error().message, HasSubstr("application/senml+json"));
  }
  for (std::string_view type : {"", "   ", "; charset=utf-8"}) {
    auto format = FormatFromContentType(type);
    ASSERT_FALSE(format);
    EXPECT_THAT(format.error().message, StartsWith("missing Content-Type"));
  }
  // Control characters in a header do not reach the message raw.
  auto format = FormatFromContentType(std::string_view("text/\x01\n", 7));
  ASSERT_FALSE(format);
  EXPECT_THAT(format.error().message, HasSubstr("'text/\\x01\\x0a'"));
}

TEST(PayloadFormatNameTest, NamesEveryFormat) {
  EXPECT_EQ(PayloadFormatName(PayloadFormat::kSenML), "senml");
  EXPECT_EQ(PayloadFormatName(PayloadFormat::kOpenSenseJson), "opensense-json");
  EXPECT_EQ(PayloadFormatName(PayloadFormat::kLineProtocol), "line-protocol");
}

// ---- empty bodies

TEST(ParseTest, EmptyBodyIsADocumentErrorForJsonAndZeroRecordsForLineProtocol) {
  for (PayloadFormat format : kJsonFormats) {
    EXPECT_THAT(DocumentError(format, ""), StartsWith("the body is empty: expected"));
    EXPECT_THAT(DocumentError(format, " \r\n\t "), StartsWith("the body is empty"));
  }
  auto senml = Parsed(PayloadFormat::kSenML, "[]");
  EXPECT_TRUE(senml.records.empty());
  EXPECT_TRUE(senml.errors.empty());
  for (std::string_view body : {"", "\n", "\n\n# comment\n", "\r\n"}) {
    auto lp = Parsed(PayloadFormat::kLineProtocol, body);
    EXPECT_TRUE(lp.records.empty()) << body;
    EXPECT_TRUE(lp.errors.empty()) << body;
  }
}

TEST(ParseTest, UnknownFormatValueIsAnErrorNotACrash) {
  auto result = Parse(static_cast<PayloadFormat>(42), "[]", Options());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
}

TEST(ParseTest, ByteOrderMarkIsSkippedAndPositionsStillCountIt) {
  auto parsed = Parsed(PayloadFormat::kSenML, "\xEF\xBB\xBF[{\"n\":\"temperature\",\"v\":1}]");
  ASSERT_EQ(parsed.records.size(), 1u);
  EXPECT_EQ(DocumentError(PayloadFormat::kOpenSenseJson, "\xEF\xBB\xBF{\"a\":1,}"),
            "invalid JSON at line 1, column 11: unexpected '}'");
}

// ---- malformed JSON: a precise message, never records

struct Malformed {
  std::string body;
  std::string message;
};

TEST(ParseTest, MalformedJsonIsRefusedWithItsPosition) {
  const std::vector<Malformed> cases = {
      {"[",
       "invalid JSON at line 1, column 2: the document ends before the '[' at line 1, column 1 is "
       "closed"},
      {"[{\"n\":\"a\",\"v\":1}",
       "invalid JSON at line 1, column 17: the document ends before the '[' at line 1, column 1 is "
       "closed"},
      {"[{\"n\":\"a\",\"v\":1},]", "invalid JSON at line 1, column 18: unexpected ']'"},
      {"[{\"n\":\"a\",\"v\":1}}",
       "invalid JSON at line 1, column 17: '}' does not close the '[' at line 1, column 1"},
      {"[{\"n\":\"a\" \"v\":1}]", "invalid JSON at line 1, column 11: unexpected '\"'"},
      {"[{\"n\":\"a\",\"v\":}]", "invalid JSON at line 1, column 15: unexpected '}'"},
      {"[{\"n\":\"a\",\"v\":1 2}]", "invalid JSON at line 1, column 17: unexpected '2'"},
      {"[{\"n\":\"a\",\"v\":1}] x",
       "invalid JSON at line 1, column 19: unexpected text after the end of the document"},
      {"[{\"n\":\"a\",\"v\":1}][]",
       "invalid JSON at line 1, column 18: unexpected text after the end of the document"},
      {"[{\"n\":\"a\",\"v\":.5}]", "invalid JSON at line 1, column 15: unexpected '.'"},
      {"[{\"n\":\"a\",\"v\":1.}]", "invalid JSON at line 1, column 15: invalid number '1.'"},
      {"[{\"n\":\"a\",\"v\":-}]", "invalid JSON at line 1, column 15: invalid number '-'"},
      {"[{\"n\":\"a\",\"v\":0x1F}]", "invalid JSON at line 1, column 15: invalid number '0x1F'"},
      {"[{\"n\":\"a\",\"v\":NaN}]", "invalid JSON at line 1, column 15: unexpected 'N'"},
      {"[{\"n\":\"a\",\"v\":Infinity}]", "invalid JSON at line 1, column 15: unexpected 'I'"},
      {"[{\"n\":\"a\",\"vb\":True}]", "invalid JSON at line 1, column 16: unexpected 'T'"},
      {"[{\"n\":\"a\",\"vb\":falsy}]",
       "invalid JSON at line 1, column 16: invalid literal: expected true, false or null"},
      {"[{'n':\"a\",\"v\":1}]", "invalid JSON at line 1, column 3: unexpected '''"},
      {"[{n:\"a\",\"v\":1}]", "invalid JSON at line 1, column 3: unexpected 'n'"},
      {"[{\"n\":\"a\\q\",\"v\":1}]",
       "invalid JSON at line 1, column 7: invalid string: bad escape sequence"},
      {"[{\"n\":\"\\ud800\",\"v\":1}]",
       "invalid JSON at line 1, column 7: invalid string: bad escape sequence"},
      {"[{\"n\":\"a\",\"v\":1}\n,\n{\"n\":\"b\",\"v\":2,}]",
       "invalid JSON at line 3, column 16: unexpected '}'"},
      {"[{\"n\":\"abc", "invalid JSON at line 1, column 7: string is never closed"},
      {"[1 /* comment */]", "invalid JSON at line 1, column 4: unexpected '/'"},
  };
  for (const Malformed& c : cases) {
    EXPECT_EQ(DocumentError(PayloadFormat::kSenML, c.body), c.message) << c.body;
  }
}

TEST(ParseTest, EveryTruncationOfAValidDocumentIsRefused) {
  const std::string senml =
      R"([{"bn":"fridge-7:","bt":1.7e9,"bu":"Cel","n":"temperature","v":3.9},)"
      R"({"n":"door","vb":true,"t":-5},{"n":"x","vs":"a\"b","ext":[1,{"k":null}]}])";
  const std::string json = R"([{"ts":"2024-01-20T10:00:00Z","temperature":-3.5e-1,"door":false,)"
                           R"("units":{"temperature":"Cel"}},{"humidity":61}])";
  ASSERT_TRUE(Parse(PayloadFormat::kSenML, senml, Options()));
  ASSERT_TRUE(Parse(PayloadFormat::kOpenSenseJson, json, Options()));
  for (std::size_t n = 0; n < senml.size(); ++n) {
    EXPECT_FALSE(Parse(PayloadFormat::kSenML, senml.substr(0, n), Options())) << n;
  }
  for (std::size_t n = 0; n < json.size(); ++n) {
    EXPECT_FALSE(Parse(PayloadFormat::kOpenSenseJson, json.substr(0, n), Options())) << n;
  }
}

// Malformed JSON inside values the parsers ignore (unknown labels, nested metric values) must
// refuse the document too: On-Demand only checks what is read.
TEST(ParseTest, MalformedJsonInIgnoredValuesIsRefused) {
  EXPECT_EQ(DocumentError(PayloadFormat::kSenML, R"([{"n":"a","v":1,"ext":[1,,2]}])"),
            "invalid JSON at line 1, column 26: unexpected ','");
  EXPECT_EQ(DocumentError(PayloadFormat::kSenML, R"([{"n":"a","v":1,"ext":{"k" 1}}])"),
            "invalid JSON at line 1, column 28: unexpected '1'");
  EXPECT_EQ(DocumentError(PayloadFormat::kSenML, R"([{"n":"a","v":1,"ext":[nul]}])"),
            "invalid JSON at line 1, column 24: invalid literal: expected true, false or null");
  EXPECT_EQ(DocumentError(PayloadFormat::kOpenSenseJson, R"({"probe":{"a":[1.e5]}})"),
            "invalid JSON at line 1, column 16: invalid number '1.e5'");
  EXPECT_EQ(DocumentError(PayloadFormat::kOpenSenseJson, R"([5, [1 2]])"),
            "invalid JSON at line 1, column 8: unexpected '2'");
  EXPECT_EQ(DocumentError(PayloadFormat::kOpenSenseJson, R"({"units":{"co2":"ppm",}, "co2":1})"),
            "invalid JSON at line 1, column 23: unexpected '}'");
}

// ---- nesting

TEST(ParseTest, DeepNestingIsRefusedWithoutExhaustingTheStack) {
  const std::string deep = std::string(10'000, '[') + std::string(10'000, ']');
  EXPECT_EQ(DocumentError(PayloadFormat::kSenML, deep),
            "invalid JSON at line 1, column 65: arrays and objects nested deeper than 64 levels");
  EXPECT_THAT(DocumentError(PayloadFormat::kOpenSenseJson, deep),
              HasSubstr("nested deeper than 64"));
  // Inside an ignored SenML label and inside an OpenSense metric value.
  EXPECT_THAT(DocumentError(PayloadFormat::kSenML, R"([{"n":"a","v":1,"x":)" + deep + "}]"),
              HasSubstr("nested deeper than 64"));
  EXPECT_THAT(DocumentError(PayloadFormat::kOpenSenseJson, R"({"a":)" + deep + "}"),
              HasSubstr("nested deeper than 64"));
  std::string objects;
  for (int i = 0; i < 10'000; ++i) objects += R"({"a":)";
  objects += '1';
  objects.append(10'000, '}');
  EXPECT_THAT(DocumentError(PayloadFormat::kOpenSenseJson, objects),
              HasSubstr("nested deeper than 64"));
  // Unbalanced: simdjson only says "incomplete"; the message still names the depth.
  EXPECT_THAT(DocumentError(PayloadFormat::kSenML, std::string(1'000'000, '[')),
              HasSubstr("nested deeper than 64"));
}

TEST(ParseTest, NestingUpToTheLimitIsRead) {
  // Root array (1) + record (2) + 62 levels in an ignored label = 64.
  const std::string value = std::string(62, '[') + std::string(62, ']');
  auto parsed = Parsed(PayloadFormat::kSenML, R"([{"n":"a","v":1,"x":)" + value + "}]");
  EXPECT_EQ(parsed.records.size(), 1u);
  const std::string deeper = std::string(63, '[') + std::string(63, ']');
  EXPECT_THAT(DocumentError(PayloadFormat::kSenML, R"([{"n":"a","v":1,"x":)" + deeper + "}]"),
              HasSubstr("nested deeper than 64"));
}

// ---- encoding

TEST(ParseTest, InvalidUtf8RefusesAJsonDocumentWithThePosition) {
  const std::vector<std::string> bad = {
      "\xff",              // never valid
      "\xc0\xaf",          // overlong '/'
      "\xe0\x80\xaf",      // overlong
      "\xed\xa0\x80",      // UTF-16 surrogate
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xc3",              // truncated
      "\xe2\x82",          // truncated
  };
  for (const std::string& bytes : bad) {
    const std::string senml = "[{\"n\":\"a" + bytes + "\",\"v\":1}]";
    EXPECT_EQ(DocumentError(PayloadFormat::kSenML, senml),
              "the body is not valid UTF-8: bad byte at line 1, column 9");
    const std::string key = "{\"a" + bytes + "\":1}";
    EXPECT_EQ(DocumentError(PayloadFormat::kOpenSenseJson, key),
              "the body is not valid UTF-8: bad byte at line 1, column 4");
  }
  // Valid multi-byte text is fine (and refused only as a metric name).
  auto parsed = Parsed(PayloadFormat::kOpenSenseJson, "{\"temp\xc3\xa9rature\":1}");
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0].reason,
            "metric name 'temp\xc3\xa9rature' is invalid: use 1-64 characters of a-z 0-9 _ . -");
}

TEST(ParseTest, InvalidUtf8InLineProtocolRefusesOnlyItsLine) {
  auto parsed = Parsed(PayloadFormat::kLineProtocol,
                       "m temperature=1\nm,device=\xc0\xaf temperature=2\nm humidity=3");
  ASSERT_EQ(parsed.records.size(), 2u);
  EXPECT_EQ(parsed.records[1].index, 2u);
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0].index, 1u);
  EXPECT_EQ(parsed.errors[0].reason, "the line is not valid UTF-8 (byte 10)");
}

TEST(ParseTest, NulBytes) {
  using namespace std::string_literals;
  // Raw NUL inside a JSON string, and outside.
  EXPECT_EQ(DocumentError(PayloadFormat::kSenML, "[{\"n\":\"a\0b\",\"v\":1}]"s),
            "invalid JSON at line 1, column 9: control character inside a string (escape it as "
            "\\u00XX)");
  EXPECT_EQ(DocumentError(PayloadFormat::kSenML, "[{\"n\":\"a\",\"v\":1}\0]"s),
            "invalid JSON at line 1, column 17: unexpected '\\x00'");
  EXPECT_EQ(DocumentError(PayloadFormat::kOpenSenseJson, "\0"s),
            "invalid JSON at line 1, column 1: unexpected '\\x00'");
  // An escaped NUL is valid JSON; it never reaches a metric name or a device.
  auto senml = Parsed(PayloadFormat::kSenML, R"([{"n":"a\u0000b","v":1}])");
  ASSERT_EQ(senml.errors.size(), 1u);
  EXPECT_EQ(senml.errors[0].reason,
            "SenML name 'a\\x00b' is invalid: use A-Z a-z 0-9 - : . / _, starting with a letter "
            "or digit");
  auto json = Parsed(PayloadFormat::kOpenSenseJson, R"({"device":"a\u0000b","temperature":1})",
                     Options(/*gateway=*/true));
  ASSERT_EQ(json.errors.size(), 1u);
  EXPECT_EQ(json.errors[0].reason, "device 'a\\x00b' contains a control character");
  // Line protocol: the line is refused.
  auto lp = Parsed(PayloadFormat::kLineProtocol, "m temp\0erature=1\nm temperature=2"s);
  ASSERT_EQ(lp.records.size(), 1u);
  ASSERT_EQ(lp.errors.size(), 1u);
  EXPECT_EQ(lp.errors[0].reason, "control character \\x00 at byte 7");
}

// Found by senml_fuzz: a raw control character right after a backslash made simdjson refuse
// the body before it started, and the error path then asked the unstarted document where it
// stood (a null dereference).
TEST(ParseTest, ControlCharacterAfterBackslashIsADocumentErrorNotACrash) {
  using namespace std::string_literals;
  for (PayloadFormat format : kJsonFormats) {
    EXPECT_EQ(DocumentError(format, "[\"a\\\x08\"]"s),
              "invalid JSON at line 1, column 5: control character inside a string (escape it "
              "as \\u00XX)");
    // The fuzzer's input, verbatim.
    EXPECT_EQ(DocumentError(format, "\xe7\xe7\"3n\\\x08\xfd*\xe7\"3n\\\t\x05*"s),
              "invalid JSON at line 1, column 7: control character inside a string (escape it "
              "as \\u00XX)");
  }
}

TEST(ParseTest, MessagesQuoteHostileTextSafely) {
  // Found by opensense_json_fuzz: a bad ts reached the reason unquoted (a DEL byte here).
  auto ts = Parsed(PayloadFormat::kOpenSenseJson, "{\"ts\":\"2024-01-20T11:00\x7f\",\"a\":1}");
  ASSERT_EQ(ts.errors.size(), 1u);
  EXPECT_EQ(ts.errors[0].reason,
            "ts: '2024-01-20T11:00\\x7f' is not a timestamp: use RFC 3339 "
            "(2024-01-20T10:00:00Z) or epoch milliseconds");

  const std::string long_name(1000, 'X');
  auto parsed = Parsed(PayloadFormat::kOpenSenseJson, "{\"" + long_name + "\\n\":1}");
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0].reason, "metric name '" + std::string(64, 'X') +
                                         "...' is invalid: use 1-64 characters of a-z 0-9 _ . -");
  auto newline = Parsed(PayloadFormat::kOpenSenseJson, R"({"a\nb":1})");
  ASSERT_EQ(newline.errors.size(), 1u);
  EXPECT_THAT(newline.errors[0].reason, StartsWith("metric name 'a\\x0ab' is invalid"));
}

// ---- numbers

TEST(ParseTest, HugeNumbersAreRecordErrorsNotDocumentErrors) {
  const std::string digits(1000, '9');
  auto parsed =
      Parsed(PayloadFormat::kSenML, R"([{"n":"a","v":)" + digits +
                                        R"(},{"n":"b","v":1e999999999999999999},)"
                                        R"({"n":"c","v":-)" +
                                        digits + R"(.5e-10},{"n":"d","v":0.)" + digits +
                                        R"(e-999999},{"n":"e","v":)" + digits + R"(e-996}])");
  ASSERT_EQ(parsed.errors.size(), 3u);
  for (const RecordError& e : parsed.errors) EXPECT_EQ(e.reason, "value is not finite");
  ASSERT_EQ(parsed.records.size(), 2u);
  EXPECT_EQ(parsed.records[0].metric, "d");
  EXPECT_EQ(parsed.records[0].value, 0);
  EXPECT_EQ(parsed.records[1].metric, "e");
  EXPECT_DOUBLE_EQ(parsed.records[1].value, 1e4);
}

TEST(ParseTest, IntegerTimestampsAreExactBeyondTwoToThe53) {
  auto parsed = Parsed(PayloadFormat::kOpenSenseJson,
                       R"([{"ts":253402300799999,"a":1},{"ts":9007199254740993,"a":1},)"
                       R"({"ts":-62135596800000,"a":1},{"ts":-62135596800001,"a":1}])");
  ASSERT_EQ(parsed.records.size(), 2u);
  EXPECT_EQ(parsed.records[0].ts, 253402300799999);
  EXPECT_EQ(parsed.records[1].ts, -62135596800000);
  ASSERT_EQ(parsed.errors.size(), 2u);
  EXPECT_EQ(parsed.errors[0].index, 1u);
  EXPECT_EQ(parsed.errors[1].index, 3u);
}

// ---- size limits

std::string SenmlPack(std::size_t n) {
  std::string body = "[";
  body.reserve(n * 40);
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) body += ',';
    body += fmt::format(R"({{"n":"temperature","t":{},"v":{}.5}})", 1700000000 + i, i % 100);
  }
  body += "]";
  return body;
}

// A million records within max_records parse whole in an optimised build (how fast is measured
// by bench/ingest_bench, never asserted here). Unoptimised builds check the same behaviour on
// fewer records (simdjson's inline code at -O0 is an order of magnitude slower).
#ifdef NDEBUG
constexpr std::size_t kBigBatch = 1'000'000;
#else
constexpr std::size_t kBigBatch = 100'000;
#endif

TEST(ParseTest, DefaultMaxRecordsIsAMillion) { EXPECT_EQ(ParseOptions{}.max_records, 1'000'000u); }

TEST(ParseTest, ABigSenmlBatchParsesWithinTheLimit) {
  const std::string body = SenmlPack(kBigBatch);
  ParseOptions options = Options();
  options.max_records = kBigBatch;
  auto result = Parse(PayloadFormat::kSenML, body, options);
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_EQ(result->records.size(), kBigBatch);
  EXPECT_TRUE(result->errors.empty());
  EXPECT_EQ(result->records.back().index, kBigBatch - 1);
  EXPECT_EQ(result->records.back().ts,
            (1700000000 + static_cast<TimestampMs>(kBigBatch) - 1) * kMsPerSecond);
  EXPECT_EQ(result->records.back().value, 99.5);
}

TEST(ParseTest, ABigOpenSenseJsonAndLineProtocolBatchParsesWithinTheLimit) {
  std::string json = "[";
  std::string lp;
  for (std::size_t i = 0; i < kBigBatch / 2; ++i) {
    if (i > 0) json += ',';
    json +=
        fmt::format(R"({{"ts":{},"temperature":3.{},"door":false}})", 1705744800000 + i, i % 10);
    lp += fmt::format("fridge,device=f{} temperature=3.{},door=f {}\n", i % 7, i % 10,
                      (1705744800000 + i) * 1'000'000);
  }
  json += "]";
  ParseOptions options = Options(/*gateway=*/true);
  options.max_records = kBigBatch;
  for (auto [format, body] : {std::pair{PayloadFormat::kOpenSenseJson, std::string_view(json)},
                              std::pair{PayloadFormat::kLineProtocol, std::string_view(lp)}}) {
    options.gateway = format == PayloadFormat::kLineProtocol;
    auto result = Parse(format, body, options);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(result->records.size(), kBigBatch);
    EXPECT_TRUE(result->errors.empty());
    EXPECT_EQ(result->records.back().index, kBigBatch / 2 - 1);
  }
}

TEST(ParseTest, OneRecordMoreThanMaxRecordsRefusesTheDocument) {
  ParseOptions options = Options();
  options.max_records = kBigBatch;
  EXPECT_EQ(DocumentError(PayloadFormat::kSenML, SenmlPack(kBigBatch + 1), options),
            fmt::format("too many records: the document holds more than {} (the limit per "
                        "request); send it in smaller batches",
                        kBigBatch));
  std::string lp;
  for (std::size_t i = 0; i <= kBigBatch; ++i) lp += "m temperature=1\n";
  EXPECT_THAT(DocumentError(PayloadFormat::kLineProtocol, lp, options),
              StartsWith("too many records"));
}

TEST(ParseTest, RecordErrorsCountTowardsMaxRecords) {
  ParseOptions options = Options();
  options.max_records = 3;
  // Two records and two errors: four.
  EXPECT_THAT(
      DocumentError(PayloadFormat::kOpenSenseJson, R"({"a":1,"b":"x","c":2,"d":null})", options),
      StartsWith("too many records"));
  EXPECT_THAT(DocumentError(PayloadFormat::kLineProtocol, "m a=1\nm b=\"x\"\nm c=1,d=1", options),
              StartsWith("too many records"));
  options.max_records = 4;
  EXPECT_TRUE(Parse(PayloadFormat::kOpenSenseJson, R"({"a":1,"b":"x","c":2,"d":null})", options));
  options.max_records = 0;
  EXPECT_TRUE(Parse(PayloadFormat::kSenML, "[]", options));
  EXPECT_THAT(DocumentError(PayloadFormat::kSenML, R"([{"n":"a","v":1}])", options),
              StartsWith("too many records"));
}

// ---- options

TEST(ParseTest, LineProtocolPrecisionNamesAndJsonFormatsIgnoreIt) {
  for (std::string_view precision : {"ns", "n", "us", "u", "ms", "s"}) {
    ParseOptions options = Options();
    options.lp_precision = precision;
    auto parsed = Parsed(PayloadFormat::kLineProtocol, "m a=1 1", options);
    ASSERT_EQ(parsed.records.size(), 1u) << precision;
  }
  ParseOptions options = Options();
  for (std::string_view precision : {"", "NS", "m", "h", "sec", "ms "}) {
    options.lp_precision = precision;
    EXPECT_THAT(DocumentError(PayloadFormat::kLineProtocol, "m a=1 1", options),
                StartsWith("unknown line protocol precision"))
        << precision;
    EXPECT_TRUE(Parse(PayloadFormat::kSenML, "[]", options));
  }
}

// Lines are checked for control characters and invalid UTF-8 eight bytes at a time: a bad byte
// is found at every position of a word and of the tail, and the bytes just inside the printable
// range (and a tab) pass.
TEST(ParseTest, LineProtocolFindsABadByteAtEveryPosition) {
  const std::string good = "m,tag=abcdefghijklmnop field=1 1";
  for (std::size_t pos = 2; pos < 20; ++pos) {
    for (unsigned char bad : {0x00, 0x01, 0x0b, 0x1f, 0x7f, 0x80, 0xff}) {
      std::string line = good;
      line[pos] = static_cast<char>(bad);
      auto parsed = Parse(PayloadFormat::kLineProtocol, line, Options());
      ASSERT_TRUE(parsed);
      ASSERT_EQ(parsed->errors.size(), 1u) << "byte " << int(bad) << " at " << pos;
      EXPECT_TRUE(parsed->records.empty());
      const std::string& why = parsed->errors[0].reason;
      EXPECT_TRUE(why.find("control character") != std::string::npos ||
                  why.find("UTF-8") != std::string::npos)
          << why << " (byte " << int(bad) << " at " << pos << ")";
    }
    for (char fine : {' ', '~', 'z'}) {
      std::string line = good;
      line[pos] = fine;
      auto parsed = Parse(PayloadFormat::kLineProtocol, line, Options());
      ASSERT_TRUE(parsed);
      for (const auto& e : parsed->errors) {
        EXPECT_EQ(e.reason.find("control character"), std::string::npos) << e.reason;
        EXPECT_EQ(e.reason.find("UTF-8"), std::string::npos) << e.reason;
      }
    }
  }
  // A leading tab is whitespace, and valid UTF-8 in a tag value is fine.
  auto parsed = Parsed(PayloadFormat::kLineProtocol, "\tm,tag=k\xc3\xbchl a=1");
  EXPECT_TRUE(parsed.errors.empty());
  EXPECT_EQ(parsed.records.size(), 1u);
}

TEST(ParseTest, GatewayModeNeverLeavesADeviceOutAndDeviceModeNeverSetsOne) {
  const std::string senml = R"([{"bn":"f1:","n":"a","v":1},{"n":"b","v":2}])";
  const std::string json = R"([{"device":"f1","a":1},{"device":2,"b":2}])";
  const std::string lp = "m,device=f1 a=1\nm,device=2 b=2";
  for (auto [format, body] :
       {std::pair{PayloadFormat::kSenML, senml}, std::pair{PayloadFormat::kOpenSenseJson, json},
        std::pair{PayloadFormat::kLineProtocol, lp}}) {
    auto gateway = Parsed(format, body, Options(true));
    ASSERT_EQ(gateway.records.size(), 2u);
    for (const auto& r : gateway.records) EXPECT_TRUE(r.device.has_value());
    auto device = Parse(format, body, Options(false));
    ASSERT_TRUE(device);
    for (const auto& r : device->records) EXPECT_FALSE(r.device.has_value());
  }
}

TEST(ParseTest, DeviceNamesAreBounded) {
  const std::string long_serial(129, 'a');
  auto parsed = Parsed(PayloadFormat::kOpenSenseJson,
                       R"([{"device":")" + long_serial + R"(","a":1},{"device":")" +
                           std::string(128, 'a') + R"(","a":1}])",
                       Options(true));
  ASSERT_EQ(parsed.records.size(), 1u);
  EXPECT_EQ(parsed.records[0].index, 1u);
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_THAT(parsed.errors[0].reason, HasSubstr("is too long: at most 128 bytes"));
}

// Every record that comes out is storable as far as the payload can tell.
TEST(ParseTest, RecordsAreValidAndInDocumentOrder) {
  const std::string body =
      "m a=1,B=2,c=\"s\",d=1e999\n\n# x\nm,device=z e=t,f=-0.5 1\nm g=1 x\nm h=3u";
  for (bool gateway : {false, true}) {
    auto parsed = Parsed(PayloadFormat::kLineProtocol, body, Options(gateway));
    std::size_t last = 0;
    for (const auto& r : parsed.records) {
      EXPECT_TRUE(IsValidMetricName(r.metric));
      EXPECT_TRUE(std::isfinite(r.value));
      EXPECT_GE(r.index, last);
      last = r.index;
    }
    last = 0;
    for (const auto& e : parsed.errors) {
      EXPECT_GE(e.index, last);
      last = e.index;
    }
  }
}

}  // namespace
}  // namespace opensense::ingest
