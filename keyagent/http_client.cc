#include "keyagent/http_client.h"

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <mutex>

namespace cachefs::keyagent {
namespace {

struct Exchange {
  HttpResponse response;
  size_t max_bytes = 0;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<Exchange*>(user);
  size_t n = size * count;
  if (exchange->response.body.size() + n > exchange->max_bytes) {
    exchange->too_large = true;
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
  exchange->response.body.append(data, n);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* exchange = static_cast<Exchange*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  constexpr std::string_view kSetCookie = "set-cookie:";
  if (line.size() > kSetCookie.size() &&
      strncasecmp(line.data(), kSetCookie.data(), kSetCookie.size()) == 0) {
    line.remove_prefix(kSetCookie.size());
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      line.remove_prefix(1);
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
      line.remove_suffix(1);
    }
    if (exchange->response.set_cookies.size() < 16) {
      exchange->response.set_cookies.emplace_back(line);
    }
  }
  return n;
}

CURLcode AddExtraCa(CURL* /*curl*/, void* ssl_ctx, void* user) {
  // curl's OpenSSL backend passes its SSL_CTX*, already loaded with the system bundle.
  auto* path = static_cast<const std::string*>(user);
  X509_STORE* store = SSL_CTX_get_cert_store(static_cast<SSL_CTX*>(ssl_ctx));
  return X509_STORE_load_file(store, path->c_str()) == 1 ? CURLE_OK : CURLE_SSL_CACERT_BADFILE;
}

class CurlTransport : public HttpTransport {
 public:
  explicit CurlTransport(CurlOptions options) : options_(std::move(options)) {}

  Result<HttpResponse> Send(const HttpRequest& request) override {
    CURL* curl = curl_easy_init();
    if (curl == nullptr) {
      return Error(Errc::kInternal, "curl_easy_init failed");
    }
    Exchange exchange;
    exchange.max_bytes = options_.max_reply_bytes;
    curl_slist* headers = nullptr;
    for (const std::string& header : request.headers) {
      headers = curl_slist_append(headers, header.c_str());
    }
    char error_buffer[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(options_.timeout.count()));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "cachefs-keyagent/0.1");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &exchange);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &exchange);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!options_.extra_ca_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, AddExtraCa);
      curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, &options_.extra_ca_file);
    }
    if (request.method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    }
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    std::string where = RedactUrl(request.url);
    if (exchange.too_large) {
      return Error(Errc::kCorrupt, "reply from " + where + " larger than " +
                                       std::to_string(options_.max_reply_bytes) + " bytes");
    }
    if (rc != CURLE_OK) {
      std::string detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
      switch (rc) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
          return Error(Errc::kPermissionDenied, "TLS verification of " + where +
                                                    " failed: " + detail +
                                                    " (give the Trustee CA with --trustee-ca)");
        case CURLE_OPERATION_TIMEDOUT:
          return Error(Errc::kUnavailable, where + " timed out: " + detail);
        default:
          return Error(Errc::kUnavailable, "cannot reach " + where + ": " + detail);
      }
    }
    exchange.response.status = status;
    return std::move(exchange.response);
  }

 private:
  CurlOptions options_;
};

}  // namespace

std::string RedactUrl(const std::string& url) {
  std::string out = url.substr(0, url.find_first_of("?#"));
  size_t scheme = out.find("://");
  size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t end = out.find('/', start);
  size_t at = out.rfind('@', end == std::string::npos ? out.size() : end);
  if (at == std::string::npos || at < start) {
    return out;
  }
  return out.substr(0, start) + out.substr(at + 1);
}

Result<std::unique_ptr<HttpTransport>> MakeCurlTransport(const CurlOptions& options) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (!options.extra_ca_file.empty() && access(options.extra_ca_file.c_str(), R_OK) != 0) {
    return Error(Errc::kInvalidArgument,
                 "--trustee-ca " + options.extra_ca_file + " is not a readable file");
  }
  return std::unique_ptr<HttpTransport>(std::make_unique<CurlTransport>(options));
}

}  // namespace cachefs::keyagent
