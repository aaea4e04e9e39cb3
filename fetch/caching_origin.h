#pragma once

// The range engine and chunk cache in front of a remote origin.
//
// Reads are served in chunks (part_size, 8 MiB by default) from, in order: the memory tier,
// the disk tier (--cache-dir), then the ChunkSource (the origin, or p2p/ in front of it; see
// chunk_source.h). Concurrent misses for one chunk make one fetch (single flight). A
// sequential stream of reads of one object starts read-ahead that doubles its window each
// time the stream enters a new chunk, up to max_readahead bytes; a read that continues no
// known stream starts a new stream with no read-ahead, so random access never fans out.
//
// Memory: every chunk buffer alive (cached, being fetched, queued for the disk, or lent to a
// reader) counts against memory_budget. Read-ahead only starts when the budget has room after
// dropping chunks already read; a reader's own miss is never refused, and evicts what it must.
//
// Thread-safe: every method may be called from many threads at once. Read-ahead runs on its
// own worker threads; the destructor stops them and waits for fetches in flight.

#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fetch/chunk_source.h"
#include "fetch/disk_cache.h"
#include "fetch/origin.h"

namespace cachefs::fetch {

struct CacheOptions {
  uint64_t chunk_size = 8ull << 20;
  uint64_t memory_budget = 512ull << 20;
  uint64_t max_readahead = 128ull << 20;  // per stream
  int readahead_workers = 8;              // read-ahead fetches in flight at most
  size_t max_streams = 64;
};

// Keeps a few full-size chunk buffers for reuse: a fresh 8 MiB allocation is an mmap whose
// every page faults and is zeroed by the kernel, which costs more CPU than the network copy.
// Idle buffers are not counted in the budget; there are at most `max_idle` of them.
class ChunkBufferPool {
 public:
  ChunkBufferPool(size_t buffer_size, size_t max_idle)
      : buffer_size_(buffer_size), max_idle_(max_idle) {}
  std::unique_ptr<uint8_t[]> Acquire(size_t size);
  void Release(std::unique_ptr<uint8_t[]> buffer, size_t size);

 private:
  const size_t buffer_size_;
  const size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<uint8_t[]>> idle_;  // guarded by mu_
};

// An immutable chunk of ciphertext. Its bytes count against the budget until the last
// reference goes away.
class Chunk {
 public:
  Chunk(std::atomic<uint64_t>& accounted, std::shared_ptr<ChunkBufferPool> pool, size_t capacity);
  ~Chunk();
  Chunk(const Chunk&) = delete;
  Chunk& operator=(const Chunk&) = delete;

  std::span<uint8_t> buffer() { return {data_.get(), capacity_}; }
  std::span<const uint8_t> bytes() const { return {data_.get(), size_}; }
  void set_size(size_t size) { size_ = size; }

 private:
  std::atomic<uint64_t>& accounted_;
  std::shared_ptr<ChunkBufferPool> pool_;
  size_t capacity_;
  size_t size_ = 0;
  std::unique_ptr<uint8_t[]> data_;
};
using ChunkRef = std::shared_ptr<const Chunk>;

class CachingOrigin final : public Origin {
 public:
  // `disk` may be null (memory tier only).
  CachingOrigin(std::unique_ptr<Origin> origin, CacheOptions options,
                std::unique_ptr<DiskCache> disk);
  ~CachingOrigin() override;

  // Replaces where misses go (default: the wrapped origin). Call before the first read;
  // `source` must outlive this object's use of it (shared ownership makes that simple).
  void SetChunkSource(std::shared_ptr<ChunkSource> source);
  // Where misses go now (the wrapped origin by default), for a source that wraps it (p2p/).
  std::shared_ptr<ChunkSource> chunk_source() const {
    std::lock_guard lock(mu_);
    return source_;
  }

