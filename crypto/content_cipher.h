#pragma once

// File contents: the 18-byte header and independently sealed 4096-byte blocks.
// Spec: shared/docs/gocryptfs-format.md §4 and §7.1.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/error.h"
#include "common/secret_bytes.h"
#include "common/task_pool.h"
#include "crypto/volume_config.h"

namespace cachefs::crypto {

using FileId = std::array<uint8_t, 16>;

// Thread-safety: all const methods may be called concurrently from any threads. Failure modes:
// Result errors only, never throws: kCorrupt for anything wrong with the ciphertext,
// kInternal for a too-small output buffer or an OpenSSL failure.
//
// Performance: each algorithm keeps a pool of EVP contexts with the key schedule already set
// (see crypto/cipher_ctx_pool.h); AES-GCM re-initialises only the IV per block, and
// DecryptBlocks allocates nothing per block and decrypts straight into `plain`.
class ContentCipher {
 public:
  static constexpr size_t kHeaderSize = 18;
  static constexpr size_t kPlainBlockSize = 4096;

  // `content_key` is the derived content key (32 bytes; 64 for AES-SIV). With a key of the
  // wrong length every decryption fails with kInternal.
  ContentCipher(ContentAlgorithm algorithm, SecretBytes content_key);
  ~ContentCipher();
  ContentCipher(const ContentCipher&) = delete;
  ContentCipher& operator=(const ContentCipher&) = delete;

  ContentAlgorithm algorithm() const { return algorithm_; }
  size_t nonce_size() const;  // 16, or 24 for XChaCha20-Poly1305
  size_t overhead() const { return nonce_size() + 16; }
  size_t cipher_block_size() const { return kPlainBlockSize + overhead(); }

  // Plaintext size as gocryptfs reports it for a ciphertext file of `cipher_size` bytes.
  uint64_t PlainSize(uint64_t cipher_size) const;
  // Ciphertext size of a file with `plain_size` bytes of plaintext.
  uint64_t CipherSize(uint64_t plain_size) const;

  // Validates the first 18 bytes of `header` (not all zero, version 2, non-zero file ID) and
  // returns the file ID; kCorrupt otherwise.
  Result<FileId> ParseHeader(std::span<const uint8_t> header) const;

  // Decrypts the ciphertext blocks in `cipher`, the first being block `first_block` of the
  // file with `file_id`, into `plain`. `cipher` holds whole blocks except that the last may be
  // short (end of file). `plain` must hold the plaintext: (blocks - 1) × 4096 bytes plus the
  // last block's plaintext (blocks × 4096 always suffices). Full all-zero blocks are holes and
  // decrypt to zeros. Returns the plaintext byte count. On a bad block fails with
  // Errc::kCorrupt and a message naming the lowest bad block number ("block 7: authentication
  // failed", "block 3: all-zero nonce", "block 2: block too short"); the bad block's slice of
  // `plain` is zeroed, never left holding unauthenticated bytes. With a pool the request is
  // split into pieces of at least 16 blocks (64 KiB) run on the pool's threads and the caller.
  // An empty `cipher` decrypts to 0 bytes. Thread-safe.
  Result<size_t> DecryptBlocks(std::span<const uint8_t> cipher, uint64_t first_block,
                               const FileId& file_id, std::span<uint8_t> plain,
                               TaskPool* pool = nullptr) const;

  // Opens one sealed value with AAD = BE64(0) and no file ID: symlink targets (after base64
  // decoding) and xattr values. Empty input gives an empty string (an empty symlink target);
  // failures are kCorrupt.
  Result<std::string> OpenSmall(std::span<const uint8_t> sealed) const;

 private:
  class Impl;
  ContentAlgorithm algorithm_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cachefs::crypto
