// The data channel's framing (every bound) and its TLS streams over loopback.

#include "p2p/data_channel.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace cachefs::p2p {
namespace {

using namespace std::chrono_literals;

std::span<const uint8_t, kRequestHeadSize> RequestHead(const std::vector<uint8_t>& bytes) {
  return std::span<const uint8_t, kRequestHeadSize>(bytes.data(), kRequestHeadSize);
}

TEST(DataFraming, RequestRoundTrip) {
  DataRequest request{"model/a.safetensors", "\"etag\"", 123456789, 7, 8 << 20};
  auto bytes = EncodeDataRequest(request);
  ASSERT_EQ(bytes.size(), kRequestHeadSize + request.key.size() + request.etag.size());
  auto head = DecodeDataRequestHead(RequestHead(bytes));
  ASSERT_TRUE(head) << head.error().message();
  EXPECT_EQ(head->key_size, request.key.size());
  EXPECT_EQ(head->etag_size, request.etag.size());
  EXPECT_EQ(head->object_size, request.object_size);
  EXPECT_EQ(head->index, request.index);
  EXPECT_EQ(head->chunk_size, request.chunk_size);
  EXPECT_EQ(std::string(bytes.begin() + kRequestHeadSize, bytes.end()), request.key + request.etag);
}

TEST(DataFraming, RequestLimits) {
  auto bytes = EncodeDataRequest({"k", "", 1, 0, 1});
  bytes[0] ^= 1;  // magic
  EXPECT_EQ(DecodeDataRequestHead(RequestHead(bytes)).error().code(), Errc::kCorrupt);
  EXPECT_FALSE(DecodeDataRequestHead(RequestHead(EncodeDataRequest({"", "", 1, 0, 1}))));
  EXPECT_FALSE(DecodeDataRequestHead(
      RequestHead(EncodeDataRequest({std::string(kMaxDataKeySize + 1, 'k'), "", 1, 0, 1}))));
  EXPECT_FALSE(DecodeDataRequestHead(
      RequestHead(EncodeDataRequest({"k", std::string(kMaxDataEtagSize + 1, 'e'), 1, 0, 1}))));
  EXPECT_TRUE(DecodeDataRequestHead(RequestHead(EncodeDataRequest(
      {std::string(kMaxDataKeySize, 'k'), std::string(kMaxDataEtagSize, 'e'), 1, 0, 1}))));
}

TEST(DataFraming, ReplyRoundTripAndLimits) {
  DataReplyHead head;
  head.length = 1000;
  head.wire_size = 1000;
  head.nonce[0] = 9;
  head.tag[15] = 3;
  auto decoded = DecodeDataReplyHead(EncodeDataReplyHead(head), 1000);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->wire_size, 1000u);
  EXPECT_EQ(decoded->nonce, head.nonce);
  EXPECT_EQ(decoded->tag, head.tag);

  EXPECT_FALSE(DecodeDataReplyHead(EncodeDataReplyHead(head), 999));  // length mismatch
  DataReplyHead bad = head;
  bad.wire_size = 999;  // raw must be exactly the length
  EXPECT_FALSE(DecodeDataReplyHead(EncodeDataReplyHead(bad), 1000));
  bad = head;
  bad.wire_size = 0;
  EXPECT_FALSE(DecodeDataReplyHead(EncodeDataReplyHead(bad), 1000));
  bad = head;
  bad.lz4 = true;
  bad.wire_size = 1ull << 40;  // above what LZ4 can produce for 1000 bytes
  EXPECT_FALSE(DecodeDataReplyHead(EncodeDataReplyHead(bad), 1000));
  bad.wire_size = 20;
  EXPECT_TRUE(DecodeDataReplyHead(EncodeDataReplyHead(bad), 1000));

  auto raw = EncodeDataReplyHead(head);
  raw[4] = 99;  // unknown status
  EXPECT_FALSE(DecodeDataReplyHead(raw, 1000));
  raw = EncodeDataReplyHead(head);
  raw[5] = 2;  // unknown encoding
  EXPECT_FALSE(DecodeDataReplyHead(raw, 1000));