  std::string Describe() const override { return origin_->Describe(); }
  Result<std::vector<ObjectInfo>> List() override { return origin_->List(); }
  Result<size_t> ReadRange(const ObjectInfo& object, uint64_t offset,
                           std::span<uint8_t> dst) override;
  // Schedules the chunks of the range for read-ahead (within the budget).
  void Prefetch(const ObjectInfo& object, uint64_t offset, uint64_t length) override;
  void CollectStats(OriginStats& stats) const override;
  // Drops the chunks held in memory (not those being fetched or lent to readers right now)
  // and/or every chunk file of the disk tier; returns the bytes dropped.
  uint64_t DropCache(bool memory, bool disk) override;
  void Cancel() override { origin_->Cancel(); }

  // One chunk, from memory, disk or the source (single flight). For p2p/ serving peers too.
  Result<ChunkRef> GetChunk(const ObjectInfo& object, uint64_t index);

  uint64_t chunk_size() const { return options_.chunk_size; }

 private:
  enum class Tier { kMemory, kDisk, kSource };
  struct Entry {
    bool ready = false;
    bool prefetched = false;  // loaded by read-ahead and not read since
    ChunkRef chunk;
    std::shared_future<Result<ChunkRef>> loading;
    std::list<std::string>::iterator lru;
    bool in_lru = false;
  };
  struct Stream {
    std::string key;
    uint64_t next_offset = 0;
    uint64_t sequential_reads = 0;  // reads that continued this stream
    uint64_t window = 0;            // chunks ahead
    uint64_t grown_at_chunk = 0;    // the chunk at which the window last grew
    uint64_t prefetched_until = 0;  // first chunk index not scheduled yet
    uint64_t last_use = 0;
  };
  struct Task {
    ObjectInfo object;
    uint64_t index;
  };

  static std::string EntryKey(const ObjectInfo& object, uint64_t index);
  Result<ChunkRef> GetChunkImpl(const ObjectInfo& object, uint64_t index, bool readahead,
                                Tier* from);
  Result<ChunkRef> Load(const ObjectInfo& object, uint64_t index, Tier* from);
  void TrackRead(const ObjectInfo& object, uint64_t offset, uint64_t length);
  // Queues chunk `index` for read-ahead; false when the budget or the queue has no room.
  bool ScheduleLocked(const ObjectInfo& object, uint64_t index);
  void EvictLocked(bool for_readahead);
  void LruInsertLocked(const std::string& key, Entry& entry);
  void LruRemoveLocked(Entry& entry);
  void Worker();
  void DiskWriter();

  std::unique_ptr<Origin> origin_;
  const CacheOptions options_;
  std::unique_ptr<DiskCache> disk_;
  std::shared_ptr<ChunkBufferPool> pool_;
  std::shared_ptr<ChunkSource> source_;
  std::atomic<uint64_t> memory_used_{0};

  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
  // LRU of ready chunks, front = most recent. Chunks read already are dropped first.
  std::list<std::string> read_lru_;    // guarded by mu_
  std::list<std::string> unread_lru_;  // guarded by mu_: read-ahead not yet read
  std::vector<Stream> streams_;        // guarded by mu_
  uint64_t clock_ = 0;                 // guarded by mu_
  std::deque<Task> tasks_;             // guarded by mu_
  uint64_t readahead_inflight_ = 0;    // guarded by mu_
  bool stop_ = false;                  // guarded by mu_
  std::condition_variable tasks_cv_;
  std::vector<std::thread> workers_;

  std::mutex disk_mu_;
  std::deque<std::pair<ObjectInfo, std::pair<uint64_t, ChunkRef>>> disk_queue_;  // disk_mu_
  bool disk_stop_ = false;                                                       // disk_mu_
  std::condition_variable disk_cv_;
  std::thread disk_thread_;

  struct Counters {
    std::atomic<uint64_t> bytes_memory{0}, bytes_disk{0}, bytes_source{0}, memory_hits{0},
        disk_hits{0}, source_fetches{0}, waits{0}, readahead_issued{0}, readahead_used{0};
  };
  mutable Counters counters_;
};

}  // namespace cachefs::fetch
