#include "fetch/origin_factory.h"

#include <arpa/inet.h>

#include <cstdlib>

#include "common/log.h"
#include "common/process_hardening.h"
#include "fetch/caching_origin.h"
#include "fetch/file_origin.h"
#include "fetch/remote_origin.h"

namespace cachefs::fetch {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.rfind(p, 0) == 0; }

// "host[:port]" of an endpoint given with or without a scheme; `scheme` gets http or https.
Result<std::string> ParseEndpoint(std::string_view endpoint, std::string& scheme) {
  scheme = "https";
  if (StartsWith(endpoint, "https://")) {
    endpoint.remove_prefix(8);
  } else if (StartsWith(endpoint, "http://")) {
    scheme = "http";
    endpoint.remove_prefix(7);
  } else if (endpoint.find("://") != std::string_view::npos) {
    return Error(Errc::kInvalidArgument,
                 "endpoint '" + std::string(endpoint) + "': scheme must be http or https");
  }
  while (!endpoint.empty() && endpoint.back() == '/') {
    endpoint.remove_suffix(1);
  }
  if (endpoint.empty() || endpoint.find('/') != std::string_view::npos) {
    return Error(Errc::kInvalidArgument,
                 "endpoint '" + std::string(endpoint) + "': expected [scheme://]host[:port]");
  }
  // The host as the Host header will carry it, which SigV4 signs: curl leaves the scheme's
  // default port out, so "host:443" signed as such would never match.
  std::string_view default_port = scheme == "https" ? ":443" : ":80";
  if (endpoint.size() > default_port.size() && endpoint.ends_with(default_port)) {
    endpoint.remove_suffix(default_port.size());
  }
  return std::string(endpoint);
}

std::string HostWithoutPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    return std::string(host.substr(1, host.find(']') - 1));
  }
  return std::string(host.substr(0, host.find(':')));
}

