#pragma once

// Builds the Origin named by a mount's ORIGIN argument and options.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "fetch/origin.h"

namespace cachefs::fetch {

struct OriginOptions {
  // "/path", "file:///path", "oss://bucket/prefix", "bucket:/prefix" (with endpoint),
  // "s3://bucket/prefix", "http(s)://host/path/".
  std::string location;
  std::string endpoint;  // OSS/S3 endpoint, with or without scheme
  std::string region;    // derived from an OSS endpoint when empty
  bool path_style = false;
  std::string access_key_id;
  std::string secret_access_key;  // never logged
  std::string session_token;      // never logged
  bool anonymous = false;
  std::string ca_bundle;
  std::string oss_signature = "v4";  // OSS only: "v4" (OSS4-HMAC-SHA256) or "v1" (HMAC-SHA1)

  // Range engine and cache (remote origins only).
  uint64_t part_size = 8ull << 20;
  uint64_t memory_budget = 512ull << 20;
  std::string cache_dir;          // empty: memory tier only
  uint64_t cache_size = 0;        // 0 with a cache_dir: 80% of the free space at start
  int max_parallel_fetches = 16;  // read-ahead requests in flight; demand reads come on top
  int stall_timeout_s = 10;       // a transfer below 16 KiB/s for this long is cut and retried
};

// Local paths give a FileOrigin. Remote locations give a CachingOrigin (fetch/caching_origin.h:
// memory + disk tiers, read-ahead, CollectStats) over a RemoteOrigin:
//   oss://bucket/prefix, bucket:/prefix  OSS, --endpoint required (scheme optional, https
//       default); virtual-hosted unless the endpoint is an IP address or localhost,
//       path_style is set or the bucket cannot lead a host name (dots over https, upper
//       case, ...). Signature V4 with the region from `region` or the endpoint name, or V1.
//   s3://bucket/prefix  S3 SigV4; endpoint default s3.<region>.amazonaws.com, region default
//       from the endpoint name or us-east-1.
//   http(s)://host/path/  any static server, with cachefs-manifest.json in path/.
// Credentials: anonymous when `anonymous` is set (and always for http); otherwise both an
// access key id and a secret are required (a session token is optional).
// Fails with a one-line message naming what is wrong (unknown scheme, missing endpoint, ...).
Result<std::unique_ptr<Origin>> OpenOrigin(const OriginOptions& options);

}  // namespace cachefs::fetch

namespace cachefs::fetch {

// Fills what the command line left empty from the environment and then from an env-file's
// values, in that order, and scrubs the credential variables from this process's environment
// so that children never inherit them. Credentials are taken as a set (id, secret, token) from
// the first source that has an id: flags; then OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET/
// OSS_SESSION_TOKEN, ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/ALIBABA_CLOUD_SECURITY_TOKEN and
// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN (AWS_* first for s3:// locations);
// then the env-file's MODEL_OSS_ACCESS_KEY_ID/MODEL_OSS_SECRET_ACCESS_KEY/
// MODEL_OSS_SESSION_TOKEN. The env-file also supplies MODEL_OSS_BUCKET_PATH (location) and
// MODEL_OSS_ENDPOINT; the environment AWS_REGION, AWS_ENDPOINT_URL (s3://) and AWS_CA_BUNDLE.
// Fails (kInvalidArgument) when a source has an id without a secret or the reverse.
Status ApplyEnvironment(OriginOptions& options, const std::map<std::string, std::string>& env_file);

}  // namespace cachefs::fetch
