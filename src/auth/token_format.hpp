// The text form of bearer tokens: <prefix>_<token-id>_<secret><checksum>.
//
//   osd_ device ingest token, osg_ site gateway token, osk_ user API token.
//   token-id: 12 base62 characters (finds the row in O(1); not secret).
//   secret:   24 base62 characters (~142 bits; only its bcrypt hash is stored).
//   checksum: 6 base62 characters of CRC-32 over everything before it, so a mistyped or
//             truncated token is refused before any lookup, and secret scanners can verify a find.
// Pure functions; no I/O.
#pragma once

#include <string>
#include <string_view>

#include "core/types.hpp"

namespace opensense::auth {

inline constexpr std::size_t kTokenIdLength = 12;
inline constexpr std::size_t kSecretLength = 24;
inline constexpr std::size_t kChecksumLength = 6;

struct TokenParts {
  TokenKind kind = TokenKind::kDevice;
  std::string token_id;
  std::string secret;
};

std::string_view TokenPrefix(TokenKind kind);  // "osd", "osg", "osk"
std::string FormatToken(const TokenParts& parts);
// Refuses wrong prefixes, lengths, characters and checksums (kPermissionDenied, no detail leak).
Result<TokenParts> ParseToken(std::string_view text);

// `n` random base62 characters from the operating system's CSPRNG.
std::string RandomBase62(std::size_t n);

}  // namespace opensense::auth
