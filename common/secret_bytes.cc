#include "common/secret_bytes.h"

#include <openssl/crypto.h>

#include <cstring>
#include <utility>

#include "common/log.h"

namespace cachefs {

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size_ > 0) {
    // OPENSSL_secure_zalloc falls back to OPENSSL_zalloc when the secure heap is not set up.
    data_ = static_cast<uint8_t*>(OPENSSL_secure_zalloc(size_));
    if (data_ == nullptr) {
      std::abort();  // out of memory for a few hundred bytes: nothing sensible remains
    }
  }
}

SecretBytes SecretBytes::CopyOf(std::span<const uint8_t> data) {
  SecretBytes out(data.size());
  if (!data.empty()) {
    std::memcpy(out.data_, data.data(), data.size());
  }
  return out;
}

SecretBytes SecretBytes::CopyOf(std::string_view data) {
  return CopyOf(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

SecretBytes::~SecretBytes() { Release(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void SecretBytes::Release() {
  if (data_ != nullptr) {
    OPENSSL_secure_clear_free(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
}

void SecretBytes::Truncate(size_t size) {
  if (size < size_) {
    OPENSSL_cleanse(data_ + size, size_ - size);
    size_ = size;
  }
}

bool SecretBytes::Equals(std::span<const uint8_t> other) const {
  return other.size() == size_ && CRYPTO_memcmp(data_, other.data(), size_) == 0;
}

void InitSecureHeap() {
  if (CRYPTO_secure_malloc_initialized()) {
    return;
  }
  // 256 KiB holds every key, password and KBS reply the daemon keeps at once.
  if (CRYPTO_secure_malloc_init(256 * 1024, 32) == 0) {
    CACHEFS_LOG(kWarn, "common")
        << "could not lock the secure heap (RLIMIT_MEMLOCK too small?); keys are cleansed "
           "after use but may be swapped";
  }
}

}  // namespace cachefs
