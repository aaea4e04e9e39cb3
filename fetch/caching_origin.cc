#include "fetch/caching_origin.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace cachefs::fetch {
namespace {

constexpr size_t kMaxDiskQueue = 16;
// A stream that saw no read among the last this many reads (of any object) starts over.
constexpr uint64_t kRecentReads = 16;

}  // namespace

std::unique_ptr<uint8_t[]> ChunkBufferPool::Acquire(size_t size) {
  if (size == buffer_size_) {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto buffer = std::move(idle_.back());
      idle_.pop_back();
      return buffer;
    }
  }
  // Uninitialised on purpose: every byte is overwritten before the chunk is published.
  return std::unique_ptr<uint8_t[]>(new uint8_t[size]);
}

void ChunkBufferPool::Release(std::unique_ptr<uint8_t[]> buffer, size_t size) {
  if (size != buffer_size_) {
    return;
  }
  std::lock_guard lock(mu_);
  if (idle_.size() < max_idle_) {
    idle_.push_back(std::move(buffer));
  }
}

Chunk::Chunk(std::atomic<uint64_t>& accounted, std::shared_ptr<ChunkBufferPool> pool,
             size_t capacity)
    : accounted_(accounted),
      pool_(std::move(pool)),
      capacity_(capacity),
      data_(pool_->Acquire(capacity)) {
  accounted_ += capacity_;
}

Chunk::~Chunk() {
  accounted_ -= capacity_;
  pool_->Release(std::move(data_), capacity_);
}

CachingOrigin::CachingOrigin(std::unique_ptr<Origin> origin, CacheOptions options,
                             std::unique_ptr<DiskCache> disk)
    : origin_(std::move(origin)),
      options_(options),
      disk_(std::move(disk)),
      pool_(std::make_shared<ChunkBufferPool>(options_.chunk_size, 4)),
      source_(std::make_shared<OriginChunkSource>(*origin_)) {
  for (int i = 0; i < std::max(1, options_.readahead_workers); ++i) {
    workers_.emplace_back([this] { Worker(); });
  }
  if (disk_ != nullptr) {
    disk_thread_ = std::thread([this] { DiskWriter(); });
  }
}

CachingOrigin::~CachingOrigin() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    tasks_.clear();
  }
  tasks_cv_.notify_all();
  // Read-ahead in flight may sit in retries against an unreachable origin: cut it short.
  origin_->Cancel();
  for (auto& t : workers_) {
    t.join();
  }
  {
    std::lock_guard lock(disk_mu_);
    disk_stop_ = true;
  }
  disk_cv_.notify_all();
  if (disk_thread_.joinable()) {
    disk_thread_.join();
  }
}

void CachingOrigin::SetChunkSource(std::shared_ptr<ChunkSource> source) {
  std::lock_guard lock(mu_);
  source_ = std::move(source);
}

std::string CachingOrigin::EntryKey(const ObjectInfo& object, uint64_t index) {
  return object.key + '\n' + std::to_string(index);
}

void CachingOrigin::LruInsertLocked(const std::string& key, Entry& entry) {
  auto& list = entry.prefetched ? unread_lru_ : read_lru_;
  list.push_front(key);
  entry.lru = list.begin();
  entry.in_lru = true;
}

void CachingOrigin::LruRemoveLocked(Entry& entry) {
  if (entry.in_lru) {
    (entry.prefetched ? unread_lru_ : read_lru_).erase(entry.lru);
    entry.in_lru = false;
  }
}

void CachingOrigin::EvictLocked(bool for_readahead) {
  // Chunks already read go first; read-ahead not read yet only makes room for a reader.
  auto evict_from = [&](std::list<std::string>& list, uint64_t target, bool newest_first) {
    while (memory_used_ > target && !list.empty()) {
      auto it = entries_.find(newest_first ? list.front() : list.back());
      newest_first ? list.pop_front() : list.pop_back();
      it->second.in_lru = false;
      entries_.erase(it);
    }
  };
  uint64_t target = options_.memory_budget;
  if (for_readahead) {
    target = options_.memory_budget > options_.chunk_size
                 ? options_.memory_budget - options_.chunk_size
                 : 0;
  }
  evict_from(read_lru_, target, /*newest_first=*/false);
  if (!for_readahead) {
    // Of the chunks fetched ahead, the newest are the furthest from their readers.
    evict_from(unread_lru_, target, /*newest_first=*/true);
  }
}

