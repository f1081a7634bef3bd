// What an MQTT message means to OpenSense, apart from any connection: which payload format it
// carries. Pure; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "ingest/payload.hpp"

namespace opensense::mqtt {

// The MQTT 5 content type decides when there is one (application/senml+json, application/json,
// text/plain; anything else is kInvalidArgument). Without one the payload is sniffed: a JSON
// object is OpenSense JSON; a JSON array is SenML unless its first object's first key is not a
// SenML label (then OpenSense JSON); anything else is InfluxDB line protocol.
Result<ingest::PayloadFormat> MessageFormat(const std::optional<std::string>& content_type,
                                            std::string_view payload);

}  // namespace opensense::mqtt
