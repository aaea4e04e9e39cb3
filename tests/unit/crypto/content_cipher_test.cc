#include "crypto/content_cipher.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/task_pool.h"
#include "crypto/hchacha20.h"
#include "fixture_util.h"

namespace cachefs::crypto {
namespace {

using testing::Hex;
using testing::Unhex;

constexpr size_t kBlock = ContentCipher::kPlainBlockSize;
constexpr size_t kHeader = ContentCipher::kHeaderSize;

std::vector<uint8_t> Aad(uint64_t block, const FileId& id) {
  std::vector<uint8_t> aad(8);
  for (int i = 7; i >= 0; --i) {
    aad[i] = static_cast<uint8_t>(block);
    block >>= 8;
  }
  aad.insert(aad.end(), id.begin(), id.end());
  return aad;
}

// Test-side encryption in gocryptfs's block layouts, built on OpenSSL directly. The decryption
// side is also checked against real gocryptfs fixtures, so a shared mistake would show there.
std::vector<uint8_t> SealBlock(ContentAlgorithm algorithm, const std::vector<uint8_t>& key,
                               const std::vector<uint8_t>& aad, const uint8_t* plain, size_t size) {
  const size_t nonce_size = algorithm == ContentAlgorithm::kXChaCha20Poly1305 ? 24 : 16;
  std::vector<uint8_t> nonce(nonce_size);
  RAND_bytes(nonce.data(), static_cast<int>(nonce.size()));
  std::vector<uint8_t> ct(size);
  uint8_t tag[16];
  int len = 0;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  switch (algorithm) {
    case ContentAlgorithm::kAesGcm:
      EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 16, nullptr);
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, key.data(), nonce.data());
      EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size()));
      EVP_EncryptUpdate(ctx, ct.data(), &len, plain, static_cast<int>(size));
      EVP_EncryptFinal_ex(ctx, ct.data() + len, &len);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
      break;
    case ContentAlgorithm::kAesSiv: {
      EVP_CIPHER* siv = EVP_CIPHER_fetch(nullptr, "AES-256-SIV", nullptr);
      EVP_EncryptInit_ex(ctx, siv, nullptr, key.data(), nullptr);
      EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size()));
      EVP_EncryptUpdate(ctx, nullptr, &len, nonce.data(), 16);
      EVP_EncryptUpdate(ctx, ct.data(), &len, plain, static_cast<int>(size));
      EVP_EncryptFinal_ex(ctx, ct.data() + len, &len);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
      EVP_CIPHER_free(siv);
      break;
    }
    case ContentAlgorithm::kXChaCha20Poly1305: {
      uint8_t subkey[32];
      HChaCha20(std::span<const uint8_t, 32>(key.data(), 32),
                std::span<const uint8_t, 16>(nonce.data(), 16), subkey);
      uint8_t iv[12] = {};
      std::memcpy(iv + 4, nonce.data() + 16, 8);
      EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, subkey, iv);
      EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size()));
      EVP_EncryptUpdate(ctx, ct.data(), &len, plain, static_cast<int>(size));
      EVP_EncryptFinal_ex(ctx, ct.data() + len, &len);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
      break;
    }
  }
  EVP_CIPHER_CTX_free(ctx);
  std::vector<uint8_t> out = nonce;
  if (algorithm == ContentAlgorithm::kAesSiv) {
    out.insert(out.end(), tag, tag + 16);
    out.insert(out.end(), ct.begin(), ct.end());
  } else {
    out.insert(out.end(), ct.begin(), ct.end());
    out.insert(out.end(), tag, tag + 16);
  }
  return out;
}

// A whole gocryptfs ciphertext file (header + blocks) for `plain`.
std::vector<uint8_t> SealFile(ContentAlgorithm algorithm, const std::vector<uint8_t>& key,
                              const FileId& id, const std::vector<uint8_t>& plain) {
  std::vector<uint8_t> file = {0x00, 0x02};
  file.insert(file.end(), id.begin(), id.end());
  for (size_t offset = 0, block = 0; offset < plain.size(); offset += kBlock, ++block) {
    const size_t n = std::min(kBlock, plain.size() - offset);
    const auto sealed = SealBlock(algorithm, key, Aad(block, id), plain.data() + offset, n);
    file.insert(file.end(), sealed.begin(), sealed.end());
  }
  return file;
}

