#include "app/api_client.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

namespace opensense::app {
namespace {

using nlohmann::json;

// An answer larger than this is cut (a thousand alerts are well under it).
constexpr std::size_t kMaxAnswerBytes = 64 * 1024 * 1024;

std::size_t OnBody(char* data, std::size_t size, std::size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  const std::size_t bytes = size * n;
  if (body->size() + bytes > kMaxAnswerBytes) return 0;  // aborts the transfer
  body->append(data, bytes);
  return bytes;
}

std::string Trim(std::string s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.back())) s.pop_back();
  std::size_t start = 0;
  while (start < s.size() && space(s[start])) ++start;
  return s.substr(start);
}

// http://<listen>, with a wildcard address replaced by the loopback one.
std::string UrlOfListen(const std::string& listen) {
  std::string host_port = listen;
  if (host_port.rfind("0.0.0.0:", 0) == 0) host_port = "127.0.0.1:" + host_port.substr(8);
  if (host_port.rfind("[::]:", 0) == 0) host_port = "[::1]:" + host_port.substr(5);
  return "http://" + host_port;
}

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("--token-file: cannot read {}; give a file holding a user API token (osk_...)", path));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    fmt::print(stderr, "opensense: warning: {} is readable by others; chmod 600 {}\n", path, path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return Trim(ss.str());
}

}  // namespace

void AddApiClientFlags(CLI::App* cmd, ApiClientFlags* f) {
  cmd->add_option("--url", f->url,
                  fmt::format("The running server (default: ${}, else http:// and the listen setting)", kUrlEnvVar))
      ->type_name("URL");
  cmd->add_option("--token-file", f->token_file,
                  fmt::format("File holding a user API token, osk_... (default: ${})", kTokenEnvVar))
      ->type_name("PATH");
  cmd->add_flag("--json", f->json, "Print machine-readable JSON");
}

ApiClient::ApiClient(std::string base_url, std::string token) : base_url_(std::move(base_url)), token_(std::move(token)) {
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  if (base_url_.find("://") == std::string::npos) base_url_ = "http://" + base_url_;
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<ApiAnswer> ApiClient::Call(std::string_view method, const std::string& path, const json& body) const {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return MakeError(ErrorCode::kInternal, "libcurl: cannot create a handle");
  curl_slist* list = curl_slist_append(nullptr, ("Authorization: Bearer " + token_).c_str());
  list = curl_slist_append(list, "Accept: application/json");
  list = curl_slist_append(list, "Expect:");
  const std::string payload = body.is_null() ? std::string() : body.dump();
  if (!body.is_null()) list = curl_slist_append(list, "Content-Type: application/json");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(list, curl_slist_free_all);
  const std::string url = base_url_ + path;
  const std::string verb(method);
  std::string answer;
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, verb.c_str());
  if (!body.is_null() || verb == "POST") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_USERAGENT, "opensense-cli");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60'000L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5'000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
  if (const CURLcode rc = curl_easy_perform(h); rc != CURLE_OK) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("no answer from {}: {}; is `opensense serve` running there? Give --url "
                                 "http://HOST:PORT or set {}",
                                 base_url_, curl_easy_strerror(rc), kUrlEnvVar));
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  return ApiAnswer{static_cast<int>(status), json::parse(answer, nullptr, false)};
}

Result<ApiClient> ApiClientFor(const ApiClientFlags& flags, const std::string& listen,
                               const std::map<std::string, std::string>& env) {
  auto from_env = [&env](std::string_view name) {
    auto it = env.find(std::string(name));
    return it != env.end() ? it->second : std::string();
  };
  std::string url = flags.url;
  if (url.empty()) url = from_env(kUrlEnvVar);
  if (url.empty()) url = UrlOfListen(listen);
  std::string token;
  if (!flags.token_file.empty()) {
    OS_ASSIGN_OR_RETURN(token, ReadTokenFile(flags.token_file));
  } else {
    token = Trim(from_env(kTokenEnvVar));
  }
  if (token.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("no API token: set {} to a user API token (osk_...) of the organisation, or "
                                 "give --token-file PATH (`opensense org create` prints the owner's; "
                                 "POST /api/v1/auth/tokens makes more)",
                                 kTokenEnvVar));
  }
  return ApiClient(std::move(url), std::move(token));
}

int ReportApiError(const ApiAnswer& answer, std::string_view what) {
  std::string message;
  if (answer.body.is_object() && answer.body.contains("error") && answer.body["error"].is_object()) {
    message = answer.body["error"].value("message", "");
  }
  if (message.empty()) message = "the server refused the request";
  fmt::print(stderr, "opensense: error: {} (HTTP {})\n", message, answer.status);
  std::string next;
  switch (answer.status) {
    case 400:
      next = fmt::format("correct the {} and try again (docs/api.md lists the fields)", what);
      break;
    case 401:
      next = fmt::format("set {} to a user API token (osk_...) of the organisation, or give --token-file "
                         "PATH; `opensense org create` prints the owner's",
                         kTokenEnvVar);
      break;
    case 403:
      next = "use a user API token (osk_...) of a member with that role; an owner or admin can make one "
             "(POST /api/v1/auth/tokens)";
      break;
    case 404:
      next = fmt::format("check the ids given; `opensense {} list` shows those of the token's organisation "
                         "(another organisation's are not found)",
                         what);
      break;
    case 409:
      next = fmt::format("`opensense {} show ID` shows its current state", what);
      break;
    case 429:
      next = "the server limits this token's rate; try again in a few seconds";
      break;
    case 503:
      next = fmt::format("point --url (or {}) at the `opensense serve` that runs the alerts role", kUrlEnvVar);
      break;
    default:
      if (answer.status >= 500) next = "the server log has the details";
  }
  if (!next.empty()) fmt::print(stderr, "opensense: next: {}\n", next);
  return answer.status == 400 || answer.status == 404 ? 2 : 1;
}

int ReportClientError(const Error& error) {
  fmt::print(stderr, "opensense: error: {}\n", error.message);
  return error.code == ErrorCode::kInvalidArgument ? 2 : 1;
}

std::string NumberText(const json& v) {
  if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
  if (v.is_number()) return fmt::format("{:g}", v.get<double>());
  return v.dump();
}

std::string QueryEscape(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace opensense::app
