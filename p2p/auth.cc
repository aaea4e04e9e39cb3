#include "p2p/auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <memory>

namespace cachefs::p2p {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using KdfCtx = std::unique_ptr<EVP_KDF_CTX, Deleter<EVP_KDF_CTX, EVP_KDF_CTX_free>>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

Result<SecretBytes> Hkdf(std::span<const uint8_t> ikm, std::string_view info, size_t length) {
  std::unique_ptr<EVP_KDF, Deleter<EVP_KDF, EVP_KDF_free>> kdf(
      EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) {
    return Error(Errc::kInternal, "HKDF unavailable");
  }
  KdfCtx ctx(EVP_KDF_CTX_new(kdf.get()));
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      // const_cast: OSSL_PARAM takes non-const pointers but only reads these buffers.
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes out(length);
  if (!ctx || EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1) {
    return Error(Errc::kInternal, "HKDF failed");
  }
  return out;
}

void PutU64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out.push_back(static_cast<char>(v >> (8 * i)));
  }
}

void PutBytes(std::string& out, std::span<const uint8_t> bytes) {
  PutU64(out, bytes.size());
  out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());  // bytes as chars
}

void PutString(std::string& out, std::string_view s) {
  PutU64(out, s.size());
  out.append(s);
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};  // chars viewed as bytes
}

}  // namespace

Result<GroupKeys> GroupKeys::Derive(std::span<const uint8_t> group_key) {
  if (group_key.size() < 32) {
    return Error(Errc::kInvalidArgument, "sharing group key must be at least 32 bytes");
  }
  CACHEFS_ASSIGN_OR_RETURN(SecretBytes auth, Hkdf(group_key, "cachefs p2p peer auth v1", 32));
  CACHEFS_ASSIGN_OR_RETURN(SecretBytes chunk, Hkdf(group_key, "cachefs p2p chunk tag v1", 32));
  return GroupKeys(std::move(auth), std::move(chunk));
}

std::array<uint8_t, kProofSize> GroupKeys::Proof(std::string_view role,
                                                 std::span<const uint8_t> client_nonce,
                                                 std::span<const uint8_t> server_nonce,
                                                 std::span<const uint8_t> sender_id,
                                                 std::span<const uint8_t> receiver_id,
                                                 const Fingerprint& sender_cert,
                                                 const Fingerprint& receiver_cert) const {
  std::string message = "cachefs p2p proof v1";
  PutString(message, role);
  PutBytes(message, client_nonce);
  PutBytes(message, server_nonce);
  PutBytes(message, sender_id);
  PutBytes(message, receiver_id);
  PutBytes(message, sender_cert);
  PutBytes(message, receiver_cert);
  std::array<uint8_t, kProofSize> out{};
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), auth_.data(), static_cast<int>(auth_.size()), AsBytes(message).data(),
       message.size(), out.data(), &out_len);
  return out;
}

bool GroupKeys::CheckProof(std::span<const uint8_t> proof, std::string_view role,
                           std::span<const uint8_t> client_nonce,
                           std::span<const uint8_t> server_nonce,
                           std::span<const uint8_t> sender_id, std::span<const uint8_t> receiver_id,
                           const Fingerprint& sender_cert, const Fingerprint& receiver_cert) const {
  if (proof.size() != kProofSize) {
    return false;
  }
  auto expected =
      Proof(role, client_nonce, server_nonce, sender_id, receiver_id, sender_cert, receiver_cert);
  return CRYPTO_memcmp(expected.data(), proof.data(), kProofSize) == 0;
}

Result<std::array<uint8_t, kTagSize>> GroupKeys::ChunkTag(std::span<const uint8_t> nonce,
                                                          std::string_view key,
                                                          std::string_view etag,
                                                          uint64_t object_size, uint64_t index,
                                                          std::span<const uint8_t> bytes) const {
  if (nonce.size() != kTagNonceSize) {
    return Error(Errc::kInvalidArgument, "chunk tag nonce must be 12 bytes");
  }
  std::string header = "cachefs p2p chunk v1";
  PutString(header, key);
  PutString(header, etag);
  PutU64(header, object_size);
  PutU64(header, index);
  PutU64(header, bytes.size());
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  std::array<uint8_t, kTagSize> tag{};
  // GCM with everything as additional data and no plaintext is GMAC.
  bool ok =
      ctx &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, chunk_.data(), nonce.data()) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, AsBytes(header).data(),
                        static_cast<int>(header.size())) == 1;
  // EVP lengths are int: feed large chunks in slices.
  for (size_t done = 0; ok && done < bytes.size();) {
    size_t n = std::min<size_t>(bytes.size() - done, 1u << 30);
    ok = EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes.data() + done, static_cast<int>(n)) == 1;
    done += n;
  }
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), nullptr, &len) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, tag.data()) == 1;
  if (!ok) {
    return Error(Errc::kInternal, "GMAC failed");
  }
  return tag;
}

Status GroupKeys::CheckChunkTag(std::span<const uint8_t> tag, std::span<const uint8_t> nonce,
                                std::string_view key, std::string_view etag, uint64_t object_size,
                                uint64_t index, std::span<const uint8_t> bytes) const {
  if (tag.size() != kTagSize) {
    return Error(Errc::kCorrupt, "chunk tag has the wrong size");
  }
  CACHEFS_ASSIGN_OR_RETURN(auto expected, ChunkTag(nonce, key, etag, object_size, index, bytes));
  if (CRYPTO_memcmp(expected.data(), tag.data(), kTagSize) != 0) {
    return Error(Errc::kCorrupt, "chunk " + std::to_string(index) + " of " + std::string(key) +
                                     " from a peer failed its tag check");
  }
  return Status::Ok();
}

bool RandomBytes(std::span<uint8_t> out) {
  return RAND_bytes(out.data(), static_cast<int>(out.size())) == 1;
}

Result<TlsIdentity> MakeTlsIdentity(std::string_view common_name) {
  Pkey key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert) {
    return Error(Errc::kInternal, "cannot create the TLS key");
  }
  uint64_t serial = 0;
  RandomBytes({reinterpret_cast<uint8_t*>(&serial), sizeof(serial)});  // serial from raw bytes
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial >> 1);
  X509_set_version(cert.get(), 2);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  std::string cn(common_name.substr(0, 64));
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  if (X509_set_pubkey(cert.get(), key.get()) != 1 ||
      X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return Error(Errc::kInternal, "cannot sign the TLS certificate");
  }
  Bio key_bio(BIO_new(BIO_s_secmem()));
  Bio cert_bio(BIO_new(BIO_s_mem()));
  if (!key_bio || !cert_bio ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1) {
    return Error(Errc::kInternal, "cannot encode the TLS identity");
  }
  TlsIdentity identity;
  char* data = nullptr;
  long n = BIO_get_mem_data(key_bio.get(), &data);
  identity.private_key_pem.assign(data, static_cast<size_t>(n));
  n = BIO_get_mem_data(cert_bio.get(), &data);
  identity.certificate_pem.assign(data, static_cast<size_t>(n));
  CACHEFS_ASSIGN_OR_RETURN(identity.fingerprint, CertificateFingerprint(identity.certificate_pem));
  return identity;
}

Result<Fingerprint> CertificateFingerprint(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    return Error(Errc::kInvalidArgument, "peer certificate does not parse");
  }
  Fingerprint fp{};
  unsigned int len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), fp.data(), &len) != 1 || len != fp.size()) {
    return Error(Errc::kInternal, "cannot hash the peer certificate");
  }
  return fp;
}

}  // namespace cachefs::p2p
