#include "crypto/volume_config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "crypto/base64.h"
#include "crypto/kdf.h"

namespace cachefs::crypto {
namespace {

using nlohmann::json;

constexpr std::string_view kFlagHkdf = "HKDF";
constexpr std::string_view kFlagGcmIv128 = "GCMIV128";
constexpr std::string_view kFlagDirIv = "DirIV";
constexpr std::string_view kFlagEmeNames = "EMENames";
constexpr std::string_view kFlagLongNames = "LongNames";
constexpr std::string_view kFlagRaw64 = "Raw64";
constexpr std::string_view kFlagPlaintextNames = "PlaintextNames";
constexpr std::string_view kFlagAesSiv = "AESSIV";
constexpr std::string_view kFlagXChaCha = "XChaCha20Poly1305";
constexpr std::string_view kFlagLongNameMax = "LongNameMax";
constexpr std::string_view kFlagFido2 = "FIDO2";

// The eleven flags gocryptfs 2.3/2.4 know; flag names are compared case-sensitively, as Go does.
constexpr std::array<std::string_view, 11> kKnownFlags = {
    kFlagHkdf,           kFlagGcmIv128, kFlagDirIv,   kFlagEmeNames,    kFlagLongNames, kFlagRaw64,
    kFlagPlaintextNames, kFlagAesSiv,   kFlagXChaCha, kFlagLongNameMax, kFlagFido2,
};

constexpr size_t kMinSaltSize = 32;
constexpr uint64_t kMinScryptN = 1024;
constexpr uint32_t kMinScryptR = 8;
constexpr uint32_t kMaxScryptP = 16;  // gocryptfs writes 1; bounds the work of a hostile config
constexpr size_t kMasterKeySize = 32;
constexpr size_t kGcmTagSize = 16;

Error ConfigError(Errc code, const std::string& what) {
  return Error(code, "gocryptfs.conf: " + what);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Go's encoding/json matches object keys case-insensitively; with duplicates the last wins.
const json* FindKey(const json& object, std::string_view key) {
  const json* found = nullptr;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (EqualsIgnoreCase(it.key(), key)) {
      found = &it.value();
    }
  }
  return found != nullptr && found->is_null() ? nullptr : found;  // null leaves the zero value
}

// Reads an integer field into [min, max]; absent or null leaves `*out` unchanged.
template <typename T>
std::optional<Error> ReadInteger(const json& object, std::string_view key, std::string_view where,
                                 T* out) {
  const json* value = FindKey(object, key);
  if (value == nullptr) {
    return std::nullopt;
  }
  const std::string name = std::string(where) + std::string(key);
  if (!value->is_number_integer()) {
    return ConfigError(Errc::kInvalidArgument, name + " is not an integer");
  }
  if (value->is_number_unsigned()) {
    const uint64_t v = value->get<uint64_t>();
    if (v > std::numeric_limits<T>::max()) {
      return ConfigError(Errc::kInvalidArgument, name + " is out of range");
    }
    *out = static_cast<T>(v);
    return std::nullopt;
  }
  const int64_t v = value->get<int64_t>();
  if (v < 0 || static_cast<uint64_t>(v) > std::numeric_limits<T>::max()) {
    return ConfigError(Errc::kInvalidArgument, name + " is out of range");
  }
  *out = static_cast<T>(v);
  return std::nullopt;
}

// Go encodes []byte as standard base64 with padding.
std::optional<Error> ReadBytes(const json& object, std::string_view key, std::string_view where,
                               std::vector<uint8_t>* out) {
  const json* value = FindKey(object, key);
  if (value == nullptr) {
    return std::nullopt;
  }
  const std::string name = std::string(where) + std::string(key);
  if (!value->is_string()) {
    return ConfigError(Errc::kInvalidArgument, name + " is not a string");
  }
  auto decoded =
      Base64Decode(value->get_ref<const std::string&>(), Base64Alphabet::kStandard, true);
  if (!decoded) {
    return ConfigError(Errc::kInvalidArgument, name + " is not valid base64");
  }
  *out = std::move(*decoded);
  return std::nullopt;
}

bool HasFlag(const VolumeConfig& config, std::string_view flag) {
  return std::find(config.feature_flags.begin(), config.feature_flags.end(), flag) !=
         config.feature_flags.end();
}

// The checks of gocryptfs's ConfFile.Validate (internal/configfile/validate.go), in its order.
std::optional<Error> Validate(const VolumeConfig& config, uint16_t version,
                              uint64_t long_name_max) {
  if (version != 2) {
    return ConfigError(Errc::kUnsupported, "unsupported on-disk format version " +
                                               std::to_string(version) + " (expected 2)");
  }
  const ScryptParams& s = config.scrypt;
  if (s.salt.size() < kMinSaltSize) {
    return ConfigError(Errc::kInvalidArgument, "scrypt salt is " + std::to_string(s.salt.size()) +
                                                   " bytes, at least 32 required");
  }
  if (s.n < kMinScryptN || (s.n & (s.n - 1)) != 0) {
    return ConfigError(Errc::kInvalidArgument,
                       "scrypt N = " + std::to_string(s.n) + " is not a power of two >= 1024");
  }
  if (s.r < kMinScryptR) {
    return ConfigError(Errc::kInvalidArgument, "scrypt R = " + std::to_string(s.r) + " is below 8");
  }
  if (s.p < 1 || s.p > kMaxScryptP) {
    return ConfigError(Errc::kInvalidArgument,
                       "scrypt P = " + std::to_string(s.p) + " is outside 1…16");
  }
  if (s.key_len != kMasterKeySize) {
    // gocryptfs accepts KeyLen > 32 in validation and then crashes, so only 32 can work.
    return ConfigError(Errc::kInvalidArgument,
                       "scrypt KeyLen = " + std::to_string(s.key_len) + ", expected 32");
  }
  for (const std::string& flag : config.feature_flags) {
    if (std::find(kKnownFlags.begin(), kKnownFlags.end(), flag) == kKnownFlags.end()) {
      return ConfigError(Errc::kUnsupported, "unknown feature flag \"" + flag + "\"");
    }
  }
  if (HasFlag(config, kFlagFido2)) {
    return ConfigError(Errc::kUnsupported,
                       "FIDO2-protected volumes are not supported (the key needs a FIDO2 token)");
  }
  const bool xchacha = HasFlag(config, kFlagXChaCha);
  const bool siv = HasFlag(config, kFlagAesSiv);
  const bool gcmiv128 = HasFlag(config, kFlagGcmIv128);
  if (xchacha && siv) {
    return ConfigError(Errc::kInvalidArgument,
                       "can't have both XChaCha20Poly1305 and AESSIV feature flags");
  }
  if (siv && !gcmiv128) {
    return ConfigError(Errc::kInvalidArgument, "AESSIV requires GCMIV128 feature flag");
  }
  if (xchacha && gcmiv128) {
    return ConfigError(Errc::kInvalidArgument,
                       "XChaCha20Poly1305 conflicts with GCMIV128 feature flag");
  }
  if (xchacha && !HasFlag(config, kFlagHkdf)) {
    return ConfigError(Errc::kInvalidArgument, "XChaCha20Poly1305 requires HKDF feature flag");
  }
  if (!xchacha && !siv && !gcmiv128) {
    // The 96-bit nonces of gocryptfs <= v0.6 (fixtures v0.4 to v0.6).
    return ConfigError(Errc::kUnsupported,
                       "AES-GCM requires GCMIV128 feature flag (volume from gocryptfs 0.6 or "
                       "older)");
  }
  if (HasFlag(config, kFlagPlaintextNames)) {
    for (std::string_view other :
         {kFlagEmeNames, kFlagDirIv, kFlagLongNames, kFlagRaw64, kFlagLongNameMax}) {
      if (HasFlag(config, other)) {
        return ConfigError(Errc::kInvalidArgument,
                           "PlaintextNames conflicts with " + std::string(other) + " feature flag");
      }
    }
  }
  const bool long_name_max_flag = HasFlag(config, kFlagLongNameMax);
  if (long_name_max != 0 && !long_name_max_flag) {
    return ConfigError(Errc::kInvalidArgument, "LongNameMax=" + std::to_string(long_name_max) +
                                                   " but the LongNameMax feature flag is not set");
  }
  if (long_name_max == 0 && long_name_max_flag) {
    return ConfigError(Errc::kInvalidArgument,
                       "LongNameMax feature flag is set but LongNameMax is 0 or missing");
  }
  if (long_name_max_flag && (long_name_max < 62 || long_name_max > 255)) {
    return ConfigError(Errc::kInvalidArgument,
                       "LongNameMax=" + std::to_string(long_name_max) + " is outside 62…255");
  }
  const size_t expected_key_blob =
      (HasFlag(config, kFlagHkdf) ? 16 : 12) + kMasterKeySize + kGcmTagSize;
  if (config.encrypted_key.size() != expected_key_blob) {
    return ConfigError(Errc::kInvalidArgument,
                       "EncryptedKey is " + std::to_string(config.encrypted_key.size()) +
                           " bytes, expected " + std::to_string(expected_key_blob));
  }
  return std::nullopt;
}

}  // namespace

const char* ContentAlgorithmName(ContentAlgorithm algorithm) {
  switch (algorithm) {
    case ContentAlgorithm::kAesGcm:
      return "AES-256-GCM";
    case ContentAlgorithm::kAesSiv:
      return "AES-SIV-512";
    case ContentAlgorithm::kXChaCha20Poly1305:
      return "XChaCha20-Poly1305";
  }
  return "unknown";
}

Result<VolumeConfig> ParseVolumeConfig(std::string_view text) {
  // Exceptions disabled: a parse error yields a discarded value instead of throwing.
  const json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    return ConfigError(Errc::kInvalidArgument, "not valid JSON");
  }
  if (!root.is_object()) {
    return ConfigError(Errc::kInvalidArgument, "top level is not a JSON object");
  }
  VolumeConfig config;
  if (const json* creator = FindKey(root, "Creator")) {
    if (!creator->is_string()) {
      return ConfigError(Errc::kInvalidArgument, "Creator is not a string");
    }
    config.creator = creator->get<std::string>();
  }
  if (auto error = ReadBytes(root, "EncryptedKey", "", &config.encrypted_key)) {
    return *error;
  }
  if (const json* scrypt = FindKey(root, "ScryptObject")) {
    if (!scrypt->is_object()) {
      return ConfigError(Errc::kInvalidArgument, "ScryptObject is not an object");
    }
    constexpr std::string_view kWhere = "ScryptObject.";
    for (auto error : {ReadBytes(*scrypt, "Salt", kWhere, &config.scrypt.salt),
                       ReadInteger(*scrypt, "N", kWhere, &config.scrypt.n),
                       ReadInteger(*scrypt, "R", kWhere, &config.scrypt.r),
                       ReadInteger(*scrypt, "P", kWhere, &config.scrypt.p),
                       ReadInteger(*scrypt, "KeyLen", kWhere, &config.scrypt.key_len)}) {
      if (error) {
        return *error;
      }
    }
  }
  uint16_t version = 0;
  if (auto error = ReadInteger(root, "Version", "", &version)) {
    return *error;
  }
  if (const json* flags = FindKey(root, "FeatureFlags")) {
    if (!flags->is_array()) {
      return ConfigError(Errc::kInvalidArgument, "FeatureFlags is not an array");
    }
    for (const json& flag : *flags) {
      if (!flag.is_string()) {
        return ConfigError(Errc::kInvalidArgument, "FeatureFlags holds a non-string");
      }
      config.feature_flags.push_back(flag.get<std::string>());
    }
  }
  uint64_t long_name_max = 0;
  if (auto error = ReadInteger(root, "LongNameMax", "", &long_name_max)) {
    return *error;
  }
  if (auto error = Validate(config, version, long_name_max)) {
    return *error;
  }

