#include "crypto/eme.h"

#include <gtest/gtest.h>

#include <random>

#include "fixture_util.h"

namespace cachefs::crypto {
namespace {

using testing::Hex;
using testing::Unhex;

// Vectors from repo rfjakob/eme: eme_test.go (self-generated) and eme32_test.go (the EME-32
// draft vector), all with an all-zero key, tweak and input.
constexpr char kEnc16[] = "f1b9ce8ca15a4ba9fb476905434b9fd3";
constexpr char kEnc512[] =
    "9f2e6c3daecae79e8839b0588ff378cd0668970b95691cb00182b9e34cd658ed"
    "3c9c276838cc5e1411fcb8cf3da1c0f30875804c9df51157b0791100d2551334"
    "834cf4024f6b718fbc7daba07d14eb7cbc79c261b1eb036d0c9f85b914385840"
    "727284005f06a9c1627c0b7fb12a1f81fa83c4b035db006cce846d0756db9fb2"
    "448ee5628d2376ee13954213db3dca725f2c67950eaf2cdac8a27a0433a14c96"
    "927d9145dd93e0b46e670f6c4db8add014b8880efb9a97bec5cd05bba43dcc35"
    "058045ae8168df6e67779198fcc72808ce29c7b5aefdbc9e3ee65117283bfa2e"
    "195f82ce1962dd8112cb57e8040d776733d3bb331ea6300f91dee0cbeb2fc9af"
    "d341f5515e22371e442b86e70287546a166ec2aef89f291be62afc2a96891e44"
    "6ef6f162735574d10cff4a183de2760b5e145deaad3efde1da4b2836c665c5ec"
    "4b54cb989d277311c42db4862db2920c3942958e54f64e365e52190ed81a02d7"
    "3bf78a8ae5cc83e03203ef421614b79ae984b67ee93483d5eb1ea7b4fd954cc3"
    "5059bd4d932ef34271825045d73effef2ed3489871fda2cc73924b4d459d1c6e"
    "e525421e0550d3ab876f615395ac4a54d20478a442d85c9a3c9c7fa148f2b9dc"
    "adaa83cf40e9e464da6036a55cdb873b50c1060ecc27b48dc0afc76ef73f1489"
    "281c08efce7fec47edd823f2f562b333ac209c2cd3cc577c28eedaafcedd89a6";
constexpr char kDec512[] =
    "080905dee8ebcc89f68bd1af635db3f5b60c2f13f7c768fceb1220f6c227fd83"
    "5f293e85f1eaa8ee2322f54291bf051e7b15af84c7eaa4e85158af7f4e6ff24a"
    "62bacff6dbf91f433f3bd564dffbe9fe1b0e14d27687589498d5e8ca11acba2b"
    "c6016d7823e3036c61ce9777ec2445890779027f7d494893d92f19bdfe160ef8"
    "2c36069ca887d84ea00ccc40130cf7c4118c5d0822a5e1f493cdae96f5752031"
    "b453e4cb8608c8f2ba2c78c941124c18e39f50ab74b83147aa3fb800537eb9ac"
    "55d737552e050375f607c59b4213d87e58e8da6e23029c9cb807ac63133b9fdd"
    "dad8712bd7821137d9f8fdc3e28aeb08ee2fae3ec1f80d9126a3d2d0e4e4f1c6"
    "424ce6b5e973e52703afb31cee7990da82b316189ad16fe059921c60a95a1208"
    "71065b9ed649d2117dfb0ce5b53595119f2177bea462f76660c6a07c810d21e1"
    "85e2dae559c27f14093f21a96d4e2a8141d76a3f964aa70bf7e929e73224bd9f"
    "1719fdff96bf4ca5db516627225760f3d2d8670a4b82e16a8b4358ecd781b0ee"
    "a22a29d0764424e91e3dc7a6a1cedd148c4bbb1b524b9c8dd3f3d15340775fe9"
    "c98eec220b524a8d9595d2f43c6783e603a35b8df96a168975acf5ac4ea47e02"
    "b73a8ce6aff8e52dad768979bd7392b3050dd3b4e4790e25e9a34ee607db5a58"
    "5d16ca6b16aa76372ab49e31df4865073af804a5c9dab34420f260e4bd840829";
constexpr char kEnc2048Prefix[] =
    "630500884158a8d41216aaa6351e92ea7ca540a949e73f1d6069afef372eae22";
constexpr char kEnc2048Suffix[] = "323d09e4256b7e5ac";

class EmeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto eme = Eme::Create(std::vector<uint8_t>(32, 0));
    ASSERT_TRUE(eme);
    eme_ = std::move(eme).value();
  }
  std::unique_ptr<Eme> eme_;
  const std::array<uint8_t, 16> zero_tweak_{};
};

TEST_F(EmeTest, Encrypt16) {
  auto out = eme_->Encrypt(zero_tweak_, std::vector<uint8_t>(16, 0));
  ASSERT_TRUE(out);
  EXPECT_EQ(Hex(*out), kEnc16);
}

TEST_F(EmeTest, Encrypt512) {
  auto out = eme_->Encrypt(zero_tweak_, std::vector<uint8_t>(512, 0));
  ASSERT_TRUE(out);
  EXPECT_EQ(Hex(*out), kEnc512);
}

TEST_F(EmeTest, Decrypt512) {
  auto out = eme_->Decrypt(zero_tweak_, std::vector<uint8_t>(512, 0));
  ASSERT_TRUE(out);
  EXPECT_EQ(Hex(*out), kDec512);
}

TEST_F(EmeTest, Encrypt2048) {
  auto out = eme_->Encrypt(zero_tweak_, std::vector<uint8_t>(2048, 0));
  ASSERT_TRUE(out);
  const std::string hex = Hex(*out);
  EXPECT_EQ(hex.substr(0, 64), kEnc2048Prefix);
  EXPECT_EQ(hex.substr(hex.size() - 17), kEnc2048Suffix);
}

TEST_F(EmeTest, RoundTripsEverySizeAndTweak) {
  std::mt19937 rng(1);
  auto key = std::vector<uint8_t>(32);
  for (auto& b : key) {
    b = static_cast<uint8_t>(rng());
  }
  auto eme = Eme::Create(key);
  ASSERT_TRUE(eme);
  for (size_t blocks = 1; blocks <= 128; ++blocks) {
    std::vector<uint8_t> data(blocks * 16);
    std::array<uint8_t, 16> tweak;
    for (auto& b : data) {
      b = static_cast<uint8_t>(rng());
    }
    for (auto& b : tweak) {
      b = static_cast<uint8_t>(rng());
    }
    auto enc = (*eme)->Encrypt(tweak, data);
    ASSERT_TRUE(enc);
    EXPECT_NE(*enc, data);
    auto dec = (*eme)->Decrypt(tweak, *enc);
    ASSERT_TRUE(dec);
    EXPECT_EQ(*dec, data) << blocks;
    tweak[0] ^= 1;  // a different directory IV gives a different result
    auto other = (*eme)->Decrypt(tweak, *enc);
    ASSERT_TRUE(other);
    EXPECT_NE(*other, data);
  }
}

TEST_F(EmeTest, RejectsBadLengths) {
  for (size_t size : {0, 15, 17, 2064}) {
    auto out = eme_->Encrypt(zero_tweak_, std::vector<uint8_t>(size, 0));
    ASSERT_FALSE(out) << size;
    EXPECT_EQ(out.error().code(), Errc::kInvalidArgument);
  }
  EXPECT_FALSE(Eme::Create(std::vector<uint8_t>(16, 0)));
}

}  // namespace
}  // namespace cachefs::crypto
