#include "crypto/content_cipher.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "crypto/context_pool.h"
#include "crypto/hchacha20.h"

namespace cachefs::crypto {
namespace {

constexpr size_t kTagSize = 16;
constexpr size_t kBlockNumberSize = 8;
constexpr size_t kFileAadSize = kBlockNumberSize + 16;
// With a pool, a request is split into pieces of at least this many blocks (64 KiB of
// plaintext): below that, handing work to another thread costs more than it saves.
constexpr size_t kMinBlocksPerPiece = 16;

enum class BlockFailure { kNone, kTooShort, kZeroNonce, kAuthentication, kInternal };

const char* Describe(BlockFailure failure) {
  switch (failure) {
    case BlockFailure::kNone:
      return "ok";
    case BlockFailure::kTooShort:
      return "block too short";
    case BlockFailure::kZeroNonce:
      return "all-zero nonce";
    case BlockFailure::kAuthentication:
      return "authentication failed";
    case BlockFailure::kInternal:
      return "OpenSSL failure";
  }
  return "unknown failure";
}

// Bad ciphertext is kCorrupt; an OpenSSL failure says nothing about the data.
Errc ErrcOf(BlockFailure failure) {
  return failure == BlockFailure::kInternal ? Errc::kInternal : Errc::kCorrupt;
}

// Fast all-zero test: memcmp of a buffer against itself shifted by one byte is vectorised.
bool AllZero(const uint8_t* data, size_t size) {
  return size == 0 || (data[0] == 0 && std::memcmp(data, data + 1, size - 1) == 0);
}

void StoreBe64(uint8_t* out, uint64_t value) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(value);
    value >>= 8;
  }
}

size_t NonceSizeOf(ContentAlgorithm algorithm) {
  return algorithm == ContentAlgorithm::kXChaCha20Poly1305 ? 24 : 16;
}

size_t KeySizeOf(ContentAlgorithm algorithm) {
  return algorithm == ContentAlgorithm::kAesSiv ? 64 : 32;
}

// The OpenSSL cipher behind each algorithm. AES-SIV is built from AES-CTR and CMAC here:
// OpenSSL 3.0's "AES-256-SIV" can only be reset by re-keying, which fetches CMAC and
// allocates several contexts per block (about 7x slower than this construction).
const char* OpenSslCipherName(ContentAlgorithm algorithm) {
  switch (algorithm) {
    case ContentAlgorithm::kAesGcm:
      return "AES-256-GCM";
    case ContentAlgorithm::kAesSiv:
      return "AES-256-CTR";
    case ContentAlgorithm::kXChaCha20Poly1305:
      return "ChaCha20-Poly1305";
  }
  return "";
}

void Xor16(uint8_t* out, const uint8_t* in) {
  for (size_t i = 0; i < 16; ++i) {
    out[i] ^= in[i];
  }
}

// Doubling in GF(2^128) as CMAC and S2V define it: big-endian (byte 0 most significant).
void DoubleBigEndian(uint8_t* b) {
  const uint8_t carry = b[0] >> 7;
  for (size_t i = 0; i < 15; ++i) {
    b[i] = static_cast<uint8_t>((b[i] << 1) | (b[i + 1] >> 7));
  }
  b[15] = static_cast<uint8_t>((b[15] << 1) ^ (carry ? 0x87 : 0));
}

// What one thread needs to open blocks: the cipher context with the key set and, for AES-SIV,
// a CMAC context keyed with the S2V key.
struct BlockContext {
  EVP_CIPHER_CTX* cipher = nullptr;
  EVP_MAC_CTX* mac = nullptr;
};

void FreeBlockContext(BlockContext* context) {
  EVP_CIPHER_CTX_free(context->cipher);  // both free functions cleanse the key schedules
  EVP_MAC_CTX_free(context->mac);
  delete context;
}

// CMAC of head ‖ tail. EVP_MAC_init without a key restarts the context with its key kept.
bool Cmac(EVP_MAC_CTX* mac, std::span<const uint8_t> head, std::span<const uint8_t> tail,
          uint8_t* out) {
  size_t out_size = 0;
  return EVP_MAC_init(mac, nullptr, 0, nullptr) == 1 &&
         (head.empty() || EVP_MAC_update(mac, head.data(), head.size()) == 1) &&
         (tail.empty() || EVP_MAC_update(mac, tail.data(), tail.size()) == 1) &&
         EVP_MAC_final(mac, out, &out_size, 16) == 1 && out_size == 16;
}

}  // namespace

