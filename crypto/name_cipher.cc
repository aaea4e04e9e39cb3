#include "crypto/name_cipher.h"

#include <openssl/crypto.h>

#include <vector>

#include "crypto/base64.h"
#include "crypto/eme.h"
#include "crypto/kdf.h"

namespace cachefs::crypto {
namespace {

constexpr size_t kMaxNameSize = 255;
constexpr size_t kPadBlock = 16;
// The largest padded name: 255 bytes + 1 padding byte.
constexpr size_t kMaxPaddedSize = 256;

bool ValidPlainName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxNameSize && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

}  // namespace

class NameCipher::Impl {
 public:
  Impl(SecretBytes eme_key, bool raw64, size_t long_name_max)
      : raw64_(raw64), long_name_max_(long_name_max) {
    auto eme = Eme::Create(eme_key.span());
    if (eme) {
      eme_ = std::move(eme).value();
    }
  }

  const Eme* eme() const { return eme_.get(); }
  bool raw64() const { return raw64_; }
  size_t long_name_max() const { return long_name_max_; }

 private:
  std::unique_ptr<Eme> eme_;  // nullptr when the key was unusable: every operation fails
  bool raw64_;
  size_t long_name_max_;
};

NameCipher::NameCipher(SecretBytes eme_key, bool raw64, size_t long_name_max)
    : impl_(std::make_unique<Impl>(std::move(eme_key), raw64, long_name_max)) {}

NameCipher::~NameCipher() = default;

bool NameCipher::raw64() const { return impl_->raw64(); }

size_t NameCipher::long_name_max() const { return impl_->long_name_max(); }

Result<std::string> NameCipher::DecodeBase64(std::string_view text) const {
  auto decoded = Base64Decode(text, Base64Alphabet::kUrl, /*padded=*/!impl_->raw64());
  if (!decoded) {
    return Error(Errc::kCorrupt, "invalid base64");
  }
  return std::string(decoded->begin(), decoded->end());
}

std::string NameCipher::EncodeBase64(std::span<const uint8_t> data) const {
  return Base64Encode(data, Base64Alphabet::kUrl, /*padded=*/!impl_->raw64());
}

Result<std::string> NameCipher::DecryptName(std::string_view cipher_name,
                                            const DirIv& dir_iv) const {
  if (impl_->eme() == nullptr) {
    return Error(Errc::kInternal, "name cipher has no usable key");
  }
  auto bin = Base64Decode(cipher_name, Base64Alphabet::kUrl, /*padded=*/!impl_->raw64());
  if (!bin) {
    return Error(Errc::kCorrupt, "invalid base64");
  }
  if (bin->empty() || bin->size() % kPadBlock != 0) {
    return Error(Errc::kCorrupt, "decoded length " + std::to_string(bin->size()) +
                                     " is not a positive multiple of 16");
  }
  if (bin->size() > kMaxPaddedSize) {
    return Error(Errc::kCorrupt, "decoded name longer than 256 bytes");
  }
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> padded, impl_->eme()->Decrypt(dir_iv, *bin));
  // PKCS#7 with the checks of gocryptfs's unPad16: 1 <= pad <= 16, shorter than the input,
  // every padding byte equal to pad.
  const size_t pad = padded.back();
  if (pad == 0 || pad > kPadBlock || pad >= padded.size()) {
    return Error(Errc::kCorrupt, "bad padding");
  }
  for (size_t i = padded.size() - pad; i < padded.size(); ++i) {
    if (padded[i] != pad) {
      return Error(Errc::kCorrupt, "bad padding");
    }
  }
  std::string name(padded.begin(), padded.end() - static_cast<ptrdiff_t>(pad));
  if (!ValidPlainName(name)) {
    return Error(Errc::kCorrupt, "decrypts to an invalid file name");
  }
  return name;
}

Result<std::string> NameCipher::EncryptName(std::string_view plain_name,
                                            const DirIv& dir_iv) const {
  if (impl_->eme() == nullptr) {
    return Error(Errc::kInternal, "name cipher has no usable key");
  }
  if (!ValidPlainName(plain_name)) {
    return Error(Errc::kInvalidArgument, "invalid file name");
  }
  const size_t pad = kPadBlock - plain_name.size() % kPadBlock;
  std::vector<uint8_t> padded(plain_name.begin(), plain_name.end());
  padded.insert(padded.end(), pad, static_cast<uint8_t>(pad));
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> encrypted, impl_->eme()->Encrypt(dir_iv, padded));
  std::string cipher_name = EncodeBase64(encrypted);
  if (cipher_name.size() > impl_->long_name_max()) {
    return LongNameFor(cipher_name);
  }
  return cipher_name;
}

std::string NameCipher::LongNameFor(std::string_view cipher_name) const {
  const auto digest = Sha256(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(cipher_name.data()), cipher_name.size()));
  return std::string(kLongNamePrefix) + EncodeBase64(digest);
}

bool NameCipher::IsLongName(std::string_view name) {
  return name.starts_with(kLongNamePrefix) && !IsLongNameCompanion(name);
}

bool NameCipher::IsLongNameCompanion(std::string_view name) {
  return name.starts_with(kLongNamePrefix) && name.ends_with(kLongNameSuffix);
}

}  // namespace cachefs::crypto
