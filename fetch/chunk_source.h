#pragma once

// The chunk layer's seam. A chunk is bytes [index * chunk_size, (index + 1) * chunk_size) of
// one ciphertext object version (key + pinned ETag); the last chunk of an object is shorter.
//
// CachingOrigin asks, on a miss in memory and on disk, one ChunkSource for the chunk:
//
//   reader -> CachingOrigin: memory tier -> disk tier -> ChunkSource -> origin
//
// Today the source is OriginChunkSource (a ranged GET on the origin). p2p/ inserts its step
// by wrapping it: a PeerChunkSource asks the peer that owns the chunk and falls back to the
// wrapped source, then CachingOrigin::SetChunkSource(peer_source). Peers that serve chunks
// to others call CachingOrigin::GetChunk(), which never goes to the peer layer again for a
// chunk it already holds. Only ciphertext crosses this interface.

#include <cstdint>
#include <memory>
#include <span>

#include "common/error.h"
#include "fetch/origin.h"

namespace cachefs::fetch {

class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // Fills `dst` with chunk `index` of `object` and returns the byte count: dst.size(), or
  // the object's tail for its last chunk. Thread-safe; called for distinct chunks in
  // parallel, never twice at once for the same chunk (the cache does single flight).
  // Errors as Origin::ReadRange (kChanged for a different version, kNotFound, ...).
  virtual Result<size_t> FetchChunk(const ObjectInfo& object, uint64_t index, uint64_t chunk_size,
                                    std::span<uint8_t> dst) = 0;
};

// Reads chunks from an origin with one ranged read each.
class OriginChunkSource final : public ChunkSource {
 public:
  explicit OriginChunkSource(Origin& origin) : origin_(origin) {}
  Result<size_t> FetchChunk(const ObjectInfo& object, uint64_t index, uint64_t chunk_size,
                            std::span<uint8_t> dst) override {
    return origin_.ReadRange(object, index * chunk_size, dst);
  }

 private:
  Origin& origin_;
};

}  // namespace cachefs::fetch
