#include "p2p/sharing_group.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <thread>

#include "common/log.h"
#include "common/secret_bytes.h"
#include "p2p/auth.h"
#include "p2p/codec.h"
#include "p2p/data_channel.h"
#include "proto/p2p.grpc.pb.h"

namespace cachefs::p2p {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kProtocol = 2;  // 2: chunks over the data channel
// Every node's certificate names this host and every channel expects it: addresses differ per
// node, and gRPC's TLS stack complains about a name mismatch even with verification off.
constexpr const char* kTlsName = "cachefs-p2p";
// Control messages only: member lists are the largest (kMaxMembers entries, LZ4).
constexpr int kMaxRequestMessage = 64 << 10;
constexpr int kMaxReplyMessage = 256 << 10;
// Data channel: a bandwidth cap paces writes in pieces of this size.
constexpr size_t kPieceSize = 1 << 20;
constexpr auto kDataHandshakeTimeout = std::chrono::seconds(5);
// An open connection holds one of the server's max_serves_* slots, so the server closes
// connections idle this long; clients reuse theirs only when younger than kDataReuseTime, so
// they do not pick one the server is closing.
constexpr auto kDataIdleTimeout = std::chrono::seconds(10);
constexpr auto kDataReuseTime = std::chrono::seconds(5);
constexpr size_t kMaxHandshakes = 16;  // connections not yet admitted, beyond max_serves_total
constexpr size_t kMaxChallenges = 1024;
constexpr auto kChallengeLifetime = std::chrono::seconds(10);
constexpr size_t kMaxServerPeers = 4 * kMaxMembers;
constexpr size_t kMaxKeySize = 4096;
constexpr size_t kMaxEtagSize = 256;
constexpr int kFailuresBeforeDead = 3;  // refused connections in a row: dead before the timeout

// gRPC deadlines are system_clock time points; ours are steady.
std::chrono::system_clock::time_point GrpcDeadline(Clock::time_point deadline) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(deadline - Clock::now());
}

// Set while this thread serves a peer: the cache miss it causes goes to the origin, never to
// another peer, so differing membership views cannot make requests chain or loop.
thread_local bool tls_serving_peer = false;

struct ServingScope {
  ServingScope() { tls_serving_peer = true; }
  ~ServingScope() { tls_serving_peer = false; }
};

std::string Hex(std::string_view bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};  // chars viewed as bytes
}

std::string AsString(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};  // bytes as chars
}

Result<Fingerprint> PeerFingerprint(const std::shared_ptr<const grpc::AuthContext>& context) {
  if (!context) {
    return Error(Errc::kPermissionDenied, "no TLS session");
  }
  auto values = context->FindPropertyValues("x509_pem_cert");
  if (values.empty()) {
    return Error(Errc::kPermissionDenied, "peer presented no certificate");
  }
  return CertificateFingerprint(std::string_view(values[0].data(), values[0].size()));
}

// "ipv4:10.0.0.2:5555" -> "10.0.0.2"; "ipv6:[fd00::2]:5555" -> "[fd00::2]".
std::string HostOfPeerUri(const std::string& uri) {
  size_t scheme = uri.find(':');
  size_t port = uri.rfind(':');
  if (scheme == std::string::npos || port == scheme) {
    return "";
  }
  return uri.substr(scheme + 1, port - scheme - 1);
}

bool IsWildcard(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

PackedMembers FromProto(const pb::Packed& p) { return {p.raw_size(), p.lz4(), p.data()}; }

void ToProto(const PackedMembers& packed, pb::Packed* p) {
  p->set_raw_size(packed.raw_size);
  p->set_lz4(packed.lz4);
  p->set_data(packed.data);
}

grpc::Status Refuse(grpc::StatusCode code, const std::string& why) { return {code, why}; }

Error FromGrpc(const grpc::Status& status, std::string_view what) {
  Errc code = Errc::kUnavailable;
  switch (status.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = Errc::kTimeout;
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      code = Errc::kPermissionDenied;
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = Errc::kNotFound;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = Errc::kChanged;
      break;
    case grpc::StatusCode::CANCELLED:
      code = Errc::kCancelled;
      break;
    default:
      break;
  }
  return Error(code, std::string(what) + ": " + status.error_message());
}

}  // namespace

const char* PeerStateName(PeerState state) {
  switch (state) {
    case PeerState::kConnecting:
      return "connecting";
    case PeerState::kAlive:
      return "alive";
    case PeerState::kDead:
      return "dead";
    case PeerState::kRefused:
      return "refused";
    case PeerState::kBanned:
      return "banned";
    case PeerState::kSelf:
      return "self";
  }
  return "unknown";
}

namespace {

// A member as this node's client sees it.
struct Peer {
  Peer(std::string a, bool s) : address(std::move(a)), seed(s) {}
  const std::string address;
  const bool seed;

  // Guarded by Impl::mu.
  PeerState state = PeerState::kConnecting;
  std::string node_id;
  Fingerprint fingerprint{};
  bool authenticated = false;
  bool heard = false;
  Clock::time_point last_heard{};
  Clock::time_point banned_until{};
  int consecutive_failures = 0;
  uint16_t data_port = 0;                       // its data channel, from Hello
  std::shared_ptr<pb::PeerService::Stub> stub;  // handshakes and heartbeats
  std::thread session;

  std::mutex slot_mu;
  std::condition_variable slot_cv;
  int in_flight = 0;  // guarded by slot_mu
  // Data connections between fetches (at most max_fetches_per_peer), newest last.
  struct IdleStream {
    std::unique_ptr<TlsStream> stream;
    Clock::time_point since;
  };
  std::vector<IdleStream> idle;  // guarded by slot_mu

  std::mutex calls_mu;
  std::set<TlsStream*> calls;  // guarded by calls_mu: chunk fetches in flight

  std::atomic<uint64_t> bytes_received{0}, chunks_received{0}, failures{0}, corrupt{0};

  void CancelCalls() {
    {
      std::lock_guard lock(calls_mu);
      for (auto* call : calls) {
        call->Abort();
      }
    }
    std::lock_guard lock(slot_mu);
    idle.clear();
  }
};

// A member as this node's server sees it: a certificate that completed Join.
struct ServerPeer {
  std::string node_id;
  std::string address;
  int serving = 0;              // guarded by Impl::server_mu
  Clock::time_point last_seen;  // guarded by Impl::server_mu

