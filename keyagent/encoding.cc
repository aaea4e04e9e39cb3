#include "keyagent/encoding.h"

namespace cachefs::keyagent {
namespace {

constexpr char kStdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Encode(std::span<const uint8_t> data, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = data[i] << 16;
    if (rest == 2) {
      v |= data[i + 1] << 8;
    }
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (rest == 2) {
      out += alphabet[(v >> 6) & 63];
    }
    if (pad) {
      out.append(3 - rest, '=');
    }
  }
  return out;
}

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+' || c == '-') {
    return 62;
  }
  if (c == '/' || c == '_') {
    return 63;
  }
  return -1;
}

// Returns the decoded size for `text` (padding stripped), or an error.
Result<size_t> DecodedSize(std::string_view* text) {
  std::string_view t = *text;
  if (t.size() % 4 == 0 && !t.empty()) {
    // Padded input: at most two '=' at the very end.
    size_t pads = 0;
    while (pads < 2 && !t.empty() && t.back() == '=') {
      t.remove_suffix(1);
      ++pads;
    }
  }
  if (t.size() % 4 == 1) {
    return Error(Errc::kCorrupt, "malformed base64: impossible length");
  }
  *text = t;
  return t.size() / 4 * 3 + (t.size() % 4 == 0 ? 0 : t.size() % 4 - 1);
}

Status DecodeInto(std::string_view text, uint8_t* out) {
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = DecodeChar(c);
    if (v < 0) {
      return Error(Errc::kCorrupt, "malformed base64: unexpected character");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = static_cast<uint8_t>(acc >> bits);
    }
  }
  // Leftover bits must be zero, or two encodings would decode to the same bytes.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return Error(Errc::kCorrupt, "malformed base64: non-zero trailing bits");
  }
  return Status::Ok();
}

}  // namespace

std::string Base64Encode(std::span<const uint8_t> data) { return Encode(data, kStdAlphabet, true); }

std::string Base64UrlEncode(std::span<const uint8_t> data) {
  return Encode(data, kUrlAlphabet, false);
}

Result<std::vector<uint8_t>> Base64Decode(std::string_view text) {
  CACHEFS_ASSIGN_OR_RETURN(size_t size, DecodedSize(&text));
  std::vector<uint8_t> out(size);
  CACHEFS_RETURN_IF_ERROR(DecodeInto(text, out.data()));
  return out;
}

std::string HexEncode(std::span<const uint8_t> data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (uint8_t b : data) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

}  // namespace cachefs::keyagent
