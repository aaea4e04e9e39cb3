#include "crypto/kdf.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <memory>
#include <string>

namespace cachefs::crypto {
namespace {

struct KdfDeleter {
  void operator()(EVP_KDF* kdf) const { EVP_KDF_free(kdf); }
  void operator()(EVP_KDF_CTX* ctx) const { EVP_KDF_CTX_free(ctx); }
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};

constexpr size_t kGcmTagSize = 16;

}  // namespace

Result<SecretBytes> Scrypt(const SecretBytes& password, std::span<const uint8_t> salt, uint64_t n,
                           uint32_t r, uint32_t p, size_t key_len) {
  // OpenSSL's own accounting: V is 128·r·(N+2) bytes, B is 128·r·p bytes.
  const unsigned __int128 need =
      static_cast<unsigned __int128>(128) * r * (static_cast<unsigned __int128>(n) + 2 + p);
  if (need > kMaxScryptMemory) {
    return Error(Errc::kUnsupported, "scrypt parameters need more than " +
                                         std::to_string(kMaxScryptMemory >> 20) + " MiB of memory");
  }
  SecretBytes out(key_len);
  // The password is passed as raw bytes; OpenSSL treats it as opaque (no NUL terminator).
  if (EVP_PBE_scrypt(reinterpret_cast<const char*>(password.data()), password.size(), salt.data(),
                     salt.size(), n, r, p, static_cast<uint64_t>(need) + 4096, out.data(),
                     out.size()) != 1) {
    return Error(Errc::kInternal, "scrypt failed in OpenSSL");
  }
  return out;
}

Result<SecretBytes> HkdfSha256(std::span<const uint8_t> ikm, std::string_view info, size_t length) {
  std::unique_ptr<EVP_KDF, KdfDeleter> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (kdf == nullptr) {
    return Error(Errc::kInternal, "HKDF is not available in OpenSSL");
  }
  std::unique_ptr<EVP_KDF_CTX, KdfDeleter> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (ctx == nullptr) {
    return Error(Errc::kInternal, "HKDF context allocation failed");
  }
  // OSSL_PARAM wants non-const pointers but only reads through them.
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end(),
  };
  SecretBytes out(length);
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return Error(Errc::kInternal, "HKDF-SHA256 failed in OpenSSL");
  }
  return out;
}

std::array<uint8_t, 32> Sha256(std::span<const uint8_t> data) {
  std::array<uint8_t, 32> digest{};
  unsigned int len = 0;
  // SHA-256 over a memory buffer cannot fail short of an OpenSSL installation without it.
  EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr);
  return digest;
}

Result<SecretBytes> Sha512Secret(std::span<const uint8_t> data) {
  SecretBytes out(64);
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha512(), nullptr) != 1 ||
      len != out.size()) {
    return Error(Errc::kInternal, "SHA-512 failed in OpenSSL");
  }
  return out;
}

Result<SecretBytes> AesGcmOpenSecret(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                                     std::span<const uint8_t> aad,
                                     std::span<const uint8_t> sealed) {
  if (key.size() != 32 || sealed.size() < kGcmTagSize || nonce.empty()) {
    return Error(Errc::kInvalidArgument, "AES-256-GCM: bad key, nonce or input length");
  }
  std::unique_ptr<EVP_CIPHER_CTX, KdfDeleter> ctx(EVP_CIPHER_CTX_new());
  const size_t ct_size = sealed.size() - kGcmTagSize;
  SecretBytes out(ct_size);
  int len = 0;
  // The IV length must be set before the IV: gocryptfs uses 16-byte GCM nonces.
  bool ok =
      ctx != nullptr &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()),
                          nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), out.data(), &len, sealed.data(), static_cast<int>(ct_size)) ==
          1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagSize,
                          const_cast<uint8_t*>(sealed.data() + ct_size)) == 1;
  if (!ok) {
    return Error(Errc::kInternal, "AES-256-GCM setup failed in OpenSSL");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &len) != 1) {
    return Error(Errc::kCorrupt, "authentication failed");
  }
  return out;
}

}  // namespace cachefs::crypto
