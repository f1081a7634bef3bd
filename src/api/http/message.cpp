// Request and Response value types, and the wire helpers they share with the server and client.
#include <cstdio>
#include <random>

#include "api/http/server.hpp"
#include "api/http/wire.hpp"

namespace opensense::http {
namespace wire {

namespace {
char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

Result<std::string> PercentDecode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      int hi = i + 2 < in.size() ? HexValue(in[i + 1]) : -1;
      int lo = i + 2 < in.size() ? HexValue(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "malformed percent-encoding in '" + std::string(in) + "'");
      }
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') {
        return MakeError(ErrorCode::kInvalidArgument, "encoded NUL (%00) is not allowed");
      }
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Status ParseTarget(std::string_view target, Request& req) {
  if (target.empty() || target.front() != '/') {
    return MakeError(ErrorCode::kInvalidArgument, "request target must start with '/'");
  }
  std::size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::size_t hash = path.find('#');
  if (hash != std::string_view::npos) path = path.substr(0, hash);
  req.path = std::string(path);
  req.query.clear();
  if (q == std::string_view::npos) return Ok();
  std::string_view rest = target.substr(q + 1);
  std::size_t fragment = rest.find('#');
  if (fragment != std::string_view::npos) rest = rest.substr(0, fragment);
  while (!rest.empty()) {
    std::size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    auto key = PercentDecode(pair.substr(0, eq), true);
    if (!key) return tl::unexpected(key.error());
    std::string value;
    if (eq != std::string_view::npos) {
      auto decoded = PercentDecode(pair.substr(eq + 1), true);
      if (!decoded) return tl::unexpected(decoded.error());
      value = std::move(*decoded);
    }
    req.query.emplace(std::move(*key), std::move(value));
  }
  return Ok();
}

std::string OriginForm(std::string_view target) {
  std::size_t scheme_end = target.find("://");
  if (target.empty() || target.front() == '/' || scheme_end == std::string_view::npos ||
      scheme_end == 0) {
    return std::string(target);
  }
  for (std::size_t i = 0; i < scheme_end; ++i) {
    char c = Lower(target[i]);
    if (!((c >= 'a' && c <= 'z') ||
          (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')))) {
      return std::string(target);
    }
  }
  std::string_view after = target.substr(scheme_end + 3);
  std::size_t slash = after.find_first_of("/?");
  if (slash == std::string_view::npos) return "/";
  if (after[slash] == '?') return "/" + std::string(after.substr(slash));
  return std::string(after.substr(slash));
}

bool IsValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) {
      switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
          ok = true;
          break;
        default:
          break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

bool IsValidHeaderValue(std::string_view value) {
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

std::string JsonEscape(std::string_view in) {
  std::string out;
  out.reserve(in.size() + 8);
  for (char c : in) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  return "{\"error\":{\"code\":\"" + JsonEscape(code) + "\",\"message\":\"" + JsonEscape(message) +
         "\"}}";
}

Result<std::pair<std::string, std::string>> SplitHostPort(std::string_view address) {
  auto bad = [](const char* why) { return MakeError(ErrorCode::kInvalidArgument, why); };
  if (!address.empty() && address.front() == '[') {
    std::size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return bad("expected [IPv6]:PORT");
    }
    return std::pair<std::string, std::string>(address.substr(1, close - 1), address.substr(close + 2));
  }
  std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("expected HOST:PORT");
  return std::pair<std::string, std::string>(address.substr(0, colon), address.substr(colon + 1));
}

}  // namespace wire

namespace {
thread_local std::string t_request_id;
}  // namespace

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t v = rng();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) id[static_cast<std::size_t>(i)] = kHex[v & 0xF];
  return id;
}

const std::string& CurrentRequestId() { return t_request_id; }

ScopedRequestId::ScopedRequestId(const std::string& id) : previous_(t_request_id) { t_request_id = id; }
ScopedRequestId::~ScopedRequestId() { t_request_id = previous_; }

std::optional<std::string_view> Request::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (wire::EqualsIgnoreCase(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

std::optional<std::string> Request::Query(std::string_view key) const {
  auto it = query.find(std::string(key));
  if (it == query.end()) return std::nullopt;
  return it->second;
}

Result<Request> Request::FromTarget(std::string method, std::string target, std::string body) {
  Request req;
  OS_RETURN_IF_ERROR(wire::ParseTarget(target, req));
  req.method = std::move(method);
  req.target = std::move(target);
  req.body = std::move(body);
  return req;
}

Response& Response::SetHeader(std::string name, std::string value) {
  for (auto& [key, old] : headers) {
    if (wire::EqualsIgnoreCase(key, name)) {
      old = std::move(value);
      return *this;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

Response Response::Json(int status, std::string body) {
  Response res;
  res.status = status;
  res.headers.emplace_back("Content-Type", "application/json");
  res.body = std::move(body);
  return res;
}

Response Response::Text(int status, std::string body, std::string content_type) {
  Response res;
  res.status = status;
  res.headers.emplace_back("Content-Type", std::move(content_type));
  res.body = std::move(body);
  return res;
}

Response Response::Error(int status, std::string_view code, std::string_view message) {
  return Json(status, wire::ErrorBody(code, message));
}

}  // namespace opensense::http