  std::mutex rate_mu;
  double tokens = 0;             // guarded by rate_mu
  Clock::time_point refilled{};  // guarded by rate_mu

  std::atomic<uint64_t> bytes_served{0}, chunks_served{0};
};

struct Challenge {
  std::string client_nonce;
  std::string client_id;
  Fingerprint client_cert;
  Clock::time_point expiry;
};

}  // namespace

struct SharingGroup::Impl final : public pb::PeerService::Service {
  Impl(GroupOptions o, GroupKeys k, fetch::CachingOrigin& c, ObjectLookup l)
      : options(std::move(o)), keys(std::move(k)), cache(c), lookup(std::move(l)) {}

  // --- server side (gRPC threads) ---
  grpc::Status Hello(grpc::ServerContext* context, const pb::HelloRequest* request,
                     pb::HelloReply* reply) override;
  grpc::Status Join(grpc::ServerContext* context, const pb::JoinRequest* request,
                    pb::JoinReply* reply) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const pb::HeartbeatRequest* request,
                         pb::HeartbeatReply* reply) override;

  std::shared_ptr<ServerPeer> Authorized(grpc::ServerContext* context);
  std::shared_ptr<ServerPeer> Authorized(const Fingerprint& fingerprint);
  // --- data channel, server side (one thread per connection) ---
  Status ListenData(uint16_t port);
  void AcceptLoop();
  void StopData();
  void ServeConnection(uint64_t id, int fd);
  bool ServeRequest(TlsStream& stream, ServerPeer& peer);
  void Throttle(ServerPeer& peer, size_t bytes);

  // --- membership (session threads) ---
  void AddPeerLocked(const std::string& address, bool seed);
  void MergeLocked(const std::vector<MemberEntry>& members);
  void Merge(const pb::Packed& packed);
  PackedMembers CurrentMembers();
  void Session(std::shared_ptr<Peer> peer);
  // True once joined; false when the address is this node's own.
  Result<bool> Handshake(Peer& peer);
  void HeartbeatOnce(Peer& peer);
  void SetStateLocked(Peer& peer, PeerState state, std::string_view why);
  std::shared_ptr<pb::PeerService::Stub> StubFor(Peer& peer);

  const GroupOptions options;
  const GroupKeys keys;
  fetch::CachingOrigin& cache;
  const ObjectLookup lookup;
  TlsIdentity identity;
  std::string node_id;  // kNodeIdSize raw bytes
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
  std::shared_ptr<TlsContext> server_tls, client_tls;  // data channel
  int data_listen_fd = -1;
  uint16_t data_port = 0;
  std::thread acceptor;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string listen_host;

  mutable std::mutex mu;
  std::condition_variable cv;                          // stop, first join
  bool stopping = false;                               // guarded by mu
  std::string advertised;                              // guarded by mu: "" until known
  std::map<std::string, std::shared_ptr<Peer>> peers;  // guarded by mu: by address

  mutable std::mutex server_mu;
  std::map<Fingerprint, std::shared_ptr<ServerPeer>> authorized;  // guarded by server_mu
  std::map<std::string, Challenge> challenges;  // guarded by server_mu: by server nonce
  int serving_total = 0;                        // guarded by server_mu

  std::mutex data_mu;
  bool data_stopping = false;                    // guarded by data_mu
  std::map<uint64_t, std::thread> data_threads;  // guarded by data_mu: connections
  std::vector<uint64_t> data_done;               // guarded by data_mu: threads to join
  std::map<uint64_t, int> data_fds;              // guarded by data_mu: sockets open, for Stop()

  std::atomic<uint64_t> bytes_from_peers{0}, chunks_from_peers{0}, bytes_from_origin{0},
      chunks_from_origin{0}, fallbacks{0}, corrupt_chunks{0}, bytes_served{0}, chunks_served{0},
      requests_refused{0}, auth_failures{0};
};

// ---------------------------------------------------------------------------------------------
// Server side.

std::shared_ptr<ServerPeer> SharingGroup::Impl::Authorized(grpc::ServerContext* context) {
  auto fp = PeerFingerprint(context->auth_context());
  if (!fp) {
    return nullptr;
  }
  return Authorized(*fp);
}

std::shared_ptr<ServerPeer> SharingGroup::Impl::Authorized(const Fingerprint& fingerprint) {
  std::lock_guard lock(server_mu);
  auto it = authorized.find(fingerprint);
  if (it == authorized.end()) {
    return nullptr;
  }
  it->second->last_seen = Clock::now();
  return it->second;
}

grpc::Status SharingGroup::Impl::Hello(grpc::ServerContext* context,
                                       const pb::HelloRequest* request, pb::HelloReply* reply) {
  auto client_cert = PeerFingerprint(context->auth_context());
  if (!client_cert) {
    requests_refused++;
    return Refuse(grpc::StatusCode::UNAUTHENTICATED, client_cert.error().message());
  }
  if (request->protocol() != kProtocol || request->node_id().size() != kNodeIdSize ||
      request->client_nonce().size() != kNonceSize) {
    requests_refused++;
    return Refuse(grpc::StatusCode::INVALID_ARGUMENT, "malformed hello");
  }
  std::string server_nonce(kNonceSize, '\0');
  // reinterpret_cast: the nonce string's bytes filled in place.
  if (!RandomBytes({reinterpret_cast<uint8_t*>(server_nonce.data()), server_nonce.size()})) {
    return Refuse(grpc::StatusCode::INTERNAL, "no randomness");
  }
  {
    std::lock_guard lock(server_mu);
    auto now = Clock::now();
    std::erase_if(challenges, [&](const auto& kv) { return kv.second.expiry < now; });
    if (challenges.size() >= kMaxChallenges) {
      requests_refused++;
      return Refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many handshakes in progress");
    }
    challenges[server_nonce] = {request->client_nonce(), request->node_id(), *client_cert,
                                now + kChallengeLifetime};
  }
  auto proof =
      keys.Proof("server", Bytes(request->client_nonce()), Bytes(server_nonce), Bytes(node_id),
                 Bytes(request->node_id()), identity.fingerprint, *client_cert);
  reply->set_protocol(kProtocol);
  reply->set_node_id(node_id);
  reply->set_server_nonce(server_nonce);
  reply->set_proof(AsString(proof));
  reply->set_data_port(data_port);
  return grpc::Status::OK;
}

