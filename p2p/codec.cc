#include "p2p/codec.h"

#include <lz4.h>

#include <algorithm>
#include <charconv>

#include "proto/p2p.pb.h"

namespace cachefs::p2p {
namespace {

constexpr size_t kProbeSize = 4096;
// A probe must shrink to 7/8 to be worth compressing the whole chunk.
bool Pays(size_t compressed, size_t raw) { return compressed * 8 < raw * 7; }

uint64_t Fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t Mix(uint64_t z) {
  // splitmix64's finalizer: FNV alone leaves the high bits poorly mixed.
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

Result<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view address,
                                                       bool allow_port_zero) {
  std::string_view host;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    if (close == std::string_view::npos || close + 2 > address.size() ||
        address[close + 1] != ':') {
      return Error(Errc::kInvalidArgument, "bad address '" + std::string(address) + "'");
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos || address.find(':') != colon) {
      return Error(Errc::kInvalidArgument,
                   "bad address '" + std::string(address) + "': expected HOST:PORT");
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || ec != std::errc() || end != port.data() + port.size() ||
      (value == 0 && !allow_port_zero) || value > 65535) {
    return Error(Errc::kInvalidArgument, "bad address '" + std::string(address) + "'");
  }
  return std::make_pair(std::string(host), static_cast<uint16_t>(value));
}

Result<std::vector<std::string>> ParsePeerList(std::string_view text, uint16_t default_port) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = text.find_first_not_of(" \t\n,", pos);
    if (start == std::string_view::npos) {
      break;
    }
    size_t end = text.find_first_of(" \t\n,", start);
    std::string_view entry = text.substr(start, end == std::string_view::npos ? end : end - start);
    pos = end == std::string_view::npos ? text.size() : end;
    if (entry.size() > kMaxAddressSize) {
      return Error(Errc::kInvalidArgument, "peer address too long");
    }
    std::string address(entry);
    bool bracketed = entry.front() == '[';
    size_t colons = std::count(entry.begin(), entry.end(), ':');
    bool has_port = bracketed ? entry.find("]:") != std::string_view::npos : colons == 1;
    if (!has_port) {
      if (!bracketed && colons > 1) {
        address = "[" + address + "]";  // a bare IPv6 address
      }
      address += ":" + std::to_string(default_port);
    }
    auto split = SplitHostPort(address);
    if (!split) {
      return split.error().WithContext("--peers");
    }
    if (std::find(out.begin(), out.end(), address) == out.end()) {
      out.push_back(address);
    }
  }
  return out;
}

int RendezvousOwner(const std::vector<std::string>& members, std::string_view key, uint64_t index) {
  int best = -1;
  uint64_t best_score = 0;
  uint64_t chunk_hash = Fnv1a(0xcbf29ce484222325ull, key);
  chunk_hash = Mix(chunk_hash ^ Mix(index + 0x9e3779b97f4a7c15ull));
  for (size_t i = 0; i < members.size(); ++i) {
    uint64_t score = Mix(Fnv1a(chunk_hash, members[i]));
    if (best < 0 || score > best_score ||
        (score == best_score && members[i] < members[static_cast<size_t>(best)])) {
      best = static_cast<int>(i);
      best_score = score;
    }
  }
  return best;
}

PackedMembers PackMembers(const std::vector<MemberEntry>& members) {
  pb::MemberList list;
  for (const auto& m : members) {
    auto* entry = list.add_members();
    entry->set_address(m.address);
    entry->set_node_id(m.node_id);
  }
  PackedMembers packed;
  std::string raw = list.SerializeAsString();
  packed.raw_size = static_cast<uint32_t>(raw.size());
  if (raw.size() >= 128) {
    std::string compressed(LZ4_compressBound(static_cast<int>(raw.size())), '\0');
    int n = LZ4_compress_default(raw.data(), compressed.data(), static_cast<int>(raw.size()),
                                 static_cast<int>(compressed.size()));
    if (n > 0 && Pays(static_cast<size_t>(n), raw.size())) {
      compressed.resize(static_cast<size_t>(n));
      packed.lz4 = true;
      packed.data = std::move(compressed);
      return packed;
    }
  }
  packed.data = std::move(raw);
  return packed;
}

