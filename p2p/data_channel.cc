#include "p2p/data_channel.h"

#include <lz4.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace cachefs::p2p {
namespace {

using Clock = std::chrono::steady_clock;

// OpenSSL writes one TLS record (16 KiB) per write to its BIO; a buffer in front of the socket
// turns that into one send() per 256 KiB, and read-ahead does the same for recv().
constexpr int kSocketBufferSize = 256 << 10;

void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    p[i] = static_cast<uint8_t>(v >> (8 * i));
  }
}
void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    p[i] = static_cast<uint8_t>(v >> (8 * i));
  }
}
uint16_t GetU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) {
    v = (v << 8) | p[i];
  }
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | p[i];
  }
  return v;
}

std::string OpenSslError(const char* what) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return std::string(what) + ": " + (code ? buf : "failed");
}

void SetSocketTimeout(int fd, std::chrono::milliseconds timeout) {
  auto ms = std::max<int64_t>(timeout.count(), 1);
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

std::chrono::milliseconds Remaining(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
}

// A buffered socket BIO pair for `fd` (not closed by the BIOs).
bool AttachBios(SSL* ssl, int fd) {
  BIO* socket = BIO_new_socket(fd, BIO_NOCLOSE);
  BIO* buffer = BIO_new(BIO_f_buffer());
  if (socket == nullptr || buffer == nullptr ||
      BIO_set_write_buffer_size(buffer, kSocketBufferSize) != 1) {
    BIO_free(socket);
    BIO_free(buffer);
    return false;
  }
  BIO_up_ref(socket);
  SSL_set_bio(ssl, socket, BIO_push(buffer, socket));  // reads direct, writes buffered
  return true;
}

Result<Fingerprint> PeerCertificateFingerprint(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) {
    return Error(Errc::kPermissionDenied, "peer presented no certificate");
  }
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) {
    return Error(Errc::kPermissionDenied, "peer certificate does not encode");
  }
  Fingerprint fp{};
  unsigned int fp_len = 0;
  bool ok =
      EVP_Digest(der, static_cast<size_t>(len), fp.data(), &fp_len, EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!ok || fp_len != fp.size()) {
    return Error(Errc::kInternal, "certificate digest failed");
  }
  return fp;
}

}  // namespace

std::vector<uint8_t> EncodeDataRequest(const DataRequest& request) {
  std::vector<uint8_t> out(kRequestHeadSize + request.key.size() + request.etag.size());
  uint8_t* p = out.data();
  PutU32(p, kDataMagic);
  PutU16(p + 4, static_cast<uint16_t>(request.key.size()));
  PutU16(p + 6, static_cast<uint16_t>(request.etag.size()));
  PutU64(p + 8, request.object_size);
  PutU64(p + 16, request.index);
  PutU64(p + 24, request.chunk_size);
  std::memcpy(p + kRequestHeadSize, request.key.data(), request.key.size());
  std::memcpy(p + kRequestHeadSize + request.key.size(), request.etag.data(), request.etag.size());
  return out;
}

Result<DataRequestHead> DecodeDataRequestHead(std::span<const uint8_t, kRequestHeadSize> head) {
  const uint8_t* p = head.data();
  if (GetU32(p) != kDataMagic) {
    return Error(Errc::kCorrupt, "not a chunk request");
  }
  DataRequestHead out;
  out.key_size = GetU16(p + 4);
  out.etag_size = GetU16(p + 6);
  out.object_size = GetU64(p + 8);
  out.index = GetU64(p + 16);
  out.chunk_size = GetU64(p + 24);
  if (out.key_size == 0 || out.key_size > kMaxDataKeySize || out.etag_size > kMaxDataEtagSize) {
    return Error(Errc::kCorrupt, "chunk request key or etag size out of bounds");
  }
  return out;
}

