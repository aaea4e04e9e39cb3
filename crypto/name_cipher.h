#pragma once

// File names: EME-encrypted, PKCS#7-padded, base64url (Raw64 or padded), long names hashed.
// Spec: shared/docs/gocryptfs-format.md §5 and §6.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/secret_bytes.h"

namespace cachefs::crypto {

using DirIv = std::array<uint8_t, 16>;

class NameCipher {
 public:
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

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cachefs::crypto
