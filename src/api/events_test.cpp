// GET /api/v1/events through the real router and HTTP server on a real SQLite store: a stream
// gets its own organisation's committed readings and alert changes and never another's; the
// number of streams is bounded; idle streams send heartbeats and hold no worker thread.
#include "api/events.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <regex>
#include <thread>

#include "alerts/service.hpp"
#include "api/api.hpp"
#include "api/http/client.hpp"
#include "api/http/test_util.hpp"
#include "store/test_util.hpp"

namespace opensense::api {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using http::testing::RawConnection;

class EventsApi : public testing::Test {
 protected:
  void SetUp() override {
    auto o = store::Backends()[0].options(dir_.path());
    store_ = std::move(*store::OpenStore(o));
    auth::TokenServiceOptions to;
    to.bcrypt_cost = 4;
    tokens_ = std::make_unique<auth::TokenService>(store_.get(), &clock_, to);
    EventHubOptions eo;
    eo.max_streams_per_org = 2;
    eo.heartbeat = 200ms;
    hub_ = std::make_unique<EventHub>(eo);
    hub_->Attach(store_.get());
    alerts::AlertServiceOptions ao;
    ao.evaluator_thread = false;
    ao.alert_changed = [this](OrgId org, const store::AlertRecord& a, std::string_view event) {
      hub_->OnAlertChanged(org, a, event);
    };
    alerts_ = std::make_unique<alerts::AlertService>(store_.get(), ao);
    ASSERT_TRUE(alerts_->Start());
    ApiOptions api_options;
    api_options.events = hub_.get();
    api_options.alerts = alerts_.get();
    api_ = std::make_unique<Api>(store_.get(), tokens_.get(), &metrics_, &clock_, api_options);
    http::ServerOptions so = http::testing::TestOptions();
    so.worker_threads = 1;  // streams must not need one each
    so.stream_poll_interval = 1min;
    server_ = http::testing::StartServer(api_->BuildRouter(), so);
    ASSERT_NE(server_, nullptr);
    for (auto* o : {&a_, &b_}) {
      o->org = store_->CreateOrganization({o == &a_ ? "A" : "B", "UTC", Tier::kTeam})->id;
      auto m = store_->People().AddMember(o->org, o == &a_ ? "ann@a.example" : "bob@b.example", Role::kViewer);
      o->token = tokens_->IssueUserToken(o->org, m->id, Role::kViewer, "t")->token;
      o->device = store_->CreateDevice({o->org, "fridge", std::nullopt, std::nullopt})->id;
    }
  }
  void TearDown() override {
    server_.reset();
    alerts_->Stop();
    api_.reset();
    hub_.reset();
    store_->Close();
  }

  struct Org {
    OrgId org = 0;
    std::string token;
    DeviceId device = 0;
  };