std::array<uint8_t, kReplyHeadSize> EncodeDataReplyHead(const DataReplyHead& head) {
  std::array<uint8_t, kReplyHeadSize> out{};
  uint8_t* p = out.data();
  PutU32(p, kDataMagic);
  p[4] = static_cast<uint8_t>(head.status);
  p[5] = head.lz4 ? 1 : 0;
  PutU16(p + 6, static_cast<uint16_t>(head.message_size));
  PutU64(p + 8, head.length);
  PutU64(p + 16, head.wire_size);
  std::memcpy(p + 24, head.nonce.data(), kTagNonceSize);
  std::memcpy(p + 24 + kTagNonceSize, head.tag.data(), kTagSize);
  return out;
}

Result<DataReplyHead> DecodeDataReplyHead(std::span<const uint8_t, kReplyHeadSize> head,
                                          uint64_t expected_length) {
  const uint8_t* p = head.data();
  if (GetU32(p) != kDataMagic || p[4] > static_cast<uint8_t>(DataStatus::kUnavailable) ||
      p[5] > 1) {
    return Error(Errc::kCorrupt, "malformed chunk reply");
  }
  DataReplyHead out;
  out.status = static_cast<DataStatus>(p[4]);
  out.lz4 = p[5] == 1;
  out.message_size = GetU16(p + 6);
  out.length = GetU64(p + 8);
  out.wire_size = GetU64(p + 16);
  std::memcpy(out.nonce.data(), p + 24, kTagNonceSize);
  std::memcpy(out.tag.data(), p + 24 + kTagNonceSize, kTagSize);
  if (out.message_size > kMaxDataMessageSize) {
    return Error(Errc::kCorrupt, "chunk reply message too long");
  }
  if (out.status != DataStatus::kOk) {
    return out;
  }
  const uint64_t max_wire =
      out.lz4 && expected_length <= static_cast<uint64_t>(LZ4_MAX_INPUT_SIZE)
          ? static_cast<uint64_t>(LZ4_compressBound(static_cast<int>(expected_length)))
          : expected_length;
  if (out.length != expected_length || out.message_size != 0 || out.wire_size == 0 ||
      out.wire_size > max_wire || (!out.lz4 && out.wire_size != expected_length)) {
    return Error(Errc::kCorrupt, "malformed chunk reply header");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

Result<std::shared_ptr<TlsContext>> TlsContext::Create(const TlsIdentity& identity, bool server) {
  // OpenSSL's socket BIO sends with write(): a peer that goes away mid-chunk must cost one
  // connection, not the process (the daemon ignores SIGPIPE too; tools and tests may not).
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) {
    return Error(Errc::kInternal, OpenSslError("SSL_CTX_new"));
  }
  auto result = std::shared_ptr<TlsContext>(new TlsContext(ctx));
  BIO* key_bio = BIO_new_mem_buf(identity.private_key_pem.data(),
                                 static_cast<int>(identity.private_key_pem.size()));
  BIO* cert_bio = BIO_new_mem_buf(identity.certificate_pem.data(),
                                  static_cast<int>(identity.certificate_pem.size()));
  EVP_PKEY* key = key_bio ? PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr) : nullptr;
  X509* cert = cert_bio ? PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr) : nullptr;
  bool ok = key != nullptr && cert != nullptr && SSL_CTX_use_certificate(ctx, cert) == 1 &&
            SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1 &&
            SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
            SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256") == 1;
  EVP_PKEY_free(key);
  X509_free(cert);
  BIO_free(key_bio);
  BIO_free(cert_bio);
  if (!ok) {
    return Error(Errc::kInternal, OpenSslError("TLS context"));
  }
  // Certificates are ephemeral and self-signed: require one, accept any, and let the caller
  // compare its fingerprint with the ones the HMAC proofs vouched for.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     [](int, X509_STORE_CTX*) { return 1; });
  // No resumption: every connection shows its certificate afresh.
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, kSocketBufferSize);
  return result;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

