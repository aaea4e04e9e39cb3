#pragma once

// File names: EME-encrypted, PKCS#7-padded, base64url (Raw64 or padded), long names hashed.
// Spec: shared/docs/gocryptfs-format.md §5 and §6.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/secret_bytes.h"

namespace cachefs::crypto {

using DirIv = std::array<uint8_t, 16>;

// Thread-safety: every method may be called concurrently. Failure modes: Result errors only
// (kCorrupt for undecryptable cipher names, kInvalidArgument for unusable plaintext names,
// kInternal when the key was unusable or OpenSSL failed); never throws.
class NameCipher {
 public:
  static constexpr std::string_view kLongNamePrefix = "gocryptfs.longname.";
  static constexpr std::string_view kLongNameSuffix = ".name";
  // gocryptfs refuses .name companions that are empty or longer than this.
  static constexpr size_t kMaxLongNameFileSize = 344;

  // `eme_key` is the 32-byte derived name key; `long_name_max` the encoded-name length above
  // which names are hashed (255, or the LongNameMax config value).
  NameCipher(SecretBytes eme_key, bool raw64, size_t long_name_max);
  ~NameCipher();
  NameCipher(const NameCipher&) = delete;
  NameCipher& operator=(const NameCipher&) = delete;

  // Decrypts an encoded cipher name (not a gocryptfs.longname.* name: pass the content of its
  // .name companion). Rejects bad base64 (strictly, as gocryptfs 2.5), bad padding, and names
  // that are empty, ".", "..", longer than 255 bytes, or contain '/' or NUL.
  Result<std::string> DecryptName(std::string_view cipher_name, const DirIv& dir_iv) const;

  // The name a plaintext component is stored under: the encoded cipher name, or
  // "gocryptfs.longname.<hash>" when that is longer than the long-name limit.
  Result<std::string> EncryptName(std::string_view plain_name, const DirIv& dir_iv) const;

  // Decodes base64url per the volume's Raw64 setting (symlink targets use it too).
  Result<std::string> DecodeBase64(std::string_view text) const;
  std::string EncodeBase64(std::span<const uint8_t> data) const;

  // "gocryptfs.longname." + base64url(SHA-256(cipher_name)): the name an over-long encoded
  // cipher name is stored under.
  std::string LongNameFor(std::string_view cipher_name) const;

  // "gocryptfs.longname.*" but not a companion; "gocryptfs.longname.*.name" (textual checks,
  // as gocryptfs does them).
  static bool IsLongName(std::string_view name);
  static bool IsLongNameCompanion(std::string_view name);

  bool raw64() const;
  size_t long_name_max() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cachefs::crypto
