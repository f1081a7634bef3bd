// SenML JSON (RFC 8428): a pack is an array of records; base fields (bn, bt, bu, bv) apply to
// their own record and every later one until redefined.
//
// Naming, with a device token: the metric is `n`; a record without `n` uses `bn` without a
// trailing ':' or '/' (the full name bn+n is then bn). With a gateway token: `bn` without its
// trailing ':' or '/' names the device (a server id or a serial such as
// "urn:dev:mac:0024befffe804ff1") and `n` is the metric.
//
// Document errors (the whole pack is refused): not an array, a label ending in '_' (RFC 8428
// section 4.4 "must understand"), bver above 10 or not a positive integer, base fields of the
// wrong type or repeated in a record (they would silently change every later record).
// Record errors: everything else, one per pack entry. A record with base fields only (e.g. the
// leading {"bn": "..."} of RFC 8428 section 5.1.7) yields nothing and is not an error.
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "ingest/json_reader.hpp"
#include "ingest/parse_support.hpp"

namespace opensense::ingest::internal {

namespace {

constexpr std::int64_t kSenmlVersion = 10;
// RFC 8428 section 4.5.3: resolved times below 2^28 s are relative to "now".
constexpr double kRelativeTimeLimit = 268435456.0;

// The base fields in force (RFC 8428 section 4.1).
struct BaseFields {
  std::string name;  // bn
  double time = 0;   // bt
  std::string unit;  // bu
  double value = 0;  // bv
};

// The labels of one record, as read.
struct RecordFields {
  std::optional<std::string_view> n, u;
  std::optional<double> v, t, s;
  std::optional<bool> vb;
  bool vs = false, vd = false, ut = false;
  bool has_base = false;
  std::string error;  // the first record-level problem

  void Refuse(std::string reason) {
    if (error.empty()) error = std::move(reason);
  }
};

// RFC 8428 section 4.5.1: A-Z a-z 0-9 - : . / _, starting with a letter or digit.
bool IsSenmlName(std::string_view name) {
  if (name.empty()) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name.front())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '-' && c != ':' && c != '.' && c != '/' && c != '_') return false;
  }
  return true;
}

std::string_view WithoutTrailingSeparator(std::string_view name) {
  if (!name.empty() && (name.back() == ':' || name.back() == '/')) name.remove_suffix(1);
  return name;
}

class SenmlParser {
 public:
  SenmlParser(JsonDocument& json, const ParseOptions& options)
      : json_(json), options_(options), sink_(options.max_records) {}

  Result<ParseResult> Run() {
    OS_ASSIGN_OR_RETURN(JsonKind root, json_.RootKind());
    if (root != JsonKind::kArray) {
      return DocumentError(
          fmt::format("a SenML document is a JSON array of records, not {}", JsonKindName(root)));
    }
    ondemand::array pack;
    if (auto error = json_.doc().get_array().get(pack)) return json_.Fail(error);
    // A pass over the structure; it saves growing (and copying) a large vector of records. If
    // it fails, read again from the start so that the error is reported where it is.
    std::size_t count = 0;
    if (pack.count_elements().get(count) == simdjson::SUCCESS) {
      sink_.ReserveRecords(count, json_.size());
    } else {
      OS_RETURN_IF_ERROR(json_.Restart());
      if (auto error = json_.doc().get_array().get(pack)) return json_.Fail(error);
    }
    std::size_t index = 0;
    for (auto element : pack) {
      ondemand::value record;
      if (auto error = element.get(record)) return json_.Fail(error);
      OS_RETURN_IF_ERROR(ReadRecord(record, index));
      ++index;
    }
    OS_RETURN_IF_ERROR(json_.ExpectEnd());
    return sink_.Take();
  }

