#pragma once

// The sharing group: nodes that mounted the same model pull each ciphertext chunk from the
// origin about once and pass it among themselves.
//
// Membership. A node joins through any reachable member of its seed list (--peers), learns the
// others from the member lists exchanged with every heartbeat (gossip), and probes each known
// member directly every heartbeat interval. A member that has not answered for
// failure_timeout is dead: it owns nothing and calls to it are cancelled. Dead members keep
// being probed (they rejoin when they answer again), so the member table only grows, up to
// kMaxMembers. Each member is a node id (random per process start); ownership hashes node ids,
// so nodes that name each other differently (host names, addresses) still agree.
//
// Ownership. Chunk `index` of an object belongs to the rendezvous-hash winner among the live,
// authenticated members and this node. On a cache miss (PeerChunkSource) a node asks the
// owner; the owner answers from its cache or fetches the chunk from the origin through its own
// CachingOrigin, whose single flight makes that one origin request however many members ask.
// A node serving a peer never asks another peer (no chains, no loops), whatever its view.
//
// Trust. TLS on every connection (ephemeral self-signed certificates), plus the Hello/Join
// challenge-response keyed by the group key and bound to both certificates (auth.h). Only
// certificates that completed Join may call Heartbeat or open a data connection. Chunks travel
// over the data channel (data_channel.h: TCP + TLS 1.3 with the same certificates, port
// announced in Hello), not gRPC, whose per-byte copies cost about three times the CPU. Every chunk
// carries a GMAC tag under the chunk key; a chunk that fails it is discarded, the member that sent
// it is banned for ban_time, and the caller falls back to the origin.
//
// Limits. Client: at most max_fetches_per_peer chunk fetches in flight to one member (callers
// wait for a slot within the deadline). Server: at most max_serves_per_peer and
// max_serves_total data connections at once (refused beyond), an optional bandwidth
// cap per member, request and message sizes bounded, every field validated.
//
// Thread-safety: every public method may be called from any thread. One session thread per
// known member, gRPC's server threads, and one thread per incoming data connection. Failure modes:
// Start() fails on a bad listen address or a port in use; afterwards nothing fails loudly: a member
// that misbehaves is dropped and reads fall back to the origin.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "fetch/caching_origin.h"
#include "fetch/chunk_source.h"

namespace cachefs::p2p {

struct GroupOptions {
  // HOST:PORT; 0.0.0.0 advertises the address peers see. Chunk data listens on PORT + 1 (any
  // free port when PORT is 0).
  std::string listen = "0.0.0.0:7070";
  std::vector<std::string> seeds;  // HOST:PORT (ParsePeerList); may include this node
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds failure_timeout{3000};  // silence after which a member is dead
  std::chrono::milliseconds fetch_deadline{5000};   // a chunk from a peer, else the origin
  std::chrono::milliseconds join_wait{3000};        // Start() waits this long for a first join
  std::chrono::seconds ban_time{300};               // after a chunk that failed its tag
  int max_fetches_per_peer = 8;
  int max_serves_per_peer = 16;
  int max_serves_total = 64;
  uint64_t serve_rate_per_peer = 0;  // bytes/s sent to one member; 0: unlimited
  // Test-only fault switch (CACHEFS_TEST_CORRUPT_PEER_CHUNKS=1 in the daemon): every chunk
  // this node serves has a byte flipped after its tag was computed.
  bool test_corrupt_served_chunks = false;
};

// What a member's pinned version of an object is (the mount's listing); nullopt if unknown.
using ObjectLookup = std::function<std::optional<fetch::ObjectInfo>(std::string_view key)>;

enum class PeerState { kConnecting, kAlive, kDead, kRefused, kBanned, kSelf };
const char* PeerStateName(PeerState state);

// A snapshot for status and metrics (cachefsctl peers/status). Byte and chunk counts are totals
// since start.
struct PeerStatus {
  std::string address;
  std::string node_id;  // hex; empty before the first handshake
  PeerState state = PeerState::kConnecting;
  double seconds_since_heard = -1;  // -1: never
  uint64_t bytes_received = 0;      // chunk bytes this node took from the member
  uint64_t chunks_received = 0;
  uint64_t bytes_served = 0;  // chunk bytes this node sent to the member
  uint64_t chunks_served = 0;
  uint64_t failures = 0;  // fetches from it that fell back to the origin
  uint64_t corrupt_chunks = 0;
};

struct GroupStats {
  std::string address;  // as advertised; empty until known
  std::string node_id;  // hex
  std::vector<PeerStatus> peers;
  size_t alive = 0;
  // Bytes by source of the chunks this node's cache missed on.
  uint64_t bytes_from_peers = 0;
  uint64_t chunks_from_peers = 0;
  uint64_t bytes_from_origin = 0;
  uint64_t chunks_from_origin = 0;
  uint64_t fallbacks = 0;       // asked a peer, then went to the origin
  uint64_t corrupt_chunks = 0;  // chunks from peers that failed the tag check
  uint64_t bytes_served = 0;
  uint64_t chunks_served = 0;
  uint64_t requests_refused = 0;  // unauthenticated, malformed or over a limit
  uint64_t auth_failures = 0;     // handshakes whose proof did not check (no key, or a relay)
};

class SharingGroup : public std::enable_shared_from_this<SharingGroup> {
 public:
  // Listens on options.listen, then contacts the seeds and waits up to join_wait for a first
  // member. `group_key` (>= 32 bytes, crypto::Volume::sharing_group_key()) is copied into
  // secure memory. `cache` serves other members and must outlive Stop(); `lookup` validates
  // their requests against this node's pinned object versions.
  static Result<std::shared_ptr<SharingGroup>> Start(GroupOptions options,
                                                     std::span<const uint8_t> group_key,
                                                     fetch::CachingOrigin& cache,
                                                     ObjectLookup lookup);
  ~SharingGroup();
  SharingGroup(const SharingGroup&) = delete;
  SharingGroup& operator=(const SharingGroup&) = delete;

  // Stops serving, cancels fetches in flight, joins the session threads and logs the byte
  // counts by source. Idempotent. After
  // it, chunk sources made here go straight to their fallback. Call before `cache` goes away.
  void Stop();

  // A ChunkSource for CachingOrigin::SetChunkSource: asks the owner, else `fallback`.
  std::shared_ptr<fetch::ChunkSource> MakeChunkSource(std::shared_ptr<fetch::ChunkSource> fallback);

  GroupStats Stats() const;
  // The port actually bound (useful with port 0).
  int port() const;

  // Fetches chunk `index` from its owner into dst. Returns the byte count, or nullopt without
  // an error when this node owns the chunk (or sharing is off, or this thread serves a peer),
  // or an error after which the caller should use the origin.
  Result<std::optional<size_t>> FetchFromOwner(const fetch::ObjectInfo& object, uint64_t index,
                                               uint64_t chunk_size, std::span<uint8_t> dst);
  // Accounting for chunks the fallback fetched.
  void RecordOriginFetch(size_t bytes, bool after_peer_failure);

  struct Impl;

 private:
  explicit SharingGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cachefs::p2p