std::vector<uint8_t> RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(size);
  for (auto& b : out) {
    b = static_cast<uint8_t>(rng());
  }
  return out;
}

std::vector<uint8_t> KeyFor(ContentAlgorithm algorithm) {
  return RandomBytes(algorithm == ContentAlgorithm::kAesSiv ? 64 : 32, 7);
}

const FileId kFileId = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

class ContentCipherTest : public ::testing::TestWithParam<ContentAlgorithm> {
 protected:
  ContentCipherTest() : key_(KeyFor(GetParam())), cipher_(GetParam(), SecretBytes::CopyOf(key_)) {}

  std::vector<uint8_t> Body(const std::vector<uint8_t>& file) const {
    return std::vector<uint8_t>(file.begin() + kHeader, file.end());
  }

  Result<std::vector<uint8_t>> Decrypt(const std::vector<uint8_t>& body, uint64_t first_block,
                                       TaskPool* pool = nullptr, const FileId& id = kFileId) {
    const size_t blocks =
        (body.size() + cipher_.cipher_block_size() - 1) / cipher_.cipher_block_size();
    std::vector<uint8_t> plain(blocks * kBlock, 0xAA);
    CACHEFS_ASSIGN_OR_RETURN(size_t n, cipher_.DecryptBlocks(body, first_block, id, plain, pool));
    plain.resize(n);
    return plain;
  }

  size_t BlockOffset(size_t block) const { return block * cipher_.cipher_block_size(); }

  std::vector<uint8_t> key_;
  ContentCipher cipher_;
};

TEST_P(ContentCipherTest, RoundTripsEveryEdgeSize) {
  for (size_t size :
       {size_t{1}, size_t{15}, kBlock - 1, kBlock, kBlock + 1, 2 * kBlock, 5 * kBlock + 17}) {
    const auto plain = RandomBytes(size, static_cast<uint32_t>(size));
    const auto file = SealFile(GetParam(), key_, kFileId, plain);
    EXPECT_EQ(file.size(), cipher_.CipherSize(size));
    EXPECT_EQ(cipher_.PlainSize(file.size()), size);
    auto id = cipher_.ParseHeader(file);
    ASSERT_TRUE(id);
    EXPECT_EQ(*id, kFileId);
    auto out = Decrypt(Body(file), 0);
    ASSERT_TRUE(out) << size << ": " << out.error().message();
    EXPECT_EQ(*out, plain) << size;
  }
}

TEST_P(ContentCipherTest, DecryptsARangeStartingAtALaterBlock) {
  const auto plain = RandomBytes(4 * kBlock + 100, 1);
  const auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  const std::vector<uint8_t> tail(body.begin() + BlockOffset(2), body.end());
  auto out = Decrypt(tail, 2);
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, std::vector<uint8_t>(plain.begin() + 2 * kBlock, plain.end()));
  // The block number is authenticated: the same bytes as blocks 0… fail.
  auto wrong = Decrypt(tail, 0);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), Errc::kCorrupt);
  EXPECT_EQ(wrong.error().message(), "block 0: authentication failed");
}

TEST_P(ContentCipherTest, FlippedBitFailsOnlyThatBlock) {
  const auto plain = RandomBytes(3 * kBlock, 2);
  auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  body[BlockOffset(1) + 100] ^= 0x01;
  auto all = Decrypt(body, 0);
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error().code(), Errc::kCorrupt);
  EXPECT_EQ(all.error().message(), "block 1: authentication failed");

  const std::vector<uint8_t> block0(body.begin(), body.begin() + BlockOffset(1));
  auto first = Decrypt(block0, 0);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, std::vector<uint8_t>(plain.begin(), plain.begin() + kBlock));
  const std::vector<uint8_t> block2(body.begin() + BlockOffset(2), body.end());
  auto third = Decrypt(block2, 2);
  ASSERT_TRUE(third);
  EXPECT_EQ(*third, std::vector<uint8_t>(plain.begin() + 2 * kBlock, plain.end()));
}

