#pragma once

// Decrypt-ahead into the kernel page cache. A model file is read whole, whatever the order
// (safetensors loaders copy tensors out of an mmap in shuffled order, and every jump restarts
// the kernel's readahead ramp). When a file is opened, a background thread decrypts it from the
// start in 1 MiB segments and stores each one in the kernel's page cache
// (fuse_lowlevel_notify_store), so most page faults and reads are served without a FUSE
// round trip. Pages that a READ already served are skipped (tracked per 4 KiB page, because the
// kernel's readahead READs are not aligned to the filler's segments).
//
// Memory: pushed pages are page cache charged to whoever pushed them, and pushing more than
// memory holds would evict the pages pushed first, before anyone read them. So the bytes
// pushed into files that are still open are kept under a budget (by default half of what this
// process may fill: RAM, or its cgroup's memory.max); a file's bytes leave the budget when its
// last handle is released (an mmap holds its handle until unmapped). Past the budget the
// filler waits, and reads go through the kernel's readahead as on any FUSE mount. A file
// closed before it was filled is left alone until it is opened again. The filler also stops
// when the machine as a whole runs short of available memory.

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

  // `budget_bytes`: most bytes pushed into files that are open at once.
  KernelCacheFiller(const InodeTable& table, FileReader& reader, StoreFn store,
                    uint64_t budget_bytes);
  ~KernelCacheFiller();  // stops the thread
  KernelCacheFiller(const KernelCacheFiller&) = delete;
  KernelCacheFiller& operator=(const KernelCacheFiller&) = delete;

  // Counts an open handle of `inode` (a regular file) and queues the file for decrypt-ahead
  // unless it is queued, being filled or done already.
  void FileOpened(const Inode& inode);
  // Counts a released handle; with the last one the file's pushed bytes leave the budget.
  void FileReleased(InodeNumber ino);
  // Notes that a READ served [offset, offset + length) of `ino`, so the whole pages inside it
  // need not be pushed again.
  void MarkServed(InodeNumber ino, uint64_t offset, uint64_t length);
  // Forgets what was pushed (after the kernel cache was invalidated): files are filled again
  // when next opened.
  void Reset();

  uint64_t bytes_pushed() const { return bytes_pushed_.load(std::memory_order_relaxed); }
  uint64_t budget_bytes() const { return budget_bytes_; }
  // Bytes pushed into files that are open now.
  uint64_t held_bytes() const;

 private:
  static constexpr uint64_t kPage = 4096;

  // One bit per plaintext page: set once the page was stored by the filler or served by a
  // READ (or claimed by the filler, which is about to store it).
  struct FileProgress {
    bool queued = false;        // queued, being filled or filled; guarded by mutex_
    uint32_t open_handles = 0;  // guarded by mutex_
    uint64_t held_bytes = 0;    // pushed since opened, counted in held_bytes_; guarded by mutex_
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
  // Waits until `bytes` more fit in the budget and takes them for `inode`; false to stop
  // filling it (shutting down, Reset(), or the file was closed meanwhile).
  bool Reserve(FileProgress& progress, uint64_t bytes);
  void Unreserve(FileProgress& progress, uint64_t bytes);
  // Decrypts pages [first, end) of `inode` and stores them; false when the kernel refused.
  bool Push(const Inode& inode, uint64_t first, uint64_t end);
  bool HasProgress(InodeNumber ino) const;

  const InodeTable& table_;
  FileReader& reader_;
  StoreFn store_;
  std::unique_ptr<FileProgress[]> progress_;  // indexed by inode number - 1

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<const Inode*> queue_;  // guarded by mutex_
  bool stopping_ = false;           // guarded by mutex_
  const uint64_t budget_bytes_;
  uint64_t held_bytes_ = 0;          // guarded by mutex_
  bool logged_budget_full_ = false;  // guarded by mutex_
  std::atomic<uint64_t> bytes_pushed_{0};
  std::thread thread_;
};

}  // namespace cachefs::fs
