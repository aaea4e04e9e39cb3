#pragma once

// EME ("ECB-Mix-ECB", Halevi & Rogaway), the wide-block tweakable cipher gocryptfs uses for
// file names, over AES-256. Byte-compatible with repo rfjakob/eme v1.1.2 (EMETransform).
// Spec: gocryptfs-format.md §5.
//
// Thread-safety: Encrypt/Decrypt may be called concurrently. Failure modes: kInvalidArgument
// for a length that is not 1…128 AES blocks, kInternal when OpenSSL fails.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/error.h"
#include "common/secret_bytes.h"
#include "crypto/context_pool.h"

namespace cachefs::crypto {

class Eme {
 public:
  static constexpr size_t kBlockSize = 16;
  static constexpr size_t kMaxBlocks = 128;

  // `key` is a 32-byte AES-256 key.
  static Result<std::unique_ptr<Eme>> Create(std::span<const uint8_t> key);

  Result<std::vector<uint8_t>> Encrypt(std::span<const uint8_t, 16> tweak,
                                       std::span<const uint8_t> data) const;
  Result<std::vector<uint8_t>> Decrypt(std::span<const uint8_t, 16> tweak,
                                       std::span<const uint8_t> data) const;

 private:
  explicit Eme(SecretBytes key);
  Result<std::vector<uint8_t>> Transform(std::span<const uint8_t, 16> tweak,
                                         std::span<const uint8_t> data, bool encrypt) const;

  SecretBytes key_;
  SecretBytes l_base_;  // AES-encrypt_K(0^16): derived from the key, so kept secret too
  mutable CipherContextPool encrypt_pool_;
  mutable CipherContextPool decrypt_pool_;
};

}  // namespace cachefs::crypto
