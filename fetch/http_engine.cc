#include "fetch/http_engine.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"

namespace cachefs::fetch {
namespace {

constexpr size_t kMaxErrorBody = 4096;

// One request in flight. Lives on the caller's stack until `done` is set.
struct Transfer {
  const HttpRequest* request = nullptr;
  HttpBody body;
  HttpResponse response;
  bool overflow = false;
  CURLcode code = CURLE_OK;
  char error[CURL_ERROR_SIZE] = {};
  curl_slist* headers = nullptr;
  CURL* easy = nullptr;
  std::string url;

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

size_t OnBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * nmemb;
  if (t->response.status == 0) {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    t->response.status = status;
  }
  if (t->response.status < 200 || t->response.status >= 300) {
    size_t keep =
        std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, t->response.error_body.size()));
    t->response.error_body.append(data, keep);
    return n;
  }
  if (t->body.text != nullptr) {
    if (t->body.text->size() + n > t->body.max_text) {
      t->overflow = true;
      return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    }
    t->body.text->append(data, n);
  } else {
    if (t->response.body_bytes + n > t->body.dst.size()) {
      t->overflow = true;
      return 0;
    }
    std::memcpy(t->body.dst.data() + t->response.body_bytes, data, n);
  }
  t->response.body_bytes += n;
  return n;
}

std::string_view TrimHeaderValue(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
    v.remove_prefix(1);
  }
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) {
    v.remove_suffix(1);
  }
  return v;
}

size_t OnHeader(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * nmemb;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after a redirect or 100-continue): forget the previous one's headers.
    t->response.etag.clear();
    t->response.content_range.clear();
    t->response.status = 0;
    return n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return n;
  }
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view value = TrimHeaderValue(line.substr(colon + 1));
  if (name == "etag") {
    t->response.etag = value;
  } else if (name == "content-range") {
    t->response.content_range = value;
  }
  return n;
}

}  // namespace

struct HttpEngine::Impl {
  HttpEngineOptions options;
  CURLM* multi = nullptr;
  CURLSH* share = nullptr;
  std::mutex share_mu[CURL_LOCK_DATA_LAST];

  std::mutex mu;
  std::deque<Transfer*> pending;  // guarded by mu
  std::vector<CURL*> idle_easy;   // guarded by mu; reused so TLS session state is kept
  bool stop = false;              // guarded by mu
  std::thread thread;

  ~Impl() {
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    if (multi != nullptr) {
      curl_multi_wakeup(multi);
    }
    if (thread.joinable()) {
      thread.join();
    }
    for (CURL* easy : idle_easy) {
      curl_easy_cleanup(easy);
    }
    if (multi != nullptr) {
      curl_multi_cleanup(multi);
    }
    if (share != nullptr) {
      curl_share_cleanup(share);
    }
  }

  void Setup(Transfer& t) {
    CURL* easy = t.easy;
    curl_easy_setopt(easy, CURLOPT_URL, t.url.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, options.connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, options.total_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, options.low_speed_limit);
    curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, options.low_speed_time_s);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(easy, CURLOPT_SHARE, share);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    // One TCP connection per parallel range: HTTP/2 would multiplex them all over one
    // connection, whose single congestion window caps a long fat link.
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    if (!options.ca_bundle.empty()) {
      curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_bundle.c_str());
    }
    // curl would add "Accept: */*"; object stores ignore it, and it is not signed.
    t.headers = curl_slist_append(nullptr, "Accept:");
    for (const auto& [name, value] : t.request->headers) {
      std::string line = name + ": " + value;
      t.headers = curl_slist_append(t.headers, line.c_str());
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, &t);
  }

  void Finish(Transfer& t, CURLcode code) {
    curl_multi_remove_handle(multi, t.easy);
    long status = 0;
    curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t length = -1;
    curl_easy_getinfo(t.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    curl_slist_free_all(t.headers);
    t.headers = nullptr;
    curl_easy_reset(t.easy);
    {
      std::lock_guard lock(mu);
      idle_easy.push_back(t.easy);
    }
    std::lock_guard lock(t.mu);
    t.code = code;
    t.response.status = status;
    t.response.content_length = length;
    t.done = true;
    t.cv.notify_one();
  }

  void Loop() {
    std::vector<Transfer*> active;
    while (true) {
      std::deque<Transfer*> batch;
      {
        std::lock_guard lock(mu);
        if (stop) {
          break;
        }
        batch.swap(pending);
      }
      for (Transfer* t : batch) {
        Setup(*t);
        curl_multi_add_handle(multi, t->easy);
        active.push_back(t);
      }
      int running = 0;
      curl_multi_perform(multi, &running);
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
        if (msg->msg == CURLMSG_DONE) {
          Transfer* t = nullptr;
          curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
          active.erase(std::find(active.begin(), active.end(), t));
          Finish(*t, msg->data.result);
        }
      }
      curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
    // Shutdown: fail what is still queued or running so no caller waits forever.
    for (Transfer* t : active) {
      Finish(*t, CURLE_ABORTED_BY_CALLBACK);
    }
    std::lock_guard lock(mu);
    for (Transfer* t : pending) {
      curl_easy_cleanup(t->easy);
      std::lock_guard tl(t->mu);
      t->code = CURLE_ABORTED_BY_CALLBACK;
      t->done = true;
      t->cv.notify_one();
    }
    pending.clear();
  }
};

