#include "crypto/base64.h"

#include <gtest/gtest.h>

namespace cachefs::crypto {
namespace {

std::optional<std::string> Decode(std::string_view text, Base64Alphabet alphabet, bool padded) {
  auto out = Base64Decode(text, alphabet, padded);
  if (!out) {
    return std::nullopt;
  }
  return std::string(out->begin(), out->end());
}

TEST(Base64Test, RoundTripsAllVariants) {
  std::vector<uint8_t> data;
  for (int size = 0; size < 40; ++size) {
    for (auto alphabet : {Base64Alphabet::kStandard, Base64Alphabet::kUrl}) {
      for (bool padded : {false, true}) {
        const std::string text = Base64Encode(data, alphabet, padded);
        if (padded) {
          EXPECT_EQ(text.size() % 4, 0u);
        } else {
          EXPECT_EQ(text.find('='), std::string::npos);
        }
        auto back = Base64Decode(text, alphabet, padded);
        ASSERT_TRUE(back) << text;
        EXPECT_EQ(*back, data);
      }
    }
    data.push_back(static_cast<uint8_t>(size * 37 + 250));
  }
}

TEST(Base64Test, Rfc4648Examples) {
  const std::vector<uint8_t> foobar = {'f', 'o', 'o', 'b', 'a', 'r'};
  EXPECT_EQ(Base64Encode(std::span(foobar).first(1), Base64Alphabet::kStandard, true), "Zg==");
  EXPECT_EQ(Base64Encode(std::span(foobar).first(2), Base64Alphabet::kStandard, true), "Zm8=");
  EXPECT_EQ(Base64Encode(foobar, Base64Alphabet::kStandard, true), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode(std::span(foobar).first(5), Base64Alphabet::kUrl, false), "Zm9vYmE");
  const std::vector<uint8_t> high = {0xfb, 0xff};
  EXPECT_EQ(Base64Encode(high, Base64Alphabet::kStandard, true), "+/8=");
  EXPECT_EQ(Base64Encode(high, Base64Alphabet::kUrl, false), "-_8");
}

TEST(Base64Test, StrictDecoding) {
  // Non-zero unused bits: a second spelling of the same byte (Go's Strict mode, gocryptfs 2.5).
  EXPECT_EQ(Decode("Zg", Base64Alphabet::kUrl, false), "f");
  EXPECT_FALSE(Decode("Zh", Base64Alphabet::kUrl, false));
  EXPECT_FALSE(Decode("Zh==", Base64Alphabet::kUrl, true));
  EXPECT_FALSE(Decode("Zm9=", Base64Alphabet::kUrl, true));
  // Padding must match the mode.
  EXPECT_FALSE(Decode("Zg==", Base64Alphabet::kUrl, false));
  EXPECT_FALSE(Decode("Zg", Base64Alphabet::kUrl, true));
  EXPECT_FALSE(Decode("Zg=", Base64Alphabet::kUrl, true));
  EXPECT_FALSE(Decode("Zm8==", Base64Alphabet::kUrl, true));
  EXPECT_FALSE(Decode("Zm9v====", Base64Alphabet::kUrl, true));
  EXPECT_FALSE(Decode("Z===", Base64Alphabet::kUrl, true));
  EXPECT_FALSE(Decode("====", Base64Alphabet::kUrl, true));
  EXPECT_FALSE(Decode("Zg==Zg==", Base64Alphabet::kUrl, true));
  EXPECT_EQ(Decode("Zm8=", Base64Alphabet::kUrl, true), "fo");
  // One leftover character cannot encode a byte.
  EXPECT_FALSE(Decode("Zm9vY", Base64Alphabet::kUrl, false));
  // Alphabet, whitespace and line breaks.
  EXPECT_FALSE(Decode("-_8", Base64Alphabet::kStandard, false));
  EXPECT_FALSE(Decode("+/8", Base64Alphabet::kUrl, false));
  EXPECT_FALSE(Decode("Zm9v\nYmFy", Base64Alphabet::kUrl, false));
  EXPECT_FALSE(Decode("Zm9v\r", Base64Alphabet::kUrl, false));
  EXPECT_FALSE(Decode("Zm 9v", Base64Alphabet::kUrl, false));
  EXPECT_FALSE(Decode(std::string_view("Zm9v\0", 5), Base64Alphabet::kUrl, false));
  EXPECT_EQ(Decode("", Base64Alphabet::kUrl, false), "");
  EXPECT_EQ(Decode("", Base64Alphabet::kUrl, true), "");
}

}  // namespace
}  // namespace cachefs::crypto
