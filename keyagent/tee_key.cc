#include "keyagent/tee_key.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <vector>

#include "keyagent/encoding.h"

namespace cachefs::keyagent {
namespace {

constexpr size_t kP256CoordinateBytes = 32;
constexpr size_t kCekBytes = 32;  // A256GCM
constexpr size_t kGcmTagBytes = 16;
constexpr int kRsaBits = 2048;
// A released resource is a password or key. The plaintext goes to the secure heap (256 KiB in
// all, see InitSecureHeap), so an oversized reply must be refused, not allocated.
constexpr size_t kMaxCiphertextBytes = 16 << 10;

struct CtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
  void operator()(BIGNUM* bn) const { BN_free(bn); }
  void operator()(BIO* bio) const { BIO_free(bio); }
  void operator()(OSSL_PARAM_BLD* bld) const { OSSL_PARAM_BLD_free(bld); }
  void operator()(OSSL_PARAM* params) const { OSSL_PARAM_free(params); }
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
template <typename T>
using Owned = std::unique_ptr<T, CtxFree>;

Error OpensslError(std::string_view what) { return Error(Errc::kInternal, std::string(what)); }

Result<std::string> BnParamB64Url(const EVP_PKEY* key, const char* name, size_t pad_to) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    return OpensslError(std::string("cannot read key parameter ") + name);
  }
  Owned<BIGNUM> bn(raw);
  size_t size = std::max(pad_to, static_cast<size_t>(BN_num_bytes(bn.get())));
  std::vector<uint8_t> bytes(size);
  if (BN_bn2binpad(bn.get(), bytes.data(), static_cast<int>(size)) < 0) {
    return OpensslError("cannot encode key parameter");
  }
  return Base64UrlEncode(bytes);
}

Result<Json> BuildJwk(const EVP_PKEY* key, TeeKeyAlgorithm algorithm) {
  Json jwk = Json::object();
  if (algorithm == TeeKeyAlgorithm::kEcdhEsA256kwP256) {
    char group[32] = {};
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       nullptr) != 1 ||
        (std::string_view(group) != "prime256v1" && std::string_view(group) != "P-256")) {
      return Error(Errc::kInvalidArgument, "TEE key is not an EC P-256 key");
    }
    CACHEFS_ASSIGN_OR_RETURN(std::string x,
                             BnParamB64Url(key, OSSL_PKEY_PARAM_EC_PUB_X, kP256CoordinateBytes));
    CACHEFS_ASSIGN_OR_RETURN(std::string y,
                             BnParamB64Url(key, OSSL_PKEY_PARAM_EC_PUB_Y, kP256CoordinateBytes));
    jwk["kty"] = "EC";
    jwk["crv"] = "P-256";
    jwk["alg"] = "ECDH-ES+A256KW";
    jwk["x"] = x;
    jwk["y"] = y;
    return jwk;
  }
  if (!EVP_PKEY_is_a(key, "RSA")) {
    return Error(Errc::kInvalidArgument, "TEE key is not an RSA key");
  }
  CACHEFS_ASSIGN_OR_RETURN(
      std::string n,
      BnParamB64Url(key, OSSL_PKEY_PARAM_RSA_N, static_cast<size_t>(EVP_PKEY_get_size(key))));
  CACHEFS_ASSIGN_OR_RETURN(std::string e, BnParamB64Url(key, OSSL_PKEY_PARAM_RSA_E, 0));
  jwk["kty"] = "RSA";
  jwk["alg"] = algorithm == TeeKeyAlgorithm::kRsaOaep256 ? "RSA-OAEP-256" : "RSA1_5";
  jwk["n"] = n;
  jwk["e"] = e;
  return jwk;
}

const char* AlgName(TeeKeyAlgorithm algorithm) {
  switch (algorithm) {
    case TeeKeyAlgorithm::kEcdhEsA256kwP256:
      return "ECDH-ES+A256KW";
    case TeeKeyAlgorithm::kRsaOaep256:
      return "RSA-OAEP-256";
    case TeeKeyAlgorithm::kRsa1_5:
      return "RSA1_5";
  }
  return "";
}