TEST_P(ContentCipherTest, FailedBlockLeavesNoUnauthenticatedPlaintext) {
  const auto plain = RandomBytes(2 * kBlock, 3);
  auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  body[BlockOffset(1) + 40] ^= 0x80;
  std::vector<uint8_t> out(2 * kBlock, 0xAA);
  ASSERT_FALSE(cipher_.DecryptBlocks(body, 0, kFileId, out));
  for (size_t i = kBlock; i < 2 * kBlock; ++i) {
    ASSERT_EQ(out[i], 0) << i;
  }
}

TEST_P(ContentCipherTest, SwappedBlocksFail) {
  const auto plain = RandomBytes(3 * kBlock, 4);
  auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  std::swap_ranges(body.begin() + BlockOffset(0), body.begin() + BlockOffset(1),
                   body.begin() + BlockOffset(1));
  auto out = Decrypt(body, 0);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "block 0: authentication failed");
}

TEST_P(ContentCipherTest, OtherFilesIdFails) {
  const auto plain = RandomBytes(kBlock, 5);
  const auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  FileId other = kFileId;
  other[15] ^= 1;
  auto out = Decrypt(body, 0, nullptr, other);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "block 0: authentication failed");
}

TEST_P(ContentCipherTest, FullZeroBlockIsAHole) {
  const auto plain = RandomBytes(3 * kBlock + 10, 6);
  auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  std::fill(body.begin() + BlockOffset(1), body.begin() + BlockOffset(2), 0);
  auto out = Decrypt(body, 0);
  ASSERT_TRUE(out) << out.error().message();
  auto expected = plain;
  std::fill(expected.begin() + kBlock, expected.begin() + 2 * kBlock, 0);
  EXPECT_EQ(*out, expected);
}

TEST_P(ContentCipherTest, ShortAllZeroLastBlockIsCorrupt) {
  const auto plain = RandomBytes(3 * kBlock + 10, 7);
  auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  std::fill(body.begin() + BlockOffset(3), body.end(), 0);
  auto out = Decrypt(body, 0);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), Errc::kCorrupt);
  EXPECT_EQ(out.error().message(), "block 3: all-zero nonce");
}

TEST_P(ContentCipherTest, ZeroNonceOnFullBlockWithDataIsCorrupt) {
  const auto plain = RandomBytes(2 * kBlock, 8);
  auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  std::fill(body.begin(), body.begin() + cipher_.nonce_size(), 0);
  auto out = Decrypt(body, 0);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "block 0: all-zero nonce");
}

TEST_P(ContentCipherTest, TruncatedLastBlockIsTooShort) {
  const auto plain = RandomBytes(kBlock + 1, 9);
  auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  body.resize(BlockOffset(1) + 10);
  // stat pretends the torn block holds one byte (gocryptfs CipherSizeToPlainSize).
  EXPECT_EQ(cipher_.PlainSize(kHeader + body.size()), kBlock + 1);
  auto out = Decrypt(body, 0);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "block 1: block too short");
}

TEST_P(ContentCipherTest, ParallelEqualsSerial) {
  const auto plain = RandomBytes(300 * kBlock + 1234, 10);
  const auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  auto serial = Decrypt(body, 0);
  ASSERT_TRUE(serial);
  EXPECT_EQ(*serial, plain);
  for (size_t workers : {1, 3}) {
    TaskPool pool(workers);
    auto parallel = Decrypt(body, 0, &pool);
    ASSERT_TRUE(parallel) << parallel.error().message();
    EXPECT_EQ(*parallel, plain);
  }
}

