#pragma once

// Key material and proofs of the sharing group. Every node that unlocked the model holds the
// same 32-byte group key (crypto::Volume::sharing_group_key(), HKDF over the master key); from
// it this file derives, again with HKDF-SHA256:
//   - the auth key: HMAC-SHA256 challenge-response proofs exchanged by Hello/Join, bound to
//     both nodes' TLS certificate fingerprints and node ids, so a relay cannot forward them;
//   - the chunk key: a GMAC (AES-256-GCM with no plaintext) over a chunk's identity (object key,
//     ETag, object size, index) and its bytes. GMAC rather than HMAC-SHA256 because the tag is
//     computed and checked once per transferred byte on both ends: GHASH runs at several GB/s
//     per core, SHA-256 at about 2.
// Each node also makes an ephemeral self-signed TLS identity (EC P-256) at start.
//
// Thread-safety: GroupKeys and TlsIdentity are immutable after creation; all functions are
// reentrant. Failure modes: Result errors only (kInternal when OpenSSL fails), never throws.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/secret_bytes.h"

namespace cachefs::p2p {

inline constexpr size_t kNonceSize = 32;     // Hello/Join challenge nonces
inline constexpr size_t kTagNonceSize = 12;  // GMAC nonce
inline constexpr size_t kTagSize = 16;       // GMAC tag
inline constexpr size_t kProofSize = 32;     // HMAC-SHA256
inline constexpr size_t kNodeIdSize = 16;

using Fingerprint = std::array<uint8_t, 32>;  // SHA-256 of a certificate's DER encoding

class GroupKeys {
 public:
  // `group_key` must be at least 32 bytes (kInvalidArgument otherwise).
  static Result<GroupKeys> Derive(std::span<const uint8_t> group_key);

  // Proof that the sender of `role` ("server" or "client") holds the key, over both nonces,
  // both node ids and both certificates (the sender's first).
  std::array<uint8_t, kProofSize> Proof(std::string_view role,
                                        std::span<const uint8_t> client_nonce,
                                        std::span<const uint8_t> server_nonce,
                                        std::span<const uint8_t> sender_id,
                                        std::span<const uint8_t> receiver_id,
                                        const Fingerprint& sender_cert,
                                        const Fingerprint& receiver_cert) const;
  // Constant-time check of a proof made with the same arguments.
  bool CheckProof(std::span<const uint8_t> proof, std::string_view role,
                  std::span<const uint8_t> client_nonce, std::span<const uint8_t> server_nonce,
                  std::span<const uint8_t> sender_id, std::span<const uint8_t> receiver_id,
                  const Fingerprint& sender_cert, const Fingerprint& receiver_cert) const;

  // GMAC tag of chunk `index` (`bytes`) of object `key` at version `etag` / `object_size`.
  Result<std::array<uint8_t, kTagSize>> ChunkTag(std::span<const uint8_t> nonce,
                                                 std::string_view key, std::string_view etag,
                                                 uint64_t object_size, uint64_t index,
                                                 std::span<const uint8_t> bytes) const;
  // kCorrupt when `tag` does not match.
  Status CheckChunkTag(std::span<const uint8_t> tag, std::span<const uint8_t> nonce,
                       std::string_view key, std::string_view etag, uint64_t object_size,
                       uint64_t index, std::span<const uint8_t> bytes) const;

 private:
  GroupKeys(SecretBytes auth, SecretBytes chunk)
      : auth_(std::move(auth)), chunk_(std::move(chunk)) {}
  SecretBytes auth_;
  SecretBytes chunk_;
};

// Fills `out` with bytes from the OpenSSL CSPRNG; false when it fails.
bool RandomBytes(std::span<uint8_t> out);

struct TlsIdentity {
  std::string private_key_pem;  // never logged; lives as long as the node
  std::string certificate_pem;
  Fingerprint fingerprint{};
};

// A fresh EC P-256 key and a self-signed certificate (CN `common_name`, valid one year from
// an hour ago: peers do not check validity, but TLS stacks refuse not-yet-valid certs).
Result<TlsIdentity> MakeTlsIdentity(std::string_view common_name);

// SHA-256 of the DER form of the first certificate in `pem`; kInvalidArgument if it does not
// parse.
Result<Fingerprint> CertificateFingerprint(std::string_view pem);

}  // namespace cachefs::p2p