Result<ChunkRef> CachingOrigin::Load(const ObjectInfo& object, uint64_t index, Tier* from) {
  uint64_t begin = index * options_.chunk_size;
  size_t length = static_cast<size_t>(std::min(options_.chunk_size, object.size - begin));
  auto chunk = std::make_shared<Chunk>(memory_used_, pool_, length);
  if (disk_ != nullptr) {
    auto n = disk_->Read(object, index, options_.chunk_size, chunk->buffer());
    if (n) {
      chunk->set_size(*n);
      counters_.disk_hits++;
      counters_.bytes_disk += *n;
      *from = Tier::kDisk;
      return ChunkRef(std::move(chunk));
    }
  }
  std::shared_ptr<ChunkSource> source;
  {
    std::lock_guard lock(mu_);
    source = source_;
  }
  CACHEFS_ASSIGN_OR_RETURN(size_t n,
                           source->FetchChunk(object, index, options_.chunk_size, chunk->buffer()));
  if (n != length) {
    return Error(Errc::kIo, "chunk " + std::to_string(index) + " of " + object.key + ": got " +
                                std::to_string(n) + " of " + std::to_string(length) + " bytes");
  }
  chunk->set_size(n);
  counters_.source_fetches++;
  counters_.bytes_source += n;
  *from = Tier::kSource;
  ChunkRef ref(std::move(chunk));
  if (disk_ != nullptr && disk_->writable()) {
    std::lock_guard lock(disk_mu_);
    // When the disk falls behind, chunks are simply not persisted: memory stays bounded.
    if (disk_queue_.size() < kMaxDiskQueue) {
      disk_queue_.emplace_back(object, std::make_pair(index, ref));
      disk_cv_.notify_one();
    }
  }
  return ref;
}

Result<ChunkRef> CachingOrigin::GetChunk(const ObjectInfo& object, uint64_t index) {
  Tier from;
  return GetChunkImpl(object, index, /*readahead=*/false, &from);
}

Result<ChunkRef> CachingOrigin::GetChunkImpl(const ObjectInfo& object, uint64_t index,
                                             bool readahead, Tier* from) {
  if (index * options_.chunk_size >= object.size) {
    return Error(Errc::kInvalidArgument, "chunk beyond the end of " + object.key);
  }
  std::string key = EntryKey(object, index);
  std::promise<Result<ChunkRef>> promise;
  {
    std::unique_lock lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      Entry& entry = it->second;
      if (entry.ready) {
        if (!readahead) {
          if (entry.prefetched) {
            counters_.readahead_used++;
            LruRemoveLocked(entry);
            entry.prefetched = false;
            LruInsertLocked(key, entry);
          } else {
            read_lru_.splice(read_lru_.begin(), read_lru_, entry.lru);
          }
        }
        counters_.memory_hits++;
        *from = Tier::kMemory;
        return entry.chunk;
      }
      auto loading = entry.loading;
      if (!readahead) {
        counters_.waits++;
        if (entry.prefetched) {
          counters_.readahead_used++;
          entry.prefetched = false;
        }
      }
      lock.unlock();
      *from = Tier::kMemory;
      return loading.get();
    }
    if (!readahead) {
      EvictLocked(false);
    }
    Entry& entry = entries_[key];
    entry.prefetched = readahead;
    entry.loading = promise.get_future().share();
  }
  auto result = Load(object, index, from);
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (result) {
      it->second.ready = true;
      it->second.chunk = *result;
      LruInsertLocked(key, it->second);
      EvictLocked(readahead);
    } else {
      entries_.erase(it);
    }
  }
  promise.set_value(result);
  return result;
}

