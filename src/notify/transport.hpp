// The production HttpTransport: libcurl (Debian libcurl4-openssl-dev), one easy handle per
// request, TLS verified against the system's CAs, http and https only, no redirects followed,
// the answer cut at kMaxAnswerBytes, the whole exchange bounded by the timeout.
#pragma once

#include <memory>

#include "notify/delivery.hpp"

namespace opensense::notify {

std::unique_ptr<HttpTransport> MakeCurlTransport();

}  // namespace opensense::notify
