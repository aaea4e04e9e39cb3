// Drives the key agent from the integration tests: `obtain` runs ObtainPassword and prints a
// SHA-256 of the password (never the password), `attest` runs the attest diagnostic.
//
//   keyagent_probe obtain|attest [--trustee-url U] [--key-id K] [--attester A]
//       [--insecure-allow-non-tee] [--cdh-socket P] [--passfile F] [--extpass C]
//       [--trustee-ca F] [--trustee-policy P] [--key-retries N] [--retry-delay-ms N]
//       [--gpu-evidence M] [--kbs-protocol V] [--log-level L]
//
// Output of obtain: "ok sha256=<hex> bytes=<n>" (exit 0) or "error <errc>: <message>" (exit 12
// for permission denied, 1 otherwise).

#include <openssl/sha.h>

#include <cstring>
#include <iostream>
#include <string>

#include "common/error.h"
#include "common/log.h"
#include "common/secret_bytes.h"
#include "keyagent/diagnose.h"
#include "keyagent/encoding.h"
#include "keyagent/key_source.h"

using cachefs::keyagent::KeySourceOptions;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: keyagent_probe obtain|attest [options]\n";
    return 2;
  }
  std::string mode = argv[1];
  KeySourceOptions options;
  cachefs::LogOptions log;
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--insecure-allow-non-tee") {
      options.allow_non_tee = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::cerr << "missing value for " << flag << "\n";
      return 2;
    }
    std::string value = argv[++i];
    if (flag == "--trustee-url") {
      options.trustee_url = value;
    } else if (flag == "--key-id") {
      options.key_id = value;
    } else if (flag == "--attester") {
      options.attester = value;
    } else if (flag == "--cdh-socket") {
      options.cdh_socket = value;
    } else if (flag == "--passfile") {
      options.passfile = value;
    } else if (flag == "--extpass") {
      options.extpass = value;
    } else if (flag == "--trustee-ca") {
      options.trustee_ca = value;
    } else if (flag == "--trustee-policy") {
      options.trustee_policy = value;
    } else if (flag == "--key-retries") {
      options.retries = std::stoi(value);
    } else if (flag == "--retry-delay-ms") {
      options.retry_base_delay = std::chrono::milliseconds(std::stoi(value));
    } else if (flag == "--gpu-evidence") {
      options.gpu_evidence = value;
    } else if (flag == "--kbs-protocol") {
      options.kbs_protocol = value;
    } else if (flag == "--log-level") {
      cachefs::ParseLogLevel(value, &log.min_level);
    } else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  cachefs::ConfigureLogging(log);
  cachefs::InitSecureHeap();
  if (mode == "attest") {
    return cachefs::keyagent::RunAttestDiagnostic(options, std::cout);
  }
  auto password = cachefs::keyagent::ObtainPassword(options);
  if (!password) {
    std::cout << "error " << cachefs::ErrcName(password.error().code()) << ": "
              << password.error().message() << std::endl;
    return password.error().code() == cachefs::Errc::kPermissionDenied ? 12 : 1;
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(password->data(), password->size(), digest);
  std::cout << "ok sha256=" << cachefs::keyagent::HexEncode(digest) << " bytes=" << password->size()
            << std::endl;
  return 0;
}
