// OpenSense JSON: {"ts": <epoch ms or RFC 3339>, "temperature": 3.9, "humidity": 61} or an
// array of such objects.
//
// Reserved keys: "ts" (absent: now), "device" (gateway tokens only: a serial string or an
// integer server id), "units" (optional object giving the unit of some metrics of the same
// object: {"co2": "ppm"}; metrics without one get the default unit from the writer). Every
// other key is a metric; its value is a number, or a boolean stored as 1/0.
//
// Problems of the whole object (bad ts, device, units; not an object; no metric) give one
// error for it; problems of one metric give one error for that metric, and the object's other
// metrics are still read. Both use the object's index.
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/time_zone.hpp"
#include "ingest/json_reader.hpp"
#include "ingest/parse_support.hpp"

namespace opensense::ingest::internal {

namespace {

class OpenSenseJsonParser {
 public:
  OpenSenseJsonParser(JsonDocument& json, const ParseOptions& options)
      : json_(json), options_(options), sink_(options.max_records) {}

  Result<ParseResult> Run() {
    OS_ASSIGN_OR_RETURN(JsonKind root, json_.RootKind());
    if (root == JsonKind::kObject) {
      ondemand::object object;
      if (auto error = json_.doc().get_object().get(object)) return json_.Fail(error);
      OS_RETURN_IF_ERROR(ReadObject(object, 0, /*depth=*/1));
    } else if (root == JsonKind::kArray) {
      ondemand::array array;
      if (auto error = json_.doc().get_array().get(array)) return json_.Fail(error);
      std::size_t count = 0;  // at least one record per object
      if (array.count_elements().get(count) == simdjson::SUCCESS) {
        sink_.ReserveRecords(count, json_.size());
      } else {  // read again so that the error is reported where it is
        OS_RETURN_IF_ERROR(json_.Restart());
        if (auto error = json_.doc().get_array().get(array)) return json_.Fail(error);
      }
      std::size_t index = 0;
      for (auto element : array) {
        ondemand::value value;
        if (auto error = element.get(value)) return json_.Fail(error);
        ondemand::json_type type;
        if (auto error = value.type().get(type)) return json_.Fail(error);
        if (type == ondemand::json_type::object) {
          ondemand::object object;
          if (auto error = value.get_object().get(object)) return json_.Fail(error);
          OS_RETURN_IF_ERROR(ReadObject(object, index, /*depth=*/2));
        } else {
          OS_ASSIGN_OR_RETURN(JsonValue other, json_.ReadValue(value, 2));
          OS_RETURN_IF_ERROR(
              Refuse(index, fmt::format("expected an object such as {{\"ts\": 1705744800000, "
                                        "\"temperature\": 3.9}}, not {}",
                                        JsonKindName(other.kind))));
        }
        ++index;
      }
    } else {
      return DocumentError(
          fmt::format("an OpenSense JSON document is an object or an array of objects, not {}",
                      JsonKindName(root)));
    }
    OS_RETURN_IF_ERROR(json_.ExpectEnd());
    return sink_.Take();
  }

 private:
  Status ReadObject(ondemand::object& object, std::size_t index, int depth) {
    metrics_.clear();
    units_.clear();
    unit_of_.clear();
    std::optional<JsonValue> ts, device;
    bool has_units = false;
    std::string problem;  // the first problem of the whole object
    auto refuse_object = [&](std::string reason) {
      if (problem.empty()) problem = std::move(reason);
    };
    for (auto member : object) {
      ondemand::field field;
      if (auto error = std::move(member).get(field)) return json_.Fail(error);
      OS_ASSIGN_OR_RETURN(std::string_view key, json_.ReadKey(field));
      ondemand::value child = field.value();
      if (key == "units") {
        const std::size_t first_unit = units_.size();
        OS_ASSIGN_OR_RETURN(JsonValue value, json_.ReadValue(child, depth + 1, &units_));
        if (has_units) refuse_object("units appears twice");
        has_units = true;
        if (value.kind != JsonKind::kObject) {
          refuse_object(fmt::format("units must be an object such as {{\"co2\": \"ppm\"}}, not {}",
                                    JsonKindName(value.kind)));
        }
        for (std::size_t i = first_unit; i < units_.size(); ++i) {
          if (units_[i].value.kind != JsonKind::kString) {
            refuse_object(fmt::format("units: the unit of {} must be a string, not {}",
                                      Quoted(units_[i].key), JsonKindName(units_[i].value.kind)));
          } else if (!unit_of_.emplace(units_[i].key, units_[i].value.string).second) {
            refuse_object(fmt::format("units: {} appears twice", Quoted(units_[i].key)));
          }
        }
        continue;
      }
      OS_ASSIGN_OR_RETURN(JsonValue value, json_.ReadValue(child, depth + 1));
      if (key == "ts") {
        if (ts) refuse_object("ts appears twice");
        ts = value;
      } else if (key == "device") {
        if (device) refuse_object("device appears twice");
        device = value;
      } else {
        metrics_.push_back(JsonMember{key, value});
      }
    }
    if (!problem.empty()) return Refuse(index, std::move(problem));

    std::optional<TimestampMs> when;
    if (ts) {
      auto parsed = ReadTimestamp(*ts);
      if (!parsed) return Refuse(index, std::move(parsed.error()));
      when = *parsed;
    }
    std::optional<std::string> device_name;
    if (options_.gateway) {
      if (!device) {
        return Refuse(index,
                      "missing device: with a gateway token every object names its device "
                      "(\"device\": \"<serial>\" or <device id>)");
      }
      auto named = ReadDevice(*device);
      if (!named) return Refuse(index, std::move(named.error()));
      device_name = std::move(*named);
    } else if (device) {
      return Refuse(index,
                    "device is only allowed with a gateway token: a device token already "
                    "names the device");
    }
    if (metrics_.empty()) return Refuse(index, "no readings: the object has no metric");

    // Repeated keys: a small object is scanned, a large one hashed.
    std::unordered_set<std::string_view> seen;
    const bool hash = metrics_.size() > 16;
    for (std::size_t i = 0; i < metrics_.size(); ++i) {
      const JsonMember& metric = metrics_[i];
      bool repeated = false;
      if (hash) {
        repeated = !seen.insert(metric.key).second;
      } else {
        for (std::size_t j = 0; j < i && !repeated; ++j) repeated = metrics_[j].key == metric.key;
      }
      if (repeated) {
        OS_RETURN_IF_ERROR(Refuse(index, fmt::format("{}: appears twice", Quoted(metric.key))));
        continue;
      }
      if (auto problem_name = CheckMetricName(metric.key)) {
        OS_RETURN_IF_ERROR(Refuse(index, std::move(*problem_name)));
        continue;
      }
      auto value = ReadMetricValue(metric.value);
      if (!value) {
        OS_RETURN_IF_ERROR(Refuse(index, fmt::format("{}: {}", Quoted(metric.key), value.error())));
        continue;
      }
      std::string_view unit;
      if (auto it = unit_of_.find(metric.key); it != unit_of_.end()) unit = it->second;
      if (auto problem_unit = CheckUnit(unit)) {
        OS_RETURN_IF_ERROR(Refuse(index, fmt::format("{}: {}", Quoted(metric.key), *problem_unit)));
        continue;
      }
      ParsedRecord out;
      out.index = index;
      out.device = device_name;
      out.metric = std::string(metric.key);
      out.unit = std::string(unit);
      out.ts = when;
      out.value = *value;
      if (!sink_.Add(std::move(out))) return sink_.TooMany();
    }
    return Ok();
  }