grpc::Status SharingGroup::Impl::Join(grpc::ServerContext* context, const pb::JoinRequest* request,
                                      pb::JoinReply* reply) {
  auto client_cert = PeerFingerprint(context->auth_context());
  if (!client_cert) {
    requests_refused++;
    return Refuse(grpc::StatusCode::UNAUTHENTICATED, client_cert.error().message());
  }
  Challenge challenge;
  {
    std::lock_guard lock(server_mu);
    auto it = challenges.find(request->server_nonce());
    if (it == challenges.end()) {
      requests_refused++;
      return Refuse(grpc::StatusCode::PERMISSION_DENIED, "unknown or expired challenge");
    }
    challenge = it->second;
    challenges.erase(it);  // one use
  }
  bool ok = challenge.expiry >= Clock::now() && challenge.client_cert == *client_cert &&
            challenge.client_id == request->node_id() &&
            keys.CheckProof(Bytes(request->proof()), "client", Bytes(challenge.client_nonce),
                            Bytes(request->server_nonce()), Bytes(request->node_id()),
                            Bytes(node_id), *client_cert, identity.fingerprint);
  if (!ok) {
    auth_failures++;
    CACHEFS_LOG(kWarn, "p2p").Kv("peer", context->peer())
        << "refused a node that does not hold the group key";
    return Refuse(grpc::StatusCode::PERMISSION_DENIED, "proof does not check");
  }
  std::string observed = HostOfPeerUri(context->peer());
  std::string address = request->address();
  if (!address.empty() && address[0] == ':') {
    address = observed + address;
  }
  if (!address.empty() && !SplitHostPort(address)) {
    requests_refused++;
    return Refuse(grpc::StatusCode::INVALID_ARGUMENT, "bad address");
  }
  {
    std::lock_guard lock(server_mu);
    if (authorized.size() >= kMaxServerPeers) {
      auto oldest = std::min_element(authorized.begin(), authorized.end(), [](auto& a, auto& b) {
        return a.second->last_seen < b.second->last_seen;
      });
      authorized.erase(oldest);
    }
    auto peer = std::make_shared<ServerPeer>();
    peer->node_id = request->node_id();
    peer->address = address;
    peer->last_seen = Clock::now();
    authorized[*client_cert] = std::move(peer);
  }
  {
    std::lock_guard lock(mu);
    if (!address.empty()) {
      AddPeerLocked(address, false);
    }
  }
  Merge(request->members());
  ToProto(CurrentMembers(), reply->mutable_members());
  reply->set_observed_host(observed);
  return grpc::Status::OK;
}

grpc::Status SharingGroup::Impl::Heartbeat(grpc::ServerContext* context,
                                           const pb::HeartbeatRequest* request,
                                           pb::HeartbeatReply* reply) {
  auto peer = Authorized(context);
  if (peer == nullptr || peer->node_id != request->node_id()) {
    requests_refused++;
    return Refuse(grpc::StatusCode::PERMISSION_DENIED, "not a member");
  }
  Merge(request->members());
  reply->set_node_id(node_id);
  ToProto(CurrentMembers(), reply->mutable_members());
  return grpc::Status::OK;
}

void SharingGroup::Impl::Throttle(ServerPeer& peer, size_t bytes) {
  const double rate = static_cast<double>(options.serve_rate_per_peer);
  if (rate <= 0) {
    return;
  }
  std::lock_guard lock(peer.rate_mu);  // held while sleeping: one member's streams share a cap
  auto now = Clock::now();
  double burst = std::max(rate, static_cast<double>(kPieceSize));
  if (peer.refilled == Clock::time_point{}) {
    peer.tokens = burst;
  } else {
    peer.tokens = std::min(
        burst, peer.tokens + std::chrono::duration<double>(now - peer.refilled).count() * rate);
  }
  peer.refilled = now;
  peer.tokens -= static_cast<double>(bytes);
  if (peer.tokens < 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(-peer.tokens / rate));
  }
}

namespace {

// Sends a refusal (status and reason) on `stream`; the connection is closed after it.
void SendRefusal(TlsStream& stream, DataStatus status, std::string_view why) {
  DataReplyHead head;
  head.status = status;
  head.message_size = std::min(why.size(), kMaxDataMessageSize);
  auto bytes = EncodeDataReplyHead(head);
  if (stream.WriteAll(bytes, /*flush=*/false)) {
    (void)stream.WriteAll(Bytes(why.substr(0, head.message_size)));
  }
}

}  // namespace

// One data connection, from the TLS handshake to its close: requests one at a time, while
// the connection counts as one of the peer's chunk streams.
void SharingGroup::Impl::ServeConnection(uint64_t id, int fd) {
  auto accepted = TlsStream::Accept(*server_tls, fd, kDataHandshakeTimeout);
  if (!accepted) {
    requests_refused++;
    std::lock_guard lock(data_mu);
    data_fds.erase(id);
    close(fd);
    return;
  }
  std::unique_ptr<TlsStream> stream = std::move(accepted).value();
  std::shared_ptr<ServerPeer> peer = Authorized(stream->peer_fingerprint());
  bool admitted = false;
  if (peer != nullptr) {
    std::lock_guard lock(server_mu);
    if (serving_total < options.max_serves_total && peer->serving < options.max_serves_per_peer) {
      ++serving_total;
      ++peer->serving;
      admitted = true;
    }
  }
  if (!admitted) {
    requests_refused++;
    SendRefusal(*stream, DataStatus::kRefused,
                peer == nullptr ? "not a member" : "too many chunk streams");
  }
  while (admitted && ServeRequest(*stream, *peer)) {
  }
  if (admitted) {
    std::lock_guard lock(server_mu);
    --serving_total;
    --peer->serving;
  }
  std::lock_guard lock(data_mu);
  data_fds.erase(id);
  stream.reset();  // closes the socket while Stop() cannot shut it down any more
}

