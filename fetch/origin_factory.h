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

  // Range engine and cache (remote origins only).
  uint64_t part_size = 8ull << 20;
  uint64_t memory_budget = 512ull << 20;
  std::string cache_dir;  // empty: memory tier only
  uint64_t cache_size = 0;
};

// Fails with a one-line message naming what is wrong (unknown scheme, missing endpoint, ...).
Result<std::unique_ptr<Origin>> OpenOrigin(const OriginOptions& options);

}  // namespace cachefs::fetch

namespace cachefs::fetch {

// Fills what the command line left empty from the environment (OSS_*, ALIBABA_CLOUD_*, AWS_*)
// and then from an env-file's values (MODEL_OSS_*), in that order, and scrubs the secret
// variables from this process's environment so that children never inherit them.
Status ApplyEnvironment(OriginOptions& options, const std::map<std::string, std::string>& env_file);

}  // namespace cachefs::fetch