bool IsIpAddress(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Whether `bucket` can lead a virtual-hosted name, as the AWS SDKs decide: a DNS-style name
// (3-63 characters of a-z, 0-9, '-' and '.', labels starting and ending alphanumeric), not
// shaped like an IPv4 address, and without dots over HTTPS, where my.bucket.s3.amazonaws.com
// does not match the endpoint's wildcard certificate *.s3.amazonaws.com.
bool VirtualHostable(const std::string& bucket, std::string_view scheme) {
  if (bucket.size() < 3 || bucket.size() > 63 ||
      (scheme == "https" && bucket.find('.') != std::string::npos)) {
    return false;
  }
  for (size_t i = 0; i < bucket.size(); ++i) {
    char c = bucket[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      continue;
    }
    // '-' and '.' only inside a label: never first or last, never next to a '.'.
    bool inside = i > 0 && i + 1 < bucket.size() && bucket[i - 1] != '.' && bucket[i + 1] != '.';
    if ((c != '-' && c != '.') || !inside) {
      return false;
    }
  }
  unsigned char buf[4];
  return inet_pton(AF_INET, bucket.c_str(), buf) != 1;
}

// oss-cn-beijing-internal.aliyuncs.com, s3.oss-cn-beijing.aliyuncs.com -> cn-beijing.
std::string RegionFromOssHost(const std::string& host) {
  size_t at = host.find("oss-");
  if (at == std::string::npos) {
    return "";
  }
  std::string rest = host.substr(at + 4);
  rest = rest.substr(0, rest.find('.'));
  if (rest.size() > 9 && rest.compare(rest.size() - 9, 9, "-internal") == 0) {
    rest.resize(rest.size() - 9);
  }
  return rest;
}

// s3.us-west-2.amazonaws.com, s3-us-west-2.amazonaws.com -> us-west-2.
std::string RegionFromS3Host(const std::string& host) {
  if (host.find(".amazonaws.com") == std::string::npos || host.size() < 4) {
    return "";
  }
  std::string first = host.substr(0, host.find(".amazonaws.com"));
  size_t dot = first.find_last_of('.');
  std::string last = dot == std::string::npos ? first : first.substr(dot + 1);
  if (StartsWith(last, "s3-")) {
    return last.substr(3);
  }
  if (last != "s3" && first.find("s3.") != std::string::npos) {
    return last;
  }
  return "";
}

// "bucket/some/prefix" -> bucket, "some/prefix/".
Status SplitBucket(std::string_view rest, std::string& bucket, std::string& prefix) {
  size_t slash = rest.find('/');
  bucket = std::string(rest.substr(0, slash));
  prefix = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
  while (!prefix.empty() && prefix.front() == '/') {
    prefix.erase(0, 1);
  }
  if (!prefix.empty() && prefix.back() != '/') {
    prefix.push_back('/');
  }
  if (bucket.empty() || bucket.find_first_of(":?#@ ") != std::string::npos) {
    return Error(Errc::kInvalidArgument, "bad bucket name '" + bucket + "'");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Origin>> OpenRemote(const OriginOptions& options, RemoteConfig config,
                                           std::unique_ptr<Signer> signer) {
  HttpEngineOptions engine_options;
  engine_options.ca_bundle = options.ca_bundle;
  engine_options.max_host_connections = std::max(8, options.max_parallel_fetches + 8);
  engine_options.low_speed_time_s = std::max(1, options.stall_timeout_s);
  CACHEFS_ASSIGN_OR_RETURN(auto engine, HttpEngine::Create(engine_options));
  auto remote = std::make_unique<RemoteOrigin>(std::move(config), std::move(signer),
                                               std::shared_ptr<HttpEngine>(std::move(engine)));
  CacheOptions cache;
  if (options.part_size < (64u << 10) || options.part_size > (1ull << 30)) {
    return Error(Errc::kInvalidArgument, "part size must be between 64 KiB and 1 GiB");
  }
  cache.chunk_size = options.part_size;
  cache.memory_budget = std::max(options.memory_budget, 4 * options.part_size);
  cache.readahead_workers = std::max(1, options.max_parallel_fetches);
  cache.max_readahead = std::min<uint64_t>(128ull << 20, cache.memory_budget / 2);
  std::unique_ptr<DiskCache> disk;
  if (!options.cache_dir.empty()) {
    CACHEFS_ASSIGN_OR_RETURN(disk, DiskCache::Open(options.cache_dir, options.cache_size));
  }
  return std::unique_ptr<Origin>(
      std::make_unique<CachingOrigin>(std::move(remote), cache, std::move(disk)));
}

}  // namespace

Result<std::unique_ptr<Origin>> OpenOrigin(const OriginOptions& options) {
  const std::string& location = options.location;
  bool is_http = StartsWith(location, "http://") || StartsWith(location, "https://");
  bool is_s3 = StartsWith(location, "s3://");
  bool is_oss = StartsWith(location, "oss://") || (!location.empty() && location[0] != '/' &&
                                                   location.find("://") == std::string::npos &&
                                                   location.find(':') != std::string::npos);
  if (!is_http && !is_s3 && !is_oss) {
    std::string path = location;
    if (StartsWith(path, "file://")) {
      path = path.substr(7);
    }
    if (path.empty() || path[0] != '/') {
      return Error(Errc::kInvalidArgument,
                   "origin '" + location +
                       "': expected /path, file:///path, oss://bucket/prefix, bucket:/prefix, "
                       "s3://bucket/prefix or http(s)://host/path/");
    }
    CACHEFS_ASSIGN_OR_RETURN(auto origin, FileOrigin::Open(path));
    return std::unique_ptr<Origin>(std::move(origin));
  }

  RemoteConfig config;
  if (is_http) {
    config.protocol = RemoteProtocol::kHttp;
    std::string_view rest = location;
    config.scheme = StartsWith(rest, "https://") ? "https" : "http";
    rest.remove_prefix(config.scheme.size() + 3);
    size_t slash = rest.find('/');
    config.host = std::string(rest.substr(0, slash));
    config.prefix = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (config.prefix.back() != '/') {
      config.prefix.push_back('/');
    }
    if (config.host.empty() || config.prefix.find_first_of("?#") != std::string::npos) {
      return Error(Errc::kInvalidArgument, "origin '" + location + "': bad URL");
    }
    return OpenRemote(options, std::move(config), MakeAnonymousSigner());
  }

  std::string_view rest = location;
  if (StartsWith(rest, "s3://") || StartsWith(rest, "oss://")) {
    rest.remove_prefix(rest.find("://") + 3);
  } else {
    // The CAI / ossfs form bucket:/prefix.
    std::string joined(rest.substr(0, rest.find(':')));
    joined += "/" + std::string(rest.substr(rest.find(':') + 1));
    CACHEFS_RETURN_IF_ERROR(SplitBucket(joined, config.bucket, config.prefix));
    rest = {};
  }
  if (!rest.empty()) {
    auto split = SplitBucket(rest, config.bucket, config.prefix);
    if (!split) {
      return split.error().WithContext("origin '" + location + "'");
    }
  }
  config.protocol = is_s3 ? RemoteProtocol::kS3 : RemoteProtocol::kOss;

  std::string region = options.region;
  std::string endpoint = options.endpoint;
  if (endpoint.empty()) {
    if (!is_s3) {
      return Error(Errc::kInvalidArgument,
                   "origin '" + location +
                       "': OSS needs --endpoint (e.g. oss-cn-beijing-internal.aliyuncs.com)");
    }
    endpoint = "s3." + (region.empty() ? std::string("us-east-1") : region) + ".amazonaws.com";
  }
  CACHEFS_ASSIGN_OR_RETURN(config.host, ParseEndpoint(endpoint, config.scheme));
  std::string bare_host = HostWithoutPort(config.host);
  config.path_style = options.path_style || IsIpAddress(bare_host) || bare_host == "localhost" ||
                      !VirtualHostable(config.bucket, config.scheme);
  if (region.empty()) {
    region = is_s3 ? RegionFromS3Host(bare_host) : RegionFromOssHost(bare_host);
    if (region.empty()) {
      region = is_s3 ? "us-east-1" : "";
    }
  }

  bool has_id = !options.access_key_id.empty();
  bool has_secret = !options.secret_access_key.empty();
  if (has_id != has_secret) {
    return Error(Errc::kInvalidArgument,
                 "origin '" + location + "': give both an access key id and a secret, or neither");
  }
  std::unique_ptr<Signer> signer;
  if (options.anonymous) {
    signer = MakeAnonymousSigner();
  } else if (!has_id) {
    return Error(Errc::kInvalidArgument,
                 "origin '" + location +
                     "': no credentials (use --access-key-id with OSS_ACCESS_KEY_SECRET / "
                     "AWS_SECRET_ACCESS_KEY or an --env-file, or --anonymous for public buckets)");
  } else {
    Credentials credentials;
    credentials.access_key_id = options.access_key_id;
    credentials.secret_access_key = SecretBytes::CopyOf(options.secret_access_key);
    credentials.session_token = SecretBytes::CopyOf(options.session_token);
    if (is_s3) {
      signer = MakeAwsSigV4Signer(std::move(credentials), region);
    } else if (options.oss_signature == "v1") {
      signer = MakeOssV1Signer(std::move(credentials));
    } else if (options.oss_signature == "v4") {
      if (region.empty()) {
        return Error(Errc::kInvalidArgument,
                     "origin '" + location + "': OSS V4 signing needs --region (the endpoint '" +
                         bare_host + "' does not name one)");
      }
      signer = MakeOssV4Signer(std::move(credentials), region);
    } else {
      return Error(Errc::kInvalidArgument,
                   "OSS signature version must be v1 or v4, not '" + options.oss_signature + "'");
    }
  }
  return OpenRemote(options, std::move(config), std::move(signer));
}

namespace {

struct CredentialVars {
  const char* id;
  const char* secret;
  const char* token;
};

constexpr CredentialVars kOssVars = {"OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET",
                                     "OSS_SESSION_TOKEN"};
constexpr CredentialVars kAlibabaVars = {"ALIBABA_CLOUD_ACCESS_KEY_ID",
                                         "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                                         "ALIBABA_CLOUD_SECURITY_TOKEN"};
constexpr CredentialVars kAwsVars = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                     "AWS_SESSION_TOKEN"};

std::string Getenv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace

Status ApplyEnvironment(OriginOptions& options,
                        const std::map<std::string, std::string>& env_file) {
  auto file_value = [&](const char* key) -> std::string {
    auto it = env_file.find(key);
    return it == env_file.end() ? "" : it->second;
  };
  if (options.location.empty()) {
    options.location = file_value("MODEL_OSS_BUCKET_PATH");
  }
  bool is_s3 = StartsWith(options.location, "s3://");
  if (options.endpoint.empty() && is_s3) {
    options.endpoint = Getenv("AWS_ENDPOINT_URL");
  }
  if (options.endpoint.empty() && !is_s3) {
    options.endpoint = file_value("MODEL_OSS_ENDPOINT");
  }
  if (options.region.empty() && is_s3) {
    options.region = Getenv("AWS_REGION");
  }
  if (options.ca_bundle.empty()) {
    options.ca_bundle = Getenv("AWS_CA_BUNDLE");
  }

  Status status;
  bool have = !options.access_key_id.empty() || !options.secret_access_key.empty();
  auto take = [&](const std::string& id, const std::string& secret, const std::string& token,
                  const std::string& where) {
    if (have || (id.empty() && secret.empty())) {
      return;
    }
    have = true;
    if (id.empty() || secret.empty()) {
      status = Error(Errc::kInvalidArgument,
                     where + " has an access key " +
                         (id.empty() ? "secret without an id" : "id without a secret"));
      return;
    }
    options.access_key_id = id;
    options.secret_access_key = secret;
    options.session_token = token;
  };
  std::vector<CredentialVars> order = {kOssVars, kAlibabaVars, kAwsVars};
  if (is_s3) {
    order = {kAwsVars, kOssVars, kAlibabaVars};
  }
  for (const auto& vars : order) {
    take(Getenv(vars.id), Getenv(vars.secret), Getenv(vars.token),
         std::string("the environment (") + vars.id + ")");
  }
  take(file_value("MODEL_OSS_ACCESS_KEY_ID"), file_value("MODEL_OSS_SECRET_ACCESS_KEY"),
       file_value("MODEL_OSS_SESSION_TOKEN"), "the env-file");
  // Children (fusermount, helpers) must never inherit credentials.
  for (const auto& vars : {kOssVars, kAlibabaVars, kAwsVars}) {
    ScrubEnvironmentVariable(vars.id);
    ScrubEnvironmentVariable(vars.secret);
    ScrubEnvironmentVariable(vars.token);
  }
  for (const char* legacy :
       {"OSSACCESSKEYID", "OSSSECRETACCESSKEY", "OSSSESSIONTOKEN", "OSS_SECRET_ACCESS_KEY"}) {
    ScrubEnvironmentVariable(legacy);
  }
  return status;
}

}  // namespace cachefs::fetch
