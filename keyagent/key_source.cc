#include "keyagent/key_source.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "common/log.h"
#include "keyagent/cdh_client.h"
#include "keyagent/encoding.h"
#include "keyagent/extpass.h"
#include "keyagent/kbs_client.h"

namespace cachefs::keyagent {

namespace {
constexpr size_t kMaxPasswordBytes = 2048;
constexpr std::chrono::milliseconds kMaxRetryDelay{30000};

std::string PolicyHash(const std::string& policy) {
  return HexEncode(Hash(HashAlgorithm::kSha256, policy)).substr(0, 16);
}

Result<GpuEvidenceMode> ParseGpuMode(const std::string& text) {
  if (text.empty() || text == "auto") {
    return GpuEvidenceMode::kAuto;
  }
  if (text == "additional") {
    return GpuEvidenceMode::kAdditional;
  }
  if (text == "inline") {
    return GpuEvidenceMode::kInline;
  }
  return Error(Errc::kInvalidArgument,
               "gpu evidence mode \"" + text + "\" (expected auto, additional or inline)");
}

bool Retryable(const Error& error) {
  return error.code() == Errc::kUnavailable || error.code() == Errc::kTimeout;
}

// Runs `attempt` until it succeeds, fails for good, or `options.retries` retries are spent,
// sleeping base * 2^n (capped, with jitter) between tries.
template <typename Fn>
Result<SecretBytes> WithRetries(const KeySourceOptions& options, const std::string& what,
                                Fn attempt) {
  std::minstd_rand jitter(std::random_device{}());
  std::chrono::milliseconds delay = options.retry_base_delay;
  for (int n = 0;; ++n) {
    Result<SecretBytes> result = attempt();
    if (result || !Retryable(result.error()) || n >= options.retries) {
      if (!result && Retryable(result.error()) && n > 0) {
        return result.error().WithContext(what + " (gave up after " + std::to_string(n + 1) +
                                          " attempts)");
      }
      return result;
    }
    auto sleep = delay + std::chrono::milliseconds(jitter() % (delay.count() / 4 + 1));
    CACHEFS_LOG(kWarn, "keyagent")
            .Kv("source", what)
            .Kv("attempt", n + 1)
            .Kv("retry_in_ms", static_cast<int64_t>(sleep.count()))
            .Kv("error", result.error().message())
        << "key source unavailable; retrying";
    std::this_thread::sleep_for(sleep);
    delay = std::min(delay * 2, kMaxRetryDelay);
  }
}

// One Trustee session per configuration, kept so that later calls reuse the token and TEE key.
struct TrusteeSession {
  std::mutex mu;
  std::unique_ptr<KbsClient> client;
};

std::shared_ptr<TrusteeSession> SessionFor(const KeySourceOptions& o) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<TrusteeSession>> sessions;
  std::string key = o.trustee_url + '\n' + o.trustee_ca + '\n' + o.attester + '\n' +
                    o.trustee_policy + '\n' + o.gpu_evidence + '\n' + o.kbs_protocol + '\n' +
                    (o.allow_non_tee ? "1" : "0");
  std::lock_guard lock(mu);
  auto& session = sessions[key];
  if (!session) {
    session = std::make_shared<TrusteeSession>();
  }
  return session;
}

Result<SecretBytes> FromTrustee(const KeySourceOptions& options) {
  std::string url = RedactUrl(options.trustee_url);
  if (!options.trustee_url.starts_with("http://") && !options.trustee_url.starts_with("https://")) {
    return Error(Errc::kInvalidArgument,
                 "--trustee-url " + url + ": needs an http:// or https:// scheme");
  }
  if (options.key_id.empty()) {
    return Error(Errc::kInvalidArgument, "--trustee-url needs --key-id (kbs:///repo/type/tag)");
  }
  CACHEFS_ASSIGN_OR_RETURN(ResourceUri resource, ParseResourceUri(options.key_id));
  CACHEFS_ASSIGN_OR_RETURN(GpuEvidenceMode gpu_mode, ParseGpuMode(options.gpu_evidence));
  if (options.trustee_url.starts_with("http://")) {
    CACHEFS_LOG(kWarn, "keyagent").Kv("trustee", url)
        << "Trustee URL is plain http: the channel is unauthenticated unless a TNG tunnel "
           "protects it (the key itself is still sealed to the attested TEE key)";
  }
  std::shared_ptr<TrusteeSession> session = SessionFor(options);
  std::lock_guard lock(session->mu);
  if (!session->client) {
    AttesterConfig attester_config;
    attester_config.spec = options.attester;
    attester_config.allow_non_tee = options.allow_non_tee;
    CACHEFS_ASSIGN_OR_RETURN(AttesterSet attesters, MakeAttesters(attester_config));
    CurlOptions curl_options;
    curl_options.extra_ca_file = options.trustee_ca;
    CACHEFS_ASSIGN_OR_RETURN(std::unique_ptr<HttpTransport> transport,
                             MakeCurlTransport(curl_options));
    KbsClientOptions client_options;
    client_options.base_url = options.trustee_url;
    client_options.trustee_policy = options.trustee_policy;
    client_options.gpu_mode = gpu_mode;
    client_options.protocol_version = options.kbs_protocol;
    session->client = std::make_unique<KbsClient>(std::move(client_options), std::move(attesters),
                                                  std::move(transport));
  }
  std::string what = "trustee " + url;
  auto secret = WithRetries(options, what, [&] { return session->client->GetResource(resource); });
  if (!secret) {
    return secret.error().WithContext(what);
  }
  return FirstLine(std::move(*secret), "Trustee resource " + resource.Display());
}

}  // namespace

