#pragma once

// A small blocking HTTP client for the KBS protocol, behind an interface so that protocol logic
// can be tested without sockets. The production transport is libcurl: TLS verified against the
// system CA bundle plus an optional extra CA file, no redirects (they could carry the bearer
// token elsewhere), bounded reply size and time.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"

namespace cachefs::keyagent {

struct HttpRequest {
  std::string method = "GET";  // GET or POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::vector<std::string> set_cookies;  // values of Set-Cookie headers
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  // Sends one request. A reply with any status is a success here; failures to get one are
  // kUnavailable (connect, DNS, reset, timeout), kPermissionDenied (TLS verification failed) or
  // kCorrupt (reply larger than allowed). Thread-compatible.
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

struct CurlOptions {
  std::string extra_ca_file;  // PEM bundle trusted in addition to the system store
  std::chrono::seconds timeout{60};
  size_t max_reply_bytes = 4 << 20;
};

// `url` without userinfo ("http://user:secret@host/api" -> "http://host/api") and without its
// query, for logs and error messages.
std::string RedactUrl(const std::string& url);

// Fails with kInvalidArgument when extra_ca_file is set but unreadable.
Result<std::unique_ptr<HttpTransport>> MakeCurlTransport(const CurlOptions& options);

}  // namespace cachefs::keyagent
