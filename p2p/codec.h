#pragma once

// Pure helpers of the sharing group: the --peers list, chunk ownership, member-list packing and
// chunk encoding. Inputs from peers are untrusted: every decoder bounds sizes and fails with
// kCorrupt instead of trusting a length.
//
// Thread-safety: every function is reentrant. Failure modes: Result errors only, never throws.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace cachefs::p2p {

inline constexpr uint16_t kDefaultPeerPort = 7070;
inline constexpr size_t kMaxMembers = 1024;
inline constexpr size_t kMaxAddressSize = 300;

// "HOST[:PORT] HOST[:PORT] ..." (spaces, tabs or commas between entries; [v6]:port for IPv6)
// -> normalized "host:port" entries, duplicates dropped. Empty text gives an empty list.
Result<std::vector<std::string>> ParsePeerList(std::string_view text,
                                               uint16_t default_port = kDefaultPeerPort);

// Splits "host:port" / "[v6]:port" into host and port; kInvalidArgument when malformed. Port 0
// (any free port) only when `allow_port_zero` (listen addresses).
Result<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view address,
                                                       bool allow_port_zero = false);

// The rendezvous (highest random weight) owner of chunk `index` of `key` among `members`
// (addresses, the local node included): the index into `members`, or -1 when empty. Every node
// with the same member set picks the same owner; removing a member moves only its chunks.
int RendezvousOwner(const std::vector<std::string>& members, std::string_view key, uint64_t index);

struct MemberEntry {
  std::string address;
  std::string node_id;  // raw bytes
};

// A member list as protobuf bytes, LZ4-compressed when that is smaller (lists of many similar
// addresses compress well). `raw_size` and `lz4` go with the data.
struct PackedMembers {
  uint32_t raw_size = 0;
  bool lz4 = false;
  std::string data;
};
PackedMembers PackMembers(const std::vector<MemberEntry>& members);
// At most kMaxMembers entries, each address at most kMaxAddressSize bytes.
Result<std::vector<MemberEntry>> UnpackMembers(const PackedMembers& packed);

// How a chunk travels: raw (ciphertext) or LZ4 (holes, zero runs). Deciding costs one LZ4 pass
// over the first 4 KiB: ciphertext does not compress there, so it is sent as it is.
struct EncodedChunk {
  bool lz4 = false;
  std::string compressed;  // only when lz4
};
EncodedChunk EncodeChunk(std::span<const uint8_t> bytes);

// Decodes `wire` (raw or LZ4) into exactly dst.size() bytes; kCorrupt on any mismatch.
Status DecodeChunk(bool lz4, std::span<const uint8_t> wire, std::span<uint8_t> dst);

}  // namespace cachefs::p2p