HttpEngine::HttpEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

void HttpEngine::Shutdown() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  curl_multi_wakeup(impl_->multi);
}
HttpEngine::~HttpEngine() = default;

Result<std::unique_ptr<HttpEngine>> HttpEngine::Create(const HttpEngineOptions& options) {
  static const CURLcode global_init = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (global_init != CURLE_OK) {
    return Error(Errc::kInternal, "curl_global_init failed");
  }
  if (!options.ca_bundle.empty() && access(options.ca_bundle.c_str(), R_OK) != 0) {
    return Error::FromErrno(errno, "CA bundle " + options.ca_bundle);
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->multi = curl_multi_init();
  impl->share = curl_share_init();
  if (impl->multi == nullptr || impl->share == nullptr) {
    return Error(Errc::kInternal, "curl_multi_init failed");
  }
  // Connections live in the multi handle; DNS and TLS sessions are shared across easy handles.
  curl_share_setopt(impl->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(impl->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_share_setopt(impl->share, CURLSHOPT_USERDATA, impl.get());
  curl_share_setopt(
      impl->share, CURLSHOPT_LOCKFUNC,
      +[](CURL*, curl_lock_data data, curl_lock_access, void* user) {
        static_cast<Impl*>(user)->share_mu[data].lock();
      });
  curl_share_setopt(
      impl->share, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data data, void* user) {
        static_cast<Impl*>(user)->share_mu[data].unlock();
      });
  curl_multi_setopt(impl->multi, CURLMOPT_MAX_HOST_CONNECTIONS, options.max_host_connections);
  curl_multi_setopt(impl->multi, CURLMOPT_MAXCONNECTS, options.max_host_connections * 2);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<HttpEngine>(new HttpEngine(std::move(impl)));
}

Result<HttpResponse> HttpEngine::Perform(const HttpRequest& request, HttpBody body) {
  Transfer t;
  t.request = &request;
  t.body = body;
  t.url = request.Url();
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stop) {
      return Error(Errc::kCancelled, "HTTP engine stopped");
    }
    if (impl_->idle_easy.empty()) {
      t.easy = curl_easy_init();
    } else {
      t.easy = impl_->idle_easy.back();
      impl_->idle_easy.pop_back();
    }
    if (t.easy == nullptr) {
      return Error(Errc::kInternal, "curl_easy_init failed");
    }
    impl_->pending.push_back(&t);
  }
  curl_multi_wakeup(impl_->multi);
  {
    std::unique_lock lock(t.mu);
    t.cv.wait(lock, [&] { return t.done; });
  }
  // The URL may carry a presigned query: report only scheme, host and path.
  std::string where = request.method + " " + request.LogUrl();
  if (t.overflow) {
    return Error(Errc::kCorrupt, where + ": response body larger than expected");
  }
  switch (t.code) {
    case CURLE_OK:
      return std::move(t.response);
    case CURLE_OPERATION_TIMEDOUT:
      return Error(Errc::kTimeout, where + ": " + (t.error[0] ? t.error : "timed out"));
    case CURLE_ABORTED_BY_CALLBACK:
      return Error(Errc::kCancelled, where + ": cancelled");
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
      return Error(Errc::kPermissionDenied,
                   where + ": TLS verification failed: " + curl_easy_strerror(t.code));
    default:
      return Error(Errc::kUnavailable,
                   where + ": " + (t.error[0] ? std::string(t.error) : curl_easy_strerror(t.code)));
  }
}

}  // namespace cachefs::fetch
