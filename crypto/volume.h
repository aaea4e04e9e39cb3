#pragma once

// An unlocked gocryptfs volume: the content and name ciphers derived from the master key.

#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/secret_bytes.h"
#include "crypto/content_cipher.h"
#include "crypto/name_cipher.h"
#include "crypto/volume_config.h"

namespace cachefs::crypto {

// Thread-safety: immutable after creation; every const method may be called concurrently.
// Failure modes: Result errors only, never throws.
class Volume {
 public:
  // Derives the keys (HKDF or not, per the config); the master key is cleansed when this
  // returns.
  static Result<std::unique_ptr<Volume>> Create(const VolumeConfig& config, SecretBytes master_key);

  // Derives kdfOut from `password` (scrypt: tens of milliseconds to seconds), unwraps the
  // master key and creates the volume. A wrong password fails with kPermissionDenied.
  static Result<std::unique_ptr<Volume>> Unlock(const VolumeConfig& config,
                                                const SecretBytes& password);

  const VolumeConfig& config() const { return config_; }
  const ContentCipher& content() const { return *content_; }
  // Absent (nullptr) for PlaintextNames volumes.
  const NameCipher* names() const { return names_.get(); }

  // 32 bytes derived with HKDF-SHA256 from the master key (info "cachefs sharing group key
  // v1"; computed in Create, so the master key is still cleansed there). Every node that
  // unlocked this volume derives the same key: it roots the sharing group's peer
  // authentication and chunk tags (p2p/), and reveals nothing about the content or name keys.
  const SecretBytes& sharing_group_key() const { return sharing_group_key_; }

  // Decrypts a stored symlink target (base64 + sealed, or verbatim with PlaintextNames);
  // kCorrupt when it does not decode or authenticate.
  Result<std::string> DecryptSymlinkTarget(std::string_view stored) const;

 private:
  Volume(VolumeConfig config, std::unique_ptr<ContentCipher> content,
         std::unique_ptr<NameCipher> names, SecretBytes sharing_group_key)
      : config_(std::move(config)),
        content_(std::move(content)),
        names_(std::move(names)),
        sharing_group_key_(std::move(sharing_group_key)) {}

  VolumeConfig config_;
  std::unique_ptr<ContentCipher> content_;
  std::unique_ptr<NameCipher> names_;
  SecretBytes sharing_group_key_;
};

}  // namespace cachefs::crypto