class ContentCipher::Impl {
 public:
  Impl(ContentAlgorithm algorithm, SecretBytes key)
      : algorithm_(algorithm),
        nonce_size_(NonceSizeOf(algorithm)),
        key_(std::move(key)),
        cipher_(key_.size() == KeySizeOf(algorithm)
                    ? EVP_CIPHER_fetch(nullptr, OpenSslCipherName(algorithm), nullptr)
                    : nullptr),
        cmac_(algorithm == ContentAlgorithm::kAesSiv ? EVP_MAC_fetch(nullptr, "CMAC", nullptr)
                                                     : nullptr),
        s2v_zero_(16),
        pool_([this] { return CreateContext(); }, FreeBlockContext) {
    if (algorithm_ == ContentAlgorithm::kAesSiv) {
      // S2V starts from D = CMAC(K1, 0^128), a constant of the key.
      static constexpr uint8_t kZero[16] = {};
      BlockContextPool::Lease lease = pool_.Acquire();
      s2v_ready_ = lease.get() != nullptr && Cmac(lease.get()->mac, kZero, {}, s2v_zero_.data());
    }
  }

  ~Impl() {
    EVP_CIPHER_free(cipher_);
    EVP_MAC_free(cmac_);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  using BlockContextPool = ContextPool<BlockContext>;
  BlockContextPool& pool() const { return pool_; }

  // Decrypts one sealed chunk (nonce first) into `out`, which has room for
  // chunk.size() - overhead bytes. On failure `out` is cleansed so no unauthenticated
  // plaintext reaches the caller. Handles holes and the nonce checks too.
  BlockFailure OpenChunk(BlockContext* context, std::span<const uint8_t> chunk,
                         std::span<const uint8_t> aad, uint8_t* out, bool allow_hole) const {
    const size_t overhead = nonce_size_ + kTagSize;
    if (allow_hole && chunk.size() == ContentCipher::kPlainBlockSize + overhead &&
        AllZero(chunk.data(), chunk.size())) {
      std::memset(out, 0, ContentCipher::kPlainBlockSize);
      return BlockFailure::kNone;
    }
    if (chunk.size() <= overhead) {
      return BlockFailure::kTooShort;
    }
    if (AllZero(chunk.data(), nonce_size_)) {
      return BlockFailure::kZeroNonce;
    }
    if (context == nullptr) {
      return BlockFailure::kInternal;
    }
    const size_t plain_size = chunk.size() - overhead;
    BlockFailure result = BlockFailure::kInternal;
    switch (algorithm_) {
      case ContentAlgorithm::kAesGcm:
        result = OpenGcm(context->cipher, chunk, aad, out, plain_size);
        break;
      case ContentAlgorithm::kAesSiv:
        result = OpenSiv(*context, chunk, aad, out, plain_size);
        break;
      case ContentAlgorithm::kXChaCha20Poly1305:
        result = OpenXChaCha(context->cipher, chunk, aad, out, plain_size);
        break;
    }
    if (result != BlockFailure::kNone) {
      OPENSSL_cleanse(out, plain_size);
    }
    return result;
  }

 private:
  BlockContext* CreateContext() const {
    if (cipher_ == nullptr) {
      return nullptr;
    }
    auto context = new BlockContext;
    bool ok = false;
    switch (algorithm_) {
      case ContentAlgorithm::kAesGcm:
        // The IV length must be set before the key and IV: gocryptfs uses 16-byte GCM nonces.
        context->cipher = NewCipherContext([this](EVP_CIPHER_CTX* ctx) {
          return EVP_DecryptInit_ex(ctx, cipher_, nullptr, nullptr, nullptr) == 1 &&
                 EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 16, nullptr) == 1 &&
                 EVP_DecryptInit_ex(ctx, nullptr, nullptr, key_.data(), nullptr) == 1;
        });
        ok = context->cipher != nullptr;
        break;
      case ContentAlgorithm::kAesSiv: {
        // RFC 5297: the first half of the 64-byte key is the S2V (CMAC) key, the second half
        // the CTR key.
        context->cipher = NewCipherContext([this](EVP_CIPHER_CTX* ctx) {
          return EVP_EncryptInit_ex(ctx, cipher_, nullptr, key_.data() + 32, nullptr) == 1;
        });
        context->mac = cmac_ != nullptr ? EVP_MAC_CTX_new(cmac_) : nullptr;
        char cbc[] = "AES-256-CBC";  // OSSL_PARAM wants a non-const pointer; only read
        const OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cbc, 0),
            OSSL_PARAM_construct_end(),
        };
        ok = context->cipher != nullptr && context->mac != nullptr &&
             EVP_MAC_init(context->mac, key_.data(), 32, params) == 1;
        break;
      }
      case ContentAlgorithm::kXChaCha20Poly1305:
        // Keyed per block with the HChaCha20 subkey (see OpenXChaCha).
        context->cipher = NewCipherContext([this](EVP_CIPHER_CTX* ctx) {
          return EVP_DecryptInit_ex(ctx, cipher_, nullptr, nullptr, nullptr) == 1;
        });
        ok = context->cipher != nullptr;
        break;
    }
    if (!ok) {
      FreeBlockContext(context);
      return nullptr;
    }
    return context;
  }

  // Layout nonce(16) ‖ ciphertext ‖ tag(16). Only the IV changes per block, so the key
  // schedule set in CreateContext is reused.
  static BlockFailure OpenGcm(EVP_CIPHER_CTX* ctx, std::span<const uint8_t> chunk,
                              std::span<const uint8_t> aad, uint8_t* out, size_t plain_size) {
    const uint8_t* ct = chunk.data() + 16;
    // EVP_CTRL_AEAD_SET_TAG takes a non-const pointer but only copies from it.
    uint8_t* tag = const_cast<uint8_t*>(ct + plain_size);
    int len = 0;
    if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, chunk.data()) != 1 ||
        EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
        EVP_DecryptUpdate(ctx, out, &len, ct, static_cast<int>(plain_size)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag) != 1) {
      return BlockFailure::kInternal;
    }
    return EVP_DecryptFinal_ex(ctx, out + len, &len) == 1 ? BlockFailure::kNone
                                                          : BlockFailure::kAuthentication;
  }

  // RFC 5297 AES-SIV-512 decryption. Layout nonce(16) ‖ V(16) ‖ ciphertext; the S2V input
  // vector is [aad, nonce, plaintext] (gocryptfs passes the nonce as the last associated-data
  // string). CTR with IV = V (bits 31 and 63 cleared) gives the plaintext, whose S2V must
  // equal V.
  BlockFailure OpenSiv(const BlockContext& context, std::span<const uint8_t> chunk,
                       std::span<const uint8_t> aad, uint8_t* out, size_t plain_size) const {
    if (!s2v_ready_) {
      return BlockFailure::kInternal;
    }
    const uint8_t* nonce = chunk.data();
    const uint8_t* v = chunk.data() + 16;
    uint8_t counter[16];
    std::memcpy(counter, v, 16);
    counter[8] &= 0x7f;
    counter[12] &= 0x7f;
    int len = 0;
    if (EVP_EncryptInit_ex(context.cipher, nullptr, nullptr, nullptr, counter) != 1 ||
        EVP_EncryptUpdate(context.cipher, out, &len, chunk.data() + 32,
                          static_cast<int>(plain_size)) != 1) {
      return BlockFailure::kInternal;
    }
    // D and the last block are derived from the key and the plaintext: cleansed below.
    uint8_t d[16];
    uint8_t mac[16];
    uint8_t last[16] = {};
    std::memcpy(d, s2v_zero_.data(), 16);
    bool ok = true;
    for (std::span<const uint8_t> component : {aad, std::span<const uint8_t>(nonce, 16)}) {
      DoubleBigEndian(d);
      ok = ok && Cmac(context.mac, component, {}, mac);
      Xor16(d, mac);
    }
    const std::span<const uint8_t> plain(out, plain_size);
    if (plain_size >= 16) {
      // T = plaintext xorend D
      std::memcpy(last, out + plain_size - 16, 16);
      Xor16(last, d);
      ok = ok && Cmac(context.mac, plain.first(plain_size - 16), last, mac);
    } else {
      // T = dbl(D) xor pad(plaintext)
      DoubleBigEndian(d);
      std::memcpy(last, out, plain_size);
      last[plain_size] = 0x80;
      Xor16(last, d);
      ok = ok && Cmac(context.mac, last, {}, mac);
    }
    OPENSSL_cleanse(d, sizeof(d));
    OPENSSL_cleanse(last, sizeof(last));
    if (!ok) {
      return BlockFailure::kInternal;
    }
    return CRYPTO_memcmp(mac, v, 16) == 0 ? BlockFailure::kNone : BlockFailure::kAuthentication;
  }

  // Layout nonce(24) ‖ ciphertext ‖ tag(16): subkey = HChaCha20(key, nonce[0:16]), then IETF
  // ChaCha20-Poly1305 with nonce 0^4 ‖ nonce[16:24] (draft-irtf-cfrg-xchacha §2.3).
  BlockFailure OpenXChaCha(EVP_CIPHER_CTX* ctx, std::span<const uint8_t> chunk,
                           std::span<const uint8_t> aad, uint8_t* out, size_t plain_size) const {
    uint8_t subkey[32];
    HChaCha20(std::span<const uint8_t, 32>(key_.data(), 32),
              std::span<const uint8_t, 16>(chunk.data(), 16), subkey);
    uint8_t iv[12] = {0, 0, 0, 0};
    std::memcpy(iv + 4, chunk.data() + 16, 8);
    const uint8_t* ct = chunk.data() + 24;
    uint8_t* tag = const_cast<uint8_t*>(ct + plain_size);  // read-only use, see OpenGcm
    int len = 0;
    const bool ok =
        EVP_DecryptInit_ex(ctx, nullptr, nullptr, subkey, iv) == 1 &&
        EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
        EVP_DecryptUpdate(ctx, out, &len, ct, static_cast<int>(plain_size)) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag) == 1;
    OPENSSL_cleanse(subkey, sizeof(subkey));
    if (!ok) {
      return BlockFailure::kInternal;
    }
    return EVP_DecryptFinal_ex(ctx, out + len, &len) == 1 ? BlockFailure::kNone
                                                          : BlockFailure::kAuthentication;
  }

  ContentAlgorithm algorithm_;
  size_t nonce_size_;
  SecretBytes key_;
  EVP_CIPHER* cipher_;    // fetched once; nullptr when the key length is wrong
  EVP_MAC* cmac_;         // AES-SIV only
  SecretBytes s2v_zero_;  // AES-SIV: CMAC(K1, 0^128)
  bool s2v_ready_ = false;
  mutable BlockContextPool pool_;
};

