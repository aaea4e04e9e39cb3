#pragma once

// HChaCha20 (draft-irtf-cfrg-xchacha §2.2): derives the XChaCha20 subkey from a 32-byte key and
// the first 16 bytes of the 24-byte nonce. OpenSSL 3.0 has no XChaCha20, so the content cipher
// combines this with OpenSSL's IETF ChaCha20-Poly1305 exactly as gocryptfs's
// internal/stupidgcm/xchacha.go does.
// Thread-safety: pure function. The caller cleanses `out`.

#include <cstdint>
#include <span>

namespace cachefs::crypto {

void HChaCha20(std::span<const uint8_t, 32> key, std::span<const uint8_t, 16> nonce,
               std::span<uint8_t, 32> out);

}  // namespace cachefs::crypto
