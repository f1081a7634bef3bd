// libFuzzer target for the notification parsers (src/notify): Postmark and Telegram answers (and
// their verdicts for every interesting status), Retry-After values, webhook signature checks and
// the text cleaning of the attempt log. Arbitrary bytes give an answer or an error, never a crash;
// invariants: a verdict's retry delay is within a day, cleaned text is valid UTF-8 within its bound,
// and Telegram's escaped text has no raw '<' or '>'.
//
//   scripts/fuzz.sh 600
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "notify/dispatcher.hpp"
#include "notify/postmark/postmark.hpp"
#include "notify/telegram/telegram.hpp"
#include "notify/webhook/webhook.hpp"

namespace {

using namespace opensense;
using namespace opensense::notify;

constexpr TimestampMs kNow = 1768478400000;

void CheckVerdict(const Verdict& v) {
  if (v.retry_after_ms && (*v.retry_after_ms < 0 || *v.retry_after_ms > 24 * kMsPerHour)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)postmark::ParseAnswer(text);
  (void)telegram::ParseAnswer(text);
  for (int status : {200, 401, 403, 422, 429, 500}) {
    HttpAnswer a;
    a.status = status;
    a.body = std::string(text);
    a.headers = {{"Retry-After", std::string(text.substr(0, 80))}};
    CheckVerdict(postmark::Classify(a, kNow));
    CheckVerdict(telegram::Classify(a, kNow));
    CheckVerdict(webhook::Classify(a, kNow));
  }
  if (auto d = ParseRetryAfter(text, kNow); d && (*d < 0 || *d > 24 * kMsPerHour)) std::abort();
  const std::size_t cut = size / 2;
  (void)webhook::Verify("whsec_fuzz", text.substr(0, cut), text.substr(cut), text, kNow);
  const std::string clean = CleanText(text, 100);
  if (clean.size() > 100 || CleanText(clean, 100) != clean) std::abort();
  const std::string escaped = telegram::EscapeHtml(text);
  if (escaped.find_first_of("<>") != std::string::npos) std::abort();
  return 0;
}
