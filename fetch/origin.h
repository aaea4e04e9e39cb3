#pragma once

// An origin holds the gocryptfs ciphertext tree: a local directory, an object-store prefix or
// a static HTTP server. fetch/ moves ciphertext bytes only and never sees a key.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"

namespace cachefs::fetch {

enum class ObjectType { kFile, kDirectory, kSymlink, kOther };

// One entry of the ciphertext tree, as seen when it was listed at mount. Keys are relative to
// the origin root, '/'-separated, without a leading slash ("gocryptfs.conf", "AbC/dEf").
// Object stores have no directories: a directory appears as the parent of its objects (every
// gocryptfs directory holds at least its gocryptfs.diriv) or as an explicit "dir/" marker.
struct ObjectInfo {
  std::string key;
  ObjectType type = ObjectType::kFile;
  uint64_t size = 0;
  std::string etag;         // version pinned at listing; empty where the origin has none
  int64_t mtime_sec = 0;    // seconds since the epoch; 0 when unknown
  uint32_t mode = 0;        // permission bits; 0 means "use the default for the type"
  std::string link_target;  // kSymlink only: the stored (encrypted) target
};

// Counters for status and metrics (cachefsctl status, /metrics). Every field is a running
// total since the origin was opened unless it says "now". Origins fill what they know.
struct OriginStats {
  // Requests to the origin itself (object store or HTTP server).
  uint64_t origin_requests = 0;
  uint64_t origin_retries = 0;
  uint64_t origin_bytes = 0;
  uint64_t errors_not_found = 0;   // 404: not retried
  uint64_t errors_denied = 0;      // 401/403: not retried
  uint64_t errors_changed = 0;     // 412 or a different ETag/size: object changed under us
  uint64_t errors_transport = 0;   // connect failures, resets, TLS, stalls cut
  uint64_t errors_timeout = 0;     // request deadline passed
  uint64_t errors_server = 0;      // 5xx other than 503
  uint64_t errors_throttled = 0;   // 429 and 503 slow-down
  uint64_t errors_short_body = 0;  // fewer bytes than the range asked for
  // Chunk cache (CachingOrigin): where the bytes handed to readers came from.
  uint64_t bytes_from_memory = 0;
  uint64_t bytes_from_disk = 0;
  uint64_t bytes_from_origin = 0;
  uint64_t memory_hits = 0;
  uint64_t disk_hits = 0;
  uint64_t origin_fetches = 0;       // chunks fetched from the next source (peer or origin)
  uint64_t single_flight_waits = 0;  // readers that joined a fetch already in flight
  uint64_t memory_used = 0;          // now: bytes of chunk buffers alive
  uint64_t memory_limit = 0;
  uint64_t disk_used = 0;  // now
  uint64_t disk_limit = 0;
  bool disk_enabled = false;  // now: false without --cache-dir or after ENOSPC
  uint64_t disk_corrupt = 0;  // cache files that failed validation and were re-fetched
  uint64_t disk_write_errors = 0;
  uint64_t readahead_streams = 0;   // now: sequential streams being tracked
  uint64_t readahead_inflight = 0;  // now: read-ahead chunk fetches running
  uint64_t readahead_issued = 0;    // chunks fetched ahead of readers
  uint64_t readahead_used = 0;      // of those, chunks a reader then asked for
};

// Thread-safe: every method may be called from many threads at once.
class Origin {
 public:
  virtual ~Origin() = default;

  // Human-readable location for logs and status, e.g. "file:///srv/model"; never secrets.
  virtual std::string Describe() const = 0;

  // Lists the whole tree below the origin root, directories included where the origin has
  // them. Called once at mount.
  virtual Result<std::vector<ObjectInfo>> List() = 0;

  // Reads up to dst.size() bytes of `object` at `offset` into dst. Returns the number of bytes
  // read: dst.size(), or fewer only where the object ends. Fails with Errc::kChanged when the
  // object no longer matches the version pinned in `object` (size or ETag).
  virtual Result<size_t> ReadRange(const ObjectInfo& object, uint64_t offset,
                                   std::span<uint8_t> dst) = 0;

  // Like ReadRange, but may return a view of bytes the origin already holds in memory (a
  // mapped local file) instead of copying them into `scratch`; short only where the object
  // ends. The view is valid until `scratch` is reused or the origin is destroyed. The default
  // copies into `scratch`.
  virtual Result<std::span<const uint8_t>> ReadView(const ObjectInfo& object, uint64_t offset,
                                                    std::span<uint8_t> scratch) {
    CACHEFS_ASSIGN_OR_RETURN(size_t got, ReadRange(object, offset, scratch));
    return std::span<const uint8_t>(scratch.data(), got);
  }

  // Hints that [offset, offset + length) of `object` will be read soon. Origins with a cache
  // start fetching it in the background; the default does nothing.
  virtual void Prefetch(const ObjectInfo& object, uint64_t offset, uint64_t length) {
    (void)object;
    (void)offset;
    (void)length;
  }

  // Adds this origin's counters to `stats`; the default has none.
  virtual void CollectStats(OriginStats& stats) const { (void)stats; }

  // Drops cached ciphertext (`cachefsctl flush`): the memory tier, the disk tier, or both.
  // Reads in flight finish normally; later reads fetch again. Returns the bytes dropped. The
  // default, for origins read in place (no cache), drops nothing.
  virtual uint64_t DropCache(bool memory, bool disk) {
    (void)memory;
    (void)disk;
    return 0;
  }

  // Makes requests in flight and later ones fail fast with kCancelled (shutdown): a read
  // stuck in retries against an unreachable server must not hold up an unmount. Irreversible.
  virtual void Cancel() {}
};

// Reads a whole small object (gocryptfs.conf, gocryptfs.diriv, a long-name companion), refusing
// objects larger than `max_size`, which would be corrupt or hostile.
Result<std::vector<uint8_t>> ReadWholeObject(Origin& origin, const ObjectInfo& object,
                                             size_t max_size);

}  // namespace cachefs::fetch
