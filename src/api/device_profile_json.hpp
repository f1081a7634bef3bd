// The device fields compliance reports and alert rules use (core DeviceProfile) in the device
// JSON of GET/POST/PATCH /api/v1/devices: target_min, target_max, expected_interval_s,
// medicine_storage, calibration_date, calibration_due.
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

#include "core/types.hpp"

namespace opensense::api::internal {

// The profile as JSON fields (absent values are null).
nlohmann::json DeviceProfileJson(const DeviceProfile& p);
bool IsDeviceProfileKey(std::string_view key);
// Sets the profile fields present in `body` (null clears one); kInvalidArgument naming the field
// for a wrong type or value. Other keys are ignored.
Status ApplyDeviceProfileJson(const nlohmann::json& body, DeviceProfile* p);

}  // namespace opensense::api::internal
