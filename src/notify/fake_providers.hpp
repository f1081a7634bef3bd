// TEST CODE ONLY: a local stand-in for Postmark, the Telegram Bot API and webhook receivers, on
// the project's own HTTP server at 127.0.0.1 (port 0). It records every request exactly
// (method, path, headers, body) and answers from a script: a status, headers and body, or a
// hang until released. Used by dispatcher_test and the crash test (tests/notify_crash_test.cpp).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/http/server.hpp"

namespace opensense::notify::fakes {

struct RecordedRequest {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<std::string> Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() == name.size() &&
          std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
          })) {
        return v;
      }
    }
    return std::nullopt;
  }
};

struct ScriptedAnswer {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool hang = false;  // wait until Release() (or shutdown), then answer as above
};

class FakeProvider {
 public:
  // `default_answer` is used when the script is empty.
  static std::unique_ptr<FakeProvider> Start(ScriptedAnswer default_answer) {
    auto fake = std::unique_ptr<FakeProvider>(new FakeProvider(std::move(default_answer)));
    http::Router router;
    FakeProvider* self = fake.get();
    auto handler = [self](http::Request& req) { return self->Handle(req); };
    for (const char* p : {"/email", "/{bot}/sendMessage", "/hook", "/hook/{name}"}) {
      router.Add("POST", p, handler);
    }
    http::ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.worker_threads = 4;
    auto server = http::Server::Start(o, std::move(router));
    if (!server) return nullptr;
    fake->server_ = std::move(*server);
    return fake;
  }
  ~FakeProvider() {
    Release();
    server_.reset();
  }

  std::string base_url() const { return "http://" + server_->address(); }
  void Push(ScriptedAnswer a) {
    std::lock_guard lock(mu_);
    script_.push_back(std::move(a));
  }
  void SetDefault(ScriptedAnswer a) {
    std::lock_guard lock(mu_);
    default_ = std::move(a);
  }
  // Ends every hang (each then answers its status) and makes later hangs answer at once.
  void Release() {
    {
      std::lock_guard lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }
  std::vector<RecordedRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  // The 2xx answers handed to the server: deliveries the provider accepted.
  int answered_2xx() const {
    std::lock_guard lock(mu_);
    return answered_2xx_;
  }

 private:
  explicit FakeProvider(ScriptedAnswer d) : default_(std::move(d)) {}

  http::Response Handle(http::Request& req) {
    ScriptedAnswer a;
    {
      std::unique_lock lock(mu_);
      requests_.push_back({req.method, req.path, req.headers, req.body});
      if (!script_.empty()) {
        a = std::move(script_.front());
        script_.pop_front();
      } else {
        a = default_;
      }
      if (a.hang) cv_.wait(lock, [this] { return released_; });
      if (a.status >= 200 && a.status < 300) ++answered_2xx_;
    }
    http::Response r = http::Response::Json(a.status, a.body);
    for (auto& [k, v] : a.headers) r.SetHeader(k, v);
    return r;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  ScriptedAnswer default_;
  std::deque<ScriptedAnswer> script_;
  std::vector<RecordedRequest> requests_;
  int answered_2xx_ = 0;
  bool released_ = false;
  std::unique_ptr<http::Server> server_;
};

inline ScriptedAnswer PostmarkOk() {
  return {200, {}, R"({"To":"x@example.com","SubmittedAt":"2026-01-15T12:00:00Z","MessageID":"b7bc2f4a-e38e-4336-af7d-e6c392c2f817","ErrorCode":0,"Message":"OK"})"};
}
inline ScriptedAnswer TelegramOk() { return {200, {}, R"({"ok":true,"result":{"message_id":1}})"}; }
inline ScriptedAnswer WebhookOk() { return {200, {}, "{}"}; }

}  // namespace opensense::notify::fakes