Result<size_t> CachingOrigin::ReadRange(const ObjectInfo& object, uint64_t offset,
                                        std::span<uint8_t> dst) {
  if (offset >= object.size || dst.empty()) {
    return size_t{0};
  }
  uint64_t length = std::min<uint64_t>(dst.size(), object.size - offset);
  TrackRead(object, offset, length);
  uint64_t done = 0;
  while (done < length) {
    uint64_t pos = offset + done;
    uint64_t index = pos / options_.chunk_size;
    Tier from;
    CACHEFS_ASSIGN_OR_RETURN(ChunkRef chunk, GetChunkImpl(object, index, false, &from));
    uint64_t in_chunk = pos - index * options_.chunk_size;
    auto bytes = chunk->bytes();
    if (in_chunk >= bytes.size()) {
      return Error(Errc::kInternal, "short chunk in cache for " + object.key);
    }
    uint64_t n = std::min<uint64_t>(length - done, bytes.size() - in_chunk);
    std::memcpy(dst.data() + done, bytes.data() + in_chunk, n);
    if (from == Tier::kMemory) {
      counters_.bytes_memory += n;
    }
    done += n;
  }
  return static_cast<size_t>(done);
}

bool CachingOrigin::ScheduleLocked(const ObjectInfo& object, uint64_t index) {
  if (stop_ || index * options_.chunk_size >= object.size) {
    return false;
  }
  if (entries_.contains(EntryKey(object, index))) {
    return true;  // cached or in flight already
  }
  EvictLocked(/*for_readahead=*/true);
  uint64_t queued = tasks_.size() * options_.chunk_size;
  if (memory_used_ + queued + options_.chunk_size > options_.memory_budget) {
    return false;
  }
  tasks_.push_back({object, index});
  tasks_cv_.notify_one();
  return true;
}

void CachingOrigin::TrackRead(const ObjectInfo& object, uint64_t offset, uint64_t length) {
  const uint64_t cs = options_.chunk_size;
  const uint64_t last_chunk = (object.size - 1) / cs;
  const uint64_t end = offset + length;
  const uint64_t cur_chunk = (end - 1) / cs;
  std::lock_guard lock(mu_);
  ++clock_;
  // The kernel issues read-ahead of its own in parallel, so reads of a sequential stream
  // arrive slightly out of order: a read within a few read sizes of the expected offset
  // continues the stream, if the stream was used recently.
  const uint64_t slack =
      std::min({cs, uint64_t{2} << 20, std::max<uint64_t>(2 * length, 128 << 10)});
  Stream* stream = nullptr;
  for (auto& s : streams_) {
    if (s.key == object.key && offset + slack >= s.next_offset && offset <= s.next_offset + slack) {
      stream = &s;
      break;
    }
  }
  if (stream != nullptr && clock_ - stream->last_use > kRecentReads) {
    // A random reader landed next to an old read: not a stream yet.
    stream->sequential_reads = 0;
    stream->window = 0;
  }
  if (stream == nullptr) {
    if (streams_.size() >= options_.max_streams) {
      auto oldest = std::min_element(
          streams_.begin(), streams_.end(),
          [](const Stream& a, const Stream& b) { return a.last_use < b.last_use; });
      streams_.erase(oldest);
    }
    Stream fresh;
    fresh.key = object.key;
    fresh.next_offset = end;
    fresh.grown_at_chunk = cur_chunk;
    fresh.prefetched_until = cur_chunk + 1;
    fresh.last_use = clock_;
    streams_.push_back(std::move(fresh));
    return;
  }
  stream->last_use = clock_;
  stream->next_offset = std::max(stream->next_offset, end);
  // Two reads in a row that continue the stream before any read-ahead: random readers hit a
  // neighbour now and then, rarely twice running.
  if (++stream->sequential_reads < 2) {
    return;
  }
  const uint64_t max_window = std::max<uint64_t>(1, options_.max_readahead / cs);
  if (stream->window == 0) {
    stream->window = 1;
    stream->grown_at_chunk = cur_chunk;
  } else if (cur_chunk > stream->grown_at_chunk) {
    stream->window = std::min(max_window, stream->window * 2);
    stream->grown_at_chunk = cur_chunk;
  }
  uint64_t target = std::min(last_chunk + 1, cur_chunk + 1 + stream->window);
  uint64_t next = std::max(stream->prefetched_until, cur_chunk + 1);
  while (next < target && ScheduleLocked(object, next)) {
    ++next;
  }
  stream->prefetched_until = std::max(stream->prefetched_until, next);
}