// Serves one request; false when the connection should close (error, refusal, idle).
bool SharingGroup::Impl::ServeRequest(TlsStream& stream, ServerPeer& peer) {
  std::array<uint8_t, kRequestHeadSize> raw_head{};
  stream.SetTimeout(kDataIdleTimeout);
  if (!stream.ReadExact(raw_head)) {
    return false;
  }
  auto head = DecodeDataRequestHead(raw_head);
  if (!head) {
    requests_refused++;
    SendRefusal(stream, DataStatus::kInvalid, head.error().message());
    return false;
  }
  stream.SetTimeout(options.fetch_deadline);
  std::string names(head->key_size + head->etag_size, '\0');
  // reinterpret_cast: the string's bytes filled in place.
  if (!stream.ReadExact({reinterpret_cast<uint8_t*>(names.data()), names.size()})) {
    return false;
  }
  const std::string key = names.substr(0, head->key_size);
  const std::string etag = names.substr(head->key_size);
  auto refuse = [&](DataStatus status, const std::string& why) {
    requests_refused++;
    SendRefusal(stream, status, why);
    return false;
  };
  const uint64_t chunk_size = cache.chunk_size();
  if (head->chunk_size != chunk_size) {
    return refuse(DataStatus::kChanged,
                  "chunk size differs (this node uses " + std::to_string(chunk_size) + ")");
  }
  auto object = lookup(key);
  if (!object) {
    return refuse(DataStatus::kNotFound, "no such object");
  }
  if (object->etag != etag || object->size != head->object_size) {
    return refuse(DataStatus::kChanged, "object version differs");
  }
  if (head->index >= (object->size + chunk_size - 1) / chunk_size) {
    return refuse(DataStatus::kInvalid, "chunk beyond the end of the object");
  }
  fetch::ChunkRef chunk;
  {
    ServingScope scope;
    auto got = cache.GetChunk(*object, head->index);
    if (!got) {
      SendRefusal(stream, DataStatus::kUnavailable, got.error().message());
      return false;
    }
    chunk = std::move(got).value();
  }
  std::span<const uint8_t> bytes = chunk->bytes();
  EncodedChunk encoded = EncodeChunk(bytes);
  DataReplyHead reply;
  if (!RandomBytes(reply.nonce)) {
    SendRefusal(stream, DataStatus::kUnavailable, "no randomness");
    return false;
  }
  auto tag =
      keys.ChunkTag(reply.nonce, object->key, object->etag, object->size, head->index, bytes);
  if (!tag) {
    SendRefusal(stream, DataStatus::kUnavailable, tag.error().message());
    return false;
  }
  std::span<const uint8_t> wire = encoded.lz4 ? Bytes(encoded.compressed) : bytes;
  std::string corrupted;
  if (options.test_corrupt_served_chunks) {
    corrupted = AsString(wire);
    corrupted[corrupted.size() / 2] ^= 0x01;
    wire = Bytes(corrupted);
  }
  reply.tag = *tag;
  reply.lz4 = encoded.lz4;
  reply.length = bytes.size();
  reply.wire_size = wire.size();
  if (!stream.WriteAll(EncodeDataReplyHead(reply), /*flush=*/false)) {
    return false;
  }
  // Counted before the bytes go out (and taken back if they do not), so a member's count of
  // bytes received from this node never runs ahead of this node's count of bytes served.
  auto count = [&](int sign) {
    const auto n = static_cast<uint64_t>(sign) * bytes.size();
    peer.bytes_served += n;
    peer.chunks_served += static_cast<uint64_t>(sign);
    bytes_served += n;
    chunks_served += static_cast<uint64_t>(sign);
  };
  count(1);
  // Straight from the cache's buffer into TLS records; pieces only to pace a bandwidth cap.
  const size_t piece = options.serve_rate_per_peer > 0 ? kPieceSize : wire.size();
  for (size_t offset = 0; offset < wire.size(); offset += piece) {
    size_t n = std::min(piece, wire.size() - offset);
    Throttle(peer, n);
    if (!stream.WriteAll(wire.subspan(offset, n))) {
      count(-1);
      return false;
    }
  }
  return true;
}

// Binds the data channel on the gRPC listen host and `port` (0: any free port). Hello tells
// peers which port; a fixed one (the gRPC port + 1) is what firewall rules can name.
Status SharingGroup::Impl::ListenData(uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(listen_host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Error(Errc::kInvalidArgument,
                 "data channel: cannot resolve " + listen_host + ": " + gai_strerror(rc));
  }
  int saved_errno = 0;
  for (addrinfo* ai = found; ai != nullptr && data_listen_fd < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      saved_errno = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // restarts during TIME_WAIT
    sockaddr_storage bound{};
    socklen_t bound_size = sizeof(bound);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_size) != 0) {  // sockaddr API
      saved_errno = errno;
      close(fd);
      continue;
    }
    data_listen_fd = fd;
    data_port = ntohs(bound.ss_family == AF_INET6
                          ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port  // sockaddr API
                          : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  freeaddrinfo(found);
  if (data_listen_fd < 0) {
    return Error::FromErrno(saved_errno,
                            "data channel: listen on " + listen_host + " port " + service);
  }
  acceptor = std::thread([this] { AcceptLoop(); });
  return Status::Ok();
}

// Closes the listener, cuts every data connection and joins their threads.
void SharingGroup::Impl::StopData() {
  {
    std::lock_guard lock(data_mu);
    data_stopping = true;
    for (const auto& [id, fd] : data_fds) {
      shutdown(fd, SHUT_RDWR);
    }
  }
  if (data_listen_fd >= 0) {
    shutdown(data_listen_fd, SHUT_RDWR);  // wakes accept()
  }
  if (acceptor.joinable()) {
    acceptor.join();
  }
  std::map<uint64_t, std::thread> threads;
  {
    std::lock_guard lock(data_mu);
    threads.swap(data_threads);
  }
  for (auto& [id, thread] : threads) {
    thread.join();
  }
  if (data_listen_fd >= 0) {
    close(data_listen_fd);
    data_listen_fd = -1;
  }
}