 private:
  Status ReadRecord(ondemand::value& record, std::size_t index) {
    ondemand::json_type type;
    if (auto error = record.type().get(type)) return json_.Fail(error);
    if (type != ondemand::json_type::object) {
      OS_ASSIGN_OR_RETURN(JsonValue other, json_.ReadValue(record, 2));
      return Refuse(
          index, fmt::format("a SenML record is a JSON object, not {}", JsonKindName(other.kind)));
    }
    ondemand::object object;
    if (auto error = record.get_object().get(object)) return json_.Fail(error);
    RecordFields fields;
    unsigned seen = 0;  // bit per known label, to find repeats
    for (auto member : object) {
      ondemand::field field;
      if (auto error = std::move(member).get(field)) return json_.Fail(error);
      OS_ASSIGN_OR_RETURN(std::string_view label, json_.ReadKey(field));
      ondemand::value child = field.value();
      OS_ASSIGN_OR_RETURN(JsonValue value, json_.ReadValue(child, 3));
      OS_RETURN_IF_ERROR(ReadLabel(label, value, index, &seen, &fields));
    }
    return Resolve(index, fields);
  }

  // Applies one label: base fields change base_ at once (they apply to this record too).
  Status ReadLabel(std::string_view label, const JsonValue& value, std::size_t index,
                   unsigned* seen, RecordFields* fields) {
    static constexpr std::string_view kLabels[] = {"bn", "bt", "bu", "bv", "bs", "bver", "n", "u",
                                                   "v",  "vs", "vb", "vd", "s",  "t",    "ut"};
    std::size_t which = std::size(kLabels);
    for (std::size_t i = 0; i < std::size(kLabels); ++i) {
      if (label == kLabels[i]) which = i;
    }
    if (which == std::size(kLabels)) {
      if (!label.empty() && label.back() == '_') {
        return DocumentError(
            fmt::format("record {}: label {} must be understood (RFC 8428 section 4.4) and is not "
                        "supported",
                        index, Quoted(label)));
      }
      return Ok();  // unknown labels are ignored (RFC 8428 section 4.4)
    }
    const bool base = label.front() == 'b';
    if (*seen & (1u << which)) {
      if (base) {
        return DocumentError(fmt::format("record {}: base field {} appears twice", index, label));
      }
      fields->Refuse(fmt::format("label {} appears twice", label));
      return Ok();
    }
    *seen |= 1u << which;
    const bool is_number = value.kind == JsonKind::kNumber;
    const bool is_string = value.kind == JsonKind::kString;
    if (base) {
      fields->has_base = true;
      const bool want_string = label == "bn" || label == "bu";
      if (want_string ? !is_string : !is_number) {
        return DocumentError(fmt::format("record {}: {} must be {}, not {} (at {})", index, label,
                                         want_string ? "a string" : "a number",
                                         JsonKindName(value.kind), json_.Where(value.offset)));
      }
      if (label == "bn") base_.name = value.string;
      if (label == "bu") base_.unit = value.string;
      if (label == "bt") base_.time = value.number;
      if (label == "bv") base_.value = value.number;
      if (label == "bver") {
        double version = value.number;
        if (!value.IsIntegerLiteral() || version < 1) {
          return DocumentError(fmt::format("record {}: bver must be a positive integer, not {}",
                                           index, value.number_text));
        }
        if (version > static_cast<double>(kSenmlVersion)) {
          return DocumentError(
              fmt::format("record {}: SenML version {} is newer than the supported version {}",
                          index, value.number_text, kSenmlVersion));
        }
      }
      return Ok();  // bs: a base sum only matters with sums, which are not supported
    }
    if (label == "vs") {
      fields->vs = true;
    } else if (label == "vd") {
      fields->vd = true;
    } else if (label == "vb") {
      if (value.kind == JsonKind::kBool) {
        fields->vb = value.boolean;
      } else {
        fields->vb = false;
        fields->Refuse(fmt::format("vb must be a boolean, not {}", JsonKindName(value.kind)));
      }
    } else if (label == "n" || label == "u") {
      if (!is_string) {
        fields->Refuse(fmt::format("{} must be a string, not {}", label, JsonKindName(value.kind)));
      } else if (label == "n") {
        fields->n = value.string;
      } else {
        fields->u = value.string;
      }
    } else {  // v, s, t, ut: numbers
      if (!is_number) {
        fields->Refuse(fmt::format("{} must be a number, not {}", label, JsonKindName(value.kind)));
      }
      const double number = is_number ? value.number : 0;
      if (label == "v") fields->v = number;
      if (label == "s") fields->s = number;
      if (label == "t") fields->t = number;
      if (label == "ut") fields->ut = true;
    }
    return Ok();
  }

