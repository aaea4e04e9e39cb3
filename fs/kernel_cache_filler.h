#pragma once

// Decrypt-ahead into the kernel page cache. A model file is read whole, whatever the order
// (safetensors loaders copy tensors out of an mmap in shuffled order, and every jump restarts
// the kernel's readahead ramp). When a file is opened, a background thread decrypts it from the
// start in 1 MiB segments and stores each one in the kernel's page cache
// (fuse_lowlevel_notify_store), so most page faults and reads are served without a FUSE
// round trip. Segments that a READ already served are skipped; the filler stops early when the
// machine runs short of available memory, since pushed pages would only evict others.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "fs/file_reader.h"
#include "fs/inode_table.h"

namespace cachefs::fs {

class KernelCacheFiller {
 public:
  // Stores plaintext in the kernel cache of `ino` at `offset`; returns 0 or a negative errno.
  using StoreFn = std::function<int(InodeNumber ino, uint64_t offset,
                                    std::span<const uint8_t> data)>;

  static constexpr uint64_t kSegmentSize = 1 << 20;

  KernelCacheFiller(const InodeTable& table, FileReader& reader, StoreFn store);
  ~KernelCacheFiller();  // stops the thread
  KernelCacheFiller(const KernelCacheFiller&) = delete;
  KernelCacheFiller& operator=(const KernelCacheFiller&) = delete;

  // Queues `inode` (a regular file) for decrypt-ahead unless it is queued or done already.
  void FileOpened(const Inode& inode);
  // Notes that a READ served [offset, offset + length) of `ino`, so whole segments inside it
  // need not be pushed again.
  void MarkServed(InodeNumber ino, uint64_t offset, uint64_t length);
  // Forgets what was pushed (after the kernel cache was invalidated): files are filled again
  // when next opened.
  void Reset();

  uint64_t bytes_pushed() const { return bytes_pushed_.load(std::memory_order_relaxed); }

 private:
  struct FileProgress {
    std::atomic<bool> queued{false};
    std::unique_ptr<std::atomic<uint8_t>[]> segment_done;  // 1 when in the kernel cache
  };

  void Run();
  void Fill(const Inode& inode);
  bool MemoryIsShort();

  const InodeTable& table_;
  FileReader& reader_;
  StoreFn store_;
  std::unique_ptr<FileProgress[]> progress_;  // indexed by inode number - 1

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<const Inode*> queue_;  // guarded by mutex_
  bool stopping_ = false;           // guarded by mutex_
  std::atomic<uint64_t> bytes_pushed_{0};
  std::thread thread_;
};

}  // namespace cachefs::fs
