// Measures ContentCipher::DecryptBlocks throughput on 1 MiB requests, as fs/ issues them, for
// AES-256-GCM (the default gocryptfs content cipher):
//
//   raw      one EVP context, IV-only re-init per 4 KiB block: what OpenSSL alone does
//   serial   DecryptBlocks without a pool (1 thread)
//   pool     DecryptBlocks with a 2-thread TaskPool splitting each request
//   2 calls  two threads each running serial DecryptBlocks (two concurrent FUSE reads)
//
// and serial DecryptBlocks for AES-SIV and XChaCha20-Poly1305.
//
// Usage: crypto_decrypt_throughput [seconds per case, default 2]
// Compare with: openssl speed -evp aes-256-gcm -decrypt -bytes 4096

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/task_pool.h"
#include "crypto/content_cipher.h"
#include "crypto/hchacha20.h"

namespace {

using cachefs::SecretBytes;
using cachefs::TaskPool;
using cachefs::crypto::ContentAlgorithm;
using cachefs::crypto::ContentCipher;
using cachefs::crypto::FileId;
using cachefs::crypto::HChaCha20;

constexpr size_t kBlock = ContentCipher::kPlainBlockSize;
constexpr size_t kRequestBlocks = 256;        // 1 MiB of plaintext
constexpr size_t kCipherBlock = kBlock + 32;  // AES-GCM

void Aad(uint64_t block, const FileId& id, uint8_t* aad) {
  for (int i = 7; i >= 0; --i) {
    aad[i] = static_cast<uint8_t>(block);
    block >>= 8;
  }
  std::memcpy(aad + 8, id.data(), id.size());
}

// One 1 MiB request in gocryptfs's block layouts (format spec §4.3): GCM and XChaCha
// nonce ‖ ciphertext ‖ tag, SIV nonce ‖ tag ‖ ciphertext.
std::vector<uint8_t> SealRequest(ContentAlgorithm algorithm, const uint8_t* key, const FileId& id) {
  const size_t nonce_size = algorithm == ContentAlgorithm::kXChaCha20Poly1305 ? 24 : 16;
  const size_t cbs = kBlock + nonce_size + 16;
  std::vector<uint8_t> plain(kRequestBlocks * kBlock);
  RAND_bytes(plain.data(), static_cast<int>(plain.size()));
  std::vector<uint8_t> out(kRequestBlocks * cbs);
  EVP_CIPHER* siv = EVP_CIPHER_fetch(nullptr, "AES-256-SIV", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  for (size_t b = 0; b < kRequestBlocks; ++b) {
    uint8_t* chunk = out.data() + b * cbs;
    RAND_bytes(chunk, static_cast<int>(nonce_size));
    uint8_t aad[24];
    Aad(b, id, aad);
    const uint8_t* in = plain.data() + b * kBlock;
    int len = 0;
    switch (algorithm) {
      case ContentAlgorithm::kAesGcm:
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 16, nullptr);
        EVP_EncryptInit_ex(ctx, nullptr, nullptr, key, chunk);
        EVP_EncryptUpdate(ctx, nullptr, &len, aad, sizeof(aad));
        EVP_EncryptUpdate(ctx, chunk + 16, &len, in, kBlock);
        EVP_EncryptFinal_ex(ctx, chunk + 16 + kBlock, &len);
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, chunk + 16 + kBlock);
        break;
      case ContentAlgorithm::kAesSiv:
        EVP_EncryptInit_ex(ctx, siv, nullptr, key, nullptr);
        EVP_EncryptUpdate(ctx, nullptr, &len, aad, sizeof(aad));
        EVP_EncryptUpdate(ctx, nullptr, &len, chunk, 16);
        EVP_EncryptUpdate(ctx, chunk + 32, &len, in, kBlock);
        EVP_EncryptFinal_ex(ctx, chunk + 32 + kBlock, &len);
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, chunk + 16);
        break;
      case ContentAlgorithm::kXChaCha20Poly1305: {
        uint8_t subkey[32];
        HChaCha20(std::span<const uint8_t, 32>(key, 32), std::span<const uint8_t, 16>(chunk, 16),
                  subkey);
        uint8_t iv[12] = {};
        std::memcpy(iv + 4, chunk + 16, 8);
        EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, subkey, iv);
        EVP_EncryptUpdate(ctx, nullptr, &len, aad, sizeof(aad));
        EVP_EncryptUpdate(ctx, chunk + 24, &len, in, kBlock);
        EVP_EncryptFinal_ex(ctx, chunk + 24 + kBlock, &len);
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, chunk + 24 + kBlock);
        break;
      }
    }
  }
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(siv);
  return out;
}

