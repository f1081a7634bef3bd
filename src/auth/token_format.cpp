#include "auth/token_format.hpp"

#include <sys/random.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace opensense::auth {

namespace {

constexpr std::string_view kAlphabet =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool IsBase62(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

std::uint32_t Crc32(std::string_view data) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char ch : data) crc = table[(crc ^ ch) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

std::string Checksum(std::string_view body) {
  std::uint32_t v = Crc32(body);
  std::string out(kChecksumLength, '0');
  for (std::size_t i = kChecksumLength; i-- > 0;) {
    out[i] = kAlphabet[v % 62];
    v /= 62;
  }
  return out;
}

tl::unexpected<Error> Refused() {
  return MakeError(ErrorCode::kPermissionDenied, "the token is not valid");
}

}  // namespace

std::string_view TokenPrefix(TokenKind kind) {
  switch (kind) {
    case TokenKind::kDevice: return "osd";
    case TokenKind::kGateway: return "osg";
    case TokenKind::kUser: return "osk";
  }
  return "osd";
}

std::string RandomBase62(std::size_t n) {
  std::string out;
  out.reserve(n);
  while (out.size() < n) {
    std::array<unsigned char, 64> buf{};
    ssize_t got = ::getrandom(buf.data(), buf.size(), 0);
    if (got <= 0) {  // broken invariant: the kernel has no entropy for us
      std::fputs("opensense: getrandom failed; cannot mint tokens\n", stderr);
      std::abort();
    }
    for (ssize_t i = 0; i < got && out.size() < n; ++i) {
      if (buf[static_cast<std::size_t>(i)] < 248) out.push_back(kAlphabet[buf[static_cast<std::size_t>(i)] % 62]);
    }
  }
  return out;
}

std::string FormatToken(const TokenParts& parts) {
  std::string body = std::string(TokenPrefix(parts.kind)) + "_" + parts.token_id + "_" + parts.secret;
  return body + Checksum(body);
}

Result<TokenParts> ParseToken(std::string_view text) {
  const std::size_t expected = 3 + 1 + kTokenIdLength + 1 + kSecretLength + kChecksumLength;
  if (text.size() != expected || text[3] != '_' || text[4 + kTokenIdLength] != '_') return Refused();
  TokenParts parts;
  std::string_view prefix = text.substr(0, 3);
  if (prefix == "osd") parts.kind = TokenKind::kDevice;
  else if (prefix == "osg") parts.kind = TokenKind::kGateway;
  else if (prefix == "osk") parts.kind = TokenKind::kUser;
  else return Refused();
  std::string_view id = text.substr(4, kTokenIdLength);
  std::string_view secret = text.substr(5 + kTokenIdLength, kSecretLength);
  std::string_view checksum = text.substr(5 + kTokenIdLength + kSecretLength);
  for (char c : id) if (!IsBase62(c)) return Refused();
  for (char c : secret) if (!IsBase62(c)) return Refused();
  if (Checksum(text.substr(0, expected - kChecksumLength)) != checksum) return Refused();
  parts.token_id = std::string(id);
  parts.secret = std::string(secret);
  return parts;
}

}  // namespace opensense::auth