  static tl::expected<double, std::string> ReadMetricValue(const JsonValue& value) {
    switch (value.kind) {
      case JsonKind::kNumber:
        if (!std::isfinite(value.number)) return tl::unexpected<std::string>("value is not finite");
        return value.number;
      case JsonKind::kBool:
        return value.boolean ? 1.0 : 0.0;
      case JsonKind::kString:
        return tl::unexpected<std::string>("string values are not supported");
      case JsonKind::kNull:
        return tl::unexpected<std::string>("value is null");
      case JsonKind::kArray:
        return tl::unexpected<std::string>("arrays are not supported: send a number or a boolean");
      case JsonKind::kObject:
        return tl::unexpected<std::string>(
            "nested objects are not supported: send a number or a boolean");
    }
    return tl::unexpected<std::string>("value is not a number");
  }

  static tl::expected<TimestampMs, std::string> ReadTimestamp(const JsonValue& ts) {
    if (ts.kind == JsonKind::kString) {
      auto parsed = ParseTimestamp(ts.string);
      if (!parsed) {
        // Not ParseTimestamp's message: it carries the text unquoted (control characters too).
        return tl::unexpected(
            fmt::format("ts: {} is not a timestamp: use RFC 3339 (2024-01-20T10:00:00Z) or epoch "
                        "milliseconds",
                        Quoted(ts.string)));
      }
      if (!TimestampInRange(*parsed)) return tl::unexpected("ts: " + std::string(kTimeOutOfRange));
      return *parsed;
    }
    if (ts.kind != JsonKind::kNumber) {
      return tl::unexpected(fmt::format(
          "ts must be epoch milliseconds or an RFC 3339 string, not {}", JsonKindName(ts.kind)));
    }
    if (ts.IsIntegerLiteral()) {  // exact, even beyond 2^53
      TimestampMs ms = 0;
      const std::string_view text = ts.number_text;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
      if (ec != std::errc() || ptr != text.data() + text.size() || !TimestampInRange(ms)) {
        return tl::unexpected("ts: " + std::string(kTimeOutOfRange));
      }
      return ms;
    }
    auto ms = MsFromDouble(ts.number);
    if (!ms) return tl::unexpected("ts: " + std::string(kTimeOutOfRange));
    return *ms;
  }

  static tl::expected<std::string, std::string> ReadDevice(const JsonValue& device) {
    if (device.kind == JsonKind::kString) {
      if (auto problem = CheckDevice(device.string)) return tl::unexpected(*problem);
      return std::string(device.string);
    }
    if (device.kind == JsonKind::kNumber && device.IsIntegerLiteral()) {
      std::int64_t id = 0;
      const std::string_view text = device.number_text;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
      if (ec == std::errc() && ptr == text.data() + text.size() && id > 0) {
        return std::to_string(id);
      }
      return tl::unexpected(
          fmt::format("device id {} is not a positive 64-bit integer", Quoted(text)));
    }
    return tl::unexpected(
        fmt::format("device must be a serial (string) or a device id (integer), not {}",
                    device.kind == JsonKind::kNumber ? "a fraction" : JsonKindName(device.kind)));
  }

  Status Refuse(std::size_t index, std::string reason) {
    if (!sink_.Fail(index, std::move(reason))) return sink_.TooMany();
    return Ok();
  }

  JsonDocument& json_;
  const ParseOptions& options_;
  RecordSink sink_;
  std::vector<JsonMember> metrics_;  // reused from object to object
  std::vector<JsonMember> units_;
  std::unordered_map<std::string_view, std::string_view> unit_of_;  // metric -> unit
};

}  // namespace

Result<ParseResult> ParseOpenSenseJson(std::string_view body, const ParseOptions& options) {
  JsonDocument json;
  OS_RETURN_IF_ERROR(json.Open(body, "a JSON object or an array of objects"));
  return OpenSenseJsonParser(json, options).Run();
}

}  // namespace opensense::ingest::internal