TEST_P(ContentCipherTest, ParallelReportsTheLowestBadBlock) {
  const auto plain = RandomBytes(256 * kBlock, 11);
  auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  body[BlockOffset(200) + 50] ^= 1;
  body[BlockOffset(70) + 50] ^= 1;
  TaskPool pool(3);
  auto out = Decrypt(body, 0, &pool);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "block 70: authentication failed");
}

TEST_P(ContentCipherTest, ConcurrentCallersShareTheCipher) {
  const auto plain = RandomBytes(64 * kBlock, 12);
  const auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto out = Decrypt(body, 0);
        if (!out || *out != plain) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(ContentCipherTest, RejectsSmallOutputBuffer) {
  const auto plain = RandomBytes(kBlock + 10, 13);
  const auto body = Body(SealFile(GetParam(), key_, kFileId, plain));
  std::vector<uint8_t> out(kBlock + 9);
  auto result = cipher_.DecryptBlocks(body, 0, kFileId, out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), Errc::kInternal);
  // Exactly the plaintext size is enough.
  out.resize(kBlock + 10);
  EXPECT_TRUE(cipher_.DecryptBlocks(body, 0, kFileId, out));
}

TEST_P(ContentCipherTest, EmptyInputDecryptsToNothing) {
  std::vector<uint8_t> out;
  auto result = cipher_.DecryptBlocks({}, 0, kFileId, out);
  ASSERT_TRUE(result);
  EXPECT_EQ(*result, 0u);
}

TEST_P(ContentCipherTest, OpenSmallUsesBlockZeroWithoutFileId) {
  const std::string target = "/etc/hostname";
  const auto sealed = SealBlock(GetParam(), key_, std::vector<uint8_t>(8, 0),
                                reinterpret_cast<const uint8_t*>(target.data()), target.size());
  auto opened = cipher_.OpenSmall(sealed);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(*opened, target);
  auto empty = cipher_.OpenSmall({});
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, "");
  auto short_value = cipher_.OpenSmall(std::span<const uint8_t>(sealed).first(cipher_.overhead()));
  ASSERT_FALSE(short_value);
  EXPECT_EQ(short_value.error().code(), Errc::kCorrupt);
  auto tampered = sealed;
  tampered.back() ^= 1;
  EXPECT_FALSE(cipher_.OpenSmall(tampered));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, ContentCipherTest,
                         ::testing::Values(ContentAlgorithm::kAesGcm, ContentAlgorithm::kAesSiv,
                                           ContentAlgorithm::kXChaCha20Poly1305),
                         [](const ::testing::TestParamInfo<ContentAlgorithm>& info) {
                           switch (info.param) {
                             case ContentAlgorithm::kAesGcm:
                               return std::string("AesGcm");
                             case ContentAlgorithm::kAesSiv:
                               return std::string("AesSiv");
                             case ContentAlgorithm::kXChaCha20Poly1305:
                               return std::string("XChaCha");
                           }
                           return std::string();
                         });

// gocryptfs-format.md §4.6 worked examples.
TEST(ContentCipherSizeTest, GcmTable) {
  ContentCipher gcm(ContentAlgorithm::kAesGcm, SecretBytes(32));
  const std::pair<uint64_t, uint64_t> table[] = {
      {0, 0},       {1, 51},      {4095, 4145},       {4096, 4146},         {4097, 4179},
      {5000, 5082}, {8192, 8274}, {1048593, 1056835}, {20971520, 21135378},
  };
  for (const auto& [plain, cipher] : table) {
    EXPECT_EQ(gcm.CipherSize(plain), cipher) << plain;
    EXPECT_EQ(gcm.PlainSize(cipher), plain) << cipher;
  }
  EXPECT_EQ(gcm.PlainSize(10), 0u);  // shorter than the header
  EXPECT_EQ(gcm.PlainSize(18), 0u);  // header only
  EXPECT_EQ(gcm.PlainSize(19), 1u);  // torn: 1..32 body bytes count as one byte
  EXPECT_EQ(gcm.PlainSize(18 + 32), 1u);
  EXPECT_EQ(gcm.PlainSize(4156), 4097u);  // §4.9: last block truncated to 10 bytes
  EXPECT_EQ(gcm.PlainSize(18 + 4128 + 32), 4097u);
  EXPECT_EQ(gcm.PlainSize(18 + 4128 + 33), 4097u);
  EXPECT_EQ(gcm.cipher_block_size(), 4128u);
  EXPECT_EQ(gcm.overhead(), 32u);
}

