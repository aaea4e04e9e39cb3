#pragma once

// The sharing group's step in the chunk cache (fetch/chunk_source.h): on a miss, ask the chunk's
// owner in the group, and fall back to the wrapped source (the origin) when this node owns the
// chunk, the owner fails, sends a bad chunk, or misses the group's fetch deadline.
//
// Thread-safety: as ChunkSource (concurrent calls for distinct chunks). Failure modes: only the
// fallback's errors reach the caller; peer errors are counted and logged at debug level.

#include <memory>

#include "fetch/chunk_source.h"
#include "p2p/sharing_group.h"

namespace cachefs::p2p {

class PeerChunkSource final : public fetch::ChunkSource {
 public:
  PeerChunkSource(std::shared_ptr<SharingGroup> group, std::shared_ptr<fetch::ChunkSource> fallback)
      : group_(std::move(group)), fallback_(std::move(fallback)) {}

  Result<size_t> FetchChunk(const fetch::ObjectInfo& object, uint64_t index, uint64_t chunk_size,
                            std::span<uint8_t> dst) override;

 private:
  std::shared_ptr<SharingGroup> group_;
  std::shared_ptr<fetch::ChunkSource> fallback_;
};

}  // namespace cachefs::p2p
