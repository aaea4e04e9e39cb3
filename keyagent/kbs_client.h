#pragma once

// A client of one Trustee KBS: attests (RCAR handshake, kbs-protocol.md §1.2) and fetches
// resources sealed to its ephemeral TEE key.
//
// Protocol 0.4.0 first; when the server demands an older version in its mismatch error, the
// client switches to it by itself (0.2.0, 0.1.1, 0.1.0, with an RSA1_5 key for 0.1.x). The
// session cookie and the attestation token are kept and reused until the token expires (or
// Trustee rejects it, which triggers one fresh attestation).
//
// Thread-compatible: one thread at a time.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/secret_bytes.h"
#include "keyagent/attester.h"
#include "keyagent/http_client.h"
#include "keyagent/kbs_protocol.h"
#include "keyagent/tee_key.h"

namespace cachefs::keyagent {

// Where GPU evidence goes (§4): upstream Trustee takes it as additional evidence, openanolis
// Trustee (no `nvidia` verifier) inside the TDX evidence. `kAuto` sends it as additional evidence
// and, if Trustee rejects that attestation, retries once with it inline. Protocol 0.1.x/0.2.0
// has no additional evidence, so it is always inline there.
enum class GpuEvidenceMode { kAuto, kAdditional, kInline };

struct KbsClientOptions {
  std::string base_url;        // http(s)://host:port[/prefix]; "/kbs/v0/..." is appended
  std::string trustee_policy;  // opaque; sent in the /auth extra-params (0.4.0)
  GpuEvidenceMode gpu_mode = GpuEvidenceMode::kAuto;
  std::string protocol_version;  // "" negotiates; else exactly this version
};

// What the last successful attestation produced (for diagnostics; no secrets).
struct AttestationSummary {
  std::string protocol_version;
  std::string tee;
  bool gpu_inline = false;
  Json token_claims;  // unverified
  std::optional<std::chrono::system_clock::time_point> expires;
  std::chrono::system_clock::time_point attested_at;
};

class KbsClient {
 public:
  KbsClient(KbsClientOptions options, AttesterSet attesters,
            std::unique_ptr<HttpTransport> transport);

  // Attests now unless a token is cached and unexpired. Errors: kPermissionDenied (evidence
  // rejected), kUnavailable (Trustee unreachable or 5xx: retryable), kCorrupt (malformed reply),
  // kUnsupported (no common protocol version), attester errors.
  Status Attest();

  // Fetches and decrypts `resource`, attesting first when needed. Errors as Attest(), plus
  // kPermissionDenied for a policy denial or a rejected token, kNotFound for a missing resource,
  // kCorrupt for a reply that does not decrypt.
  Result<SecretBytes> GetResource(const ResourceUri& resource);

  // Valid after a successful Attest().
  const AttestationSummary& summary() const { return summary_; }
  // The Trustee URL without credentials, for messages.
  std::string base_url() const { return RedactUrl(options_.base_url); }

 private:
  // One RCAR handshake. On failure, `demanded_version` is the version Trustee asked for (if its
  // error named one) and `rejected_at_attest` tells whether /attest refused the evidence.
  Status AttestWithVersion(const std::string& version, bool gpu_inline,
                           std::optional<std::string>* demanded_version, bool* rejected_at_attest);
  Result<HttpResponse> Post(const std::string& path, const Json& body);
  void KeepCookies(const HttpResponse& response);
  std::string CookieHeader() const;
  bool TokenUsable() const;

  KbsClientOptions options_;
  AttesterSet attesters_;
  std::unique_ptr<HttpTransport> transport_;
  std::optional<TeeKeyPair> key_;
  std::map<std::string, std::string> cookies_;
  std::string token_;
  AttestationSummary summary_;
  bool gpu_inline_learned_ = false;  // auto mode found that Trustee wants GPU evidence inline
};

// An error for a non-2xx KBS reply at `stage` ("/auth", "/attest", "resource default/k/1"), with
// its own Errc per situation (§1.9): policy denial and rejected evidence or token ->
// kPermissionDenied, 404 or missing resource -> kNotFound, 5xx -> kUnavailable. One line.
Error KbsHttpError(const HttpResponse& response, std::string_view stage);

}  // namespace cachefs::keyagent
