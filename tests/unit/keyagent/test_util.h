#pragma once

// Shared helpers for the keyagent tests: fixture loading and a JWE sealer standing in for the
// Trustee side (the library itself only ever decrypts).

#include <cstdint>
#include <string>
#include <vector>

#include "keyagent/json_util.h"

namespace cachefs::keyagent::testing {

std::string FixturePath(const std::string& name);  // CACHEFS_FIXTURES_DIR/kbs/<name>
std::vector<uint8_t> ReadFixture(const std::string& name);
Json ReadJsonFixture(const std::string& name);
Json Vectors();  // kbs-v0.4.0-vectors.json

// Seals `plaintext` to the EC P-256 `tee_pubkey` JWK as Trustee does (ECDH-ES+A256KW, A256GCM,
// header order alg, enc, epk).
Json SealEcdhEs(const Json& tee_pubkey, const std::string& plaintext);

// Captures everything written to stderr (where the logger writes) while alive.
class StderrCapture {
 public:
  StderrCapture();
  ~StderrCapture();
  std::string Text();  // what was captured so far

 private:
  int saved_fd_ = -1;
  std::string path_;
};

}  // namespace cachefs::keyagent::testing
