#pragma once

// A pool of OpenSSL contexts that already carry a key schedule, so the data path only sets an
// IV per block and never allocates.
//
// Why a per-cipher pool rather than thread_local contexts: a context holds the expanded key.
// thread_local caches in long-lived FUSE worker threads would keep the key schedules of a
// destroyed volume until the threads exit, and a cache keyed by object address would hand a
// stale key to a new cipher built at the same address. The pool frees (and so cleanses) every
// context in its destructor. One uncontended mutex acquisition per lease costs nanoseconds,
// and callers lease once per batch of blocks, not per block. The pool holds at most one
// context per concurrent user, i.e. per thread that decrypts at the same time.
//
// Thread-safety: Acquire and lease release may run concurrently on any threads. The pool must
// outlive its leases.

#include <openssl/evp.h>

#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace cachefs::crypto {

template <typename T>
class ContextPool {
 public:
  // `create` returns a ready context (cipher, IV length, key set) or nullptr on failure;
  // `destroy` frees one.
  ContextPool(std::function<T*()> create, void (*destroy)(T*))
      : create_(std::move(create)), destroy_(destroy) {}
  ~ContextPool() {
    for (T* context : free_) {
      destroy_(context);
    }
  }
  ContextPool(const ContextPool&) = delete;
  ContextPool& operator=(const ContextPool&) = delete;

  // Exclusive use of one context until destruction; `get()` is nullptr when creation failed.
  class Lease {
   public:
    Lease(ContextPool* pool, T* context) : pool_(pool), context_(context) {}
    ~Lease() {
      if (context_ != nullptr) {
        pool_->Release(context_);
      }
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    T* get() const { return context_; }

   private:
    ContextPool* pool_;
    T* context_;
  };

  Lease Acquire() {
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        T* context = free_.back();
        free_.pop_back();
        return Lease(this, context);
      }
    }
    return Lease(this, create_());
  }

 private:
  void Release(T* context) {
    std::lock_guard lock(mutex_);
    free_.push_back(context);
  }

  std::function<T*()> create_;
  void (*destroy_)(T*);
  std::mutex mutex_;
  std::vector<T*> free_;  // guarded by mutex_
};

// A new EVP_CIPHER_CTX prepared by `init`, or nullptr.
inline EVP_CIPHER_CTX* NewCipherContext(const std::function<bool(EVP_CIPHER_CTX*)>& init) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx != nullptr && !init(ctx)) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

using CipherContextPool = ContextPool<EVP_CIPHER_CTX>;

}  // namespace cachefs::crypto
