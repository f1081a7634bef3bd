// The real `opensense serve` and a local fake Postmark (src/notify/fake_providers.hpp): a
// notification whose delivery is in flight when the server is SIGKILLed (the outbox row is
// committed and claimed, the provider has not answered) is delivered after the restart, and
// exactly once: the fake accepts one delivery, the outbox row ends "sent" with one sent attempt,
// and every request carried the same idempotency key.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "api/http/client.hpp"
#include "notify/fake_providers.hpp"
#include "opensense_process.hpp"

namespace opensense {
namespace {

using nlohmann::json;

template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

TEST(NotifyCrash, AMessageInFlightWhenTheServerIsKilledIsDeliveredExactlyOnceAfterRestart) {
  // Not answering yet: the first request hangs, and when released answers 503 to a dead client.
  auto postmark = notify::fakes::FakeProvider::Start({503, {}, "", /*hang=*/true});
  ASSERT_TRUE(postmark);
  testing::OpenSenseProcess os(std::map<std::string, std::string>{{"OPENSENSE_POSTMARK_TOKEN", "pm-crash-token"}});
  json org = os.Cli({"org", "create", "--name", "Cafe", "--owner-email", "owner@cafe.example"});
  ASSERT_TRUE(org.contains("id")) << org.dump();
  const std::string org_id = std::to_string(org["id"].get<std::int64_t>());
  json channel = os.Cli({"channel", "create", "--org", org_id, "--kind", "email", "--name", "Kitchen",
                         "--target", "chef@cafe.example"});
  ASSERT_TRUE(channel.contains("id")) << channel.dump();
  const std::vector<std::string> flags = {"--postmark-base-url", postmark->base_url(),
                                          "--notify-timeout-seconds", "5"};
  ASSERT_TRUE(os.Start(flags)) << os.Log();

  // The outbox row is committed (the CLI beside the server), the dispatcher claims it and sends.
  json queued = os.Cli({"channel", "test", "--org", org_id, "--channel",
                        std::to_string(channel["id"].get<std::int64_t>())});
  ASSERT_EQ(queued["queued"].size(), 1u) << queued.dump();
  ASSERT_TRUE(WaitFor([&] { return postmark->requests().size() == 1; }, std::chrono::seconds(20)))
      << os.Log();
  // Between the commit and the delivery: the provider has the request, no answer yet.
  os.Kill();
  postmark->SetDefault(notify::fakes::PostmarkOk());
  postmark->Release();
  EXPECT_EQ(postmark->answered_2xx(), 0);

  // The old log would still name the old address until the new process truncates it.
  std::filesystem::remove(std::filesystem::path(os.DataDir()).parent_path() / "serve.log");
  ASSERT_TRUE(os.Start(flags)) << os.Log();
  ASSERT_TRUE(WaitFor([&] { return postmark->answered_2xx() == 1; }, std::chrono::seconds(30)))
      << os.Log();

  // The row is done: no further delivery can happen. Check through the API.
  const std::string token = org["token"].get<std::string>();
  json notes;
  std::string last;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = http::Fetch(os.address(), "GET", "/api/v1/notifications",
                             {{"Authorization", "Bearer " + token}});
        last = r ? std::to_string(r->status) + " " + r->body : r.error().message;
        if (!r || r->status != 200) return false;
        notes = json::parse(r->body, nullptr, false);
        return notes.is_object() && notes["messages"].size() == 1 &&
               notes["messages"][0]["state"] == "sent";
      },
      std::chrono::seconds(10)))
      << last << "\n" << os.Log().substr(os.Log().size() > 3000 ? os.Log().size() - 3000 : 0);
  int sent = 0;
  for (const auto& a : notes["attempts"]) sent += a["status"] == "sent" ? 1 : 0;
  EXPECT_EQ(sent, 1) << notes.dump();
  EXPECT_EQ(notes["messages"][0]["attempts"], 2);  // the claim the crash interrupted counts
  EXPECT_EQ(postmark->answered_2xx(), 1);
  const auto reqs = postmark->requests();
  ASSERT_EQ(reqs.size(), 2u);
  for (const auto& r : reqs) {
    EXPECT_EQ(r.path, "/email");
    EXPECT_EQ(r.Header("X-Postmark-Server-Token"), "pm-crash-token");
    EXPECT_EQ(json::parse(r.body)["Metadata"]["idempotency_key"],
              json::parse(reqs[0].body)["Metadata"]["idempotency_key"]);
  }
  EXPECT_EQ(json::parse(reqs[1].body)["To"], "chef@cafe.example");
  os.Stop();
}

TEST(NotifyCrash, TheDevMailerWritesMailToTheLogWithoutAProvider) {
  testing::OpenSenseProcess os;
  json org = os.Cli({"org", "create", "--name", "Cafe", "--owner-email", "owner@cafe.example"});
  const std::string org_id = std::to_string(org["id"].get<std::int64_t>());
  json channel = os.Cli({"channel", "create", "--org", org_id, "--kind", "email", "--name", "Kitchen",
                         "--target", "chef@cafe.example"});
  ASSERT_TRUE(os.Start()) << os.Log();
  os.Cli({"channel", "test", "--org", org_id, "--channel", std::to_string(channel["id"].get<std::int64_t>())});
  EXPECT_TRUE(WaitFor([&] { return os.Log().find("To: chef@cafe.example") != std::string::npos; },
                      std::chrono::seconds(20)))
      << os.Log();
  EXPECT_NE(os.Log().find("dev mailer"), std::string::npos);
  os.Stop();
}

}  // namespace
}  // namespace opensense
