// Sharing groups of several nodes in one process, on 127.0.0.1, each over its own fake origin
// that counts what it serves.

#include "p2p/sharing_group.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "p2p/auth.h"
#include "p2p/data_channel.h"
#include "proto/p2p.grpc.pb.h"

namespace cachefs::p2p {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kChunk = 64 << 10;

// All nodes see the same objects; every ReadRange is one "origin request".
class FakeOrigin final : public fetch::Origin {
 public:
  explicit FakeOrigin(const std::map<std::string, std::string>* objects) : objects_(objects) {}
  std::string Describe() const override { return "fake://"; }
  Result<std::vector<fetch::ObjectInfo>> List() override {
    return std::vector<fetch::ObjectInfo>{};
  }
  Result<size_t> ReadRange(const fetch::ObjectInfo& object, uint64_t offset,
                           std::span<uint8_t> dst) override {
    const std::string& data = objects_->at(object.key);
    size_t n = std::min<size_t>(dst.size(), data.size() - offset);
    std::memcpy(dst.data(), data.data() + offset, n);
    requests++;
    return n;
  }
  std::atomic<int> requests{0};

 private:
  const std::map<std::string, std::string>* objects_;
};

class GroupTest : public ::testing::Test {
 protected:
  struct Node {
    FakeOrigin* origin = nullptr;
    std::unique_ptr<fetch::CachingOrigin> cache;
    std::shared_ptr<SharingGroup> group;
    std::string address() const { return "127.0.0.1:" + std::to_string(group->port()); }
  };

  void SetUp() override {
    std::mt19937_64 rng(42);
    std::string random(40 * kChunk + 1234, '\0');
    for (auto& c : random) {
      c = static_cast<char>(rng());
    }
    objects_["model/weights.bin"] = random;
    objects_["holes.bin"] = std::string(8 * kChunk, '\0');
    for (const auto& [key, data] : objects_) {
      fetch::ObjectInfo info;
      info.key = key;
      info.size = data.size();
      info.etag = "\"v1\"";
      infos_[key] = info;
    }
  }

  void TearDown() override {
    for (auto& node : nodes_) {
      if (node->group) {
        node->group->Stop();
      }
    }
  }

  Node& AddNode(std::vector<std::string> seeds, uint8_t key_byte = 1, bool corrupt = false,
                std::string listen = "127.0.0.1:0") {
    auto node = std::make_unique<Node>();
    auto origin = std::make_unique<FakeOrigin>(&objects_);
    node->origin = origin.get();
    fetch::CacheOptions cache_options;
    cache_options.chunk_size = kChunk;
    cache_options.memory_budget = 64 << 20;
    cache_options.readahead_workers = 1;
    node->cache = std::make_unique<fetch::CachingOrigin>(std::move(origin), cache_options, nullptr);
    GroupOptions options;
    options.listen = listen;
    options.seeds = std::move(seeds);
    options.heartbeat_interval = 100ms;
    options.failure_timeout = 1000ms;
    options.fetch_deadline = 2000ms;
    options.join_wait = 2000ms;
    options.test_corrupt_served_chunks = corrupt;
    std::vector<uint8_t> key(32, key_byte);
    auto group = SharingGroup::Start(
        options, key, *node->cache, [this](std::string_view k) -> std::optional<fetch::ObjectInfo> {
          auto it = infos_.find(std::string(k));
          if (it == infos_.end()) {
            return std::nullopt;
          }
          return it->second;
        });
    EXPECT_TRUE(group) << group.error().message();
    node->group = *group;
    node->cache->SetChunkSource(
        node->group->MakeChunkSource(std::make_shared<fetch::OriginChunkSource>(*node->origin)));
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }

