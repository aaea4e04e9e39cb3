#include "fs/kernel_cache_filler.h"

#include <cstdio>
#include <cstring>

#include "common/log.h"

namespace cachefs::fs {
namespace {

// Below this much available memory the filler stops: the model's remaining pages would only
// displace pages the reader already loaded.
constexpr uint64_t kMinAvailableBytes = 1ull << 30;

uint64_t SegmentCount(uint64_t size) {
  return (size + KernelCacheFiller::kSegmentSize - 1) / KernelCacheFiller::kSegmentSize;
}

}  // namespace

KernelCacheFiller::KernelCacheFiller(const InodeTable& table, FileReader& reader, StoreFn store)
    : table_(table),
      reader_(reader),
      store_(std::move(store)),
      progress_(new FileProgress[table.size()]) {
  for (const Inode& inode : table.inodes()) {
    if (inode.type == NodeType::kFile && inode.size > 0) {
      uint64_t segments = SegmentCount(inode.size);
      progress_[inode.ino - 1].segment_done.reset(new std::atomic<uint8_t>[segments]);
      for (uint64_t i = 0; i < segments; ++i) {
        progress_[inode.ino - 1].segment_done[i].store(0, std::memory_order_relaxed);
      }
    }
  }
  thread_ = std::thread([this] { Run(); });
}

KernelCacheFiller::~KernelCacheFiller() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void KernelCacheFiller::FileOpened(const Inode& inode) {
  if (inode.type != NodeType::kFile || inode.size == 0) {
    return;
  }
  if (progress_[inode.ino - 1].queued.exchange(true)) {
    return;
  }
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(&inode);
  }
  wake_.notify_one();
}

void KernelCacheFiller::MarkServed(InodeNumber ino, uint64_t offset, uint64_t length) {
  const Inode* inode = table_.Find(ino);
  if (inode == nullptr || !progress_[ino - 1].segment_done) {
    return;
  }
  // Only whole segments count; the last segment of the file is whole when it reaches EOF.
  uint64_t end = std::min(offset + length, inode->size);
  uint64_t first = (offset + kSegmentSize - 1) / kSegmentSize;
  uint64_t last = end == inode->size ? SegmentCount(inode->size) : end / kSegmentSize;
  for (uint64_t segment = first; segment < last; ++segment) {
    progress_[ino - 1].segment_done[segment].store(1, std::memory_order_relaxed);
  }
}

void KernelCacheFiller::Reset() {
  std::lock_guard lock(mutex_);
  queue_.clear();
  for (const Inode& inode : table_.inodes()) {
    FileProgress& progress = progress_[inode.ino - 1];
    if (progress.segment_done) {
      for (uint64_t i = 0, n = SegmentCount(inode.size); i < n; ++i) {
        progress.segment_done[i].store(0, std::memory_order_relaxed);
      }
    }
    progress.queued.store(false);
  }
}

bool KernelCacheFiller::MemoryIsShort() {
  FILE* meminfo = std::fopen("/proc/meminfo", "re");
  if (meminfo == nullptr) {
    return false;
  }
  char line[256];
  uint64_t available_kb = UINT64_MAX;
  while (std::fgets(line, sizeof(line), meminfo) != nullptr) {
    if (std::sscanf(line, "MemAvailable: %lu kB", &available_kb) == 1) {
      break;
    }
  }
  std::fclose(meminfo);
  return available_kb != UINT64_MAX && available_kb * 1024 < kMinAvailableBytes;
}

void KernelCacheFiller::Fill(const Inode& inode) {
  FileProgress& progress = progress_[inode.ino - 1];
  uint64_t segments = SegmentCount(inode.size);
  for (uint64_t segment = 0; segment < segments; ++segment) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || !progress.queued.load()) {
        return;  // shutting down, or Reset() since this file was queued
      }
    }
    if (progress.segment_done[segment].exchange(1, std::memory_order_relaxed) != 0) {
      continue;
    }
    if (segment % 64 == 0 && MemoryIsShort()) {
      progress.segment_done[segment].store(0, std::memory_order_relaxed);
      CACHEFS_LOG(kInfo, "fs").Kv("file", inode.path)
          << "decrypt-ahead stopped: less than 1 GiB of memory available";
      return;
    }
    uint64_t offset = segment * kSegmentSize;
    auto data = reader_.Read(inode, offset, kSegmentSize);
    if (!data) {
      // Already logged by the reader; the reader's own READ will report it to the application.
      progress.segment_done[segment].store(0, std::memory_order_relaxed);
      continue;
    }
    int rc = store_(inode.ino, offset, *data);
    if (rc != 0) {
      // ENOENT: the kernel forgot the inode (file closed and evicted); not worth more work.
      progress.segment_done[segment].store(0, std::memory_order_relaxed);
      CACHEFS_LOG(kDebug, "fs").Kv("file", inode.path).Kv("errno", -rc)
          << "decrypt-ahead stopped: kernel refused the pages";
      return;
    }
    bytes_pushed_.fetch_add(data->size(), std::memory_order_relaxed);
  }
}

void KernelCacheFiller::Run() {
  while (true) {
    const Inode* inode = nullptr;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) {
        return;
      }
      inode = queue_.front();
      queue_.pop_front();
    }
    Fill(*inode);
  }
}

}  // namespace cachefs::fs
