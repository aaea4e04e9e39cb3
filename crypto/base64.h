#pragma once

// Strict base64 (RFC 4648) in the four variants gocryptfs uses: standard alphabet with padding
// for gocryptfs.conf byte strings, URL alphabet padded or unpadded ("Raw64") for names, symlink
// targets and long-name hashes.
//
// Decoding is strict like Go's Encoding.Strict() (gocryptfs >= 2.5): non-zero unused bits in the
// last character, '=' in unpadded mode, missing or misplaced padding, CR/LF and any character
// outside the alphabet are rejected, so every byte string has exactly one accepted encoding.
// Thread-safety: pure functions.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cachefs::crypto {

enum class Base64Alphabet { kStandard, kUrl };

std::string Base64Encode(std::span<const uint8_t> data, Base64Alphabet alphabet, bool padded);

// nullopt when `text` is not the canonical encoding of some byte string.
std::optional<std::vector<uint8_t>> Base64Decode(std::string_view text, Base64Alphabet alphabet,
                                                 bool padded);

}  // namespace cachefs::crypto