void CachingOrigin::Prefetch(const ObjectInfo& object, uint64_t offset, uint64_t length) {
  if (length == 0 || offset >= object.size) {
    return;
  }
  uint64_t end = std::min(object.size, offset + length);
  std::lock_guard lock(mu_);
  for (uint64_t i = offset / options_.chunk_size; i <= (end - 1) / options_.chunk_size; ++i) {
    if (!ScheduleLocked(object, i)) {
      break;
    }
  }
}

void CachingOrigin::Worker() {
  while (true) {
    Task task;
    {
      std::unique_lock lock(mu_);
      tasks_cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (stop_) {
        return;
      }
      task = std::move(tasks_.front());
      tasks_.pop_front();
      ++readahead_inflight_;
    }
    Tier from;
    auto result = GetChunkImpl(task.object, task.index, /*readahead=*/true, &from);
    if (result && from != Tier::kMemory) {
      counters_.readahead_issued++;
    }
    if (!result && result.error().code() != Errc::kChanged) {
      // The reader that needs this chunk will fetch it again and see the error itself.
      CACHEFS_LOG(kDebug, "fetch").Kv("object", task.object.key).Kv("chunk", task.index)
          << "read-ahead failed: " << result.error().message();
    }
    std::lock_guard lock(mu_);
    --readahead_inflight_;
  }
}

void CachingOrigin::DiskWriter() {
  while (true) {
    std::pair<ObjectInfo, std::pair<uint64_t, ChunkRef>> item;
    {
      std::unique_lock lock(disk_mu_);
      disk_cv_.wait(lock, [&] { return disk_stop_ || !disk_queue_.empty(); });
      if (disk_queue_.empty()) {
        return;  // stopping, and everything queued is written
      }
      item = std::move(disk_queue_.front());
      disk_queue_.pop_front();
    }
    disk_->Write(item.first, item.second.first, options_.chunk_size, item.second.second->bytes());
  }
}

uint64_t CachingOrigin::DropCache(bool memory, bool disk) {
  uint64_t dropped = 0;
  if (memory) {
    std::lock_guard lock(mu_);
    for (auto* list : {&read_lru_, &unread_lru_}) {
      for (const auto& key : *list) {
        auto it = entries_.find(key);
        dropped += it->second.chunk->bytes().size();
        entries_.erase(it);
      }
      list->clear();
    }
  }
  if (disk && disk_ != nullptr) {
    dropped += disk_->Clear();
  }
  return dropped;
}

void CachingOrigin::CollectStats(OriginStats& stats) const {
  origin_->CollectStats(stats);
  stats.bytes_from_memory += counters_.bytes_memory;
  stats.bytes_from_disk += counters_.bytes_disk;
  stats.bytes_from_origin += counters_.bytes_source;
  stats.memory_hits += counters_.memory_hits;
  stats.disk_hits += counters_.disk_hits;
  stats.origin_fetches += counters_.source_fetches;
  stats.single_flight_waits += counters_.waits;
  stats.readahead_issued += counters_.readahead_issued;
  stats.readahead_used += counters_.readahead_used;
  stats.memory_used += memory_used_;
  stats.memory_limit += options_.memory_budget;
  if (disk_ != nullptr) {
    stats.disk_used += disk_->used();
    stats.disk_limit += disk_->limit();
    stats.disk_enabled = stats.disk_enabled || disk_->writable();
    stats.disk_corrupt += disk_->corrupt();
    stats.disk_write_errors += disk_->write_errors();
  }
  std::lock_guard lock(mu_);
  stats.readahead_streams += streams_.size();
  stats.readahead_inflight += readahead_inflight_ + tasks_.size();
}

}  // namespace cachefs::fetch
