#include "web/dashboard.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <cstdio>
#include <cstdlib>
#include <functional>

namespace opensense::web {
namespace {

constexpr std::string_view kImmutable = "public, max-age=31536000, immutable";

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// FNV-1a 64 of the file: a strong-enough validator for one build's index.html.
std::string Etag(std::string_view body) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("\"{:016x}\"", h);
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// The API's 404 (its default headers, CSP included, apply).
http::Response NotFound(const http::Request& req) {
  return http::Response::Error(404, "not_found", "no such resource: " + req.path);
}

}  // namespace

bool AcceptsGzip(std::string_view header) {
  bool star = false;
  bool gzip = false;
  bool gzip_named = false;
  while (!header.empty()) {
    auto comma = header.find(',');
    std::string_view item = Trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    auto semi = item.find(';');
    std::string coding = Lower(Trim(item.substr(0, semi)));
    bool zero = false;
    if (semi != std::string_view::npos) {
      std::string params = Lower(item.substr(semi + 1));
      params.erase(std::remove(params.begin(), params.end(), ' '), params.end());
      if (auto q = params.find("q="); q != std::string::npos) {
        std::string_view v = std::string_view(params).substr(q + 2);
        zero = !v.empty() && v.front() == '0' && v.find_first_of("123456789") == std::string_view::npos;
      }
    }
    if (coding == "gzip" || coding == "x-gzip") {
      gzip_named = true;
      gzip = !zero;
    } else if (coding == "*") {
      star = !zero;
    }
  }
  return gzip_named ? gzip : star;
}

Dashboard::Dashboard(const std::vector<Asset>& assets) {
  for (const auto& a : assets) files_.emplace(std::string(a.path), a);
  auto index = files_.find("/index.html");
  if (index == files_.end()) {
    std::fprintf(stderr, "web::Dashboard: the assets have no /index.html\n");
    std::abort();
  }
  index_etag_ = Etag(index->second.body);
}

http::Response Dashboard::File(const http::Request& req, const Asset& asset, bool immutable) const {
  http::Response r;
  r.status = 200;
  r.SetHeader("Content-Type", std::string(asset.content_type));
  r.SetHeader("Content-Security-Policy", std::string(kContentSecurityPolicy));
  r.SetHeader("Vary", "Accept-Encoding");
  if (immutable) {
    r.SetHeader("Cache-Control", std::string(kImmutable));
  } else {
    r.SetHeader("Cache-Control", "no-cache");
    r.SetHeader("ETag", index_etag_);
    if (auto inm = req.Header("If-None-Match"); inm && inm->find(index_etag_) != std::string_view::npos) {
      r.status = 304;
      return r;
    }
  }
  auto ae = req.Header("Accept-Encoding");
  if (!asset.gzip.empty() && ae && AcceptsGzip(*ae)) {
    r.SetHeader("Content-Encoding", "gzip");
    r.body = std::string(asset.gzip);
  } else {
    r.body = std::string(asset.body);
  }
  return r;
}

http::Response Dashboard::Serve(const http::Request& req) const {
  if (req.method != "GET" && req.method != "HEAD") return NotFound(req);
  const std::string_view path = req.path;
  if (StartsWith(path, "/assets/")) {
    auto it = files_.find(path);
    if (it == files_.end()) return NotFound(req);
    return File(req, it->second, /*immutable=*/true);
  }
  if (path == "/api" || StartsWith(path, "/api/") || StartsWith(path, "/internal/")) return NotFound(req);
  const std::string_view last = path.substr(path.rfind('/') + 1);
  if (last.find('.') != std::string_view::npos && path != "/index.html") return NotFound(req);
  return File(req, files_.at("/index.html"), /*immutable=*/false);
}

void Dashboard::Install(http::Router& router, const std::vector<Asset>& assets) {
  auto dashboard = std::make_shared<const Dashboard>(assets);
  router.SetFallback("/{dashboard}", [dashboard](http::Request& req) { return dashboard->Serve(req); });
}

}  // namespace opensense::web
