#include "crypto/base64.h"

#include <array>

namespace cachefs::crypto {
namespace {

constexpr char kStandardChars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> MakeReverse(const char* chars) {
  std::array<int8_t, 256> table{};
  for (auto& v : table) {
    v = -1;
  }
  for (int i = 0; i < 64; ++i) {
    table[static_cast<uint8_t>(chars[i])] = static_cast<int8_t>(i);
  }
  return table;
}

constexpr std::array<int8_t, 256> kStandardReverse = MakeReverse(kStandardChars);
constexpr std::array<int8_t, 256> kUrlReverse = MakeReverse(kUrlChars);

}  // namespace

std::string Base64Encode(std::span<const uint8_t> data, Base64Alphabet alphabet, bool padded) {
  const char* chars = alphabet == Base64Alphabet::kUrl ? kUrlChars : kStandardChars;
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += chars[(v >> 18) & 63];
    out += chars[(v >> 12) & 63];
    out += chars[(v >> 6) & 63];
    out += chars[v & 63];
  }
  const size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (rest == 2) {
      v |= uint32_t{data[i + 1]} << 8;
    }
    out += chars[(v >> 18) & 63];
    out += chars[(v >> 12) & 63];
    if (rest == 2) {
      out += chars[(v >> 6) & 63];
    }
    if (padded) {
      out.append(3 - rest, '=');
    }
  }
  return out;
}

std::optional<std::vector<uint8_t>> Base64Decode(std::string_view text, Base64Alphabet alphabet,
                                                 bool padded) {
  const auto& reverse = alphabet == Base64Alphabet::kUrl ? kUrlReverse : kStandardReverse;
  if (padded) {
    if (text.size() % 4 != 0) {
      return std::nullopt;
    }
    // At most two '=' and only at the very end; a full group of padding is never produced.
    size_t pad = 0;
    while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') {
      ++pad;
    }
    text.remove_suffix(pad);
    if (pad > 0 && text.size() % 4 == 0) {
      return std::nullopt;
    }
    if (pad > 0 && 4 - text.size() % 4 != pad) {
      return std::nullopt;
    }
  }
  if (text.size() % 4 == 1) {
    return std::nullopt;
  }
  std::vector<uint8_t> out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int8_t v = reverse[static_cast<uint8_t>(c)];
    if (v < 0) {
      return std::nullopt;  // also rejects '=' inside the data, CR and LF
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) {
    return std::nullopt;  // non-zero unused bits: a second spelling of the same bytes
  }
  return out;
}

}  // namespace cachefs::crypto