  DataReplyHead refusal;
  refusal.status = DataStatus::kRefused;
  refusal.message_size = 12;
  auto refused = DecodeDataReplyHead(EncodeDataReplyHead(refusal), 1000);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, DataStatus::kRefused);
  EXPECT_EQ(refused->message_size, 12u);
  refusal.message_size = kMaxDataMessageSize + 1;
  EXPECT_FALSE(DecodeDataReplyHead(EncodeDataReplyHead(refusal), 1000));
}

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(listen(listen_fd_, 4), 0);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  void TearDown() override { close(listen_fd_); }

  static std::shared_ptr<TlsContext> Context(const TlsIdentity& identity, bool server) {
    auto context = TlsContext::Create(identity, server);
    EXPECT_TRUE(context) << context.error().message();
    return *context;
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
};

TEST_F(TlsStreamTest, BothEndsSeeTheOthersCertificateAndBytesArrive) {
  auto server_id = MakeTlsIdentity("cachefs-p2p");
  auto client_id = MakeTlsIdentity("cachefs-p2p");
  ASSERT_TRUE(server_id && client_id);
  auto server_ctx = Context(*server_id, true);
  auto client_ctx = Context(*client_id, false);
  std::vector<uint8_t> big(3 << 20);
  for (size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<uint8_t>(i * 31);
  }
  std::thread server([&] {
    int fd = accept(listen_fd_, nullptr, nullptr);
    auto stream = TlsStream::Accept(*server_ctx, fd, 5s);
    ASSERT_TRUE(stream) << stream.error().message();
    EXPECT_EQ((*stream)->peer_fingerprint(), client_id->fingerprint);
    std::vector<uint8_t> got(big.size());
    ASSERT_TRUE((*stream)->ReadExact(got));
    EXPECT_EQ(got, big);
    ASSERT_TRUE((*stream)->WriteAll(big));
  });
  auto stream =
      TlsStream::Connect(*client_ctx, "127.0.0.1", port_, std::chrono::steady_clock::now() + 5s);
  ASSERT_TRUE(stream) << stream.error().message();
  EXPECT_EQ((*stream)->peer_fingerprint(), server_id->fingerprint);
  ASSERT_TRUE((*stream)->WriteAll(big));
  std::vector<uint8_t> echoed(big.size());
  ASSERT_TRUE((*stream)->ReadExact(echoed));
  EXPECT_EQ(echoed, big);
  server.join();
}

TEST_F(TlsStreamTest, SilentPeerTimesOutAndAbortUnblocks) {
  auto id = MakeTlsIdentity("cachefs-p2p");
  ASSERT_TRUE(id);
  auto server_ctx = Context(*id, true);
  auto client_ctx = Context(*id, false);
  std::unique_ptr<TlsStream> server_stream;
  std::thread server([&] {
    int fd = accept(listen_fd_, nullptr, nullptr);
    auto stream = TlsStream::Accept(*server_ctx, fd, 5s);
    ASSERT_TRUE(stream) << stream.error().message();
    server_stream = std::move(stream).value();
  });
  auto stream =
      TlsStream::Connect(*client_ctx, "127.0.0.1", port_, std::chrono::steady_clock::now() + 5s);
  ASSERT_TRUE(stream) << stream.error().message();
  server.join();
  std::array<uint8_t, 16> buf{};
  (*stream)->SetTimeout(100ms);
  auto timed_out = (*stream)->ReadExact(buf);
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().code(), Errc::kTimeout);

  (*stream)->SetTimeout(10s);
  std::thread aborter([&] {
    std::this_thread::sleep_for(100ms);
    (*stream)->Abort();
  });
  auto start = std::chrono::steady_clock::now();
  auto aborted = (*stream)->ReadExact(buf);
  aborter.join();
  ASSERT_FALSE(aborted);
  EXPECT_EQ(aborted.error().code(), Errc::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(TlsStreamTest, PlaintextGarbageFailsTheHandshake) {
  auto id = MakeTlsIdentity("cachefs-p2p");
  ASSERT_TRUE(id);
  auto server_ctx = Context(*id, true);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port_);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  std::string junk(4096, 'x');
  ASSERT_EQ(write(client, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  int fd = accept(listen_fd_, nullptr, nullptr);
  auto stream = TlsStream::Accept(*server_ctx, fd, 2s);
  EXPECT_FALSE(stream);
  close(fd);  // a failed Accept leaves the socket to the caller
  close(client);
}

}  // namespace
}  // namespace cachefs::p2p
