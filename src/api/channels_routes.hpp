// The notification routes (api/channels_routes.cpp): an organisation's channels (`/api/v1/channels`,
// with "send test message") and its recent notifications and delivery attempts
// (`/api/v1/notifications`, for the dashboard). Every query is scoped to the caller's
// organisation: another organisation's channel is 404 and nothing changes.
#pragma once

#include "api/api_internal.hpp"

namespace opensense::api::internal {

void RegisterChannelRoutes(ApiContext& ctx, http::Router& r);

}  // namespace opensense::api::internal
