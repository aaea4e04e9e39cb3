#pragma once

// Origins over HTTP: S3 (SigV4), OSS (V1/V4) and plain HTTP(S) servers with a manifest.
//
// RemoteOrigin does the requests themselves: listing with pagination, ranged GETs pinned to
// the ETag seen at listing (If-Match), and retries with exponential backoff and full jitter
// for transport errors, resets, stalls, timeouts, 5xx, 429/503 and short bodies. 403 and 404
// are final. It has no cache: OpenOrigin wraps it in a CachingOrigin.
//
// Thread-safe: every method may run on many threads at once; requests share one HttpEngine.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "fetch/http_engine.h"
#include "fetch/origin.h"
#include "fetch/signer.h"

namespace cachefs::fetch {

enum class RemoteProtocol { kS3, kOss, kHttp };

struct RetryPolicy {
  int max_attempts = 8;  // including the first
  int base_delay_ms = 100;
  int max_delay_ms = 5000;
};

struct RemoteConfig {
  RemoteProtocol protocol = RemoteProtocol::kS3;
  std::string scheme = "https";
  std::string host;    // endpoint host[:port]
  std::string bucket;  // S3/OSS
  // S3/OSS: the key prefix, "" or ending in '/'. HTTP: the base path, starting and ending
  // with '/', below which the manifest and the ciphertext live.
  std::string prefix;
  bool path_style = false;  // S3/OSS: http://host/bucket/key instead of http://bucket.host/key
  RetryPolicy retry;
};

// The unsigned request for `relative_key` below config.prefix, or with `for_listing` for the
// bucket itself (HTTP: the base path). S3/OSS virtual-hosted: host "bucket.<host>", path
// "/key", listing at "/"; path-style: host as given, path "/bucket/key", listing at "/bucket"
// (S3) or "/bucket/" (OSS, as ali-oss does). `bucket` and `key` are set for the signers'
// canonical resource whatever the style. Pure; RemoteOrigin builds every request with it.
HttpRequest MakeRemoteRequest(const RemoteConfig& config, std::string_view relative_key,
                              bool for_listing);

class RemoteOrigin final : public Origin {
 public:
  RemoteOrigin(RemoteConfig config, std::unique_ptr<Signer> signer,
               std::shared_ptr<HttpEngine> engine);

  // "s3://bucket/prefix/ via http://127.0.0.1:4568 (path-style, aws-sigv4)": no secrets.
  std::string Describe() const override;
  // S3/OSS: ListObjectsV2 pages of 1000 until the end. HTTP: the manifest. Directories
  // implied by keys are added (CompleteTree). Errors: kPermissionDenied (403), kNotFound
  // (bucket or manifest missing), kCorrupt (bad XML/JSON), kUnavailable after retries.
  Result<std::vector<ObjectInfo>> List() override;
  // One ranged GET (retried); kChanged when the object's ETag or size differs from `object`.
  Result<size_t> ReadRange(const ObjectInfo& object, uint64_t offset,
                           std::span<uint8_t> dst) override;
  void CollectStats(OriginStats& stats) const override;
  void Cancel() override;

 private:
  // Runs `request` (re-signed on every attempt) with the retry policy; returns the final
  // response with status 2xx, or the error that ended the attempts. With `pinned`, the
  // response must be [offset, offset + expected_bytes) of that version of the object.
  Result<HttpResponse> GetWithRetry(const HttpRequest& request, HttpBody body,
                                    const ObjectInfo* pinned, uint64_t offset,
                                    uint64_t expected_bytes);
  Error ChangedError(const ObjectInfo& object, std::string_view why);
  Result<std::vector<ObjectInfo>> ListBucket();
  Result<std::vector<ObjectInfo>> ListManifest();

  RemoteConfig config_;
  std::unique_ptr<Signer> signer_;
  std::shared_ptr<HttpEngine> engine_;

  mutable std::mutex mu_;
  std::set<std::string> changed_logged_;  // guarded by mu_: one log line per changed object
  bool cancelled_ = false;                // guarded by mu_
  std::condition_variable cancel_cv_;     // wakes retry back-offs on Cancel()

  struct Counters {
    std::atomic<uint64_t> requests{0}, retries{0}, bytes{0}, not_found{0}, denied{0}, changed{0},
        transport{0}, timeout{0}, server{0}, throttled{0}, short_body{0};
  };
  mutable Counters counters_;
};

}  // namespace cachefs::fetch
