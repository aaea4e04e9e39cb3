#pragma once

// gocryptfs.conf (format version 2): parsing, validation and master-key unwrapping.
// Spec: shared/docs/gocryptfs-format.md §2.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/secret_bytes.h"

namespace cachefs::crypto {

enum class ContentAlgorithm { kAesGcm, kAesSiv, kXChaCha20Poly1305 };

const char* ContentAlgorithmName(ContentAlgorithm algorithm);

struct ScryptParams {
  std::vector<uint8_t> salt;
  uint64_t n = 0;
  uint32_t r = 0;
  uint32_t p = 0;
  uint32_t key_len = 0;
};

struct VolumeConfig {
  std::string creator;
  std::vector<std::string> feature_flags;  // as listed in the file
  ScryptParams scrypt;
  std::vector<uint8_t> encrypted_key;  // nonce || wrapped key || tag

  bool hkdf = false;
  bool raw64 = false;
  bool plaintext_names = false;
  bool deterministic_names = false;  // no DirIV flag: the name tweak is 16 zero bytes
  ContentAlgorithm content_algorithm = ContentAlgorithm::kAesGcm;
  size_t long_name_max = 255;  // encoded names longer than this are stored as long names
};

// Parses and validates a gocryptfs.conf. Refuses, with a one-line message starting
// "gocryptfs.conf: " and naming the problem: malformed JSON or field types, a version other
// than 2, an unknown feature flag, a FIDO2 volume, weak or oversized scrypt parameters
// (N < 1024 or not a power of two, R < 8, P outside 1…16, salt < 32 bytes, KeyLen != 32), an
// EncryptedKey of the wrong length, and every flag combination gocryptfs 2.3/2.4 refuse (e.g.
// AES-GCM without GCMIV128). Keys match case-insensitively and unknown keys are ignored, as
// with Go's encoding/json. kUnsupported for versions, flags and FIDO2, kInvalidArgument for
// the rest. Never throws. Thread-safe.
Result<VolumeConfig> ParseVolumeConfig(std::string_view json);

// scrypt + (HKDF) + AES-256-GCM unwrap of the master key. A wrong password fails with
// Errc::kPermissionDenied ("password incorrect"), an empty one with kInvalidArgument. scrypt
// memory is capped (crypto/kdf.h kMaxScryptMemory, 2 GiB): beyond it kUnsupported. All
// intermediate keys live in SecretBytes. Thread-safe.
Result<SecretBytes> UnwrapMasterKey(const VolumeConfig& config, const SecretBytes& password);

}  // namespace cachefs::crypto