Result<std::vector<uint8_t>> DecodeMember(const Json& obj, std::string_view key) {
  const std::string* text = FindString(obj, key);
  if (text == nullptr) {
    return Error(Errc::kCorrupt, "JWE has no string member \"" + std::string(key) + "\"");
  }
  auto bytes = Base64Decode(*text);
  if (!bytes) {
    return bytes.error().WithContext("JWE member \"" + std::string(key) + "\"");
  }
  return bytes;
}

// Builds a P-256 public key from JWK coordinates; OpenSSL rejects points off the curve.
Result<Owned<EVP_PKEY>> P256FromJwk(const Json& epk) {
  const std::string* kty = FindString(epk, "kty");
  const std::string* crv = FindString(epk, "crv");
  if (kty == nullptr || *kty != "EC" || crv == nullptr || *crv != "P-256") {
    return Error(Errc::kUnsupported, "JWE epk is not an EC P-256 key");
  }
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> x, DecodeMember(epk, "x"));
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> y, DecodeMember(epk, "y"));
  if (x.size() != kP256CoordinateBytes || y.size() != kP256CoordinateBytes) {
    return Error(Errc::kCorrupt, "JWE epk coordinates are not 32 bytes");
  }
  std::vector<uint8_t> point{0x04};
  point.insert(point.end(), x.begin(), x.end());
  point.insert(point.end(), y.begin(), y.end());
  Owned<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return OpensslError("cannot build EC parameters");
  }
  Owned<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld.get()));
  Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return Error(Errc::kCorrupt, "JWE epk is not a valid P-256 point");
  }
  return Owned<EVP_PKEY>(raw);
}

Result<SecretBytes> AesKeyUnwrap(const SecretBytes& kek, std::span<const uint8_t> wrapped) {
  if (wrapped.size() != kCekBytes + 8) {
    return Error(Errc::kCorrupt, "JWE encrypted_key is not a wrapped 256-bit key");
  }
  Owned<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  if (!ctx) {
    return OpensslError("EVP_CIPHER_CTX_new");
  }
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  SecretBytes cek(kCekBytes + 8);
  int len = 0;
  int final_len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_wrap(), nullptr, kek.data(), nullptr) != 1 ||
      EVP_DecryptUpdate(ctx.get(), cek.data(), &len, wrapped.data(),
                        static_cast<int>(wrapped.size())) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), cek.data() + len, &final_len) != 1 ||
      static_cast<size_t>(len + final_len) != kCekBytes) {
    return Error(Errc::kCorrupt, "JWE key unwrap failed (reply not sealed to this TEE key)");
  }
  cek.Truncate(kCekBytes);
  return cek;
}

Result<SecretBytes> AesGcmDecrypt(const SecretBytes& cek, std::span<const uint8_t> iv,
                                  std::span<const uint8_t> aad, std::span<const uint8_t> ciphertext,
                                  std::span<const uint8_t> tag) {
  if (tag.size() != kGcmTagBytes || iv.empty() || iv.size() > 64) {
    return Error(Errc::kCorrupt, "JWE iv or tag has the wrong size");
  }
  Owned<EVP_CIPHER_CTX> ctx(EVP_CIPHER_CTX_new());
  SecretBytes plain(ciphertext.size());
  int len = 0;
  int final_len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, cek.data(), iv.data()) != 1) {
    return OpensslError("AES-256-GCM init");
  }
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return OpensslError("AES-256-GCM aad");
  }
  if (EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ciphertext.data(),
                        static_cast<int>(ciphertext.size())) != 1 ||
      // The tag is only read by the call; OpenSSL's ctrl takes a non-const pointer.
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag.size()),
                          const_cast<uint8_t*>(tag.data())) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &final_len) != 1) {
    return Error(Errc::kCorrupt, "JWE authentication failed (tampered or truncated reply)");
  }
  return plain;
}

}  // namespace