ContentCipher::ContentCipher(ContentAlgorithm algorithm, SecretBytes content_key)
    : algorithm_(algorithm), impl_(std::make_unique<Impl>(algorithm, std::move(content_key))) {}

ContentCipher::~ContentCipher() = default;

size_t ContentCipher::nonce_size() const { return NonceSizeOf(algorithm_); }

uint64_t ContentCipher::PlainSize(uint64_t cipher_size) const {
  if (cipher_size <= kHeaderSize) {
    return 0;
  }
  const uint64_t body = cipher_size - kHeaderSize;
  const uint64_t full = body / cipher_block_size();
  uint64_t rest = body % cipher_block_size();
  if (rest > 0 && rest <= overhead()) {
    rest = overhead() + 1;  // torn last block: gocryptfs reports one byte for it
  }
  return full * kPlainBlockSize + (rest > 0 ? rest - overhead() : 0);
}

uint64_t ContentCipher::CipherSize(uint64_t plain_size) const {
  if (plain_size == 0) {
    return 0;
  }
  const uint64_t blocks = (plain_size + kPlainBlockSize - 1) / kPlainBlockSize;
  return kHeaderSize + plain_size + blocks * overhead();
}

Result<FileId> ContentCipher::ParseHeader(std::span<const uint8_t> header) const {
  if (header.size() < kHeaderSize) {
    return Error(Errc::kCorrupt,
                 "file header too short (" + std::to_string(header.size()) + " of 18 bytes)");
  }
  if (AllZero(header.data(), kHeaderSize)) {
    return Error(Errc::kCorrupt, "file header is all zero");
  }
  const unsigned version = (unsigned{header[0]} << 8) | header[1];
  if (version != 2) {
    return Error(Errc::kCorrupt,
                 "file header has version " + std::to_string(version) + ", expected 2");
  }
  FileId id;
  std::memcpy(id.data(), header.data() + 2, id.size());
  if (AllZero(id.data(), id.size())) {
    return Error(Errc::kCorrupt, "file header has an all-zero file ID");
  }
  return id;
}

