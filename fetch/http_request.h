#pragma once

// An HTTP request as the signers and the transport see it, plus the URI encoding both use.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachefs::fetch {

struct HttpRequest {
  std::string method = "GET";
  std::string scheme = "https";
  // host[:port] exactly as the Host header carries it (no port for the scheme's default).
  std::string host;
  // Raw (not percent-encoded) path, starting with '/'; encoded when the URL is built.
  std::string path = "/";
  // OSS signatures cover "/bucket/key" whatever the addressing style; empty for plain HTTP.
  std::string bucket;
  std::string key;
  // Raw query parameters; encoded (RFC 3986 unreserved set) when the URL is built.
  std::vector<std::pair<std::string, std::string>> query;
  // Header names in lower case. Signers append theirs (date, token, authorization).
  std::vector<std::pair<std::string, std::string>> headers;

  // scheme://host/encoded-path?encoded-query, for the transport only: the query may carry
  // credentials on other origins, so never log this.
  std::string Url() const;
  // scheme://host/encoded-path without the query string: safe for logs.
  std::string LogUrl() const;
  // The query string as sent: "k=v&k2=v2" in the given order, keys and values encoded.
  std::string EncodedQuery() const;
  // The value of header `name` (lower case), or empty.
  std::string_view Header(std::string_view name) const;
  void SetHeader(std::string name, std::string value);
};

// Percent-encodes everything but the RFC 3986 unreserved characters (A-Z a-z 0-9 - _ . ~),
// and '/' too when `keep_slash`. Upper-case hex, as AWS SigV4 and OSS V4 require.
std::string UriEncode(std::string_view text, bool keep_slash);

}  // namespace cachefs::fetch
