#include "p2p/peer_chunk_source.h"

#include "common/log.h"

namespace cachefs::p2p {

Result<size_t> PeerChunkSource::FetchChunk(const fetch::ObjectInfo& object, uint64_t index,
                                           uint64_t chunk_size, std::span<uint8_t> dst) {
  auto from_peer = group_->FetchFromOwner(object, index, chunk_size, dst);
  if (from_peer && from_peer->has_value()) {
    return **from_peer;
  }
  bool peer_failed = !from_peer;
  if (peer_failed) {
    CACHEFS_LOG(kDebug, "p2p").Kv("object", object.key).Kv("chunk", index)
        << "peer fetch failed, using the origin: " << from_peer.error().message();
  }
  auto result = fallback_->FetchChunk(object, index, chunk_size, dst);
  if (result) {
    group_->RecordOriginFetch(*result, peer_failed);
  }
  return result;
}

std::shared_ptr<fetch::ChunkSource> SharingGroup::MakeChunkSource(
    std::shared_ptr<fetch::ChunkSource> fallback) {
  return std::make_shared<PeerChunkSource>(shared_from_this(), std::move(fallback));
}

}  // namespace cachefs::p2p