  std::unique_ptr<RawConnection> OpenStream(const Org& o) {
    auto c = std::make_unique<RawConnection>(server_->port());
    EXPECT_TRUE(c->Send("GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + o.token + "\r\n\r\n"));
    return c;
  }
  // Reads until `needle` shows up (or 5 s pass); returns everything read.
  static std::string ReadUntil(RawConnection& c, const std::string& needle, std::string* all) {
    const auto start = std::chrono::steady_clock::now();
    while (all->find(needle) == std::string::npos && std::chrono::steady_clock::now() - start < 5s) {
      *all += c.ReadResponse(50ms);
    }
    return *all;
  }
  void Ingest(const Org& o, double value) {
    auto r = store_->Ingest(o.org, {{o.device, "temperature", "Cel", clock_.NowMs() - 1000, value}}).get();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->accepted, 1u);
  }

  store::ScratchDir dir_{"events-api"};
  SystemClock clock_;
  MetricsRegistry metrics_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::TokenService> tokens_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<alerts::AlertService> alerts_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<http::Server> server_;
  Org a_, b_;
};

TEST_F(EventsApi, StreamGetsItsOrganisationsReadingsAndAlertsOnly) {
  auto stream_a = OpenStream(a_);
  std::string got;
  ReadUntil(*stream_a, "event: hello", &got);
  ASSERT_NE(got.find("text/event-stream"), std::string::npos) << got;
  ASSERT_NE(got.find(R"("org":)" + std::to_string(a_.org)), std::string::npos) << got;
  Ingest(b_, 21.25);  // another organisation's reading: never on A's stream
  Ingest(a_, 4.75);
  ReadUntil(*stream_a, "4.75", &got);
  EXPECT_NE(got.find("event: readings"), std::string::npos) << got;
  EXPECT_NE(got.find(R"("device":)" + std::to_string(a_.device)), std::string::npos) << got;
  EXPECT_EQ(got.find("21.25"), std::string::npos) << "organisation B's reading reached A:\n" << got;

  // Alert changes: a rule of B fires (never seen by A), then one of A.
  for (const Org* o : {&b_, &a_}) {
    ASSERT_TRUE(alerts_->CreateRule(o->org, R"({"name": "warm", "above": 8, "severity": "critical"})",
                                    clock_.NowMs() - 60'000));
    Ingest(*o, o == &b_ ? 12.5 : 9.5);
    alerts_->Drain();
  }
  ReadUntil(*stream_a, "event: alert", &got);
  ReadUntil(*stream_a, "\"fired\"", &got);
  EXPECT_NE(got.find(R"("event":"fired")"), std::string::npos) << got;
  EXPECT_EQ(got.find("12.5"), std::string::npos) << "organisation B's alert reached A:\n" << got;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(got, m, std::regex(R"re("id":(\d+),"kind")re"))) << got;
  // Acknowledging is an alert change too.
  auto alert_id = std::stoll(m[1]);
  ASSERT_TRUE(alerts_->Acknowledge(a_.org, alert_id, "user:1", "moved the stock"));
  ReadUntil(*stream_a, "\"acknowledged\"", &got);
  EXPECT_NE(got.find(R"("event":"acknowledged")"), std::string::npos) << got;
}

TEST_F(EventsApi, IdleStreamsSendHeartbeatsAndLeaveTheWorkerFree) {
  auto one = OpenStream(a_);
  auto two = OpenStream(a_);
  std::string got_one, got_two;
  ReadUntil(*one, "event: hello", &got_one);
  ReadUntil(*two, "event: hello", &got_two);
  // The server has one worker; two open streams do not hold it.
  auto health = http::Fetch(server_->address(), "GET", "/healthz", {}, {}, 5s);
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, 200);
  ReadUntil(*one, ": keep-alive", &got_one);
  EXPECT_NE(got_one.find(": keep-alive"), std::string::npos) << got_one;
  EXPECT_EQ(hub_->streams(), 2u);
}

TEST_F(EventsApi, StreamsAreBoundedPerOrganisation) {
  auto one = OpenStream(a_);
  auto two = OpenStream(a_);
  std::string got;
  ReadUntil(*two, "event: hello", &got);
  ReadUntil(*one, "event: hello", &got);
  auto third = http::Fetch(server_->address(), "GET", "/api/v1/events", {{"Authorization", "Bearer " + a_.token}}, {}, 5s);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->status, 503);
  EXPECT_EQ(third->Header("retry-after"), "10");
  // Another organisation has its own allowance; a closed stream frees its place.
  auto other = OpenStream(b_);
  std::string got_b;
  ReadUntil(*other, "event: hello", &got_b);
  EXPECT_NE(got_b.find("event: hello"), std::string::npos);
  one.reset();
  const auto start = std::chrono::steady_clock::now();
  while (hub_->streams() > 2 && std::chrono::steady_clock::now() - start < 5s) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(hub_->streams(), 2u);
}

TEST_F(EventsApi, NeedsAUser) {
  auto anonymous = http::Fetch(server_->address(), "GET", "/api/v1/events", {}, {}, 5s);
  ASSERT_TRUE(anonymous.has_value());
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(hub_->streams(), 0u);
}

}  // namespace
}  // namespace opensense::api