Result<size_t> ContentCipher::DecryptBlocks(std::span<const uint8_t> cipher, uint64_t first_block,
                                            const FileId& file_id, std::span<uint8_t> plain,
                                            TaskPool* pool) const {
  if (cipher.empty()) {
    return size_t{0};
  }
  const size_t cbs = cipher_block_size();
  const size_t count = (cipher.size() + cbs - 1) / cbs;
  const size_t last_size = cipher.size() - (count - 1) * cbs;
  const size_t plain_total =
      (count - 1) * kPlainBlockSize + (last_size > overhead() ? last_size - overhead() : 0);
  if (plain.size() < plain_total) {
    return Error(Errc::kInternal, "DecryptBlocks: plaintext buffer too small");
  }

  // Decrypts blocks [begin, end) of the request; returns the first failing index, or `end`.
  auto decrypt_range = [&](size_t begin, size_t end, BlockFailure* failure) -> size_t {
    Impl::BlockContextPool::Lease lease = impl_->pool().Acquire();
    uint8_t aad[kFileAadSize];
    std::memcpy(aad + kBlockNumberSize, file_id.data(), file_id.size());
    for (size_t i = begin; i < end; ++i) {
      StoreBe64(aad, first_block + i);
      const size_t offset = i * cbs;
      const std::span<const uint8_t> chunk =
          cipher.subspan(offset, std::min(cbs, cipher.size() - offset));
      *failure = impl_->OpenChunk(lease.get(), chunk, aad, plain.data() + i * kPlainBlockSize,
                                  /*allow_hole=*/true);
      if (*failure != BlockFailure::kNone) {
        return i;
      }
    }
    return end;
  };

  size_t failed_index = count;
  BlockFailure failure = BlockFailure::kNone;
  const size_t pieces =
      pool == nullptr ? 1 : std::min(pool->concurrency(), count / kMinBlocksPerPiece);
  if (pieces <= 1) {
    failed_index = decrypt_range(0, count, &failure);
  } else {
    // One slot per piece; the lowest failing block is reported, as a serial pass would.
    std::vector<std::pair<size_t, BlockFailure>> results(pieces);
    pool->ParallelFor(pieces, [&](size_t piece) {
      const size_t begin = count * piece / pieces;
      const size_t end = count * (piece + 1) / pieces;
      BlockFailure piece_failure = BlockFailure::kNone;
      const size_t at = decrypt_range(begin, end, &piece_failure);
      results[piece] = {at == end ? count : at, piece_failure};
    });
    for (const auto& [at, piece_failure] : results) {
      if (at < failed_index) {
        failed_index = at;
        failure = piece_failure;
      }
    }
  }
  if (failed_index < count) {
    return Error(ErrcOf(failure),
                 "block " + std::to_string(first_block + failed_index) + ": " + Describe(failure));
  }
  return plain_total;
}

Result<std::string> ContentCipher::OpenSmall(std::span<const uint8_t> sealed) const {
  if (sealed.empty()) {
    return std::string();
  }
  if (sealed.size() <= overhead()) {
    return Error(Errc::kCorrupt, "sealed value too short");
  }
  std::string out(sealed.size() - overhead(), '\0');
  static constexpr uint8_t kZeroAad[kBlockNumberSize] = {};
  Impl::BlockContextPool::Lease lease = impl_->pool().Acquire();
  // reinterpret_cast: std::string storage viewed as bytes, the usual char/uint8_t aliasing.
  const BlockFailure failure =
      impl_->OpenChunk(lease.get(), sealed, kZeroAad, reinterpret_cast<uint8_t*>(out.data()),
                       /*allow_hole=*/false);
  if (failure != BlockFailure::kNone) {
    return Error(ErrcOf(failure), Describe(failure));
  }
  return out;
}

}  // namespace cachefs::crypto
