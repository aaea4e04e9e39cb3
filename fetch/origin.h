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

  // Hints that [offset, offset + length) of `object` will be read soon. Origins with a cache
  // start fetching it in the background; the default does nothing.
  virtual void Prefetch(const ObjectInfo& object, uint64_t offset, uint64_t length) {
    (void)object;
    (void)offset;
    (void)length;
  }
};

// Reads a whole small object (gocryptfs.conf, gocryptfs.diriv, a long-name companion), refusing
// objects larger than `max_size`, which would be corrupt or hostile.
Result<std::vector<uint8_t>> ReadWholeObject(Origin& origin, const ObjectInfo& object,
                                             size_t max_size);

}  // namespace cachefs::fetch