std::optional<AttestationState> LastAttestation(const KeySourceOptions& options) {
  if (options.trustee_url.empty()) {
    return std::nullopt;
  }
  std::shared_ptr<TrusteeSession> session = SessionFor(options);
  std::lock_guard lock(session->mu);
  if (!session->client || session->client->summary().tee.empty()) {
    return std::nullopt;
  }
  const AttestationSummary& summary = session->client->summary();
  AttestationState state;
  state.tee = summary.tee;
  state.protocol_version = summary.protocol_version;
  state.token_expires = summary.expires;
  state.attested_at = summary.attested_at;
  return state;
}

namespace {

Result<SecretBytes> FromCdh(const KeySourceOptions& options) {
  if (options.key_id.empty()) {
    return Error(Errc::kInvalidArgument, "--cdh-socket needs --key-id (kbs:///repo/type/tag)");
  }
  CACHEFS_ASSIGN_OR_RETURN(ResourceUri resource, ParseResourceUri(options.key_id));
  std::string what = "cdh " + options.cdh_socket;
  auto secret =
      WithRetries(options, what, [&] { return CdhGetResource(options.cdh_socket, resource); });
  if (!secret) {
    return secret.error().WithContext(what);
  }
  return FirstLine(std::move(*secret), "CDH resource " + resource.Display());
}

}  // namespace

std::string DescribeKeySource(const KeySourceOptions& options) {
  if (!options.trustee_url.empty()) {
    std::string out = "trustee " + RedactUrl(options.trustee_url) + " key " + options.key_id +
                      " attester " + options.attester;
    if (!options.trustee_policy.empty()) {
      out += " policy sha256:" + PolicyHash(options.trustee_policy);
    }
    return out;
  }
  if (!options.cdh_socket.empty()) {
    return "cdh " + options.cdh_socket + " key " + options.key_id;
  }
  if (!options.extpass.empty()) {
    return "extpass";
  }
  if (!options.passfile.empty()) {
    return "passfile " + options.passfile;
  }
  return "none";
}

Result<SecretBytes> ReadPassFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Error::FromErrno(errno, "passfile " + path);
  }
  // Read one byte more than allowed so an over-long first line is detected.
  SecretBytes buffer(kMaxPasswordBytes + 2);
  size_t got = 0;
  while (got < buffer.size()) {
    ssize_t n = read(fd, buffer.data() + got, buffer.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int saved = errno;
      close(fd);
      return Error::FromErrno(saved, "passfile " + path);
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  size_t line_end = 0;
  while (line_end < got && buffer.data()[line_end] != '\n') {
    ++line_end;
  }
  if (line_end > kMaxPasswordBytes) {
    return Error(Errc::kInvalidArgument, "passfile " + path + ": password longer than 2048 bytes");
  }
  if (line_end == 0) {
    return Error(Errc::kInvalidArgument, "passfile " + path + ": first line is empty");
  }
  if (line_end + 1 < got) {
    CACHEFS_LOG(kWarn, "keyagent").Kv("passfile", path)
        << "passfile has more than one line; only the first is used";
  }
  buffer.Truncate(line_end);
  return buffer;
}

Result<SecretBytes> ObtainPassword(const KeySourceOptions& options) {
  int sources = !options.passfile.empty() + !options.extpass.empty() + !options.cdh_socket.empty() +
                !options.trustee_url.empty();
  if (sources == 0) {
    return Error(Errc::kInvalidArgument,
                 "no key source: give --passfile, --extpass, --cdh-socket or --trustee-url");
  }
  if (sources > 1) {
    return Error(Errc::kInvalidArgument,
                 "more than one key source: give only one of --passfile, --extpass, "
                 "--cdh-socket and --trustee-url");
  }
  CACHEFS_LOG(kInfo, "keyagent").Kv("source", DescribeKeySource(options)) << "obtaining the key";
  if (!options.passfile.empty()) {
    return ReadPassFile(options.passfile);
  }
  if (!options.extpass.empty()) {
    return RunExtpass(options.extpass);
  }
  if (!options.cdh_socket.empty()) {
    return FromCdh(options);
  }
  return FromTrustee(options);
}

}  // namespace cachefs::keyagent
