#pragma once

// A pool of EVP_CIPHER_CTX objects that already carry a key schedule, so the data path only
// sets an IV per block and never allocates.
//
// Why a per-cipher pool rather than thread_local contexts: a context holds the expanded key.
// thread_local caches in long-lived FUSE worker threads would keep the key schedules of a
// destroyed volume until the threads exit, and a cache keyed by object address would hand a
// stale key to a new cipher built at the same address. The pool frees (and so cleanses) every
// context in its destructor. One uncontended mutex acquisition per lease costs nanoseconds,
// and callers lease once per batch of blocks, not per block. The pool holds at most one
// context per concurrent user, i.e. per thread that decrypts at the same time.
//
// Thread-safety: Acquire and lease release may run concurrently on any threads.

#include <openssl/evp.h>

#include <functional>
#include <mutex>
#include <vector>

namespace cachefs::crypto {

class CipherCtxPool {
 public:
  // `init` turns a fresh context into a ready one (cipher, IV length, key); false on failure.
  explicit CipherCtxPool(std::function<bool(EVP_CIPHER_CTX*)> init) : init_(std::move(init)) {}
  ~CipherCtxPool() {
    for (EVP_CIPHER_CTX* ctx : free_) {
      EVP_CIPHER_CTX_free(ctx);  // cleanses the key schedule
    }
  }
  CipherCtxPool(const CipherCtxPool&) = delete;
  CipherCtxPool& operator=(const CipherCtxPool&) = delete;

  // Exclusive use of one context until destruction; `get()` is nullptr when OpenSSL failed.
  class Lease {
   public:
    Lease(CipherCtxPool* pool, EVP_CIPHER_CTX* ctx) : pool_(pool), ctx_(ctx) {}
    ~Lease() {
      if (ctx_ != nullptr) {
        pool_->Release(ctx_);
      }
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    EVP_CIPHER_CTX* get() const { return ctx_; }

   private:
    CipherCtxPool* pool_;
    EVP_CIPHER_CTX* ctx_;
  };

  Lease Acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        EVP_CIPHER_CTX* ctx = free_.back();
        free_.pop_back();
        return Lease(this, ctx);
      }
    }
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (ctx != nullptr && !init_(ctx)) {
      EVP_CIPHER_CTX_free(ctx);
      ctx = nullptr;
    }
    return Lease(this, ctx);
  }

 private:
  void Release(EVP_CIPHER_CTX* ctx) {
    std::lock_guard lock(mutex_);
    free_.push_back(ctx);
  }

  std::function<bool(EVP_CIPHER_CTX*)> init_;
  std::mutex mutex_;
  std::vector<EVP_CIPHER_CTX*> free_;  // guarded by mutex_
};

}  // namespace cachefs::crypto
