#pragma once

// Decrypt-ahead into the kernel page cache. A model file is read whole, whatever the order
// (safetensors loaders copy tensors out of an mmap in shuffled order, and every jump restarts
// the kernel's readahead ramp). When a file is opened, a background thread decrypts it from the
// start in 1 MiB segments and stores each one in the kernel's page cache
// (fuse_lowlevel_notify_store), so most page faults and reads are served without a FUSE
// round trip. Pages that a READ already served are skipped (tracked per 4 KiB page, because the
// kernel's readahead READs are not aligned to the filler's segments); the filler stops early
// when the machine runs short of available memory, since pushed pages would only evict others.

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
  using StoreFn =
      std::function<int(InodeNumber ino, uint64_t offset, std::span<const uint8_t> data)>;

  static constexpr uint64_t kSegmentSize = 1 << 20;

  KernelCacheFiller(const InodeTable& table, FileReader& reader, StoreFn store);
  ~KernelCacheFiller();  // stops the thread
  KernelCacheFiller(const KernelCacheFiller&) = delete;
  KernelCacheFiller& operator=(const KernelCacheFiller&) = delete;

  // Queues `inode` (a regular file) for decrypt-ahead unless it is queued or done already.
  void FileOpened(const Inode& inode);
  // Notes that a READ served [offset, offset + length) of `ino`, so the whole pages inside it
  // need not be pushed again.
  void MarkServed(InodeNumber ino, uint64_t offset, uint64_t length);
  // Forgets what was pushed (after the kernel cache was invalidated): files are filled again
  // when next opened.
  void Reset();

  uint64_t bytes_pushed() const { return bytes_pushed_.load(std::memory_order_relaxed); }

 private:
  static constexpr uint64_t kPage = 4096;

  // One bit per plaintext page: set once the page was stored by the filler or served by a
  // READ (or claimed by the filler, which is about to store it).
  struct FileProgress {
    std::atomic<bool> queued{false};
    std::atomic<uint64_t> read_frontier{0};  // end page of the furthest READ served
    uint64_t pages = 0;
    std::unique_ptr<std::atomic<uint64_t>[]> page_done;

    bool Done(uint64_t page) const {
      return (page_done[page / 64].load(std::memory_order_relaxed) >> (page % 64)) & 1;
    }
    void Set(uint64_t first, uint64_t end);  // marks pages [first, end)
    void Clear(uint64_t first, uint64_t end);
  };

  void Run();
  void Fill(const Inode& inode);
  // Pushes the pages of [first, end) no READ has served; false to stop filling this file.
  bool FillRange(const Inode& inode, uint64_t first, uint64_t end);
  // Decrypts pages [first, end) of `inode` and stores them; false when the kernel refused.
  bool Push(const Inode& inode, uint64_t first, uint64_t end);
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
