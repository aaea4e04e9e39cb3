#include "crypto/kdf.h"

#include <gtest/gtest.h>

#include "fixture_util.h"

namespace cachefs::crypto {
namespace {

using testing::Hex;
using testing::Unhex;

std::string HkdfHex(const std::vector<uint8_t>& ikm, std::string_view info, size_t length) {
  auto out = HkdfSha256(ikm, info, length);
  EXPECT_TRUE(out);
  return out ? Hex(out->span()) : "";
}

// RFC 5869 A.3: SHA-256, zero-length salt and info.
TEST(KdfTest, HkdfRfc5869NoSaltVector) {
  EXPECT_EQ(HkdfHex(std::vector<uint8_t>(22, 0x0b), "", 42),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

// gocryptfs internal/cryptocore/hkdf_test.go (format spec §3).
TEST(KdfTest, GocryptfsHkdfVectors) {
  const std::vector<uint8_t> zero(32, 0x00);
  const std::vector<uint8_t> one(32, 0x01);
  EXPECT_EQ(HkdfHex(zero, "EME filename encryption", 32),
            "9ba3cddd48c6339c6e56ebe85f0281d6e9051be4104176e65cb0f8a6f77ae6b4");
  EXPECT_EQ(HkdfHex(one, "EME filename encryption", 32),
            "e8a2499f48700b954f31de732efd04abce822f5c948e7fbc0896607be0d36d12");
  EXPECT_EQ(HkdfHex(one, "AES-GCM file content encryption", 32),
            "9137f2e67a842484137f3c458f357f204c30d7458f94f432fa989be96854a649");
  EXPECT_EQ(HkdfHex(one, "AES-SIV file content encryption", 64).substr(0, 64),
            "0bfa5da7d9724d4753269940d36898e2c0f3717c0fee86ada58b5fd6c08cc26c");
}

// Format spec §2.4 and §3: fixture v1.3 with password "test", step by step.
TEST(KdfTest, V13WorkedExample) {
  auto config =
      ParseVolumeConfig(testing::ReadFileText(testing::FixturePath("v1.3") / "gocryptfs.conf"));
  ASSERT_TRUE(config);
  const ScryptParams& s = config->scrypt;
  auto kdf_out = Scrypt(testing::Password(), s.salt, s.n, s.r, s.p, s.key_len);
  ASSERT_TRUE(kdf_out);
  const std::string kdf_hex = Hex(kdf_out->span());
  EXPECT_EQ(kdf_hex.substr(0, 8), "1875042c");
  EXPECT_EQ(kdf_hex.substr(56), "eb367729");
  auto kek = HkdfSha256(kdf_out->span(), "AES-GCM file content encryption", 32);
  ASSERT_TRUE(kek);
  EXPECT_EQ(Hex(kek->span()), "040f2714c2919f9dcca10afd4fbdf8cc2a38327b004c7b6841d967df7915b89a");
  EXPECT_EQ(Hex(std::span<const uint8_t>(config->encrypted_key).first(16)),
            "58684a7c2bd5fcb059770a56cf716cfb");
  auto master = UnwrapMasterKey(*config, testing::Password());
  ASSERT_TRUE(master);
  const std::string master_hex = "fd890dab86bf61cfec5ad460ad3ed01f9c52d5462a31783da56b088d3d05232e";
  EXPECT_EQ(Hex(master->span()), master_hex);
  EXPECT_EQ(HkdfHex(Unhex(master_hex), "AES-GCM file content encryption", 32),
            "0cbf2a99856b0a76d4005ce7abd5b87527dfb445f384980d55dace609f5ed9bd");
  EXPECT_EQ(HkdfHex(Unhex(master_hex), "EME filename encryption", 32),
            "966aaecdda16f251bae79d55869aa581bbea419ccd8a7738d8bdac2e3ccc9759");
}

// RFC 7914 §12, third vector.
TEST(KdfTest, ScryptRfc7914Vector) {
  const std::string salt = "NaCl";
  auto out =
      Scrypt(SecretBytes::CopyOf(std::string_view("password")),
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(salt.data()), salt.size()),
             1024, 8, 16, 64);
  ASSERT_TRUE(out);
  EXPECT_EQ(Hex(out->span()),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
            "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
}

TEST(KdfTest, ScryptRefusesHugeMemory) {
  const std::vector<uint8_t> salt(32, 1);
  auto out = Scrypt(testing::Password(), salt, uint64_t{1} << 30, 8, 1, 32);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), Errc::kUnsupported);
}

TEST(KdfTest, Sha512AndSha256) {
  auto sha512 = Sha512Secret(std::span<const uint8_t>());
  ASSERT_TRUE(sha512);
  EXPECT_EQ(Hex(sha512->span()).substr(0, 32), "cf83e1357eefb8bdf1542850d66d8007");
  EXPECT_EQ(Hex(Sha256(std::span<const uint8_t>())),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(KdfTest, AesGcmOpenDetectsTampering) {
  auto config =
      ParseVolumeConfig(testing::ReadFileText(testing::FixturePath("v1.3") / "gocryptfs.conf"));
  ASSERT_TRUE(config);
  const auto kek = Unhex("040f2714c2919f9dcca10afd4fbdf8cc2a38327b004c7b6841d967df7915b89a");
  const std::vector<uint8_t> aad(8, 0);
  std::vector<uint8_t> blob = config->encrypted_key;
  auto ok = AesGcmOpenSecret(kek, std::span<const uint8_t>(blob).first(16), aad,
                             std::span<const uint8_t>(blob).subspan(16));
  ASSERT_TRUE(ok);
  blob[20] ^= 1;
  auto bad = AesGcmOpenSecret(kek, std::span<const uint8_t>(blob).first(16), aad,
                              std::span<const uint8_t>(blob).subspan(16));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kCorrupt);
}

}  // namespace
}  // namespace cachefs::crypto
