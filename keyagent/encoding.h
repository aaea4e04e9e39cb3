#pragma once

// Base64 (standard and URL-safe alphabets) as the KBS protocol and JOSE use it, and hex.
// Decoders reject anything malformed instead of skipping it, because every input here comes from
// the network.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace cachefs::keyagent {

// Standard alphabet with '=' padding (RFC 4648 §4): quotes, evidence, KBS nonces.
std::string Base64Encode(std::span<const uint8_t> data);
// URL-safe alphabet without padding (RFC 4648 §5, RFC 7515 "base64url"): JWK and JWE members.
std::string Base64UrlEncode(std::span<const uint8_t> data);

// Decodes either alphabet, padded or not (peers disagree on both). Fails with kCorrupt on a
// character outside the alphabet, misplaced padding or an impossible length.
Result<std::vector<uint8_t>> Base64Decode(std::string_view text);

// Lower-case hex, for measurements and digests in messages.
std::string HexEncode(std::span<const uint8_t> data);

inline std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

}  // namespace cachefs::keyagent