void SharingGroup::Impl::AcceptLoop() {
  uint64_t next_id = 0;
  while (true) {
    int fd = accept4(data_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    std::unique_lock lock(data_mu);
    for (uint64_t done : data_done) {
      data_threads[done].join();
      data_threads.erase(done);
    }
    data_done.clear();
    if (data_stopping) {
      if (fd >= 0) {
        close(fd);
      }
      return;
    }
    if (fd < 0) {
      lock.unlock();
      // EMFILE and the like: do not spin.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    // Handshakes in progress count too: a flood of connections gets closed, not threads.
    if (data_threads.size() >= static_cast<size_t>(options.max_serves_total) + kMaxHandshakes) {
      requests_refused++;
      close(fd);
      continue;
    }
    uint64_t id = next_id++;
    data_fds[id] = fd;
    data_threads[id] = std::thread([this, id, fd] {
      ServeConnection(id, fd);
      std::lock_guard done_lock(data_mu);
      data_done.push_back(id);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Membership.

void SharingGroup::Impl::AddPeerLocked(const std::string& address, bool seed) {
  if (stopping || address == advertised || peers.contains(address) || peers.size() >= kMaxMembers) {
    return;
  }
  auto peer = std::make_shared<Peer>(address, seed);
  peers[address] = peer;
  peer->session = std::thread([this, peer] { Session(peer); });
}

void SharingGroup::Impl::MergeLocked(const std::vector<MemberEntry>& members) {
  for (const auto& m : members) {
    if (m.node_id == node_id || m.address.empty()) {
      continue;
    }
    AddPeerLocked(m.address, false);
  }
}

void SharingGroup::Impl::Merge(const pb::Packed& packed) {
  auto members = UnpackMembers(FromProto(packed));
  if (!members) {
    CACHEFS_LOG(kDebug, "p2p") << "ignored a member list: " << members.error().message();
    return;
  }
  std::lock_guard lock(mu);
  MergeLocked(*members);
}

PackedMembers SharingGroup::Impl::CurrentMembers() {
  std::vector<MemberEntry> members;
  {
    std::lock_guard lock(mu);
    if (!advertised.empty()) {
      members.push_back({advertised, node_id});
    }
    for (const auto& [address, peer] : peers) {
      if (peer->state == PeerState::kAlive) {
        members.push_back({address, peer->node_id});
      }
    }
  }
  return PackMembers(members);
}

void SharingGroup::Impl::SetStateLocked(Peer& peer, PeerState state, std::string_view why) {
  if (peer.state == state) {
    return;
  }
  PeerState before = peer.state;
  peer.state = state;
  size_t alive = 0;
  for (const auto& [address, p] : peers) {
    alive += p->state == PeerState::kAlive;
  }
  bool bad =
      state == PeerState::kDead || state == PeerState::kRefused || state == PeerState::kBanned;
  cv.notify_all();
  // A seed that was never reached (not up yet) turns dead quietly.
  if (state == PeerState::kDead && before == PeerState::kConnecting) {
    return;
  }
  LogLine(bad ? LogLevel::kWarn : LogLevel::kInfo, "p2p")
          .Kv("peer", peer.address)
          .Kv("state", PeerStateName(state))
          .Kv("alive", static_cast<uint64_t>(alive))
      << "sharing group member " << PeerStateName(state) << (why.empty() ? "" : ": ") << why;
  if (bad) {
    peer.CancelCalls();
  }
}

std::shared_ptr<pb::PeerService::Stub> SharingGroup::Impl::StubFor(Peer& peer) {
  std::lock_guard lock(mu);
  if (!peer.stub) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReplyMessage);
    args.SetMaxSendMessageSize(kMaxRequestMessage);
    args.SetSslTargetNameOverride(kTlsName);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // One connection per member, not shared with other channels to the same address.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    peer.stub = pb::PeerService::NewStub(
        grpc::CreateCustomChannel(peer.address, channel_credentials, args));
  }
  return peer.stub;
}

Result<bool> SharingGroup::Impl::Handshake(Peer& peer) {
  auto stub = StubFor(peer);
  auto rpc_deadline = [&] {
    return Clock::now() +
           std::min<Clock::duration>(options.failure_timeout, std::chrono::seconds(2));
  };
  std::string client_nonce(kNonceSize, '\0');
  // reinterpret_cast: the nonce string's bytes filled in place.
  if (!RandomBytes({reinterpret_cast<uint8_t*>(client_nonce.data()), client_nonce.size()})) {
    return Error(Errc::kInternal, "no randomness");
  }
  pb::HelloRequest hello;
  hello.set_protocol(kProtocol);
  hello.set_node_id(node_id);
  hello.set_client_nonce(client_nonce);
  pb::HelloReply hello_reply;
  grpc::ClientContext hello_context;
  hello_context.set_deadline(GrpcDeadline(rpc_deadline()));
  grpc::Status status = stub->Hello(&hello_context, hello, &hello_reply);
  if (!status.ok()) {
    return FromGrpc(status, "hello");
  }
  if (hello_reply.node_id() == node_id) {
    return false;
  }
  CACHEFS_ASSIGN_OR_RETURN(Fingerprint server_cert, PeerFingerprint(hello_context.auth_context()));
  if (hello_reply.data_port() == 0 || hello_reply.data_port() > 65535) {
    return Error(Errc::kPermissionDenied, "malformed hello reply (protocol mismatch?)");
  }
  if (hello_reply.node_id().size() != kNodeIdSize ||
      !keys.CheckProof(Bytes(hello_reply.proof()), "server", Bytes(client_nonce),
                       Bytes(hello_reply.server_nonce()), Bytes(hello_reply.node_id()),
                       Bytes(node_id), server_cert, identity.fingerprint)) {
    auth_failures++;
    return Error(Errc::kPermissionDenied, "it does not hold the group key");
  }
  auto proof =
      keys.Proof("client", Bytes(client_nonce), Bytes(hello_reply.server_nonce()), Bytes(node_id),
                 Bytes(hello_reply.node_id()), identity.fingerprint, server_cert);
  pb::JoinRequest join;
  join.set_node_id(node_id);
  {
    std::lock_guard lock(mu);
    join.set_address(advertised.empty() ? ":" + std::to_string(port) : advertised);
  }
  join.set_server_nonce(hello_reply.server_nonce());
  join.set_proof(AsString(proof));
  ToProto(CurrentMembers(), join.mutable_members());
  pb::JoinReply join_reply;
  grpc::ClientContext join_context;
  join_context.set_deadline(GrpcDeadline(rpc_deadline()));
  status = stub->Join(&join_context, join, &join_reply);
  if (!status.ok()) {
    return FromGrpc(status, "join");
  }
  CACHEFS_ASSIGN_OR_RETURN(Fingerprint join_cert, PeerFingerprint(join_context.auth_context()));
  if (join_cert != server_cert) {
    return Error(Errc::kPermissionDenied, "certificate changed during the handshake");
  }
  auto members = UnpackMembers(FromProto(join_reply.members()));
  std::lock_guard lock(mu);
  peer.node_id = hello_reply.node_id();
  peer.fingerprint = server_cert;
  peer.data_port = static_cast<uint16_t>(hello_reply.data_port());
  peer.authenticated = true;
  peer.heard = true;
  peer.last_heard = Clock::now();
  peer.consecutive_failures = 0;
  if (advertised.empty() && !join_reply.observed_host().empty() &&
      SplitHostPort(join_reply.observed_host() + ":" + std::to_string(port))) {
    advertised = join_reply.observed_host() + ":" + std::to_string(port);
  }
  if (members) {
    MergeLocked(*members);
  }
  return true;
}

void SharingGroup::Impl::HeartbeatOnce(Peer& peer) {
  auto stub = StubFor(peer);
  pb::HeartbeatRequest request;
  request.set_node_id(node_id);
  ToProto(CurrentMembers(), request.mutable_members());
  pb::HeartbeatReply reply;
  grpc::ClientContext context;
  context.set_deadline(GrpcDeadline(
      Clock::now() + std::min<Clock::duration>(options.failure_timeout, std::chrono::seconds(1))));
  grpc::Status status = stub->Heartbeat(&context, request, &reply);
  auto cert = status.ok() ? PeerFingerprint(context.auth_context())
                          : Result<Fingerprint>(Error(Errc::kUnavailable, ""));
  std::lock_guard lock(mu);
  if (status.ok() && cert && *cert == peer.fingerprint && reply.node_id() == peer.node_id) {
    peer.heard = true;
    peer.last_heard = Clock::now();
    peer.consecutive_failures = 0;
    auto members = UnpackMembers(FromProto(reply.members()));
    if (members) {
      MergeLocked(*members);
    }
    if (peer.state != PeerState::kBanned) {
      SetStateLocked(peer, PeerState::kAlive, "");
    }
    return;
  }
  if (status.ok() || status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    // A new process behind the address (restart): authenticate again.
    peer.authenticated = false;
  }
  ++peer.consecutive_failures;
}

void SharingGroup::Impl::Session(std::shared_ptr<Peer> peer) {
  while (true) {
    bool authenticated;
    {
      std::lock_guard lock(mu);
      if (stopping) {
        return;
      }
      authenticated = peer->authenticated;
    }
    if (!authenticated) {
      auto status = Handshake(*peer);
      std::lock_guard lock(mu);
      if (status && *status) {
        SetStateLocked(*peer, PeerState::kAlive, "");
      } else if (status) {
        peer->state = PeerState::kSelf;  // our own address in the seed list
        cv.notify_all();
        return;
      } else if (status.error().code() == Errc::kPermissionDenied) {
        SetStateLocked(*peer, PeerState::kRefused, status.error().message());
      } else {
        ++peer->consecutive_failures;
        CACHEFS_LOG(kDebug, "p2p").Kv("peer", peer->address) << status.error().message();
      }
    } else {
      HeartbeatOnce(*peer);
    }
    {
      std::unique_lock lock(mu);
      auto now = Clock::now();
      if (peer->state == PeerState::kBanned && now >= peer->banned_until) {
        SetStateLocked(*peer, peer->authenticated ? PeerState::kAlive : PeerState::kConnecting,
                       "ban over");
      }
      bool silent = peer->heard && now - peer->last_heard > options.failure_timeout;
      if ((peer->state == PeerState::kAlive || peer->state == PeerState::kConnecting) &&
          (silent || peer->consecutive_failures >= kFailuresBeforeDead)) {
        SetStateLocked(*peer, PeerState::kDead, silent ? "no heartbeat" : "unreachable");
      }
      // Refused peers are retried slowly: a key rotation or a restart may fix them.
      auto wait = peer->state == PeerState::kRefused ? 10 * options.heartbeat_interval
                                                     : options.heartbeat_interval;
      cv.wait_for(lock, wait, [&] { return stopping; });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Client side of chunk transfer.

Result<std::optional<size_t>> SharingGroup::FetchFromOwner(const fetch::ObjectInfo& object,
                                                           uint64_t index, uint64_t chunk_size,
                                                           std::span<uint8_t> dst) {
  Impl& impl = *impl_;
  if (tls_serving_peer) {
    return std::optional<size_t>();
  }
  std::shared_ptr<Peer> owner;
  Fingerprint owner_cert{};
  uint16_t owner_port = 0;
  {
    std::lock_guard lock(impl.mu);
    if (impl.stopping) {
      return std::optional<size_t>();
    }
    std::vector<std::string> ids{impl.node_id};
    std::vector<std::shared_ptr<Peer>> by_id{nullptr};
    for (const auto& [address, peer] : impl.peers) {
      if (peer->state == PeerState::kAlive && peer->authenticated &&
          std::find(ids.begin(), ids.end(), peer->node_id) == ids.end()) {
        ids.push_back(peer->node_id);
        by_id.push_back(peer);
      }
    }
    int winner = RendezvousOwner(ids, object.key, index);
    if (winner <= 0) {
      return std::optional<size_t>();
    }
    owner = by_id[static_cast<size_t>(winner)];
    owner_cert = owner->fingerprint;
    owner_port = owner->data_port;
  }
  auto fail = [&](Error error) -> Error {
    owner->failures++;
    return error;
  };
  const uint64_t begin = index * chunk_size;
  if (begin >= object.size) {
    return Error(Errc::kInvalidArgument, "chunk beyond the end of " + object.key);
  }
  const size_t expected = static_cast<size_t>(std::min(chunk_size, object.size - begin));
  if (expected > dst.size()) {
    return Error(Errc::kInternal, "chunk buffer too small");
  }
  if (object.key.empty() || object.key.size() > kMaxDataKeySize ||
      object.etag.size() > kMaxDataEtagSize) {
    return std::optional<size_t>();  // not expressible on the wire: the origin serves it
  }
  auto deadline = Clock::now() + impl.options.fetch_deadline;
  std::unique_ptr<TlsStream> stream;
  {
    std::unique_lock lock(owner->slot_mu);
    if (!owner->slot_cv.wait_until(
            lock, deadline, [&] { return owner->in_flight < impl.options.max_fetches_per_peer; })) {
      return fail(Error(Errc::kTimeout, "no free slot for " + owner->address));
    }
    ++owner->in_flight;
    while (!owner->idle.empty() && !stream) {
      Peer::IdleStream last = std::move(owner->idle.back());
      owner->idle.pop_back();
      if (last.stream->peer_fingerprint() == owner_cert &&
          Clock::now() - last.since < kDataReuseTime) {
        stream = std::move(last.stream);
      }
    }
  }
  struct Release {
    Peer& peer;
    std::unique_ptr<TlsStream>& stream;
    bool reusable = false;
    ~Release() {
      if (stream) {
        std::lock_guard lock(peer.calls_mu);
        peer.calls.erase(stream.get());
      }
      {
        std::lock_guard lock(peer.slot_mu);
        --peer.in_flight;
        if (reusable) {
          peer.idle.push_back({std::move(stream), Clock::now()});
        }
      }
      peer.slot_cv.notify_one();
    }
  } release{*owner, stream};

  if (!stream) {
    auto host = SplitHostPort(owner->address);
    if (!host) {
      return fail(host.error());
    }
    auto connected = TlsStream::Connect(*impl.client_tls, host->first, owner_port, deadline);
    if (!connected) {
      return fail(connected.error());
    }
    stream = std::move(connected).value();
    if (stream->peer_fingerprint() != owner_cert) {
      std::lock_guard lock(impl.mu);
      owner->authenticated = false;  // another process answered: authenticate it first
      return fail(Error(Errc::kPermissionDenied, owner->address + " changed its certificate"));
    }
  }
  {
    std::lock_guard lock(owner->calls_mu);
    owner->calls.insert(stream.get());
  }
  {
    std::lock_guard lock(impl.mu);
    if (impl.stopping || owner->state != PeerState::kAlive) {
      return fail(Error(Errc::kCancelled, owner->address + " is no longer alive"));
    }
  }
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (remaining.count() <= 0) {
    return fail(Error(Errc::kTimeout, "deadline passed before asking " + owner->address));
  }
  // Bounds every blocked read and write; a peer that trickles bytes is cut off by the check
  // after the transfer.
  stream->SetTimeout(remaining);
  DataRequest request{object.key, object.etag, object.size, index, chunk_size};
  if (auto sent = stream->WriteAll(EncodeDataRequest(request)); !sent) {
    return fail(sent.error());
  }
  std::array<uint8_t, kReplyHeadSize> raw_head{};
  if (auto got = stream->ReadExact(raw_head); !got) {
    return fail(got.error());
  }
  auto head = DecodeDataReplyHead(raw_head, expected);
  if (!head) {
    return fail(Error(Errc::kCorrupt, owner->address + ": " + head.error().message()));
  }
  if (head->status != DataStatus::kOk) {
    std::string why(head->message_size, '\0');
    // reinterpret_cast: the message's bytes filled in place.
    (void)stream->ReadExact({reinterpret_cast<uint8_t*>(why.data()), why.size()});
    Errc code = head->status == DataStatus::kRefused    ? Errc::kPermissionDenied
                : head->status == DataStatus::kNotFound ? Errc::kNotFound
                : head->status == DataStatus::kChanged  ? Errc::kChanged
                                                        : Errc::kUnavailable;
    return fail(Error(code, owner->address + ": " + why));
  }
  std::span<uint8_t> out = dst.subspan(0, expected);
  std::vector<uint8_t> compressed;
  // Raw chunks land straight in the caller's buffer; nothing is used before the tag checks.
  std::span<uint8_t> wire = out;
  if (head->lz4) {
    compressed.resize(head->wire_size);
    wire = compressed;
  }
  if (auto got = stream->ReadExact(wire); !got) {
    return fail(got.error());
  }
  if (Clock::now() > deadline) {
    return fail(Error(Errc::kTimeout, owner->address + " missed the fetch deadline"));
  }
  Status checked = head->lz4 ? DecodeChunk(true, compressed, out) : Status::Ok();
  if (checked) {
    checked = impl.keys.CheckChunkTag(head->tag, head->nonce, object.key, object.etag, object.size,
                                      index, out);
  }
  if (!checked) {
    owner->corrupt++;
    impl.corrupt_chunks++;
    std::lock_guard lock(impl.mu);
    owner->banned_until = Clock::now() + impl.options.ban_time;
    impl.SetStateLocked(*owner, PeerState::kBanned, "it sent a chunk that failed verification");
    return fail(checked.error());
  }
  release.reusable = true;
  owner->bytes_received += expected;
  owner->chunks_received++;
  impl.bytes_from_peers += expected;
  impl.chunks_from_peers++;
  return std::optional<size_t>(expected);
}

void SharingGroup::RecordOriginFetch(size_t bytes, bool after_peer_failure) {
  impl_->bytes_from_origin += bytes;
  impl_->chunks_from_origin++;
  if (after_peer_failure) {
    impl_->fallbacks++;
  }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and status.

SharingGroup::SharingGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SharingGroup::~SharingGroup() { Stop(); }

Result<std::shared_ptr<SharingGroup>> SharingGroup::Start(GroupOptions options,
                                                          std::span<const uint8_t> group_key,
                                                          fetch::CachingOrigin& cache,
                                                          ObjectLookup lookup) {
  CACHEFS_ASSIGN_OR_RETURN(auto listen, SplitHostPort(options.listen, /*allow_port_zero=*/true));
  CACHEFS_ASSIGN_OR_RETURN(GroupKeys keys, GroupKeys::Derive(group_key));
  auto impl = std::make_unique<Impl>(std::move(options), std::move(keys), cache, std::move(lookup));
  impl->listen_host = listen.first;
  impl->node_id.assign(kNodeIdSize, '\0');
  // reinterpret_cast: the id string's bytes filled in place.
  if (!RandomBytes({reinterpret_cast<uint8_t*>(impl->node_id.data()), kNodeIdSize})) {
    return Error(Errc::kInternal, "no randomness for the node id");
  }
  CACHEFS_ASSIGN_OR_RETURN(impl->identity, MakeTlsIdentity(kTlsName));

  auto provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
      std::vector<grpc::experimental::IdentityKeyCertPair>{
          {impl->identity.private_key_pem, impl->identity.certificate_pem}});
  // Certificates are ephemeral and self-signed: TLS gives confidentiality and a session to bind
  // to; who the peer is comes from the HMAC proofs over the certificate fingerprints.
  auto verifier = std::make_shared<grpc::experimental::NoOpCertificateVerifier>();
  grpc::experimental::TlsChannelCredentialsOptions channel_options;
  channel_options.set_certificate_provider(provider);
  channel_options.watch_identity_key_cert_pairs();
  channel_options.set_verify_server_certs(false);
  channel_options.set_certificate_verifier(verifier);
  channel_options.set_check_call_host(false);
  impl->channel_credentials = grpc::experimental::TlsCredentials(channel_options);
  grpc::experimental::TlsServerCredentialsOptions server_options(provider);
  server_options.watch_identity_key_cert_pairs();
  server_options.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  server_options.set_certificate_verifier(verifier);
  server_options.set_check_call_host(false);

  CACHEFS_ASSIGN_OR_RETURN(impl->server_tls, TlsContext::Create(impl->identity, /*server=*/true));
  CACHEFS_ASSIGN_OR_RETURN(impl->client_tls, TlsContext::Create(impl->identity, /*server=*/false));
  if (listen.second == 65535) {
    return Error(Errc::kInvalidArgument, "sharing group: the data channel needs port " +
                                             std::to_string(listen.second) + " + 1");
  }
  CACHEFS_RETURN_IF_ERROR(
      impl->ListenData(listen.second == 0 ? 0 : static_cast<uint16_t>(listen.second + 1)));

  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl->options.listen,
                           grpc::experimental::TlsServerCredentials(server_options), &impl->port);
  builder.RegisterService(impl.get());
  builder.SetMaxReceiveMessageSize(kMaxRequestMessage);
  builder.SetMaxSendMessageSize(kMaxReplyMessage);
  grpc::ResourceQuota quota("cachefs-p2p");
  quota.SetMaxThreads(64);
  builder.SetResourceQuota(quota);
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0) {
    impl->StopData();
    return Error(Errc::kUnavailable, "sharing group: cannot listen on " + impl->options.listen);
  }
  auto group = std::shared_ptr<SharingGroup>(new SharingGroup(std::move(impl)));
  Impl& g = *group->impl_;
  std::unique_lock lock(g.mu);
  if (!IsWildcard(g.listen_host)) {
    g.advertised = (g.listen_host.find(':') != std::string::npos && g.listen_host[0] != '['
                        ? "[" + g.listen_host + "]"
                        : g.listen_host) +
                   ":" + std::to_string(g.port);
  }
  for (const auto& seed : g.options.seeds) {
    g.AddPeerLocked(seed, true);
  }
  CACHEFS_LOG(kInfo, "p2p")
          .Kv("listen", g.options.listen)
          .Kv("port", g.port)
          .Kv("seeds", static_cast<uint64_t>(g.options.seeds.size()))
      << "sharing group started";
  // Give a cluster that starts together the chance to share from the first read.
  g.cv.wait_for(lock, g.options.join_wait, [&] {
    bool pending = false;
    for (const auto& [address, peer] : g.peers) {
      if (peer->state == PeerState::kAlive) {
        return true;
      }
      pending = pending || (peer->state == PeerState::kConnecting && peer->seed);
    }
    return !pending;
  });
  return group;
}

void SharingGroup::Stop() {
  Impl& impl = *impl_;
  std::vector<std::shared_ptr<Peer>> peers;
  {
    std::lock_guard lock(impl.mu);
    if (impl.stopping) {
      return;
    }
    impl.stopping = true;
    for (const auto& [address, peer] : impl.peers) {
      peers.push_back(peer);
    }
  }
  impl.cv.notify_all();
  for (auto& peer : peers) {
    peer->CancelCalls();
    peer->slot_cv.notify_all();
  }
  impl.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl.StopData();
  for (auto& peer : peers) {
    if (peer->session.joinable()) {
      peer->session.join();
    }
  }
  CACHEFS_LOG(kInfo, "p2p")
          .Kv("bytes_from_peers", impl.bytes_from_peers.load())
          .Kv("bytes_from_origin", impl.bytes_from_origin.load())
          .Kv("bytes_served", impl.bytes_served.load())
          .Kv("fallbacks", impl.fallbacks.load())
          .Kv("corrupt_chunks", impl.corrupt_chunks.load())
      << "sharing group stopped";
}

int SharingGroup::port() const { return impl_->port; }

GroupStats SharingGroup::Stats() const {
  const Impl& impl = *impl_;
  GroupStats stats;
  stats.node_id = Hex(impl.node_id);
  std::map<std::string, std::pair<uint64_t, uint64_t>> served;  // node id -> bytes, chunks
  {
    std::lock_guard lock(impl.server_mu);
    for (const auto& [fp, peer] : impl.authorized) {
      auto& s = served[peer->node_id];
      s.first += peer->bytes_served;
      s.second += peer->chunks_served;
    }
  }
  std::lock_guard lock(impl.mu);
  stats.address = impl.advertised;
  auto now = Clock::now();
  for (const auto& [address, peer] : impl.peers) {
    if (peer->state == PeerState::kSelf) {
      continue;
    }
    PeerStatus s;
    s.address = address;
    s.node_id = Hex(peer->node_id);
    s.state = peer->state;
    s.seconds_since_heard =
        peer->heard ? std::chrono::duration<double>(now - peer->last_heard).count() : -1;
    s.bytes_received = peer->bytes_received;
    s.chunks_received = peer->chunks_received;
    if (auto it = served.find(peer->node_id); it != served.end() && !peer->node_id.empty()) {
      s.bytes_served = it->second.first;
      s.chunks_served = it->second.second;
      served.erase(it);  // an address alias must not count the same member twice
    }
    s.failures = peer->failures;
    s.corrupt_chunks = peer->corrupt;
    stats.alive += s.state == PeerState::kAlive;
    stats.peers.push_back(std::move(s));
  }
  stats.bytes_from_peers = impl.bytes_from_peers;
  stats.chunks_from_peers = impl.chunks_from_peers;
  stats.bytes_from_origin = impl.bytes_from_origin;
  stats.chunks_from_origin = impl.chunks_from_origin;
  stats.fallbacks = impl.fallbacks;
  stats.corrupt_chunks = impl.corrupt_chunks;
  stats.bytes_served = impl.bytes_served;
  stats.chunks_served = impl.chunks_served;
  stats.requests_refused = impl.requests_refused;
  stats.auth_failures = impl.auth_failures;
  return stats;
}

}  // namespace cachefs::p2p
