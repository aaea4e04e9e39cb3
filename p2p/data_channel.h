#pragma once

// The sharing group's data channel: chunk bytes travel over plain TCP + TLS 1.3 (OpenSSL),
// not gRPC. gRPC copies every byte several times (protobuf bytes fields, HTTP/2 framing, its
// own TLS frame protector) and cost about 2.7 CPU-seconds per GB across both ends; here the
// server hands the cache's buffer to SSL_write and the client SSL_reads into the destination.
//
// Trust is the gRPC channel's: both ends present the node's TLS certificate (auth.h), and a
// connection is used only when the other end's certificate fingerprint is one that passed the
// HMAC challenge-response (the server: a certificate that completed Join; the client: the
// owner's certificate proven in Hello). TLS proves possession of the certificate's key.
//
// Framing (little-endian, one request at a time per connection):
//   request: magic, key length (u16), etag length (u16), object size, index, chunk size (u64)
//            | key | etag
//   reply:   magic, status (u8), encoding (u8), message length (u16), length, wire size (u64),
//            GMAC nonce (12), tag (16) | message (status != kOk) or wire bytes
// Every length is checked against limits before anything is read or allocated.
//
// Thread-safety: TlsContext is immutable after creation and shared; a TlsStream is used by one
// thread at a time, except Abort(), which any thread may call. Failure modes: Result errors
// (kIo, kTimeout, kCorrupt, kPermissionDenied), never throws.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "p2p/auth.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace cachefs::p2p {

inline constexpr uint32_t kDataMagic = 0x31504643;  // "CFP1"
inline constexpr size_t kRequestHeadSize = 32;
inline constexpr size_t kReplyHeadSize = 52;
inline constexpr size_t kMaxDataKeySize = 4096;
inline constexpr size_t kMaxDataEtagSize = 256;
inline constexpr size_t kMaxDataMessageSize = 1024;

struct DataRequest {
  std::string key;
  std::string etag;
  uint64_t object_size = 0;
  uint64_t index = 0;
  uint64_t chunk_size = 0;
};

// The fixed head of a request: field values and the lengths of the key and etag that follow.
struct DataRequestHead {
  size_t key_size = 0;
  size_t etag_size = 0;
  uint64_t object_size = 0;
  uint64_t index = 0;
  uint64_t chunk_size = 0;
};

enum class DataStatus : uint8_t {
  kOk = 0,
  kRefused = 1,      // not a member, or over a limit
  kInvalid = 2,      // malformed request
  kNotFound = 3,     // no such object
  kChanged = 4,      // object version or chunk size differs
  kUnavailable = 5,  // the origin failed
};

struct DataReplyHead {
  DataStatus status = DataStatus::kOk;
  bool lz4 = false;
  size_t message_size = 0;
  uint64_t length = 0;     // chunk bytes after decoding
  uint64_t wire_size = 0;  // bytes that follow
  std::array<uint8_t, kTagNonceSize> nonce{};
  std::array<uint8_t, kTagSize> tag{};
};

std::vector<uint8_t> EncodeDataRequest(const DataRequest& request);
// kCorrupt on a bad magic, an empty or oversized key, or an oversized etag.
Result<DataRequestHead> DecodeDataRequestHead(std::span<const uint8_t, kRequestHeadSize> head);

std::array<uint8_t, kReplyHeadSize> EncodeDataReplyHead(const DataReplyHead& head);
// kCorrupt on a bad magic, status or encoding, an oversized message, or (for kOk) a length
// other than `expected_length` or a wire size that is 0, above what LZ4 could produce for it,
// or (raw) different from it.
Result<DataReplyHead> DecodeDataReplyHead(std::span<const uint8_t, kReplyHeadSize> head,
                                          uint64_t expected_length);

// An SSL_CTX holding the node's certificate, TLS 1.3 only, requiring a certificate from the
// other end (any: who it is comes from the fingerprint checks above).
class TlsContext {
 public:
  static Result<std::shared_ptr<TlsContext>> Create(const TlsIdentity& identity, bool server);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* ctx_;
};

class TlsStream {
 public:
  // Connects to host:port and completes the TLS handshake before `deadline`.
  static Result<std::unique_ptr<TlsStream>> Connect(const TlsContext& context,
                                                    const std::string& host, uint16_t port,
                                                    std::chrono::steady_clock::time_point deadline);
  // Completes the server side of the handshake on an accepted socket within `timeout`. The
  // stream owns the socket on success; on failure the caller still does (and closes it).
  static Result<std::unique_ptr<TlsStream>> Accept(const TlsContext& context, int fd,
                                                   std::chrono::milliseconds timeout);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // The other end's certificate fingerprint.
  const Fingerprint& peer_fingerprint() const { return peer_; }
  // Socket send and receive timeouts for the next operations (a blocked call fails with
  // kTimeout after this long without progress).
  void SetTimeout(std::chrono::milliseconds timeout);
  Status ReadExact(std::span<uint8_t> out);
  // Sends `data`; with `flush` false it may stay buffered until the next flushing write.
  Status WriteAll(std::span<const uint8_t> data, bool flush = true);
  // Makes blocked and later reads and writes fail (from any thread); the stream is then
  // unusable.
  void Abort();
  int fd() const { return fd_; }

 private:
  TlsStream(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  Status Fail(int ret, const char* what);
  int fd_;
  SSL* ssl_;
  Fingerprint peer_{};
  std::atomic<bool> aborted_{false};
};

}  // namespace cachefs::p2p