Result<std::unique_ptr<TlsStream>> TlsStream::Connect(const TlsContext& context,
                                                      const std::string& host, uint16_t port,
                                                      Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    return Error(Errc::kUnavailable, "cannot resolve " + host + ": " + gai_strerror(rc));
  }
  int fd = -1;
  int saved_errno = 0;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      saved_errno = errno;
      continue;
    }
    // SO_SNDTIMEO bounds connect() too.
    SetSocketTimeout(fd, Remaining(deadline));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      saved_errno = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return Error::FromErrno(saved_errno, "connect to " + host + ":" + service);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  SSL* ssl = SSL_new(context.get());
  if (ssl == nullptr) {
    close(fd);
    return Error(Errc::kInternal, OpenSslError("SSL_new"));
  }
  auto stream = std::unique_ptr<TlsStream>(new TlsStream(fd, ssl));
  if (!AttachBios(ssl, fd)) {
    return Error(Errc::kInternal, OpenSslError("TLS socket"));
  }
  stream->SetTimeout(Remaining(deadline));
  if (int ret = SSL_connect(ssl); ret != 1) {
    return stream->Fail(ret, "TLS handshake").error();
  }
  CACHEFS_ASSIGN_OR_RETURN(stream->peer_, PeerCertificateFingerprint(ssl));
  return stream;
}

Result<std::unique_ptr<TlsStream>> TlsStream::Accept(const TlsContext& context, int fd,
                                                     std::chrono::milliseconds timeout) {
  SSL* ssl = SSL_new(context.get());
  if (ssl == nullptr) {
    return Error(Errc::kInternal, OpenSslError("SSL_new"));
  }
  auto stream = std::unique_ptr<TlsStream>(new TlsStream(fd, ssl));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Status status = Status::Ok();
  if (!AttachBios(ssl, fd)) {
    status = Error(Errc::kInternal, OpenSslError("TLS socket"));
  } else {
    stream->SetTimeout(timeout);
    if (int ret = SSL_accept(ssl); ret != 1) {
      status = stream->Fail(ret, "TLS handshake");
    }
  }
  if (status) {
    auto fp = PeerCertificateFingerprint(ssl);
    if (fp) {
      stream->peer_ = *fp;
      return stream;
    }
    status = fp.error();
  }
  stream->fd_ = -1;  // the caller keeps the socket
  return status.error();
}

TlsStream::~TlsStream() {
  SSL_free(ssl_);
  if (fd_ >= 0) {
    close(fd_);
  }
}

void TlsStream::SetTimeout(std::chrono::milliseconds timeout) { SetSocketTimeout(fd_, timeout); }

Status TlsStream::Fail(int ret, const char* what) {
  int saved_errno = errno;
  int code = SSL_get_error(ssl_, ret);
  if (aborted_) {
    ERR_clear_error();
    return Error(Errc::kCancelled, std::string(what) + ": cancelled");
  }
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE ||
      (code == SSL_ERROR_SYSCALL && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))) {
    ERR_clear_error();
    return Error(Errc::kTimeout, std::string(what) + ": timed out");
  }
  if (code == SSL_ERROR_ZERO_RETURN ||
      (code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && saved_errno == 0)) {
    ERR_clear_error();
    return Error(Errc::kIo, std::string(what) + ": connection closed");
  }
  if (code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    return Error::FromErrno(saved_errno, what);
  }
  return Error(Errc::kIo, OpenSslError(what));
}

Status TlsStream::ReadExact(std::span<uint8_t> out) {
  while (!out.empty()) {
    size_t n = 0;
    int ret = SSL_read_ex(ssl_, out.data(), out.size(), &n);
    if (ret != 1) {
      return Fail(ret, "TLS read");
    }
    out = out.subspan(n);
  }
  return Status::Ok();
}

Status TlsStream::WriteAll(std::span<const uint8_t> data, bool flush) {
  while (!data.empty()) {
    size_t n = 0;
    int ret = SSL_write_ex(ssl_, data.data(), data.size(), &n);
    if (ret != 1) {
      return Fail(ret, "TLS write");
    }
    data = data.subspan(n);
  }
  if (flush && BIO_flush(SSL_get_wbio(ssl_)) != 1) {
    return Fail(-1, "TLS write");
  }
  return Status::Ok();
}

void TlsStream::Abort() {
  aborted_ = true;
  shutdown(fd_, SHUT_RDWR);
}

}  // namespace cachefs::p2p
