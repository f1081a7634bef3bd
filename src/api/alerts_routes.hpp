// Alert rules and alerts over HTTP (api/alerts_routes.cpp): /api/v1/alert-rules and
// /api/v1/alerts, backed by the alert service (alerts/service.hpp). Without a service in this
// process (ApiOptions::alerts is null) the reads come from the store and the writes answer 503.
#pragma once

#include "api/api_internal.hpp"

namespace opensense::alerts {
class AlertService;
}

namespace opensense::api::internal {

void RegisterAlertRoutes(ApiContext& ctx, http::Router& r, alerts::AlertService* service);

}  // namespace opensense::api::internal