TEST(ContentCipherSizeTest, XChaChaSizes) {
  ContentCipher xchacha(ContentAlgorithm::kXChaCha20Poly1305, SecretBytes(32));
  EXPECT_EQ(xchacha.nonce_size(), 24u);
  EXPECT_EQ(xchacha.cipher_block_size(), 4136u);
  EXPECT_EQ(xchacha.CipherSize(1), 59u);
  EXPECT_EQ(xchacha.CipherSize(10), 68u);
  EXPECT_EQ(xchacha.CipherSize(5000), 5098u);
  EXPECT_EQ(xchacha.PlainSize(5098), 5000u);
  ContentCipher siv(ContentAlgorithm::kAesSiv, SecretBytes(64));
  EXPECT_EQ(siv.cipher_block_size(), 4128u);
}

TEST(ContentCipherSizeTest, SizesRoundTrip) {
  for (auto algorithm : {ContentAlgorithm::kAesGcm, ContentAlgorithm::kXChaCha20Poly1305}) {
    ContentCipher cipher(algorithm, SecretBytes(32));
    for (uint64_t p = 0; p < 3 * kBlock + 5; ++p) {
      ASSERT_EQ(cipher.PlainSize(cipher.CipherSize(p)), p);
    }
  }
}

TEST(ContentCipherHeaderTest, ValidatesHeader) {
  ContentCipher cipher(ContentAlgorithm::kAesGcm, SecretBytes(32));
  std::vector<uint8_t> header(18, 0);
  auto zero = cipher.ParseHeader(header);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().code(), Errc::kCorrupt);
  EXPECT_EQ(zero.error().message(), "file header is all zero");

  header[1] = 2;
  auto zero_id = cipher.ParseHeader(header);
  ASSERT_FALSE(zero_id);
  EXPECT_EQ(zero_id.error().message(), "file header has an all-zero file ID");

  header[5] = 9;
  auto ok = cipher.ParseHeader(header);
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)[3], 9);

  header[1] = 1;
  auto version = cipher.ParseHeader(header);
  ASSERT_FALSE(version);
  EXPECT_EQ(version.error().message(), "file header has version 1, expected 2");

  auto short_header = cipher.ParseHeader(std::span<const uint8_t>(header).first(17));
  ASSERT_FALSE(short_header);
  EXPECT_EQ(short_header.error().code(), Errc::kCorrupt);
}

TEST(ContentCipherKeyTest, WrongKeyLengthFailsCleanly) {
  ContentCipher cipher(ContentAlgorithm::kAesSiv, SecretBytes(32));  // SIV needs 64 bytes
  const auto key = KeyFor(ContentAlgorithm::kAesGcm);
  const auto file = SealFile(ContentAlgorithm::kAesGcm, key, kFileId, RandomBytes(100, 1));
  std::vector<uint8_t> out(kBlock);
  auto result =
      cipher.DecryptBlocks(std::span<const uint8_t>(file).subspan(kHeader), 0, kFileId, out);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), Errc::kInternal);
  EXPECT_EQ(result.error().message(), "block 0: OpenSSL failure");
}

// draft-irtf-cfrg-xchacha-03 §2.2.1.
TEST(HChaCha20Test, DraftVector) {
  const auto key = Unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  const auto nonce = Unhex("000000090000004a0000000031415927");
  uint8_t out[32];
  HChaCha20(std::span<const uint8_t, 32>(key.data(), 32),
            std::span<const uint8_t, 16>(nonce.data(), 16), out);
  EXPECT_EQ(Hex(out), "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc");
}

}  // namespace
}  // namespace cachefs::crypto