  config.hkdf = HasFlag(config, kFlagHkdf);
  config.raw64 = HasFlag(config, kFlagRaw64);
  config.plaintext_names = HasFlag(config, kFlagPlaintextNames);
  // Without DirIV the name tweak is all zero (gocryptfs -deterministic-names); EMENames and
  // LongNames are not consulted by gocryptfs 2.x (format spec §2.2).
  config.deterministic_names = !config.plaintext_names && !HasFlag(config, kFlagDirIv);
  if (HasFlag(config, kFlagXChaCha)) {
    config.content_algorithm = ContentAlgorithm::kXChaCha20Poly1305;
  } else if (HasFlag(config, kFlagAesSiv)) {
    config.content_algorithm = ContentAlgorithm::kAesSiv;
  } else {
    config.content_algorithm = ContentAlgorithm::kAesGcm;
  }
  config.long_name_max = long_name_max != 0 ? long_name_max : 255;
  return config;
}

Result<SecretBytes> UnwrapMasterKey(const VolumeConfig& config, const SecretBytes& password) {
  if (password.empty()) {
    return Error(Errc::kInvalidArgument, "password is empty");
  }
  const ScryptParams& s = config.scrypt;
  CACHEFS_ASSIGN_OR_RETURN(SecretBytes kdf_out, Scrypt(password, s.salt, s.n, s.r, s.p, s.key_len));
  SecretBytes kek;
  if (config.hkdf) {
    // The key wrap reuses the content-block code, hence the content info string.
    CACHEFS_ASSIGN_OR_RETURN(kek,
                             HkdfSha256(kdf_out.span(), "AES-GCM file content encryption", 32));
  } else {
    kek = std::move(kdf_out);
  }
  const size_t nonce_size = config.hkdf ? 16 : 12;
  if (config.encrypted_key.size() != nonce_size + kMasterKeySize + kGcmTagSize) {
    return ConfigError(Errc::kInvalidArgument, "EncryptedKey has the wrong length");
  }
  const std::span<const uint8_t> blob(config.encrypted_key);
  static constexpr uint8_t kZeroAad[8] = {};
  auto master =
      AesGcmOpenSecret(kek.span(), blob.first(nonce_size), kZeroAad, blob.subspan(nonce_size));
  if (!master) {
    if (master.error().code() == Errc::kCorrupt) {
      return Error(Errc::kPermissionDenied, "password incorrect");
    }
    return master.error();
  }
  return std::move(master).value();
}

}  // namespace cachefs::crypto