struct Rate {
  double mb_per_s;       // 10^6 bytes of plaintext per wall-clock second
  double cpu_s_per_gib;  // process CPU seconds per GiB of plaintext (all threads)
};

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Runs `request` (one 1 MiB decryption) on `threads` threads for `seconds`.
Rate Measure(double seconds, int threads, const std::function<bool()>& request) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> requests{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> workers;
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = ProcessCpuSeconds();
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (!request()) {
          failed = true;
        }
        requests.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& worker : workers) {
    worker.join();
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu = ProcessCpuSeconds() - cpu_start;
  if (failed) {
    std::fprintf(stderr, "decryption failed\n");
    std::exit(1);
  }
  const double bytes = static_cast<double>(requests.load()) * kRequestBlocks * kBlock;
  return {bytes / elapsed / 1e6, cpu / (bytes / (1 << 30))};
}

// The CPU column is what the daemon's budget (0.45 core-seconds per GiB served) constrains.
void Report(const char* name, Rate rate) {
  std::printf("%-36s %7.0f MB/s  %6.3f CPU-s/GiB\n", name, rate.mb_per_s, rate.cpu_s_per_gib);
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  uint8_t key[64];
  RAND_bytes(key, sizeof(key));
  FileId id;
  RAND_bytes(id.data(), static_cast<int>(id.size()));
  const std::vector<uint8_t> cipher = SealRequest(ContentAlgorithm::kAesGcm, key, id);
  ContentCipher content(ContentAlgorithm::kAesGcm, SecretBytes::CopyOf(std::span(key, 32)));

  std::printf("AES-256-GCM, 1 MiB requests (256 blocks of 4 KiB), %.1f s per case\n", seconds);

  const Rate raw = Measure(seconds, 1, [&] {
    thread_local std::vector<uint8_t> plain(kRequestBlocks * kBlock);
    thread_local EVP_CIPHER_CTX* ctx = [&] {
      EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
      EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 16, nullptr);
      EVP_DecryptInit_ex(c, nullptr, nullptr, key, nullptr);
      return c;
    }();
    bool ok = true;
    for (size_t b = 0; b < kRequestBlocks; ++b) {
      const uint8_t* chunk = cipher.data() + b * kCipherBlock;
      uint8_t aad[24];
      Aad(b, id, aad);
      int len = 0;
      EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, chunk);
      EVP_DecryptUpdate(ctx, nullptr, &len, aad, sizeof(aad));
      EVP_DecryptUpdate(ctx, plain.data() + b * kBlock, &len, chunk + 16, kBlock);
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16,
                          const_cast<uint8_t*>(chunk) + 16 + kBlock);
      ok = ok && EVP_DecryptFinal_ex(ctx, plain.data() + b * kBlock + len, &len) == 1;
    }
    return ok;
  });
  Report("raw OpenSSL loop, 1 thread", raw);

  auto serial = [&] {
    thread_local std::vector<uint8_t> plain(kRequestBlocks * kBlock);
    return static_cast<bool>(content.DecryptBlocks(cipher, 0, id, plain));
  };
  Report("DecryptBlocks, 1 thread", Measure(seconds, 1, serial));

  TaskPool pool(1);  // one worker + the caller = 2 threads per request
  Report("DecryptBlocks + 2-thread pool", Measure(seconds, 1, [&] {
           thread_local std::vector<uint8_t> plain(kRequestBlocks * kBlock);
           return static_cast<bool>(content.DecryptBlocks(cipher, 0, id, plain, &pool));
         }));
  Report("DecryptBlocks, 2 concurrent callers", Measure(seconds, 2, serial));

  // The other two algorithms, serial only (reverse-mode and -xchacha volumes).
  const std::pair<ContentAlgorithm, size_t> others[] = {{ContentAlgorithm::kAesSiv, 64},
                                                        {ContentAlgorithm::kXChaCha20Poly1305, 32}};
  for (const auto& [algorithm, key_size] : others) {
    const std::vector<uint8_t> sealed = SealRequest(algorithm, key, id);
    ContentCipher other(algorithm, SecretBytes::CopyOf(std::span(key, key_size)));
    const std::string name =
        std::string(cachefs::crypto::ContentAlgorithmName(algorithm)) + " DecryptBlocks, 1 thread";
    Report(name.c_str(), Measure(seconds, 1, [&] {
             thread_local std::vector<uint8_t> plain(kRequestBlocks * kBlock);
             return static_cast<bool>(other.DecryptBlocks(sealed, 0, id, plain));
           }));
  }
  return 0;
}
