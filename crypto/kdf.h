#pragma once

// Key-derivation and one-shot primitives used when a volume is unlocked: scrypt, HKDF-SHA256,
// SHA-256/512 and a single AES-256-GCM open (the master-key unwrap). Not on the data path.
//
// Thread-safety: every function is reentrant. Failure modes: Result errors only, never throws.

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "common/error.h"
#include "common/secret_bytes.h"

namespace cachefs::crypto {

// Upper bound on the memory scrypt may use (128·r·(N+p+2) bytes): 2 GiB admits N = 2^21 at
// r = 8, eight times the gocryptfs default, while a hostile config cannot make the daemon
// allocate without bound.
inline constexpr uint64_t kMaxScryptMemory = uint64_t{2} << 30;

// scrypt(password, salt, N, r, p, key_len). Fails with kUnsupported when the parameters need
// more than kMaxScryptMemory, kInternal when OpenSSL fails.
Result<SecretBytes> Scrypt(const SecretBytes& password, std::span<const uint8_t> salt, uint64_t n,
                           uint32_t r, uint32_t p, size_t key_len);

// HKDF-SHA256 (RFC 5869) without salt, as gocryptfs uses it: hkdf.New(sha256.New, ikm, nil,
// info).
Result<SecretBytes> HkdfSha256(std::span<const uint8_t> ikm, std::string_view info, size_t length);

std::array<uint8_t, 32> Sha256(std::span<const uint8_t> data);

// SHA-512 of key material (the AES-SIV key of volumes without HKDF), kept in secure memory.
Result<SecretBytes> Sha512Secret(std::span<const uint8_t> data);

// AES-256-GCM open with any nonce length (12 or 16 here) and a 16-byte tag at the end of
// `sealed`. Returns the plaintext in secure memory, or kCorrupt when authentication fails.
Result<SecretBytes> AesGcmOpenSecret(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                                     std::span<const uint8_t> aad, std::span<const uint8_t> sealed);

}  // namespace cachefs::crypto
