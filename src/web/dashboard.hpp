// The web dashboard (web/, TypeScript) as the opensense binary serves it: its files are built by
// npm + esbuild during the CMake build and embedded as generated C++ (web_assets.cpp, see
// web/build.mjs), so `opensense serve` needs no other file to deploy.
//
// Dashboard answers the requests that match no API route (http::Router::SetFallback):
// - /assets/<name>-<hash>.<ext>: the file, `Cache-Control: public, max-age=31536000, immutable`
//   (a new build has new names); an unknown asset is 404, never the page;
// - /api/..., /internal/... and any path whose last segment has a file extension: the API's JSON
//   404, so a typo in an API path or a missing file never turns into a 200 page;
// - every other GET or HEAD (/, /alerts/12, /devices/3, ...): index.html with `Cache-Control:
//   no-cache` and an ETag (304 on If-None-Match), so client-side routes survive a reload;
// - other methods: 404.
// Every answer carries the dashboard's Content-Security-Policy (scripts, styles, images and
// connections from this origin only, no inline script or style, never framed); a gzip copy is
// sent when Accept-Encoding allows it (Vary: Accept-Encoding).
//
// Threads: Serve is const and thread-safe.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "api/http/server.hpp"

namespace opensense::web {

// One file of the dashboard; the views point into static storage.
struct Asset {
  std::string_view path;          // "/index.html", "/assets/main-2KQ4ZP3M.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
  std::string_view gzip;          // the gzip copy; empty when compressing did not pay
};

// The files of this build (generated from web/ by the build).
const std::vector<Asset>& EmbeddedAssets();

// The Content-Security-Policy of the dashboard's answers.
inline constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'";

class Dashboard {
 public:
  // `assets` must hold "/index.html".
  explicit Dashboard(const std::vector<Asset>& assets);

  http::Response Serve(const http::Request& req) const;

  // Makes Serve the router's fallback (route label "/{dashboard}" in logs and metrics).
  static void Install(http::Router& router, const std::vector<Asset>& assets = EmbeddedAssets());

 private:
  http::Response File(const http::Request& req, const Asset& asset, bool immutable) const;

  std::map<std::string, Asset, std::less<>> files_;
  std::string index_etag_;
};

// Whether an Accept-Encoding header value accepts gzip (q=0 refuses it; "*" accepts it).
bool AcceptsGzip(std::string_view accept_encoding);

}  // namespace opensense::web
