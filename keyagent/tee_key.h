#pragma once

// The ephemeral TEE key pair of one KBS session and decryption of the resource reply sealed to it.
//
// Trustee encrypts a released resource to the `tee-pubkey` the guest put into its attested
// runtime data, as a JWE (RFC 7516 flattened JSON): ECDH-ES+A256KW with A256GCM for EC P-256
// keys (protocol 0.4.0 default), RSA-OAEP-256 for RSA keys, and RSA1_5 with a non-standard layout
// for protocol 0.1.x (kbs-protocol.md §1.8, §1.10). The private key never leaves this object
// (OpenSSL keeps EC private scalars in its secure heap); the object is move-only.

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "common/error.h"
#include "common/secret_bytes.h"
#include "keyagent/json_util.h"

namespace cachefs::keyagent {

enum class TeeKeyAlgorithm {
  kEcdhEsA256kwP256,  // JWK {"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW"}: protocol >= 0.2
  kRsaOaep256,        // JWK {"kty":"RSA","alg":"RSA-OAEP-256"}, 2048-bit
  kRsa1_5,            // JWK {"kty":"RSA","alg":"RSA1_5"}, 2048-bit: protocol 0.1.x only
};

class TeeKeyPair {
 public:
  // A fresh key pair. Fails only if OpenSSL cannot generate keys (kInternal).
  static Result<TeeKeyPair> Generate(TeeKeyAlgorithm algorithm);
  // Loads a PEM private key (PKCS#8 or PKCS#1/SEC1), for tests against fixed vectors.
  static Result<TeeKeyPair> FromPrivateKeyPem(std::string_view pem, TeeKeyAlgorithm algorithm);

  TeeKeyPair(TeeKeyPair&&) noexcept = default;
  TeeKeyPair& operator=(TeeKeyPair&&) noexcept = default;

  TeeKeyAlgorithm algorithm() const { return algorithm_; }
  // The `tee-pubkey` JWK: EC {"kty","crv","alg","x","y"} with coordinates left-padded to 32
  // bytes, RSA {"kty","alg","n","e"}; all unpadded base64url.
  const Json& public_jwk() const { return jwk_; }

  // Decrypts a KBS resource reply addressed to this key: the standard flattened JWE (base64url
  // `protected`, AAD = that string) or the 0.1.x form (raw-JSON `protected`, no AAD, tag appended
  // to `ciphertext`). The header's alg must match this key and enc must be A256GCM. Fails with
  // kCorrupt on a malformed reply or failed authentication, kUnsupported on other algorithms.
  Result<SecretBytes> Decrypt(const Json& response) const;

 private:
  struct PkeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  };
  using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

  TeeKeyPair(Pkey key, TeeKeyAlgorithm algorithm, Json jwk)
      : key_(std::move(key)), algorithm_(algorithm), jwk_(std::move(jwk)) {}
  static Result<TeeKeyPair> FromPkey(Pkey key, TeeKeyAlgorithm algorithm);
  Result<SecretBytes> UnwrapEcdhEs(const Json& header, std::span<const uint8_t> wrapped) const;
  Result<SecretBytes> UnwrapRsa(std::span<const uint8_t> wrapped) const;

  Pkey key_;
  TeeKeyAlgorithm algorithm_;
  Json jwk_;
};

// JOSE Concat KDF (RFC 7518 §4.6.2; NIST SP 800-56A §5.8.1 with SHA-256): `key_bits` of key from
// the ECDH shared secret `z`, with AlgorithmID, PartyUInfo and PartyVInfo length-prefixed and
// SuppPubInfo = key_bits. Trustee uses empty party infos.
SecretBytes ConcatKdf(std::span<const uint8_t> z, std::string_view algorithm_id,
                      std::span<const uint8_t> party_u, std::span<const uint8_t> party_v,
                      size_t key_bits);

}  // namespace cachefs::keyagent
