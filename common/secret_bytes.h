#pragma once

// Key material: passwords, master keys, derived keys, KBS replies.
//
// The bytes live in the OpenSSL secure heap when it is initialised (mlocked, guard pages,
// MADV_DONTDUMP; see InitSecureHeap) and are cleansed on destruction. The type is move-only and
// has no stream operator, so a secret cannot be copied or logged by accident.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cachefs {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size);
  // Copies `data` into secure memory; the caller cleanses its own copy.
  static SecretBytes CopyOf(std::span<const uint8_t> data);
  static SecretBytes CopyOf(std::string_view data);

  ~SecretBytes();
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {data_, size_}; }
  std::span<uint8_t> span() { return {data_, size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }

  // Shrinks the logical size (the tail is cleansed); used after reading a password line.
  void Truncate(size_t size);
  SecretBytes Clone() const { return CopyOf(span()); }

  // Constant-time comparison.
  bool Equals(std::span<const uint8_t> other) const;

 private:
  void Release();

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reserves the OpenSSL secure heap (mlocked, excluded from core dumps). Best effort: where
// RLIMIT_MEMLOCK is too small it warns and SecretBytes falls back to cleansed ordinary memory.
void InitSecureHeap();

}  // namespace cachefs