  // Waits until every node sees `alive` live peers.
  bool Converge(size_t alive) {
    for (int i = 0; i < 100; ++i) {
      bool all = true;
      for (auto& node : nodes_) {
        all = all && node->group->Stats().alive == alive;
      }
      if (all) {
        return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  void ReadAll(Node& node, const std::string& key) {
    const auto& info = infos_.at(key);
    const std::string& data = objects_.at(key);
    for (uint64_t i = 0; i * kChunk < info.size; ++i) {
      auto chunk = node.cache->GetChunk(info, i);
      ASSERT_TRUE(chunk) << chunk.error().message();
      auto bytes = (*chunk)->bytes();
      ASSERT_EQ(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                data.substr(i * kChunk, kChunk))
          << "chunk " << i;
    }
  }

  int OriginRequests() {
    int total = 0;
    for (auto& node : nodes_) {
      total += node->origin->requests;
    }
    return total;
  }

  std::map<std::string, std::string> objects_;
  std::map<std::string, fetch::ObjectInfo> infos_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

TEST_F(GroupTest, ThreeNodesPullEachChunkFromTheOriginOnce) {
  Node& a = AddNode({});
  Node& b = AddNode({a.address()});
  // c knows only b (and itself): it learns a through gossip.
  Node& c = AddNode({b.address()});
  (void)c;
  ASSERT_TRUE(Converge(2));
  std::vector<std::thread> readers;
  for (auto& node : nodes_) {
    readers.emplace_back([&, n = node.get()] {
      ReadAll(*n, "model/weights.bin");
      ReadAll(*n, "holes.bin");
    });
  }
  for (auto& t : readers) {
    t.join();
  }
  EXPECT_EQ(OriginRequests(), 41 + 8);
  uint64_t from_peers = 0, served = 0;
  for (auto& node : nodes_) {
    auto stats = node->group->Stats();
    from_peers += stats.bytes_from_peers;
    served += stats.bytes_served;
    EXPECT_EQ(stats.corrupt_chunks, 0u);
    EXPECT_GT(stats.bytes_from_peers, 0u);
  }
  EXPECT_EQ(from_peers, served);
  EXPECT_EQ(from_peers, 2 * (objects_["model/weights.bin"].size() + objects_["holes.bin"].size()));
}

TEST_F(GroupTest, OwnAddressInTheSeedListIsIgnored) {
  // A shared cai.env gives every node the same list, itself included.
  int port = 0;
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    close(fd);
  }
  std::string self = "127.0.0.1:" + std::to_string(port);
  Node& a = AddNode({});
  Node& b = AddNode({self, a.address()}, 1, false, self);
  ASSERT_TRUE(Converge(1));
  for (const auto& peer : b.group->Stats().peers) {
    EXPECT_NE(peer.address, self);
  }
  EXPECT_EQ(b.group->Stats().address, self);
}

TEST_F(GroupTest, NodeWithoutTheKeyIsRefusedAndGetsNothing) {
  Node& a = AddNode({});
  Node& intruder = AddNode({a.address()}, /*key_byte=*/2);
  auto stats = intruder.group->Stats();
  ASSERT_EQ(stats.peers.size(), 1u);
  EXPECT_EQ(stats.peers[0].state, PeerState::kRefused);
  EXPECT_GT(stats.auth_failures, 0u);
  EXPECT_EQ(a.group->Stats().alive, 0u);
  ReadAll(intruder, "model/weights.bin");
  EXPECT_EQ(intruder.group->Stats().bytes_from_peers, 0u);
  EXPECT_EQ(a.group->Stats().bytes_served, 0u);
}

TEST_F(GroupTest, CorruptChunksAreDetectedAndTheSenderIsBanned) {
  Node& bad = AddNode({}, 1, /*corrupt=*/true);
  Node& good = AddNode({bad.address()});
  ASSERT_TRUE(Converge(1));
  ReadAll(good, "model/weights.bin");
  auto stats = good.group->Stats();
  EXPECT_GE(stats.corrupt_chunks, 1u);
  EXPECT_GE(stats.fallbacks, 1u);
  ASSERT_EQ(stats.peers.size(), 1u);
  EXPECT_EQ(stats.peers[0].state, PeerState::kBanned);
}

TEST_F(GroupTest, DeadOwnerFallsBackQuickly) {
  Node& a = AddNode({});
  Node& b = AddNode({a.address()});
  ASSERT_TRUE(Converge(1));
  a.group->Stop();
  auto start = std::chrono::steady_clock::now();
  ReadAll(b, "model/weights.bin");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(b.group->Stats().bytes_from_peers, 0u);
}

// A client that holds a TLS certificate but never completed Join.
std::unique_ptr<pb::PeerService::Stub> Outsider(const std::string& address) {
  auto identity = MakeTlsIdentity("outsider");
  EXPECT_TRUE(identity);
  auto provider = std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
      std::vector<grpc::experimental::IdentityKeyCertPair>{
          {identity->private_key_pem, identity->certificate_pem}});
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(false);
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  options.set_check_call_host(false);
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("cachefs-p2p");
  return pb::PeerService::NewStub(
      grpc::CreateCustomChannel(address, grpc::experimental::TlsCredentials(options), args));
}

TEST_F(GroupTest, OutsidersAndMalformedMessagesAreRefused) {
  Node& a = AddNode({});
  auto stub = Outsider(a.address());

  pb::HeartbeatRequest heartbeat;
  heartbeat.mutable_members()->set_raw_size(1 << 30);
  heartbeat.mutable_members()->set_lz4(true);
  heartbeat.mutable_members()->set_data("junk");
  pb::HeartbeatReply heartbeat_reply;
  grpc::ClientContext heartbeat_context;
  EXPECT_EQ(stub->Heartbeat(&heartbeat_context, heartbeat, &heartbeat_reply).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  pb::HelloRequest hello;
  hello.set_protocol(2);
  hello.set_node_id("short");
  pb::HelloReply hello_reply;
  grpc::ClientContext hello_context;
  EXPECT_EQ(stub->Hello(&hello_context, hello, &hello_reply).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // A join with a made-up proof for a real challenge.
  hello.set_node_id(std::string(kNodeIdSize, 'n'));
  hello.set_client_nonce(std::string(kNonceSize, 'c'));
  grpc::ClientContext hello_context2;
  ASSERT_TRUE(stub->Hello(&hello_context2, hello, &hello_reply).ok());
  pb::JoinRequest join;
  join.set_node_id(hello.node_id());
  join.set_server_nonce(hello_reply.server_nonce());
  join.set_proof(std::string(kProofSize, 'p'));
  pb::JoinReply join_reply;
  grpc::ClientContext join_context;
  EXPECT_EQ(stub->Join(&join_context, join, &join_reply).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(a.group->Stats().auth_failures, 1u);
  EXPECT_GE(a.group->Stats().requests_refused, 2u);

  // Oversized messages never reach the handlers.
  pb::HeartbeatRequest huge;
  huge.set_node_id(std::string(1 << 20, 'n'));
  grpc::ClientContext huge_context;
  EXPECT_NE(stub->Heartbeat(&huge_context, huge, &heartbeat_reply).error_code(),
            grpc::StatusCode::OK);
}

// Asks `address` for its data port, as any client may.
uint16_t DataPort(pb::PeerService::Stub& stub) {
  pb::HelloRequest hello;
  hello.set_protocol(2);
  hello.set_node_id(std::string(kNodeIdSize, 'n'));
  hello.set_client_nonce(std::string(kNonceSize, 'c'));
  pb::HelloReply reply;
  grpc::ClientContext context;
  EXPECT_TRUE(stub.Hello(&context, hello, &reply).ok());
  return static_cast<uint16_t>(reply.data_port());
}

TEST_F(GroupTest, DataChannelRefusesOutsidersAndSurvivesGarbage) {
  Node& a = AddNode({});
  Node& b = AddNode({a.address()});
  ASSERT_TRUE(Converge(1));
  auto stub = Outsider(a.address());
  const uint16_t port = DataPort(*stub);
  ASSERT_NE(port, 0);
  const auto deadline = [] { return std::chrono::steady_clock::now() + 5s; };

  // A valid TLS client whose certificate never completed Join gets a refusal and no bytes.
  auto outsider = MakeTlsIdentity("cachefs-p2p");
  ASSERT_TRUE(outsider);
  auto context = TlsContext::Create(*outsider, /*server=*/false);
  ASSERT_TRUE(context);
  auto stream = TlsStream::Connect(**context, "127.0.0.1", port, deadline());
  ASSERT_TRUE(stream) << stream.error().message();
  const std::string& data = objects_["model/weights.bin"];
  ASSERT_TRUE((*stream)->WriteAll(
      EncodeDataRequest({"model/weights.bin", "\"v1\"", data.size(), 0, kChunk})));
  std::array<uint8_t, kReplyHeadSize> head{};
  ASSERT_TRUE((*stream)->ReadExact(head));
  auto reply = DecodeDataReplyHead(head, kChunk);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, DataStatus::kRefused);
  EXPECT_EQ(reply->wire_size, 0u);

  // Plaintext junk, a torn handshake and a connection that just closes crash nothing.
  for (int i = 0; i < 3; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    std::string junk = i == 0   ? std::string(100000, 'x')
                       : i == 1 ? std::string("\x16\x03\x01")
                                : "";
    if (!junk.empty()) {
      (void)!write(fd, junk.data(), junk.size());
    }
    close(fd);
  }
  // Members still get their chunks.
  ReadAll(b, "model/weights.bin");
  EXPECT_GT(b.group->Stats().bytes_from_peers, 0u);
  EXPECT_EQ(b.group->Stats().corrupt_chunks, 0u);
  // The outsider and the three broken connections, counted as their threads finish.
  for (int i = 0; i < 100 && a.group->Stats().requests_refused < 4; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(a.group->Stats().requests_refused, 4u);
}

}  // namespace
}  // namespace cachefs::p2p
