#include "fetch/remote_origin.h"

#include <chrono>
#include <random>

#include "common/log.h"
#include "fetch/listing.h"

namespace cachefs::fetch {
namespace {

constexpr size_t kMaxListPage = 16u << 20;

// Parses "bytes FIRST-LAST/TOTAL"; TOTAL may be "*".
bool ParseContentRange(std::string_view text, uint64_t& first, uint64_t& last, int64_t& total) {
  unsigned long long a = 0, b = 0, t = 0;
  std::string s(text);
  if (std::sscanf(s.c_str(), "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
    first = a;
    last = b;
    total = static_cast<int64_t>(t);
    return true;
  }
  if (std::sscanf(s.c_str(), "bytes %llu-%llu/*", &a, &b) == 2) {
    first = a;
    last = b;
    total = -1;
    return true;
  }
  return false;
}

// Full jitter: a random delay in [0, min(max, base * 2^attempt)].
std::chrono::milliseconds Backoff(const RetryPolicy& policy, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int64_t cap = std::min<int64_t>(policy.max_delay_ms, static_cast<int64_t>(policy.base_delay_ms)
                                                           << std::min(attempt, 20));
  std::uniform_int_distribution<int64_t> dist(cap / 4, cap);
  return std::chrono::milliseconds(dist(rng));
}

std::string StatusText(const HttpResponse& r) {
  std::string reason = ParseErrorBody(r.error_body);
  return "HTTP " + std::to_string(r.status) + (reason.empty() ? "" : " (" + reason + ")");
}

}  // namespace

HttpRequest MakeRemoteRequest(const RemoteConfig& config, std::string_view relative_key,
                              bool for_listing) {
  HttpRequest request;
  request.scheme = config.scheme;
  if (config.protocol == RemoteProtocol::kHttp) {
    request.host = config.host;
    request.path = config.prefix + std::string(relative_key);
    return request;
  }
  request.bucket = config.bucket;
  request.key = for_listing ? "" : config.prefix + std::string(relative_key);
  if (config.path_style) {
    request.host = config.host;
    request.path = "/" + config.bucket;
    // S3 lists at /bucket; OSS (ali-oss's second-level-domain mode) at /bucket/.
    if (!for_listing || config.protocol == RemoteProtocol::kOss) {
      request.path += "/" + request.key;
    }
  } else {
    request.host = config.bucket + "." + config.host;
    request.path = "/" + request.key;
  }
  return request;
}

RemoteOrigin::RemoteOrigin(RemoteConfig config, std::unique_ptr<Signer> signer,
                           std::shared_ptr<HttpEngine> engine)
    : config_(std::move(config)), signer_(std::move(signer)), engine_(std::move(engine)) {}

std::string RemoteOrigin::Describe() const {
  std::string out;
  switch (config_.protocol) {
    case RemoteProtocol::kS3:
      out = "s3://" + config_.bucket + "/" + config_.prefix;
      break;
    case RemoteProtocol::kOss:
      out = "oss://" + config_.bucket + "/" + config_.prefix;
      break;
    case RemoteProtocol::kHttp:
      return config_.scheme + "://" + config_.host + config_.prefix;
  }
  return out + " via " + config_.scheme + "://" + config_.host + " (" +
         (config_.path_style ? "path-style" : "virtual-hosted") + ", " + signer_->Name() + ")";
}

Error RemoteOrigin::ChangedError(const ObjectInfo& object, std::string_view why) {
  counters_.changed++;
  bool first;
  {
    std::lock_guard lock(mu_);
    first = changed_logged_.insert(object.key).second;
  }
  if (first) {
    CACHEFS_LOG(kError, "fetch").Kv("object", object.key).Kv("pinned_etag", object.etag)
        << "object changed at the origin since mount (" << why
        << "); its reads fail with EIO until cachefs is remounted";
  }
  return Error(Errc::kChanged,
               "object " + object.key + " changed at the origin: " + std::string(why));
}

Result<HttpResponse> RemoteOrigin::GetWithRetry(const HttpRequest& base, HttpBody body,
                                                const ObjectInfo* pinned, uint64_t offset,
                                                uint64_t expected_bytes) {
  Error last(Errc::kUnavailable, "no attempt made");
  for (int attempt = 0; attempt < config_.retry.max_attempts; ++attempt) {
    {
      std::unique_lock lock(mu_);
      if (attempt > 0) {
        counters_.retries++;
        cancel_cv_.wait_for(lock, Backoff(config_.retry, attempt - 1), [&] { return cancelled_; });
      }
      if (cancelled_) {
        return Error(Errc::kCancelled, base.method + " " + base.LogUrl() + ": cancelled");
      }
    }
    HttpRequest request = base;
    signer_->Sign(request, std::time(nullptr));
    if (body.text != nullptr) {
      body.text->clear();
    }
    counters_.requests++;
    auto result = engine_->Perform(request, body);
    std::string where = base.method + " " + base.LogUrl();
    const char* next_step = attempt + 1 < config_.retry.max_attempts ? "; retrying" : "; giving up";
    if (!result) {
      const Error& error = result.error();
      if (error.code() == Errc::kCancelled || error.code() == Errc::kPermissionDenied) {
        return error;
      }
      (error.code() == Errc::kTimeout ? counters_.timeout : counters_.transport)++;
      CACHEFS_LOG(kWarn, "fetch").Kv("attempt", attempt + 1) << error.message() << next_step;
      last = error;
      continue;
    }
    HttpResponse& response = *result;
    counters_.bytes += response.body_bytes;
    long status = response.status;
    if (status == 404) {
      counters_.not_found++;
      return Error(Errc::kNotFound, where + ": " + StatusText(response));
    }
    if (status == 401 || status == 403) {
      counters_.denied++;
      return Error(Errc::kPermissionDenied,
                   where + ": " + StatusText(response) + " (check the credentials and region)");
    }
    if (status == 412 && pinned != nullptr) {
      return ChangedError(*pinned, "If-Match failed: HTTP 412");
    }
    if (status == 416 && pinned != nullptr) {
      return ChangedError(*pinned, "range not satisfiable: the object shrank");
    }
    if (status == 408 || status == 429 || status == 503 || status >= 500) {
      (status == 429 || status == 503 ? counters_.throttled : counters_.server)++;
      CACHEFS_LOG(kWarn, "fetch").Kv("attempt", attempt + 1).Kv("status", static_cast<int>(status))
          << where << ": " << StatusText(response) << next_step;
      last = Error(Errc::kUnavailable, where + ": " + StatusText(response));
      continue;
    }
    if (status < 200 || status >= 300) {
      return Error(Errc::kIo, where + ": unexpected " + StatusText(response));
    }
    if (pinned == nullptr) {
      return std::move(response);
    }
    // A ranged read: the response must be exactly the bytes asked for, of the pinned version.
    if (!pinned->etag.empty() && !response.etag.empty() && response.etag != pinned->etag) {
      return ChangedError(*pinned, "ETag is now " + response.etag);
    }
    if (status == 206) {
      uint64_t first = 0, last_byte = 0;
      int64_t total = -1;
      if (!ParseContentRange(response.content_range, first, last_byte, total)) {
        return Error(Errc::kIo, where + ": 206 without a usable Content-Range");
      }
      if (total >= 0 && static_cast<uint64_t>(total) != pinned->size) {
        return ChangedError(*pinned, "size is now " + std::to_string(total));
      }
      if (first != offset) {
        return Error(Errc::kIo, where + ": Content-Range does not start at the offset asked for");
      }
    } else if (response.body_bytes > expected_bytes) {
      return Error(Errc::kUnsupported, where + ": the server ignores Range requests");
    }
    if (response.body_bytes != expected_bytes) {
      counters_.short_body++;
      CACHEFS_LOG(kWarn, "fetch").Kv("attempt", attempt + 1)
          << where << ": short body (" << response.body_bytes << " of " << expected_bytes
          << " bytes)" << next_step;
      last = Error(Errc::kIo, where + ": short body");
      continue;
    }
    return std::move(response);
  }
  return last.WithContext("giving up after " + std::to_string(config_.retry.max_attempts) +
                          " attempts");
}

Result<size_t> RemoteOrigin::ReadRange(const ObjectInfo& object, uint64_t offset,
                                       std::span<uint8_t> dst) {
  if (offset >= object.size || dst.empty()) {
    return size_t{0};
  }
  uint64_t length = std::min<uint64_t>(dst.size(), object.size - offset);
  HttpRequest request = MakeRemoteRequest(config_, object.key, /*for_listing=*/false);
  request.headers.emplace_back(
      "range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
  if (!object.etag.empty()) {
    request.headers.emplace_back("if-match", object.etag);
  }
  HttpBody body;
  body.dst = dst.subspan(0, length);
  CACHEFS_ASSIGN_OR_RETURN(auto response, GetWithRetry(request, body, &object, offset, length));
  // A 200 for a range starting at 0 is the whole object, which is what was asked for.
  if (response.status != 206 && offset != 0) {
    return Error(Errc::kUnsupported, request.LogUrl() + ": the server ignores Range requests");
  }
  return static_cast<size_t>(response.body_bytes);
}

Result<std::vector<ObjectInfo>> RemoteOrigin::List() {
  return config_.protocol == RemoteProtocol::kHttp ? ListManifest() : ListBucket();
}

Result<std::vector<ObjectInfo>> RemoteOrigin::ListBucket() {
  std::vector<ObjectInfo> all;
  std::string token;
  std::string text;
  for (int page_no = 0;; ++page_no) {
    HttpRequest request = MakeRemoteRequest(config_, "", /*for_listing=*/true);
    request.query = {{"list-type", "2"}, {"prefix", config_.prefix}, {"max-keys", "1000"}};
    if (!token.empty()) {
      request.query.emplace_back("continuation-token", token);
    }
    HttpBody body;
    body.text = &text;
    body.max_text = kMaxListPage;
    CACHEFS_ASSIGN_OR_RETURN(auto response, GetWithRetry(request, body, nullptr, 0, 0));
    (void)response;
    auto page = ParseListObjectsV2(text);
    if (!page) {
      return page.error().WithContext(Describe());
    }
    for (auto& object : page->objects) {
      if (object.key.compare(0, config_.prefix.size(), config_.prefix) != 0) {
        continue;
      }
      object.key.erase(0, config_.prefix.size());
      all.push_back(std::move(object));
    }
    if (!page->truncated) {
      break;
    }
    if (page->next_continuation_token == token) {
      return Error(Errc::kCorrupt, Describe() + ": listing repeats its continuation token");
    }
    token = page->next_continuation_token;
  }
  return CompleteTree(std::move(all));
}

Result<std::vector<ObjectInfo>> RemoteOrigin::ListManifest() {
  std::string text;
  HttpBody body;
  body.text = &text;
  body.max_text = kMaxManifestSize;
  HttpRequest request = MakeRemoteRequest(config_, kManifestName, false);
  auto response = GetWithRetry(request, body, nullptr, 0, 0);
  if (!response) {
    if (response.error().code() == Errc::kNotFound) {
      return Error(Errc::kNotFound,
                   Describe() + ": no " + std::string(kManifestName) +
                       " beside the ciphertext (write one with `cachefsctl manifest`)");
    }
    return response.error();
  }
  auto objects = ParseManifest(text);
  if (!objects) {
    return objects.error().WithContext(request.LogUrl());
  }
  return objects;
}

void RemoteOrigin::Cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  cancel_cv_.notify_all();
  engine_->Shutdown();
}

void RemoteOrigin::CollectStats(OriginStats& stats) const {
  stats.origin_requests += counters_.requests;
  stats.origin_retries += counters_.retries;
  stats.origin_bytes += counters_.bytes;
  stats.errors_not_found += counters_.not_found;
  stats.errors_denied += counters_.denied;
  stats.errors_changed += counters_.changed;
  stats.errors_transport += counters_.transport;
  stats.errors_timeout += counters_.timeout;
  stats.errors_server += counters_.server;
  stats.errors_throttled += counters_.throttled;
  stats.errors_short_body += counters_.short_body;
}

}  // namespace cachefs::fetch
