// Volume::sharing_group_key(): the root key of the p2p sharing group.

#include <gtest/gtest.h>

#include <vector>

#include "crypto/kdf.h"
#include "crypto/volume.h"

namespace cachefs::crypto {
namespace {

std::unique_ptr<Volume> MakeVolume(uint8_t fill, bool hkdf) {
  VolumeConfig config;
  config.hkdf = hkdf;
  auto volume = Volume::Create(config, SecretBytes::CopyOf(std::vector<uint8_t>(32, fill)));
  EXPECT_TRUE(volume) << volume.error().message();
  return std::move(volume).value();
}

TEST(SharingGroupKey, HkdfOfTheMasterKeySameForEveryNode) {
  std::vector<uint8_t> master(32, 7);
  auto expected = HkdfSha256(master, "cachefs sharing group key v1", 32);
  ASSERT_TRUE(expected);
  auto a = MakeVolume(7, true);
  auto b = MakeVolume(7, false);  // derived the same way with or without the HKDF flag
  ASSERT_EQ(a->sharing_group_key().size(), 32u);
  EXPECT_TRUE(a->sharing_group_key().Equals(expected->span()));
  EXPECT_TRUE(b->sharing_group_key().Equals(expected->span()));
  // Not the master key, not the content key.
  EXPECT_FALSE(a->sharing_group_key().Equals(master));
  auto content = HkdfSha256(master, "AES-GCM file content encryption", 32);
  EXPECT_FALSE(a->sharing_group_key().Equals(content->span()));
  // Another volume: another group.
  EXPECT_FALSE(MakeVolume(8, true)->sharing_group_key().Equals(expected->span()));
}

}  // namespace
}  // namespace cachefs::crypto
