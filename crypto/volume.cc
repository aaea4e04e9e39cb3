#include "crypto/volume.h"

#include "crypto/kdf.h"

namespace cachefs::crypto {
namespace {

constexpr size_t kMasterKeySize = 32;

// §3 of the format spec: which content key each algorithm uses, with and without HKDF.
Result<SecretBytes> DeriveContentKey(const VolumeConfig& config, const SecretBytes& master) {
  switch (config.content_algorithm) {
    case ContentAlgorithm::kAesGcm:
      if (config.hkdf) {
        return HkdfSha256(master.span(), "AES-GCM file content encryption", 32);
      }
      return master.Clone();
    case ContentAlgorithm::kAesSiv:
      if (config.hkdf) {
        return HkdfSha256(master.span(), "AES-SIV file content encryption", 64);
      }
      return Sha512Secret(master.span());
    case ContentAlgorithm::kXChaCha20Poly1305:
      if (config.hkdf) {
        return HkdfSha256(master.span(), "XChaCha20-Poly1305 file content encryption", 32);
      }
      // ParseVolumeConfig refuses this combination; a hand-built config must not slip by.
      return Error(Errc::kInvalidArgument, "XChaCha20-Poly1305 requires HKDF");
  }
  return Error(Errc::kInternal, "unknown content algorithm");
}

}  // namespace

Result<std::unique_ptr<Volume>> Volume::Create(const VolumeConfig& config, SecretBytes master_key) {
  if (master_key.size() != kMasterKeySize) {
    return Error(Errc::kInvalidArgument, "master key must be 32 bytes");
  }
  CACHEFS_ASSIGN_OR_RETURN(SecretBytes content_key, DeriveContentKey(config, master_key));
  auto content = std::make_unique<ContentCipher>(config.content_algorithm, std::move(content_key));
  std::unique_ptr<NameCipher> names;
  if (!config.plaintext_names) {
    SecretBytes eme_key;
    if (config.hkdf) {
      CACHEFS_ASSIGN_OR_RETURN(eme_key,
                               HkdfSha256(master_key.span(), "EME filename encryption", 32));
    } else {
      eme_key = master_key.Clone();
    }
    names = std::make_unique<NameCipher>(std::move(eme_key), config.raw64, config.long_name_max);
  }
  CACHEFS_ASSIGN_OR_RETURN(SecretBytes sharing_group_key,
                           HkdfSha256(master_key.span(), "cachefs sharing group key v1", 32));
  // `master_key` is cleansed by its destructor when this returns.
  return std::unique_ptr<Volume>(
      new Volume(config, std::move(content), std::move(names), std::move(sharing_group_key)));
}

Result<std::unique_ptr<Volume>> Volume::Unlock(const VolumeConfig& config,
                                               const SecretBytes& password) {
  CACHEFS_ASSIGN_OR_RETURN(SecretBytes master_key, UnwrapMasterKey(config, password));
  return Create(config, std::move(master_key));
}

Result<std::string> Volume::DecryptSymlinkTarget(std::string_view stored) const {
  if (config_.plaintext_names) {
    return std::string(stored);
  }
  CACHEFS_ASSIGN_OR_RETURN(std::string sealed, names_->DecodeBase64(stored));
  // reinterpret_cast: the decoded bytes held in a std::string, viewed as uint8_t.
  return content_->OpenSmall(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(sealed.data()), sealed.size()));
}

}  // namespace cachefs::crypto