  Status Resolve(std::size_t index, const RecordFields& fields) {
    if (!fields.error.empty()) return Refuse(index, fields.error);
    const int value_fields =
        (fields.v ? 1 : 0) + (fields.vb ? 1 : 0) + (fields.vs ? 1 : 0) + (fields.vd ? 1 : 0);
    if (value_fields == 0) {
      if (fields.s) return Refuse(index, "sum values (s) are not supported: send v");
      if (fields.has_base && !fields.n && !fields.u && !fields.t && !fields.ut) {
        return Ok();  // a record that only sets base fields for the ones after it
      }
      return Refuse(index, "missing value: a record needs v or vb");
    }
    if (value_fields > 1) {
      return Refuse(index, "a record has exactly one of v, vs, vb, vd");
    }
    if (fields.vs) return Refuse(index, "string values are not supported");
    if (fields.vd) return Refuse(index, "data values (vd) are not supported");

    const std::string_view n = fields.n.value_or("");
    std::string full_name = base_.name;
    full_name += n;
    if (full_name.empty()) return Refuse(index, "missing name: set n (or bn)");
    if (!IsSenmlName(full_name)) {
      return Refuse(index, fmt::format("SenML name {} is invalid: use A-Z a-z 0-9 - : . / _, "
                                       "starting with a letter or digit",
                                       Quoted(full_name)));
    }
    ParsedRecord out;
    out.index = index;
    if (options_.gateway) {
      const std::string_view device = WithoutTrailingSeparator(base_.name);
      if (device.empty()) {
        return Refuse(index,
                      "missing device: with a gateway token, bn names the device "
                      "(\"bn\": \"<device id or serial>:\") and n the metric");
      }
      if (auto problem = CheckDevice(device)) return Refuse(index, *problem);
      if (n.empty()) {
        return Refuse(index,
                      "missing metric: with a gateway token, n names the metric (bn the "
                      "device)");
      }
      out.device = std::string(device);
      out.metric = std::string(n);
    } else {
      out.metric = std::string(n.empty() ? WithoutTrailingSeparator(base_.name) : n);
    }
    if (auto problem = CheckMetricName(out.metric)) return Refuse(index, *problem);

    out.value = fields.vb ? (*fields.vb ? 1.0 : 0.0) : base_.value + *fields.v;
    if (!std::isfinite(out.value)) return Refuse(index, "value is not finite");

    const std::string_view unit = fields.u ? *fields.u : std::string_view(base_.unit);
    if (auto problem = CheckUnit(unit)) return Refuse(index, *problem);
    out.unit = std::string(unit);

    const double time = base_.time + fields.t.value_or(0);
    if (!std::isfinite(time)) return Refuse(index, "time is not finite");
    if (time != 0) {
      const bool relative = time < kRelativeTimeLimit;
      const double ms = time * 1000.0 + (relative ? static_cast<double>(options_.now_ms) : 0);
      auto ts = MsFromDouble(ms);
      if (!ts) return Refuse(index, std::string(kTimeOutOfRange));
      out.ts = *ts;
    }
    if (!sink_.Add(std::move(out))) return sink_.TooMany();
    return Ok();
  }

  Status Refuse(std::size_t index, std::string reason) {
    if (!sink_.Fail(index, std::move(reason))) return sink_.TooMany();
    return Ok();
  }

  JsonDocument& json_;
  const ParseOptions& options_;
  RecordSink sink_;
  BaseFields base_;
};

}  // namespace

Result<ParseResult> ParseSenml(std::string_view body, const ParseOptions& options) {
  JsonDocument json;
  OS_RETURN_IF_ERROR(json.Open(body, "a JSON array of SenML records"));
  return SenmlParser(json, options).Run();
}

}  // namespace opensense::ingest::internal
