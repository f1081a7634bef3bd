#include "api/device_profile_json.hpp"

#include <fmt/format.h>

#include "core/validation.hpp"

namespace opensense::api::internal {

namespace {
constexpr std::string_view kKeys[] = {"target_min",       "target_max",       "expected_interval_s",
                                      "medicine_storage", "calibration_date", "calibration_due"};

template <typename T>
nlohmann::json Opt(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

Error Bad(const char* key, const char* what) {
  return Error{ErrorCode::kInvalidArgument, fmt::format("'{}' must be {}", key, what)};
}
}  // namespace

nlohmann::json DeviceProfileJson(const DeviceProfile& p) {
  return {{"target_min", Opt(p.target_min)},
          {"target_max", Opt(p.target_max)},
          {"expected_interval_s", Opt(p.expected_interval_s)},
          {"medicine_storage", p.medicine_storage},
          {"calibration_date", Opt(p.calibration_date)},
          {"calibration_due", Opt(p.calibration_due)}};
}

bool IsDeviceProfileKey(std::string_view key) {
  for (auto k : kKeys)
    if (k == key) return true;
  return false;
}

Status ApplyDeviceProfileJson(const nlohmann::json& body, DeviceProfile* p) {
  DeviceProfile out = *p;
  for (const char* key : {"target_min", "target_max"}) {
    if (!body.contains(key)) continue;
    const auto& v = body[key];
    auto& field = std::string_view(key) == "target_min" ? out.target_min : out.target_max;
    if (v.is_null()) field.reset();
    else if (v.is_number()) field = v.get<double>();
    else return tl::unexpected(Bad(key, "a number (°C) or null"));
  }
  if (body.contains("expected_interval_s")) {
    const auto& v = body["expected_interval_s"];
    if (v.is_null()) out.expected_interval_s.reset();
    else if (v.is_number_integer()) out.expected_interval_s = v.get<std::int64_t>();
    else return tl::unexpected(Bad("expected_interval_s", "a whole number of seconds or null"));
  }
  if (body.contains("medicine_storage")) {
    if (!body["medicine_storage"].is_boolean()) return tl::unexpected(Bad("medicine_storage", "true or false"));
    out.medicine_storage = body["medicine_storage"].get<bool>();
  }
  for (const char* key : {"calibration_date", "calibration_due"}) {
    if (!body.contains(key)) continue;
    auto& field = std::string_view(key) == "calibration_date" ? out.calibration_date : out.calibration_due;
    const auto& v = body[key];
    if (v.is_null()) field.reset();
    else if (v.is_string()) field = v.get<std::string>();
    else return tl::unexpected(Bad(key, "a date YYYY-MM-DD or null"));
  }
  OS_RETURN_IF_ERROR(ValidateDeviceProfile(out));
  *p = std::move(out);
  return Ok();
}

}  // namespace opensense::api::internal