SecretBytes ConcatKdf(std::span<const uint8_t> z, std::string_view algorithm_id,
                      std::span<const uint8_t> party_u, std::span<const uint8_t> party_v,
                      size_t key_bits) {
  auto be32 = [](std::vector<uint8_t>* out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      out->push_back(static_cast<uint8_t>(v >> shift));
    }
  };
  // OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo || SuppPubInfo (not secret).
  std::vector<uint8_t> other;
  be32(&other, static_cast<uint32_t>(algorithm_id.size()));
  other.insert(other.end(), algorithm_id.begin(), algorithm_id.end());
  be32(&other, static_cast<uint32_t>(party_u.size()));
  other.insert(other.end(), party_u.begin(), party_u.end());
  be32(&other, static_cast<uint32_t>(party_v.size()));
  other.insert(other.end(), party_v.begin(), party_v.end());
  be32(&other, static_cast<uint32_t>(key_bits));

  size_t key_bytes = key_bits / 8;
  SecretBytes out((key_bytes + 31) / 32 * 32);
  for (uint32_t counter = 1; (counter - 1) * 32 < key_bytes; ++counter) {
    uint8_t counter_be[4] = {static_cast<uint8_t>(counter >> 24),
                             static_cast<uint8_t>(counter >> 16),
                             static_cast<uint8_t>(counter >> 8), static_cast<uint8_t>(counter)};
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    unsigned int len = 0;
    EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
    EVP_DigestUpdate(md, counter_be, sizeof(counter_be));
    EVP_DigestUpdate(md, z.data(), z.size());
    EVP_DigestUpdate(md, other.data(), other.size());
    EVP_DigestFinal_ex(md, out.data() + (counter - 1) * 32, &len);
    EVP_MD_CTX_free(md);  // cleanses the digest state, which held Z
  }
  out.Truncate(key_bytes);
  return out;
}

Result<TeeKeyPair> TeeKeyPair::FromPkey(Pkey key, TeeKeyAlgorithm algorithm) {
  CACHEFS_ASSIGN_OR_RETURN(Json jwk, BuildJwk(key.get(), algorithm));
  return TeeKeyPair(std::move(key), algorithm, std::move(jwk));
}

Result<TeeKeyPair> TeeKeyPair::Generate(TeeKeyAlgorithm algorithm) {
  EVP_PKEY* raw = nullptr;
  if (algorithm == TeeKeyAlgorithm::kEcdhEsA256kwP256) {
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  } else {
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(kRsaBits));
  }
  if (raw == nullptr) {
    return OpensslError("cannot generate the TEE key pair");
  }
  return FromPkey(Pkey(raw), algorithm);
}

Result<TeeKeyPair> TeeKeyPair::FromPrivateKeyPem(std::string_view pem, TeeKeyAlgorithm algorithm) {
  Owned<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (raw == nullptr) {
    return Error(Errc::kInvalidArgument, "not a PEM private key");
  }
  return FromPkey(Pkey(raw), algorithm);
}

Result<SecretBytes> TeeKeyPair::UnwrapEcdhEs(const Json& header,
                                             std::span<const uint8_t> wrapped) const {
  const Json* epk = FindMember(header, "epk");
  if (epk == nullptr) {
    return Error(Errc::kCorrupt, "JWE header has no epk");
  }
  CACHEFS_ASSIGN_OR_RETURN(Owned<EVP_PKEY> peer, P256FromJwk(*epk));
  Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(key_.get(), nullptr));
  size_t z_len = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &z_len) != 1) {
    return Error(Errc::kCorrupt, "ECDH with the JWE epk failed");
  }
  SecretBytes z(z_len);
  if (EVP_PKEY_derive(ctx.get(), z.data(), &z_len) != 1) {
    return Error(Errc::kCorrupt, "ECDH with the JWE epk failed");
  }
  z.Truncate(z_len);
  // apu/apv are optional in RFC 7518; Trustee leaves them out, other JOSE peers may not.
  std::vector<uint8_t> apu;
  std::vector<uint8_t> apv;
  if (FindMember(header, "apu") != nullptr) {
    CACHEFS_ASSIGN_OR_RETURN(apu, DecodeMember(header, "apu"));
  }
  if (FindMember(header, "apv") != nullptr) {
    CACHEFS_ASSIGN_OR_RETURN(apv, DecodeMember(header, "apv"));
  }
  SecretBytes kek = ConcatKdf(z.span(), "ECDH-ES+A256KW", apu, apv, 256);
  return AesKeyUnwrap(kek, wrapped);
}