Result<std::vector<MemberEntry>> UnpackMembers(const PackedMembers& packed) {
  // Generous for kMaxMembers entries of kMaxAddressSize bytes plus ids.
  constexpr size_t kMaxRaw = kMaxMembers * (kMaxAddressSize + 64);
  if (packed.raw_size > kMaxRaw) {
    return Error(Errc::kCorrupt, "member list too large");
  }
  std::string raw;
  if (packed.lz4) {
    raw.resize(packed.raw_size);
    int n = LZ4_decompress_safe(packed.data.data(), raw.data(),
                                static_cast<int>(packed.data.size()), static_cast<int>(raw.size()));
    if (n < 0 || static_cast<uint32_t>(n) != packed.raw_size) {
      return Error(Errc::kCorrupt, "member list does not decompress");
    }
  } else {
    if (packed.data.size() != packed.raw_size) {
      return Error(Errc::kCorrupt, "member list size mismatch");
    }
    raw = packed.data;
  }
  pb::MemberList list;
  if (!list.ParseFromString(raw) || list.members_size() > static_cast<int>(kMaxMembers)) {
    return Error(Errc::kCorrupt, "member list does not parse");
  }
  std::vector<MemberEntry> out;
  for (const auto& m : list.members()) {
    if (m.address().size() > kMaxAddressSize || m.node_id().size() > 64 ||
        !SplitHostPort(m.address())) {
      return Error(Errc::kCorrupt, "member list holds a bad address");
    }
    out.push_back({m.address(), m.node_id()});
  }
  return out;
}

EncodedChunk EncodeChunk(std::span<const uint8_t> bytes) {
  EncodedChunk out;
  if (bytes.size() < 512 || bytes.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) {
    return out;
  }
  // reinterpret_cast: LZ4 takes char pointers to the same bytes.
  const char* src = reinterpret_cast<const char*>(bytes.data());
  size_t probe = std::min(bytes.size(), kProbeSize);
  char probe_out[LZ4_COMPRESSBOUND(kProbeSize)];
  int n = LZ4_compress_default(src, probe_out, static_cast<int>(probe), sizeof(probe_out));
  if (n <= 0 || !Pays(static_cast<size_t>(n), probe)) {
    return out;
  }
  out.compressed.resize(LZ4_compressBound(static_cast<int>(bytes.size())));
  n = LZ4_compress_default(src, out.compressed.data(), static_cast<int>(bytes.size()),
                           static_cast<int>(out.compressed.size()));
  if (n <= 0 || !Pays(static_cast<size_t>(n), bytes.size())) {
    out.compressed.clear();
    return out;
  }
  out.compressed.resize(static_cast<size_t>(n));
  out.lz4 = true;
  return out;
}

Status DecodeChunk(bool lz4, std::span<const uint8_t> wire, std::span<uint8_t> dst) {
  if (!lz4) {
    if (wire.size() != dst.size()) {
      return Error(Errc::kCorrupt, "raw chunk has the wrong size");
    }
    std::copy(wire.begin(), wire.end(), dst.begin());
    return Status::Ok();
  }
  if (dst.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE) ||
      wire.size() > static_cast<size_t>(LZ4_compressBound(static_cast<int>(dst.size())))) {
    return Error(Errc::kCorrupt, "compressed chunk too large");
  }
  // reinterpret_cast: LZ4 takes char pointers to the same bytes.
  int n = LZ4_decompress_safe(reinterpret_cast<const char*>(wire.data()),
                              reinterpret_cast<char*>(dst.data()), static_cast<int>(wire.size()),
                              static_cast<int>(dst.size()));
  if (n < 0 || static_cast<size_t>(n) != dst.size()) {
    return Error(Errc::kCorrupt, "compressed chunk does not decode to its length");
  }
  return Status::Ok();
}

}  // namespace cachefs::p2p
