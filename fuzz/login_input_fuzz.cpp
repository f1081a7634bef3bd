// libFuzzer target for what a browser sends at sign-in (src/people/login.hpp and the form body
// of the confirmation page): the Cookie header, Origin/Referer against public_url, the e-mail
// address, and an application/x-www-form-urlencoded body (parsed as a request target's query).
// Invariants: a session id found in a cookie is a substring of the header without ';' or spaces;
// a normalised address is lower case with exactly one '@' and no control characters or spaces;
// an origin is never judged same-origin unless it equals public_url's origin. Never a crash.
//
//   scripts/fuzz.sh 600
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/http/server.hpp"
#include "people/login.hpp"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace people = opensense::people;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  people::LoginOptions https, http;
  https.public_url = "https://opensense.example.com";
  http.public_url = "http://127.0.0.1:8080";
  for (const auto* o : {&https, &http}) {
    if (auto id = people::SessionFromCookieHeader(*o, text)) {
      Check(text.find(*id) != std::string_view::npos);
      Check(id->find(';') == std::string::npos && id->find(' ') == std::string::npos);
    }
    const bool same = people::SameOrigin(*o, text, std::nullopt);
    if (same) Check(people::OriginOf(text) == people::OriginOf(o->public_url));
    (void)people::SameOrigin(*o, std::nullopt, text);
  }
  (void)people::OriginOf(text);
  if (auto email = people::NormaliseEmail(text)) {
    Check(!email->empty() && email->size() <= 254);
    std::size_t at = 0;
    for (unsigned char c : *email) {
      Check(c > 0x20 && c != 0x7f);
      Check(!(c >= 'A' && c <= 'Z'));
      at += c == '@';
    }
    Check(at == 1);
  }
  // The confirmation page's form body, as the route parses it.
  if (auto form = opensense::http::Request::FromTarget("POST", "/?" + std::string(text))) {
    for (const auto& [k, v] : form->query) Check(k.size() + v.size() <= 3 * size + 2);
  }
  return 0;
}