Result<SecretBytes> TeeKeyPair::UnwrapRsa(std::span<const uint8_t> wrapped) const {
  Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new(key_.get(), nullptr));
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) != 1) {
    return OpensslError("RSA decrypt init");
  }
  if (algorithm_ == TeeKeyAlgorithm::kRsaOaep256) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1) {
      return OpensslError("RSA-OAEP-256 setup");
    }
  } else if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) {
    return OpensslError("RSA1_5 setup");
  }
  size_t len = static_cast<size_t>(EVP_PKEY_get_size(key_.get()));
  SecretBytes cek(len);
  if (EVP_PKEY_decrypt(ctx.get(), cek.data(), &len, wrapped.data(), wrapped.size()) != 1 ||
      len != kCekBytes) {
    return Error(Errc::kCorrupt, "JWE key decryption failed (reply not sealed to this TEE key)");
  }
  cek.Truncate(len);
  return cek;
}

Result<SecretBytes> TeeKeyPair::Decrypt(const Json& response) const {
  if (!response.is_object()) {
    return Error(Errc::kCorrupt, "resource reply is not a JWE object");
  }
  const std::string* protected_text = FindString(response, "protected");
  if (protected_text == nullptr) {
    return Error(Errc::kCorrupt, "JWE has no \"protected\" header");
  }
  // Protocol 0.1.x servers put the header JSON itself into `protected` (kbs-protocol.md §1.10).
  bool legacy = !protected_text->empty() && protected_text->front() == '{';
  std::string header_text;
  if (legacy) {
    header_text = *protected_text;
  } else {
    CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> raw, DecodeMember(response, "protected"));
    header_text.assign(raw.begin(), raw.end());
  }
  CACHEFS_ASSIGN_OR_RETURN(Json header, ParseJson(header_text, "JWE protected header"));
  const std::string* alg = FindString(header, "alg");
  const std::string* enc = FindString(header, "enc");
  if (alg == nullptr || enc == nullptr) {
    return Error(Errc::kCorrupt, "JWE header lacks alg or enc");
  }
  if (*enc != "A256GCM") {
    return Error(Errc::kUnsupported, "JWE enc \"" + OneLine(*enc, 40) + "\" is not A256GCM");
  }
  if (*alg != AlgName(algorithm_)) {
    return Error(Errc::kUnsupported, "JWE alg \"" + OneLine(*alg, 40) +
                                         "\" does not match the TEE key (" + AlgName(algorithm_) +
                                         ")");
  }
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> wrapped, DecodeMember(response, "encrypted_key"));
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> iv, DecodeMember(response, "iv"));
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> ciphertext, DecodeMember(response, "ciphertext"));
  const std::string* tag_text = FindString(response, "tag");
  std::vector<uint8_t> tag;
  if (tag_text != nullptr && !tag_text->empty()) {
    CACHEFS_ASSIGN_OR_RETURN(tag, DecodeMember(response, "tag"));
  } else if (legacy && ciphertext.size() >= kGcmTagBytes) {
    // 0.1.x appends the GCM tag to the ciphertext and leaves `tag` empty.
    tag.assign(ciphertext.end() - kGcmTagBytes, ciphertext.end());
    ciphertext.resize(ciphertext.size() - kGcmTagBytes);
  } else {
    return Error(Errc::kCorrupt, "JWE has no authentication tag");
  }
  if (ciphertext.size() > kMaxCiphertextBytes) {
    return Error(Errc::kCorrupt, "JWE payload larger than 16 KiB: not a key");
  }
  // RFC 7516 §5.2: AAD = ASCII(protected), or ASCII(protected || '.' || aad) when aad is present.
  std::string aad;
  if (!legacy) {
    aad = *protected_text;
    const std::string* extra = FindString(response, "aad");
    if (extra != nullptr && !extra->empty()) {
      aad += '.';
      aad += *extra;
    }
  }
  Result<SecretBytes> cek = algorithm_ == TeeKeyAlgorithm::kEcdhEsA256kwP256
                                ? UnwrapEcdhEs(header, wrapped)
                                : UnwrapRsa(wrapped);
  if (!cek) {
    return cek.error();
  }
  return AesGcmDecrypt(*cek, iv, AsBytes(aad), ciphertext, tag);
}

}  // namespace cachefs::keyagent
