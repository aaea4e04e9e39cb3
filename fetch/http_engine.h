#pragma once

// The HTTP transport: one libcurl multi handle driven by one thread (curl_multi_poll), with a
// keep-alive connection pool shared by every transfer. Callers block in Perform() on their
// own thread (a FUSE worker or a read-ahead worker) while the engine thread moves the bytes
// of all transfers at once, so many ranged GETs run in parallel over few connections.
//
// Thread-safe: Perform() may be called from any number of threads. The engine does no
// retries and no signing (see RemoteOrigin); it reports transport failures and HTTP statuses.

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/error.h"
#include "fetch/http_request.h"

namespace cachefs::fetch {

struct HttpEngineOptions {
  std::string ca_bundle;           // extra CA file (PEM); empty: the system store only
  long max_host_connections = 32;  // keep-alive pool size per host
  long connect_timeout_ms = 10'000;
  // A transfer slower than this many bytes/s for low_speed_time_s is cut (stall detection).
  long low_speed_limit = 16 * 1024;
  long low_speed_time_s = 10;
  long total_timeout_ms = 300'000;  // hard cap for one request
};

// Where a response body goes. A ranged GET writes straight into the chunk buffer `dst`; a
// listing or manifest collects into `text` up to `max_text` bytes. A body larger than its
// destination aborts the transfer (a hostile or broken server cannot make us buffer it).
struct HttpBody {
  std::span<uint8_t> dst;
  std::string* text = nullptr;
  size_t max_text = 0;
};

struct HttpResponse {
  long status = 0;
  std::string etag;           // ETag header, verbatim (quotes included)
  std::string content_range;  // Content-Range header
  int64_t content_length = -1;
  uint64_t body_bytes = 0;  // bytes written to the body destination
  std::string error_body;   // first bytes of a non-2xx body (S3/OSS put the reason here)
};

class HttpEngine {
 public:
  // Fails when libcurl cannot be initialised or the CA bundle is unreadable.
  static Result<std::unique_ptr<HttpEngine>> Create(const HttpEngineOptions& options);
  ~HttpEngine();
  HttpEngine(const HttpEngine&) = delete;
  HttpEngine& operator=(const HttpEngine&) = delete;

  // Runs `request` and blocks until it completes. Any HTTP status is a success here; a
  // transport failure (DNS, connect, reset, TLS, stall, timeout, body overflow) is an Error
  // with kUnavailable or kTimeout, and a body that overflows its destination kCorrupt.
  // Errors never contain the query string.
  Result<HttpResponse> Perform(const HttpRequest& request, HttpBody body);

  // Aborts every transfer in flight (their Perform returns kCancelled) and refuses new ones.
  void Shutdown();

 private:
  struct Impl;
  explicit HttpEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cachefs::fetch
