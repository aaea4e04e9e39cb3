#include "crypto/name_cipher.h"

#include <gtest/gtest.h>

#include "crypto/eme.h"
#include "crypto/kdf.h"
#include "fixture_util.h"

namespace cachefs::crypto {
namespace {

using testing::FixturePath;
using testing::ReadFileBytes;
using testing::ReadFileText;
using testing::Unhex;

const std::string kLongName = "longname_255_" + std::string(242, 'x');

DirIv ToIv(const std::vector<uint8_t>& bytes) {
  DirIv iv{};
  std::copy(bytes.begin(), bytes.end(), iv.begin());
  return iv;
}

SecretBytes V13EmeKey() {
  return SecretBytes::CopyOf(
      Unhex("966aaecdda16f251bae79d55869aa581bbea419ccd8a7738d8bdac2e3ccc9759"));
}

const DirIv kV13Iv = ToIv(Unhex("4ea638916d6d243bf9b93bf35c0a36b6"));

// Format spec §6.2 worked example and the fixture's cipher-name map.
TEST(NameCipherTest, V13Names) {
  NameCipher names(V13EmeKey(), /*raw64=*/true, 255);
  ASSERT_EQ(ToIv(ReadFileBytes(FixturePath("v1.3/gocryptfs.diriv"))), kV13Iv);
  auto encrypted = names.EncryptName("status.txt", kV13Iv);
  ASSERT_TRUE(encrypted);
  EXPECT_EQ(*encrypted, "mGj2_hdnHe34Sp0iIQUwuw");
  auto decrypted = names.DecryptName("mGj2_hdnHe34Sp0iIQUwuw", kV13Iv);
  ASSERT_TRUE(decrypted);
  EXPECT_EQ(*decrypted, "status.txt");
  EXPECT_EQ(*names.EncryptName("rel", kV13Iv), "uD4PVrDBY5y2k_qLKNOFvA");
  EXPECT_EQ(*names.EncryptName("abs", kV13Iv), "gv65k_g2NQyBsSv_5dzMVQ");

  auto longname = names.EncryptName(kLongName, kV13Iv);
  ASSERT_TRUE(longname);
  EXPECT_EQ(*longname, "gocryptfs.longname.QhUr5d9FHerwEs--muUs6_80cy6JRp89c1otLwp92Cs");
  const std::string companion = ReadFileText(
      FixturePath("v1.3/gocryptfs.longname.QhUr5d9FHerwEs--muUs6_80cy6JRp89c1otLwp92Cs.name"));
  EXPECT_EQ(companion.size(), 342u);
  EXPECT_EQ(names.LongNameFor(companion), *longname);
  EXPECT_EQ(*names.DecryptName(companion, kV13Iv), kLongName);
}

// v0.9: no HKDF (EME key = master key), padded base64.
TEST(NameCipherTest, V09PaddedNames) {
  NameCipher names(SecretBytes::CopyOf(Unhex(
                       "1cafe3f4-bc316466-2214c47c-ecd89bf3-4e078fe4-f5faeea7-8b7cab02-884f5e1c")),
                   /*raw64=*/false, 255);
  const DirIv iv = ToIv(ReadFileBytes(FixturePath("v0.9/gocryptfs.diriv")));
  EXPECT_EQ(*names.EncryptName("status.txt", iv), "R83PhW-BBA_q4rPYD7dEMg==");
  EXPECT_EQ(*names.DecryptName("R83PhW-BBA_q4rPYD7dEMg==", iv), "status.txt");
  EXPECT_EQ(*names.EncryptName(kLongName, iv),
            "gocryptfs.longname.y4J-w3LBX165Mn_pGdDRY7Gb6EgHcTrdWjME3WGu-CQ=");
  // The Raw64 spelling of the same bytes is refused in padded mode.
  auto raw = names.DecryptName("R83PhW-BBA_q4rPYD7dEMg", iv);
  ASSERT_FALSE(raw);
  EXPECT_EQ(raw.error().code(), Errc::kCorrupt);
}

TEST(NameCipherTest, LongNameThreshold) {
  NameCipher raw(V13EmeKey(), true, 255);
  NameCipher padded(V13EmeKey(), false, 255);
  // 175 bytes pad to 176 = 11 blocks → 235 (raw) / 236 (padded) chars: kept.
  for (NameCipher* names : {&raw, &padded}) {
    auto kept = names->EncryptName(std::string(175, 'a'), kV13Iv);
    ASSERT_TRUE(kept);
    EXPECT_EQ(kept->size(), names == &raw ? 235u : 236u);
    EXPECT_FALSE(NameCipher::IsLongName(*kept));
    // 176 bytes pad to 192 → 256 chars: hashed.
    auto hashed = names->EncryptName(std::string(176, 'a'), kV13Iv);
    ASSERT_TRUE(hashed);
    EXPECT_TRUE(NameCipher::IsLongName(*hashed));
    EXPECT_EQ(hashed->size(), names == &raw ? 62u : 63u);
  }
  // LongNameMax lowers the threshold: 30 bytes → 32 padded → 43 chars > 40.
  NameCipher short_max(V13EmeKey(), true, 40);
  EXPECT_TRUE(NameCipher::IsLongName(*short_max.EncryptName(std::string(30, 'b'), kV13Iv)));
  EXPECT_FALSE(NameCipher::IsLongName(*short_max.EncryptName(std::string(15, 'b'), kV13Iv)));
}

TEST(NameCipherTest, RoundTripsEveryLength) {
  NameCipher names(V13EmeKey(), true, 255);
  for (size_t size = 1; size <= 255; ++size) {
    std::string name(size, 'n');
    name[0] = static_cast<char>('A' + size % 26);
    auto cipher_name = names.EncryptName(name, kV13Iv);
    ASSERT_TRUE(cipher_name);
    if (NameCipher::IsLongName(*cipher_name)) {
      continue;  // the full cipher name lives in the .name companion
    }
    auto back = names.DecryptName(*cipher_name, kV13Iv);
    ASSERT_TRUE(back) << size;
    EXPECT_EQ(*back, name);
  }
}

TEST(NameCipherTest, RefusesInvalidPlainNames) {
  NameCipher names(V13EmeKey(), true, 255);
  for (std::string name : {std::string(), std::string("."), std::string(".."), std::string("a/b"),
                           std::string("a\0b", 3), std::string(256, 'x')}) {
    auto out = names.EncryptName(name, kV13Iv);
    ASSERT_FALSE(out) << name;
    EXPECT_EQ(out.error().code(), Errc::kInvalidArgument);
  }
}

// Cipher names whose EME plaintext is `padded` (built with the same key and IV).
std::string CipherNameFor(const std::vector<uint8_t>& padded) {
  auto eme = Eme::Create(Unhex("966aaecdda16f251bae79d55869aa581bbea419ccd8a7738d8bdac2e3ccc9759"));
  auto encrypted = (*eme)->Encrypt(kV13Iv, padded);
  NameCipher names(V13EmeKey(), true, 255);
  return names.EncodeBase64(*encrypted);
}

TEST(NameCipherTest, RejectsBadPaddingAndBadNames) {
  NameCipher names(V13EmeKey(), true, 255);
  auto expect_corrupt = [&](const std::vector<uint8_t>& padded, const char* what) {
    auto out = names.DecryptName(CipherNameFor(padded), kV13Iv);
    ASSERT_FALSE(out) << what;
    EXPECT_EQ(out.error().code(), Errc::kCorrupt) << what;
  };
  std::vector<uint8_t> block(16, 'a');
  block[15] = 0;
  expect_corrupt(block, "zero pad");
  block[15] = 17;
  expect_corrupt(block, "pad > 16");
  expect_corrupt(std::vector<uint8_t>(16, 16), "pad == whole input");
  block[14] = 3;
  block[15] = 2;
  expect_corrupt(block, "inconsistent pad bytes");
  std::vector<uint8_t> two(32, 16);
  two.assign(32, 16);
  std::fill(two.begin(), two.begin() + 16, 'a');
  EXPECT_TRUE(names.DecryptName(CipherNameFor(two), kV13Iv));  // 16-byte name, full pad block
  std::vector<uint8_t> slash = {'a', '/', 'b'};
  slash.insert(slash.end(), 13, 13);
  expect_corrupt(slash, "slash");
  std::vector<uint8_t> nul = {'a', 0, 'b'};
  nul.insert(nul.end(), 13, 13);
  expect_corrupt(nul, "NUL");
  std::vector<uint8_t> dot = {'.'};
  dot.insert(dot.end(), 15, 15);
  expect_corrupt(dot, "dot");
  std::vector<uint8_t> dotdot = {'.', '.'};
  dotdot.insert(dotdot.end(), 14, 14);
  expect_corrupt(dotdot, "dotdot");
  std::vector<uint8_t> too_long(272, 'x');
  std::fill(too_long.end() - 16, too_long.end(), 16);
  expect_corrupt(too_long, "256-byte name");

  for (const char* bad : {"", "not-base64!!", "gocryptfs.diriv", "AAAA", "mGj2_hdnHe34Sp0iIQUwu",
                          "mGj2_hdnHe34Sp0iIQUwuw==", "mGj2_hdnHe34Sp0iIQUwux"}) {
    auto out = names.DecryptName(bad, kV13Iv);
    ASSERT_FALSE(out) << bad;
    EXPECT_EQ(out.error().code(), Errc::kCorrupt) << bad;
  }
  // A different directory IV gives garbage that fails the padding check.
  DirIv other = kV13Iv;
  other[0] ^= 1;
  EXPECT_FALSE(names.DecryptName("mGj2_hdnHe34Sp0iIQUwuw", other));
}

TEST(NameCipherTest, LongNameHelpers) {
  EXPECT_TRUE(NameCipher::IsLongName("gocryptfs.longname.abc"));
  EXPECT_FALSE(NameCipher::IsLongName("gocryptfs.longname.abc.name"));
  EXPECT_TRUE(NameCipher::IsLongNameCompanion("gocryptfs.longname.abc.name"));
  EXPECT_FALSE(NameCipher::IsLongNameCompanion("abc.name"));
  EXPECT_FALSE(NameCipher::IsLongName("gocryptfs.diriv"));
  NameCipher names(V13EmeKey(), true, 255);
  EXPECT_EQ(*names.DecodeBase64("Zm9v"), "foo");
  EXPECT_FALSE(names.DecodeBase64("Zm9v!"));
}

}  // namespace
}  // namespace cachefs::crypto
