#include "fs/kernel_cache_filler.h"

#include <algorithm>
#include <cstdint>

#include "common/log.h"
#include "common/memory_info.h"

namespace cachefs::fs {
namespace {

// Below this much available memory the filler stops: the model's remaining pages would only
// displace pages the reader already loaded.
constexpr uint64_t kMinAvailableBytes = 1ull << 30;

uint64_t PageCount(uint64_t size) { return (size + 4095) / 4096; }

}  // namespace

void KernelCacheFiller::FileProgress::Set(uint64_t first, uint64_t end) {
  for (uint64_t page = first; page < end; ++page) {
    page_done[page / 64].fetch_or(uint64_t{1} << (page % 64), std::memory_order_relaxed);
  }
}

void KernelCacheFiller::FileProgress::Clear(uint64_t first, uint64_t end) {
  for (uint64_t page = first; page < end; ++page) {
    page_done[page / 64].fetch_and(~(uint64_t{1} << (page % 64)), std::memory_order_relaxed);
  }
}

KernelCacheFiller::KernelCacheFiller(const InodeTable& table, FileReader& reader, StoreFn store,
                                     uint64_t budget_bytes)
    : table_(table),
      reader_(reader),
      store_(std::move(store)),
      progress_(new FileProgress[table.size()]),
      budget_bytes_(budget_bytes) {
  for (const Inode& inode : table.inodes()) {
    if (inode.type == NodeType::kFile && inode.size > 0) {
      FileProgress& progress = progress_[inode.ino - 1];
      progress.pages = PageCount(inode.size);
      uint64_t words = (progress.pages + 63) / 64;
      progress.page_done.reset(new std::atomic<uint64_t>[words]);
      for (uint64_t i = 0; i < words; ++i) {
        progress.page_done[i].store(0, std::memory_order_relaxed);
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

bool KernelCacheFiller::HasProgress(InodeNumber ino) const {
  return ino >= 1 && ino <= table_.size() && progress_[ino - 1].page_done != nullptr;
}

void KernelCacheFiller::FileOpened(const Inode& inode) {
  if (!HasProgress(inode.ino)) {
    return;  // not a regular file, or empty
  }
  FileProgress& progress = progress_[inode.ino - 1];
  {
    std::lock_guard lock(mutex_);
    ++progress.open_handles;
    if (progress.queued) {
      return;
    }
    progress.queued = true;
    queue_.push_back(&inode);
  }
  wake_.notify_all();
}

void KernelCacheFiller::FileReleased(InodeNumber ino) {
  if (!HasProgress(ino)) {
    return;
  }
  FileProgress& progress = progress_[ino - 1];
  {
    std::lock_guard lock(mutex_);
    if (progress.open_handles == 0 || --progress.open_handles > 0) {
      return;
    }
    held_bytes_ -= progress.held_bytes;
    progress.held_bytes = 0;
  }
  wake_.notify_all();
}

void KernelCacheFiller::MarkServed(InodeNumber ino, uint64_t offset, uint64_t length) {
  if (!HasProgress(ino)) {
    return;
  }
  const Inode* inode = table_.Find(ino);
  // Only whole pages count; the last page of the file is whole when the read reaches EOF.
  uint64_t end = std::min(offset + length, inode->size);
  uint64_t first = (offset + kPage - 1) / kPage;
  uint64_t last = end == inode->size ? PageCount(inode->size) : end / kPage;
  if (first < last) {
    FileProgress& progress = progress_[ino - 1];
    progress.Set(first, last);
    uint64_t frontier = progress.read_frontier.load(std::memory_order_relaxed);
    while (frontier < last && !progress.read_frontier.compare_exchange_weak(frontier, last)) {
    }
  }
}

void KernelCacheFiller::Reset() {
  {
    std::lock_guard lock(mutex_);
    queue_.clear();
    for (const Inode& inode : table_.inodes()) {
      FileProgress& progress = progress_[inode.ino - 1];
      if (progress.page_done) {
        progress.Clear(0, progress.pages);
      }
      progress.queued = false;
      progress.held_bytes = 0;  // the kernel dropped the pages
    }
    held_bytes_ = 0;
  }
  wake_.notify_all();  // a filler waiting for budget gives up its file
}

uint64_t KernelCacheFiller::held_bytes() const {
  std::lock_guard lock(mutex_);
  return held_bytes_;
}

bool KernelCacheFiller::Reserve(FileProgress& progress, uint64_t bytes) {
  std::unique_lock lock(mutex_);
  auto fits = [&] { return held_bytes_ + bytes <= budget_bytes_; };
  if (!fits() && !logged_budget_full_) {
    logged_budget_full_ = true;
    CACHEFS_LOG(kInfo, "fs").Kv("budget_bytes", budget_bytes_)
        << "decrypt-ahead paused: open files hold its whole memory budget; it resumes when "
           "they are closed";
  }
  wake_.wait(lock,
             [&] { return stopping_ || !progress.queued || progress.open_handles == 0 || fits(); });
  if (stopping_ || !progress.queued) {
    return false;
  }
  if (progress.open_handles == 0) {
    progress.queued = false;  // closed before it was filled: its next open queues it again
    return false;
  }
  held_bytes_ += bytes;
  progress.held_bytes += bytes;
  return true;
}

void KernelCacheFiller::Unreserve(FileProgress& progress, uint64_t bytes) {
  {
    std::lock_guard lock(mutex_);
    uint64_t back = std::min(bytes, progress.held_bytes);  // a release may have cleared it
    progress.held_bytes -= back;
    held_bytes_ -= back;
  }
  wake_.notify_all();
}

bool KernelCacheFiller::Push(const Inode& inode, uint64_t first, uint64_t end) {
  uint64_t offset = first * kPage;
  FileProgress& progress = progress_[inode.ino - 1];
  auto data = reader_.Read(inode, offset, (end - first) * kPage, /*spread=*/true);
  if (!data) {
    // Already logged by the reader; the application's own READ will report it.
    progress.Clear(first, end);
    Unreserve(progress, (end - first) * kPage);
    return true;
  }
  int rc = store_(inode.ino, offset, *data);
  if (rc != 0) {
    // ENOENT: the kernel forgot the inode (file closed and evicted); not worth more work.
    progress.Clear(first, end);
    Unreserve(progress, (end - first) * kPage);
    CACHEFS_LOG(kDebug, "fs").Kv("file", inode.path).Kv("errno", -rc)
        << "decrypt-ahead stopped: kernel refused the pages";
    return false;
  }
  bytes_pushed_.fetch_add(data->size(), std::memory_order_relaxed);
  return true;
}

bool KernelCacheFiller::FillRange(const Inode& inode, uint64_t first, uint64_t end) {
  FileProgress& progress = progress_[inode.ino - 1];
  // Push each run of pages no READ has served yet, claiming it first so that a READ
  // arriving meanwhile is the only duplicate work possible.
  uint64_t page = first;
  while (page < end) {
    while (page < end && progress.Done(page)) {
      ++page;
    }
    uint64_t run_end = page;
    while (run_end < end && !progress.Done(run_end)) {
      ++run_end;
    }
    if (page == run_end) {
      break;
    }
    if (!Reserve(progress, (run_end - page) * kPage)) {
      return false;
    }
    progress.Set(page, run_end);
    if (!Push(inode, page, run_end)) {
      return false;
    }
    page = run_end;
  }
  return true;
}

void KernelCacheFiller::Fill(const Inode& inode) {
  FileProgress& progress = progress_[inode.ino - 1];
  const uint64_t segment_pages = kSegmentSize / kPage;
  // Where a reader streams through the file, the kernel's readahead already fetches the pages
  // just ahead of it; working there too would decrypt them twice. So the first pass stays a
  // lead beyond the furthest READ, and a second pass fills whatever the first one jumped over.
  const uint64_t lead_pages = 8 * segment_pages;
  uint64_t segments_done = 0;
  for (int pass = 0; pass < 2; ++pass) {
    uint64_t start = 0;
    while (start < progress.pages) {
      if (pass == 0) {
        uint64_t frontier = progress.read_frontier.load(std::memory_order_relaxed);
        if (frontier > 0 && start < frontier + lead_pages) {
          start = (frontier + lead_pages) / segment_pages * segment_pages;
          if (start >= progress.pages) {
            break;
          }
        }
      }
      if (segments_done++ % 64 == 0 &&
          AvailableMemoryBytes().value_or(UINT64_MAX) < kMinAvailableBytes) {
        CACHEFS_LOG(kInfo, "fs").Kv("file", inode.path)
            << "decrypt-ahead stopped: less than 1 GiB of memory available";
        return;
      }
      uint64_t end = std::min(start + segment_pages, progress.pages);
      if (!FillRange(inode, start, end)) {
        return;
      }
      start = end;
    }
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
