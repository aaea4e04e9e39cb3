#pragma once

// Where the gocryptfs password comes from: a pass file or command in development, an already
// running Confidential Data Hub, or Trustee (KBS protocol) after attestation in production.

#include <chrono>
#include <string>

#include "common/error.h"
#include "common/secret_bytes.h"

namespace cachefs::keyagent {

struct KeySourceOptions {
  std::string passfile;  // first line of the file, as gocryptfs -passfile reads it
  std::string extpass;   // command whose first output line is the password
  std::string trustee_url;
  std::string key_id;          // kbs:///repo/type/tag or repo/type/tag
  std::string trustee_policy;  // opaque, passed through; logged only as a hash
  std::string attester = "auto";  // auto | tdx | tdx+nvidia | sample
  std::string cdh_socket;
  std::string trustee_ca;  // extra CA bundle for https Trustee URLs
  int retries = 5;
  std::chrono::milliseconds retry_base_delay{500};
  bool allow_non_tee = false;  // --insecure-allow-non-tee: permits the sample attester
};

// Describes the configured source for logs and status ("passfile /run/pw", "trustee
// http://kbs:8080 key default/aliyun/model-decryption-key"); never a secret.
std::string DescribeKeySource(const KeySourceOptions& options);

// Obtains the password. Exactly one source must be configured; errors name the source and the
// reason (Errc::kPermissionDenied for policy denial, kNotFound for a missing resource, ...).
Result<SecretBytes> ObtainPassword(const KeySourceOptions& options);

// Reads the first line of `path` (without its newline), as gocryptfs -passfile does: must be
// non-empty and at most 2048 bytes.
Result<SecretBytes> ReadPassFile(const std::string& path);

}  // namespace cachefs::keyagent
