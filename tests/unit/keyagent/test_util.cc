#include "tests/unit/keyagent/test_util.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "keyagent/encoding.h"
#include "keyagent/tee_key.h"

namespace cachefs::keyagent::testing {

std::string FixturePath(const std::string& name) {
  return std::string(CACHEFS_FIXTURES_DIR) + "/kbs/" + name;
}

std::vector<uint8_t> ReadFixture(const std::string& name) {
  std::ifstream in(FixturePath(name), std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

Json ReadJsonFixture(const std::string& name) {
  std::vector<uint8_t> bytes = ReadFixture(name);
  return Json::parse(bytes.begin(), bytes.end());
}

Json Vectors() { return ReadJsonFixture("kbs-v0.4.0-vectors.json"); }

Json SealEcdhEs(const Json& tee_pubkey, const std::string& plaintext) {
  auto decode = [](const Json& j) { return *Base64Decode(j.get<std::string>()); };
  std::vector<uint8_t> point{0x04};
  for (const char* c : {"x", "y"}) {
    auto v = decode(tee_pubkey[c]);
    point.insert(point.end(), v.begin(), v.end());
  }
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* from = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* peer = nullptr;
  EVP_PKEY_fromdata_init(from);
  EVP_PKEY_fromdata(from, &peer, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY* eph = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  EVP_PKEY_CTX* derive = EVP_PKEY_CTX_new(eph, nullptr);
  EVP_PKEY_derive_init(derive);
  EVP_PKEY_derive_set_peer(derive, peer);
  std::vector<uint8_t> z(32);
  size_t z_len = z.size();
  EVP_PKEY_derive(derive, z.data(), &z_len);
  SecretBytes kek = ConcatKdf(z, "ECDH-ES+A256KW", {}, {}, 256);

  uint8_t cek[32];
  RAND_bytes(cek, sizeof(cek));
  std::vector<uint8_t> wrapped(40);
  int len = 0;
  EVP_CIPHER_CTX* wrap = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX_set_flags(wrap, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  EVP_EncryptInit_ex(wrap, EVP_aes_256_wrap(), nullptr, kek.data(), nullptr);
  EVP_EncryptUpdate(wrap, wrapped.data(), &len, cek, sizeof(cek));
  EVP_CIPHER_CTX_free(wrap);

  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  EVP_PKEY_get_bn_param(eph, OSSL_PKEY_PARAM_EC_PUB_X, &x);
  EVP_PKEY_get_bn_param(eph, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
  std::vector<uint8_t> xb(32), yb(32);
  BN_bn2binpad(x, xb.data(), 32);
  BN_bn2binpad(y, yb.data(), 32);
  BN_free(x);
  BN_free(y);
  std::string header =
      R"({"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"P-256","kty":"EC","x":")" +
      Base64UrlEncode(xb) + R"(","y":")" + Base64UrlEncode(yb) + R"("}})";
  std::string protected_b64 = Base64UrlEncode(AsBytes(header));

  uint8_t iv[12];
  RAND_bytes(iv, sizeof(iv));
  std::vector<uint8_t> ciphertext(plaintext.size());
  std::vector<uint8_t> tag(16);
  EVP_CIPHER_CTX* gcm = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(gcm, EVP_aes_256_gcm(), nullptr, cek, iv);
  EVP_EncryptUpdate(gcm, nullptr, &len, reinterpret_cast<const uint8_t*>(protected_b64.data()),
                    static_cast<int>(protected_b64.size()));
  EVP_EncryptUpdate(gcm, ciphertext.data(), &len,
                    reinterpret_cast<const uint8_t*>(plaintext.data()),
                    static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(gcm, ciphertext.data() + len, &len);
  EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_GET_TAG, 16, tag.data());
  EVP_CIPHER_CTX_free(gcm);

  EVP_PKEY_CTX_free(derive);
  EVP_PKEY_free(eph);
  EVP_PKEY_free(peer);
  EVP_PKEY_CTX_free(from);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return {{"protected", protected_b64},
          {"encrypted_key", Base64UrlEncode(wrapped)},
          {"iv", Base64UrlEncode(iv)},
          {"ciphertext", Base64UrlEncode(ciphertext)},
          {"tag", Base64UrlEncode(tag)}};
}

StderrCapture::StderrCapture() {
  char path[] = "/tmp/keyagent-stderr-XXXXXX";
  int fd = mkstemp(path);
  path_ = path;
  fflush(stderr);
  saved_fd_ = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  close(fd);
}

StderrCapture::~StderrCapture() {
  fflush(stderr);
  dup2(saved_fd_, STDERR_FILENO);
  close(saved_fd_);
  unlink(path_.c_str());
}

std::string StderrCapture::Text() {
  fflush(stderr);
  std::ifstream in(path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace cachefs::keyagent::testing
