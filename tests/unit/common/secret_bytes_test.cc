#include "common/secret_bytes.h"

#include <gtest/gtest.h>

#include <string>

namespace cachefs {
namespace {

TEST(SecretBytesTest, CopyTruncateAndCompare) {
  InitSecureHeap();
  SecretBytes secret = SecretBytes::CopyOf(std::string_view("password\nrest"));
  ASSERT_EQ(secret.size(), 13u);
  secret.Truncate(8);
  EXPECT_EQ(secret.view(), "password");
  std::string same = "password";
  EXPECT_TRUE(secret.Equals({reinterpret_cast<const uint8_t*>(same.data()), same.size()}));
  EXPECT_FALSE(secret.Equals({reinterpret_cast<const uint8_t*>("passwore"), 8}));
}

TEST(SecretBytesTest, MoveLeavesSourceEmpty) {
  SecretBytes a = SecretBytes::CopyOf(std::string_view("key"));
  SecretBytes b = std::move(a);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(b.view(), "key");
  SecretBytes c = b.Clone();
  EXPECT_EQ(c.view(), "key");
}

}  // namespace
}  // namespace cachefs
