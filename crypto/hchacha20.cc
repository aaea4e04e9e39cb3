#include "crypto/hchacha20.h"

#include <openssl/crypto.h>

namespace cachefs::crypto {
namespace {

inline uint32_t Rotl(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

inline uint32_t Load32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

inline void Store32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

inline void QuarterRound(uint32_t* x, int a, int b, int c, int d) {
  x[a] += x[b];
  x[d] = Rotl(x[d] ^ x[a], 16);
  x[c] += x[d];
  x[b] = Rotl(x[b] ^ x[c], 12);
  x[a] += x[b];
  x[d] = Rotl(x[d] ^ x[a], 8);
  x[c] += x[d];
  x[b] = Rotl(x[b] ^ x[c], 7);
}

}  // namespace

void HChaCha20(std::span<const uint8_t, 32> key, std::span<const uint8_t, 16> nonce,
               std::span<uint8_t, 32> out) {
  uint32_t x[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};  // "expand 32-byte k"
  for (int i = 0; i < 8; ++i) {
    x[4 + i] = Load32(key.data() + 4 * i);
  }
  for (int i = 0; i < 4; ++i) {
    x[12 + i] = Load32(nonce.data() + 4 * i);
  }
  for (int round = 0; round < 10; ++round) {
    QuarterRound(x, 0, 4, 8, 12);
    QuarterRound(x, 1, 5, 9, 13);
    QuarterRound(x, 2, 6, 10, 14);
    QuarterRound(x, 3, 7, 11, 15);
    QuarterRound(x, 0, 5, 10, 15);
    QuarterRound(x, 1, 6, 11, 12);
    QuarterRound(x, 2, 7, 8, 13);
    QuarterRound(x, 3, 4, 9, 14);
  }
  // Unlike the ChaCha20 block function there is no final addition of the input state.
  for (int i = 0; i < 4; ++i) {
    Store32(out.data() + 4 * i, x[i]);
    Store32(out.data() + 16 + 4 * i, x[12 + i]);
  }
  OPENSSL_cleanse(x, sizeof(x));
}

}  // namespace cachefs::crypto
