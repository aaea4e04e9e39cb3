#pragma once

// The disk tier of the chunk cache: one file per chunk in --cache-dir, size-bounded LRU.
//
// Files hold ciphertext only. Each starts with a header naming the object key, its pinned
// ETag, the chunk size and index, the data length and a CRC-32C of the data, and is written
// to a temporary name and renamed, so a crash never leaves a half-written chunk under its
// real name. Files survive a restart and are reused when key, ETag, chunk size and index
// match; a file that fails any check (truncated, bit rot, another version) is deleted and
// reported as a miss. ENOSPC or EDQUOT on a write turns writes off for the rest of the run
// (memory-only) with one warning; reads of files already there go on.
//
// Thread-safe. Lookups and writes may run concurrently from many threads.

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "common/error.h"
#include "fetch/origin.h"

namespace cachefs::fetch {

class DiskCache {
 public:
  // Creates `dir` when missing, removes leftover temporary files and indexes existing chunk
  // files (oldest modification time evicted first). `limit_bytes` 0 means 80% of the free
  // space found at start. Fails when `dir` cannot be created or read.
  static Result<std::unique_ptr<DiskCache>> Open(const std::string& dir, uint64_t limit_bytes);

  // Reads the chunk into `dst` (at least the chunk's length). kNotFound on a miss, including
  // a file that failed validation (then removed and counted in corrupt()).
  Result<size_t> Read(const ObjectInfo& object, uint64_t index, uint64_t chunk_size,
                      std::span<uint8_t> dst);

  // Stores the chunk, evicting least recently used files beyond the limit. Failures are
  // logged and counted, never returned: the disk tier is an optimisation.
  void Write(const ObjectInfo& object, uint64_t index, uint64_t chunk_size,
             std::span<const uint8_t> data);

  // Deletes every chunk file; returns the bytes freed. Writes may go on afterwards.
  uint64_t Clear();

  bool writable() const { return writable_; }
  uint64_t used() const;
  uint64_t limit() const { return limit_; }
  uint64_t corrupt() const { return corrupt_; }
  uint64_t write_errors() const { return write_errors_; }

 private:
  DiskCache(std::string dir, uint64_t limit) : dir_(std::move(dir)), limit_(limit) {}
  static std::string FileName(const ObjectInfo& object, uint64_t index, uint64_t chunk_size);
  void Remove(const std::string& name);
  void Touch(const std::string& name);
  void EvictLocked();

  struct Entry {
    uint64_t bytes;
    std::list<std::string>::iterator lru;
  };

  const std::string dir_;
  const uint64_t limit_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
  std::list<std::string> lru_;                      // guarded by mu_: front = most recent
  uint64_t used_ = 0;                               // guarded by mu_
  std::atomic<bool> writable_{true};
  std::atomic<uint64_t> corrupt_{0};
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> tmp_counter_{0};
};

// CRC-32C (Castagnoli), with SSE4.2 where the CPU has it.
uint32_t Crc32c(std::span<const uint8_t> data, uint32_t crc = 0);

}  // namespace cachefs::fetch
