#pragma once

// Where the gocryptfs password comes from: a pass file or command in development, an already
// running Confidential Data Hub, or Trustee (KBS protocol) after attestation in production.
//
// Whatever the source, the password is the resource's (or file's, or command output's) first
// line, exactly as `gocryptfs -passfile` would read the key file that Alibaba's CAI scripts write
// from `confidential-data-hub get-resource`. It exists only in SecretBytes; it is never logged or
// written anywhere.

#include <chrono>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/secret_bytes.h"

namespace cachefs::keyagent {

struct KeySourceOptions {
  std::string passfile;  // first line of the file, as gocryptfs -passfile reads it
  std::string extpass;   // command whose first output line is the password
  std::string trustee_url;
  std::string key_id;             // kbs:///repo/type/tag or repo/type/tag
  std::string trustee_policy;     // opaque, passed through; logged only as a hash
  std::string attester = "auto";  // auto | tdx | tdx+nvidia | sample | sample+sampledevice
  std::string cdh_socket;
  std::string trustee_ca;  // extra CA bundle for https Trustee URLs
  int retries = 5;         // retries after the first attempt while Trustee/CDH is unreachable
  std::chrono::milliseconds retry_base_delay{500};  // doubles per retry, capped at 30 s
  bool allow_non_tee = false;  // --insecure-allow-non-tee: permits the sample attester
  // Where NVIDIA GPU evidence goes: auto | additional (upstream Trustee) | inline (openanolis
  // Trustee, inside the TDX evidence). auto tries additional, then inline if Trustee rejects it.
  std::string gpu_evidence = "auto";
  // KBS protocol version to speak ("" = 0.4.0, falling back to what Trustee demands).
  std::string kbs_protocol;
};

// Describes the configured source for logs and status ("passfile /run/pw", "trustee
// http://kbs:8080 key default/aliyun/model-decryption-key"); never a secret (URL credentials are
// stripped, the policy appears only as a hash).
std::string DescribeKeySource(const KeySourceOptions& options);

// Obtains the password. Exactly one source must be configured; errors name the source and the
// reason (Errc::kPermissionDenied for policy denial or rejected evidence, kNotFound for a missing
// resource, kUnavailable when Trustee or the CDH stayed unreachable through all retries,
// kCorrupt for malformed replies, kInvalidArgument for bad options). A Trustee session (token and
// TEE key) is kept per Trustee URL and reused by later calls until the token expires.
// Blocks for up to the retry budget. Thread-safe.
Result<SecretBytes> ObtainPassword(const KeySourceOptions& options);

// What the last successful Trustee attestation for `options` produced, for status displays:
// no secrets. Nothing when the key did not come through attestation (pass file, extpass, CDH)
// or none succeeded yet.
struct AttestationState {
  std::string tee;               // e.g. "tdx", "sample"
  std::string protocol_version;  // KBS protocol spoken
  std::optional<std::chrono::system_clock::time_point> token_expires;
  std::chrono::system_clock::time_point attested_at;
};
std::optional<AttestationState> LastAttestation(const KeySourceOptions& options);

// Reads the first line of `path` (without its newline), as gocryptfs -passfile does: must be
// non-empty and at most 2048 bytes.
Result<SecretBytes> ReadPassFile(const std::string& path);

}  // namespace cachefs::keyagent
