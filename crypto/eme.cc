#include "crypto/eme.h"

#include <openssl/crypto.h>

#include <cstring>

namespace cachefs::crypto {
namespace {

using Block = std::array<uint8_t, 16>;

// Doubling in GF(2^128) with the little-endian byte order of XTS (byte 0 least significant).
void Double(uint8_t* b) {
  const uint8_t carry = b[15] >> 7;
  for (int i = 15; i > 0; --i) {
    b[i] = static_cast<uint8_t>((b[i] << 1) | (b[i - 1] >> 7));
  }
  b[0] = static_cast<uint8_t>((b[0] << 1) ^ (carry ? 0x87 : 0));
}

void Xor(uint8_t* out, const uint8_t* a, const uint8_t* b) {
  for (size_t i = 0; i < 16; ++i) {
    out[i] = a[i] ^ b[i];
  }
}

bool InitEcb(EVP_CIPHER_CTX* ctx, const SecretBytes& key, bool encrypt) {
  return EVP_CipherInit_ex(ctx, EVP_aes_256_ecb(), nullptr, key.data(), nullptr, encrypt ? 1 : 0) ==
             1 &&
         EVP_CIPHER_CTX_set_padding(ctx, 0) == 1;
}

// ECB over whole blocks: each 16-byte block is processed independently, so one call handles
// the whole array and the context keeps no state between calls.
bool Ecb(EVP_CIPHER_CTX* ctx, const uint8_t* in, uint8_t* out, size_t size) {
  int len = 0;
  return ctx != nullptr && EVP_CipherUpdate(ctx, out, &len, in, static_cast<int>(size)) == 1 &&
         static_cast<size_t>(len) == size;
}

}  // namespace

Eme::Eme(SecretBytes key)
    : key_(std::move(key)),
      l_base_(16),
      encrypt_pool_(
          [this] {
            return NewCipherContext(
                [this](EVP_CIPHER_CTX* ctx) { return InitEcb(ctx, key_, true); });
          },
          EVP_CIPHER_CTX_free),
      decrypt_pool_(
          [this] {
            return NewCipherContext(
                [this](EVP_CIPHER_CTX* ctx) { return InitEcb(ctx, key_, false); });
          },
          EVP_CIPHER_CTX_free) {}

Result<std::unique_ptr<Eme>> Eme::Create(std::span<const uint8_t> key) {
  if (key.size() != 32) {
    return Error(Errc::kInvalidArgument, "EME needs a 32-byte key");
  }
  std::unique_ptr<Eme> eme(new Eme(SecretBytes::CopyOf(key)));
  static constexpr Block kZero{};
  CipherContextPool::Lease lease = eme->encrypt_pool_.Acquire();
  if (!Ecb(lease.get(), kZero.data(), eme->l_base_.data(), 16)) {
    return Error(Errc::kInternal, "AES-256-ECB failed in OpenSSL");
  }
  return eme;
}

Result<std::vector<uint8_t>> Eme::Encrypt(std::span<const uint8_t, 16> tweak,
                                          std::span<const uint8_t> data) const {
  return Transform(tweak, data, true);
}

Result<std::vector<uint8_t>> Eme::Decrypt(std::span<const uint8_t, 16> tweak,
                                          std::span<const uint8_t> data) const {
  return Transform(tweak, data, false);
}

Result<std::vector<uint8_t>> Eme::Transform(std::span<const uint8_t, 16> tweak,
                                            std::span<const uint8_t> data, bool encrypt) const {
  const size_t m = data.size() / kBlockSize;
  if (data.size() % kBlockSize != 0 || m == 0 || m > kMaxBlocks) {
    return Error(Errc::kInvalidArgument, "EME input must be 1 to 128 blocks of 16 bytes");
  }
  CipherContextPool::Lease lease = (encrypt ? encrypt_pool_ : decrypt_pool_).Acquire();
  EVP_CIPHER_CTX* ctx = lease.get();

  // L[j] = 2^(j+1) · AES-encrypt_K(0): the masks are key-derived, so they are cleansed below.
  uint8_t l_table[kMaxBlocks * kBlockSize];
  std::memcpy(l_table, l_base_.data(), kBlockSize);
  Double(l_table);
  for (size_t j = 1; j < m; ++j) {
    std::memcpy(l_table + j * kBlockSize, l_table + (j - 1) * kBlockSize, kBlockSize);
    Double(l_table + j * kBlockSize);
  }

  std::vector<uint8_t> out(data.size());
  uint8_t* buf = out.data();
  for (size_t j = 0; j < m; ++j) {
    Xor(buf + j * kBlockSize, data.data() + j * kBlockSize, l_table + j * kBlockSize);
  }
  bool ok = Ecb(ctx, buf, buf, data.size());  // PPP[j]

  Block mp;
  std::memcpy(mp.data(), tweak.data(), kBlockSize);
  for (size_t j = 0; j < m; ++j) {
    Xor(mp.data(), mp.data(), buf + j * kBlockSize);
  }
  Block mc;
  ok = ok && Ecb(ctx, mp.data(), mc.data(), kBlockSize);
  Block mask;
  Xor(mask.data(), mp.data(), mc.data());
  for (size_t j = 1; j < m; ++j) {
    Double(mask.data());
    Xor(buf + j * kBlockSize, buf + j * kBlockSize, mask.data());  // CCC[j]
  }
  Block ccc0;
  Xor(ccc0.data(), mc.data(), tweak.data());
  for (size_t j = 1; j < m; ++j) {
    Xor(ccc0.data(), ccc0.data(), buf + j * kBlockSize);
  }
  std::memcpy(buf, ccc0.data(), kBlockSize);
  ok = ok && Ecb(ctx, buf, buf, data.size());
  for (size_t j = 0; j < m; ++j) {
    Xor(buf + j * kBlockSize, buf + j * kBlockSize, l_table + j * kBlockSize);
  }
  OPENSSL_cleanse(l_table, m * kBlockSize);
  for (Block* block : {&mp, &mc, &mask, &ccc0}) {
    OPENSSL_cleanse(block->data(), block->size());
  }
  if (!ok) {
    return Error(Errc::kInternal, "AES-256-ECB failed in OpenSSL");
  }
  return out;
}

}  // namespace cachefs::crypto
