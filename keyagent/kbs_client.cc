#include "keyagent/kbs_client.h"

#include <strings.h>

#include "common/log.h"

namespace cachefs::keyagent {
namespace {

// A token this close to its expiry is not reused: the resource request must still find it valid.
constexpr std::chrono::seconds kTokenExpiryMargin{30};

bool MentionsVersion(std::string_view detail) {
  for (size_t i = 0; i + 7 <= detail.size(); ++i) {
    if (strncasecmp(detail.data() + i, "version", 7) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

Error KbsHttpError(const HttpResponse& response, std::string_view stage) {
  KbsErrorInfo info = ParseKbsError(response.body);
  std::string what = std::string(stage) + ": HTTP " + std::to_string(response.status);
  if (!info.variant.empty()) {
    what += " " + info.variant;
  }
  if (!info.detail.empty()) {
    what += ": " + info.detail;
  }
  bool resource = stage.starts_with("resource");
  const std::string& v = info.variant;
  if (v == "PolicyDeny" || response.status == 403) {
    return Error(Errc::kPermissionDenied, "Trustee policy denied access (" + what + ")");
  }
  if (v == "AttestationError") {
    return Error(Errc::kPermissionDenied, "Trustee rejected the attestation (" + what + ")");
  }
  if (v == "TokenNotFound" || v == "TokenVerifierError" || (response.status == 401 && resource)) {
    if (v == "PluginInternalError") {
      // Upstream answers 401 for a missing resource (kbs-protocol.md §1.9).
      return Error(Errc::kNotFound, "Trustee cannot provide the resource (" + what + ")");
    }
    return Error(Errc::kPermissionDenied,
                 "Trustee did not accept the attestation token (" + what + ")");
  }
  if (response.status == 401) {
    return Error(Errc::kPermissionDenied, "Trustee refused the request (" + what + ")");
  }
  if (response.status == 404) {
    return Error(Errc::kNotFound,
                 resource ? "Trustee has no such resource (" + what + ")"
                          : "no KBS API at this Trustee URL; wrong path prefix? (" + what + ")");
  }
  if (response.status >= 500) {
    return Error(Errc::kUnavailable, "Trustee server error (" + what + ")");
  }
  if (response.status == 400) {
    return Error(Errc::kInvalidArgument,
                 "Trustee rejected the request as malformed (" + what + ")");
  }
  return Error(Errc::kIo, "unexpected reply from Trustee (" + what + ")");
}

KbsClient::KbsClient(KbsClientOptions options, AttesterSet attesters,
                     std::unique_ptr<HttpTransport> transport)
    : options_(std::move(options)),
      attesters_(std::move(attesters)),
      transport_(std::move(transport)) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') {
    options_.base_url.pop_back();
  }
}

bool KbsClient::TokenUsable() const {
  if (token_.empty()) {
    return false;
  }
  return !summary_.expires ||
         std::chrono::system_clock::now() + kTokenExpiryMargin < *summary_.expires;
}

void KbsClient::KeepCookies(const HttpResponse& response) {
  for (const std::string& set_cookie : response.set_cookies) {
    std::string_view pair(set_cookie);
    pair = pair.substr(0, pair.find(';'));
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      continue;
    }
    cookies_[std::string(pair.substr(0, eq))] = std::string(pair.substr(eq + 1));
  }
}

std::string KbsClient::CookieHeader() const {
  std::string header;
  for (const auto& [name, value] : cookies_) {
    header += (header.empty() ? "Cookie: " : "; ") + name + "=" + value;
  }
  return header;
}

Result<HttpResponse> KbsClient::Post(const std::string& path, const Json& body) {
  HttpRequest request;
  request.method = "POST";
  request.url = options_.base_url + path;
  request.headers = {"Content-Type: application/json", "Accept: application/json"};
  if (!cookies_.empty()) {
    request.headers.push_back(CookieHeader());
  }
  request.body = DumpJson(body);
  return transport_->Send(request);
}

Status KbsClient::AttestWithVersion(const std::string& version, bool gpu_inline,
                                    std::optional<std::string>* demanded_version,
                                    bool* rejected_at_attest) {
  CACHEFS_ASSIGN_OR_RETURN(ProtocolLayout layout, LayoutOf(version));
  TeeKeyAlgorithm algorithm =
      layout.legacy_0_1 ? TeeKeyAlgorithm::kRsa1_5 : TeeKeyAlgorithm::kEcdhEsA256kwP256;
  if (!key_ || key_->algorithm() != algorithm) {
    CACHEFS_ASSIGN_OR_RETURN(TeeKeyPair key, TeeKeyPair::Generate(algorithm));
    key_.emplace(std::move(key));
  }
  cookies_.clear();
  token_.clear();
  Attester& primary = *attesters_.primary;

  CACHEFS_ASSIGN_OR_RETURN(
      HttpResponse auth,
      Post("/kbs/v0/auth", BuildAuthRequest(version, primary.tee(), options_.trustee_policy)));
  if (auth.status != 200) {
    KbsErrorInfo info = ParseKbsError(auth.body);
    if (MentionsVersion(info.detail)) {
      *demanded_version = ExpectedVersionFromDetail(info.detail);
    }
    return KbsHttpError(auth, "/auth");
  }
  KeepCookies(auth);
  CACHEFS_ASSIGN_OR_RETURN(Challenge challenge, ParseChallenge(auth.body));
  const Json& jwk = key_->public_jwk();

  // Device evidence first: its serialised map is part of the primary runtime data (§1.6).
  bool inline_devices = gpu_inline || !layout.runtime_data_object;
  std::string additional;
  std::vector<uint8_t> digest;
  if (layout.runtime_data_object) {
    if (!inline_devices && !attesters_.devices.empty()) {
      std::vector<uint8_t> device_digest =
          Hash(challenge.hash, DeviceRuntimeData(challenge.nonce, jwk));
      Json devices = Json::object();
      for (auto& device : attesters_.devices) {
        CACHEFS_ASSIGN_OR_RETURN(devices[device->tee()], device->Evidence(device_digest));
      }
      additional = DumpJson(devices);
    }
    digest = Hash(challenge.hash, PrimaryRuntimeData(additional, challenge.nonce, jwk));
  } else {
    digest = Hash(challenge.hash, DeviceRuntimeData(challenge.nonce, jwk));
  }
  CACHEFS_ASSIGN_OR_RETURN(Json evidence, primary.Evidence(digest, inline_devices));

  CACHEFS_ASSIGN_OR_RETURN(
      HttpResponse attest,
      Post("/kbs/v0/attest", BuildAttestation(layout, challenge.nonce, jwk, evidence, additional)));
  if (attest.status != 200) {
    Error error = KbsHttpError(attest, "/attest");
    *rejected_at_attest = error.code() == Errc::kPermissionDenied;
    return error;
  }
  KeepCookies(attest);
  CACHEFS_ASSIGN_OR_RETURN(token_, ParseAttestReply(attest.body));

  summary_ = AttestationSummary{};
  summary_.protocol_version = version;
  summary_.tee = primary.tee();
  summary_.gpu_inline = inline_devices && primary.has_inline_devices();
  summary_.attested_at = std::chrono::system_clock::now();
  auto claims = UnverifiedJwtClaims(token_);
  if (claims) {
    const Json* exp = FindMember(*claims, "exp");
    if (exp != nullptr && exp->is_number()) {
      summary_.expires =
          std::chrono::system_clock::time_point(std::chrono::seconds(exp->get<int64_t>()));
      if (*summary_.expires <= std::chrono::system_clock::now()) {
        CACHEFS_LOG(kWarn, "keyagent")
            << "Trustee issued an already expired token (clock skew between guest and Trustee?)";
      }
    }
    summary_.token_claims = std::move(*claims);
  } else {
    CACHEFS_LOG(kWarn, "keyagent").Kv("error", claims.error().message())
        << "cannot read the token's expiry; it is reused until Trustee rejects it";
  }
  CACHEFS_LOG(kInfo, "keyagent")
          .Kv("trustee", RedactUrl(options_.base_url))
          .Kv("protocol", version)
          .Kv("attester", attesters_.Describe())
      << "attested to Trustee";
  return Status::Ok();
}

Status KbsClient::Attest() {
  if (TokenUsable()) {
    return Status::Ok();
  }
  if (!attesters_.primary) {
    return Error(Errc::kInternal, "KBS client without an attester");
  }
  std::string version =
      options_.protocol_version.empty() ? std::string(kKbsProtocol040) : options_.protocol_version;
  bool gpu_inline = options_.gpu_mode == GpuEvidenceMode::kInline || gpu_inline_learned_;
  bool switched_version = false;
  bool tried_inline = gpu_inline;
  while (true) {
    std::optional<std::string> demanded;
    bool rejected_at_attest = false;
    Status attested = AttestWithVersion(version, gpu_inline, &demanded, &rejected_at_attest);
    if (attested) {
      gpu_inline_learned_ = gpu_inline;
      return Status::Ok();
    }
    if (demanded && *demanded != version && !switched_version &&
        options_.protocol_version.empty() && LayoutOf(*demanded)) {
      CACHEFS_LOG(kInfo, "keyagent").Kv("from", version).Kv("to", *demanded)
          << "Trustee speaks an older KBS protocol; switching";
      version = *demanded;
      switched_version = true;
      continue;
    }
    if (rejected_at_attest && !tried_inline && options_.gpu_mode == GpuEvidenceMode::kAuto &&
        !attesters_.devices.empty() && attesters_.primary->has_inline_devices()) {
      CACHEFS_LOG(kWarn, "keyagent").Kv("error", attested.error().message())
          << "Trustee rejected GPU evidence as additional evidence; retrying with it inside the "
             "TDX evidence (openanolis Trustee)";
      gpu_inline = true;
      tried_inline = true;
      continue;
    }
    return attested.error();
  }
}

Result<SecretBytes> KbsClient::GetResource(const ResourceUri& resource) {
  std::string stage = "resource " + resource.Display();
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = false;
    if (!TokenUsable()) {
      token_.clear();
      CACHEFS_RETURN_IF_ERROR(Attest());
      fresh = true;
    }
    HttpRequest request;
    request.url = options_.base_url + resource.RequestPath();
    request.headers = {"Accept: application/json", "Authorization: Bearer " + token_};
    if (!cookies_.empty()) {
      request.headers.push_back(CookieHeader());
    }
    CACHEFS_ASSIGN_OR_RETURN(HttpResponse response, transport_->Send(request));
    if (response.status == 200) {
      CACHEFS_ASSIGN_OR_RETURN(Json jwe, ParseJson(response.body, "Trustee resource reply"));
      auto secret = key_->Decrypt(jwe);
      if (!secret) {
        return secret.error().WithContext(stage);
      }
      CACHEFS_LOG(kInfo, "keyagent").Kv("resource", resource.Display())
          << "Trustee released the resource";
      return secret;
    }
    Error error = KbsHttpError(response, stage);
    KbsErrorInfo info = ParseKbsError(response.body);
    bool token_problem = response.status == 401 && info.variant != "PolicyDeny" &&
                         info.variant != "PluginInternalError";
    if (token_problem && !fresh) {
      // A cached token Trustee no longer accepts (restart, key rotation): attest once more.
      CACHEFS_LOG(kInfo, "keyagent").Kv("reason", error.message())
          << "cached Trustee token rejected; attesting again";
      token_.clear();
      continue;
    }
    return error;
  }
  return Error(Errc::kPermissionDenied, stage + ": Trustee rejected a freshly issued token");
}

}  // namespace cachefs::keyagent
