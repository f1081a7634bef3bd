// Data-driven ingest cases: every tests/data/ingest/*.txt holds cases "payload -> records and
// errors" in the format described in tests/data/ingest/README.md. One gtest per case, named
// after its file and line.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/time_zone.hpp"
#include "ingest/payload.hpp"

#ifndef OPENSENSE_SOURCE_DIR
#error "OPENSENSE_SOURCE_DIR must name the source tree (set in src/ingest/CMakeLists.txt)"
#endif

namespace opensense::ingest {
namespace {

// 2024-01-20T10:00:00Z: "now" unless a case says otherwise.
constexpr TimestampMs kDefaultNow = 1705744800000;

struct GoldenCase {
  std::string file;  // path relative to the source tree
  int line = 0;      // line of the `parse` header
  std::string name;  // gtest name
  PayloadFormat format = PayloadFormat::kSenML;
  bool gateway = false;
  TimestampMs now_ms = kDefaultNow;
  std::string precision = "ns";
  std::size_t max_records = 1'000'000;
  std::string body;
  std::vector<std::string> expected;
  std::string problem;  // the case itself is malformed

  ParseOptions Options() const {
    ParseOptions options;
    options.gateway = gateway;
    options.now_ms = now_ms;
    options.lp_precision = precision;
    options.max_records = max_records;
    return options;
  }
};

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.file << ":" << c.line; }

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  return s;
}

// Body escapes (header option `escapes`): \n \r \t \\ \xNN.
bool Unescape(const std::string& in, std::string* out) {
  out->clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      *out += in[i];
      continue;
    }
    if (++i >= in.size()) return false;
    switch (in[i]) {
      case 'n':
        *out += '\n';
        break;
      case 'r':
        *out += '\r';
        break;
      case 't':
        *out += '\t';
        break;
      case '\\':
        *out += '\\';
        break;
      case 'x': {
        if (i + 2 >= in.size()) return false;
        unsigned value = 0;
        auto [ptr, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
        if (ec != std::errc() || ptr != in.data() + i + 3) return false;
        *out += static_cast<char>(value);
        i += 2;
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

// Reads `parse <format> [option...]`.
void ReadHeader(const std::string& header, GoldenCase* c, bool* escapes) {
  std::istringstream words(header);
  std::string word, format;
  words >> word >> format;
  if (format == "senml") {
    c->format = PayloadFormat::kSenML;
  } else if (format == "json") {
    c->format = PayloadFormat::kOpenSenseJson;
  } else if (format == "lp") {
    c->format = PayloadFormat::kLineProtocol;
  } else {
    c->problem = "format must be senml, json or lp: " + format;
    return;
  }
  while (words >> word) {
    const std::size_t eq = word.find('=');
    const std::string key = word.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : word.substr(eq + 1);
    if (word == "gateway") {
      c->gateway = true;
    } else if (word == "escapes") {
      *escapes = true;
    } else if (key == "now") {
      auto now = ParseTimestamp(value);
      if (!now) c->problem = now.error().message;
      c->now_ms = now.value_or(0);
    } else if (key == "precision") {
      c->precision = value;
    } else if (key == "max") {
      c->max_records = std::stoul(value);
    } else {
      c->problem = "unknown option: " + word;
    }
  }
}

std::vector<GoldenCase> ReadFile(const std::filesystem::path& path, const std::string& shown) {
  std::vector<GoldenCase> cases;
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::size_t i = 0;
  while (i < lines.size()) {
    const std::string line = TrimRight(lines[i]);
    if (line.empty() || line.front() == '#') {
      ++i;
      continue;
    }
    GoldenCase c;
    c.file = shown;
    c.line = static_cast<int>(i + 1);
    std::string stem = path.stem().string();
    std::replace_if(
        stem.begin(), stem.end(),
        [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
    c.name = fmt::format("{}_line{}", stem, c.line);
    if (line.rfind("parse ", 0) != 0) {
      c.problem = "expected a `parse <format> [options]` line, got: " + line;
      cases.push_back(c);
      ++i;
      continue;
    }
    bool escapes = false;
    ReadHeader(line, &c, &escapes);
    ++i;
    std::string body;
    bool first = true;
    while (i < lines.size() && TrimRight(lines[i]) != "----") {
      if (!first) body += '\n';
      // Only the line ending is not part of the body (a CR of a CRLF file included).
      std::string text = lines[i];
      if (!text.empty() && text.back() == '\r') text.pop_back();
      body += text;
      first = false;
      ++i;
    }
    if (i >= lines.size()) c.problem = "the body is not followed by a ---- line";
    ++i;  // ----
    if (escapes && !Unescape(body, &c.body)) c.problem = "bad escape in the body";
    if (!escapes) c.body = body;
    while (i < lines.size() && !TrimRight(lines[i]).empty()) {
      c.expected.push_back(TrimRight(lines[i]));
      ++i;
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

std::vector<GoldenCase> LoadCases() {
  const std::filesystem::path dir =
      std::filesystem::path(OPENSENSE_SOURCE_DIR) / "tests/data/ingest";
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".txt") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<GoldenCase> cases;
  for (const auto& file : files) {
    auto more = ReadFile(file, "tests/data/ingest/" + file.filename().string());
    cases.insert(cases.end(), more.begin(), more.end());
  }
  if (cases.empty()) {
    GoldenCase missing;
    missing.name = "no_cases";
    missing.problem = "no cases in " + dir.string();
    cases.push_back(missing);
  }
  return cases;
}

// The canonical text of a result, one line per record, then one per error.
std::vector<std::string> Render(const Result<ParseResult>& result) {
  std::vector<std::string> out;
  if (!result) {
    if (result.error().code == ErrorCode::kInvalidArgument) {
      out.push_back("document error: " + result.error().message);
    } else {
      out.push_back("failure: " + result.error().ToString());
    }
    return out;
  }
  for (const ParsedRecord& r : result->records) {
    std::string line = fmt::format("record {} {}={}", r.index, r.metric, r.value);
    if (!r.unit.empty()) line += " unit=" + r.unit;
    if (r.ts) line += " ts=" + FormatRfc3339(*r.ts);
    if (r.device) line += " device=" + *r.device;
    out.push_back(std::move(line));
  }
  for (const RecordError& e : result->errors) {
    out.push_back(fmt::format("error {} {}", e.index, e.reason));
  }
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

class GoldenTest : public testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, ParsesAsExpected) {
  const GoldenCase& c = GetParam();
  ASSERT_TRUE(c.problem.empty()) << c.file << ":" << c.line << ": " << c.problem;
  const auto result = Parse(c.format, c.body, c.Options());
  EXPECT_EQ(Join(Render(result)), Join(c.expected))
      << c.file << ":" << c.line << " (expected text is on the right; the lines on the left "
      << "are what Parse returned)";
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenTest, testing::ValuesIn(LoadCases()),
                         [](const testing::TestParamInfo<GoldenCase>& info) {
                           return info.param.name;
                         });

TEST(GoldenFiles, CoverEveryFormat) {
  int per_format[3] = {0, 0, 0};
  const auto cases = LoadCases();
  for (const auto& c : cases) ++per_format[static_cast<int>(c.format)];
  EXPECT_GE(cases.size(), 40u);
  for (int count : per_format) EXPECT_GE(count, 10);
}

}  // namespace
}  // namespace opensense::ingest
