#pragma once

// The KBS attestation protocol's messages (kbs-protocol.md §1), without any I/O: building the
// /auth Request and the /attest Attestation, parsing the Challenge, tokens and errors, and the
// runtime-data binding that ties the evidence to the nonce and the TEE key.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "keyagent/json_util.h"

namespace cachefs::keyagent {

// Protocol versions this client speaks, newest first; a server accepts exactly one.
inline constexpr std::string_view kKbsProtocol040 = "0.4.0";

// How a protocol version lays out its messages.
struct ProtocolLayout {
  // 0.4.0: runtime-data {nonce, tee-pubkey} + tee-evidence {primary_evidence,
  // additional_evidence}. Older: tee-pubkey at the top level, no additional evidence.
  bool runtime_data_object = true;
  // 0.1.x: tee-evidence is a JSON *string*, extra-params a string, and only RSA1_5 keys work.
  bool legacy_0_1 = false;
};
// The layout of `version`, or kUnsupported for a version this client does not implement
// (0.1.0, 0.1.1, 0.2.0 and 0.4.0 are implemented).
Result<ProtocolLayout> LayoutOf(std::string_view version);

// Parses the version a KBS demands from its version-mismatch error detail ("... expect =0.1.0
// while the request is 0.4.0"); nullopt when the detail names none.
std::optional<std::string> ExpectedVersionFromDetail(std::string_view detail);

enum class HashAlgorithm { kSha256, kSha384, kSha512, kSm3 };
// Case-insensitive "sha256", "sha384", "sha512", "sm3".
Result<HashAlgorithm> ParseHashAlgorithm(std::string_view name);
std::vector<uint8_t> Hash(HashAlgorithm algorithm, std::string_view data);

// The `Request` for POST /kbs/v0/auth. `trustee_policy`, when non-empty, is passed through
// opaquely in extra-params (0.4.0 only: 0.1.x servers require extra-params to be a string).
Json BuildAuthRequest(std::string_view version, std::string_view tee,
                      std::string_view trustee_policy);

struct Challenge {
  std::string nonce;
  HashAlgorithm hash = HashAlgorithm::kSha384;
};
// Parses the /auth reply. The hash is SHA-384 unless extra-params.selected-hash-algorithm says
// otherwise (as the reference client decides). kCorrupt on a malformed reply.
Result<Challenge> ParseChallenge(std::string_view body);

// Runtime data in RFC 8785 canonical form, the exact bytes that get hashed (§1.6):
// device (and protocol < 0.4.0): {"nonce","tee-pubkey"};
// primary (0.4.0): {"additional-evidence","nonce","tee-pubkey"}.
std::string DeviceRuntimeData(std::string_view nonce, const Json& tee_pubkey);
std::string PrimaryRuntimeData(std::string_view additional_evidence, std::string_view nonce,
                               const Json& tee_pubkey);

// The body for POST /kbs/v0/attest. `additional_evidence` is the serialised JSON map of device
// evidence ("" without devices) and must be the exact string that was hashed.
Json BuildAttestation(const ProtocolLayout& layout, std::string_view nonce, const Json& tee_pubkey,
                      const Json& primary_evidence, const std::string& additional_evidence);

// The token from the /attest reply {"token": "<JWT>"}.
Result<std::string> ParseAttestReply(std::string_view body);

// The unverified claims of a JWT (its payload); kCorrupt when it is not a JWS compact token. The
// client does not verify Trustee's token, it only reads exp/nbf, as the reference client does;
// Trustee verifies it on every resource request.
Result<Json> UnverifiedJwtClaims(std::string_view token);

// RFC 7807-style KBS error body {"type": ".../errors/<Variant>", "detail": "..."}.
struct KbsErrorInfo {
  std::string variant;  // "PolicyDeny", "TokenNotFound", ... ("" when the body is not one)
  std::string detail;   // one line, bounded
};
KbsErrorInfo ParseKbsError(std::string_view body);

// A resource id: kbs:///repo/type/tag, kbs://host:port/repo/type/tag (host ignored, as CDH
// does), kbs+<plugin>:///a/b?query, or plain repo/type/tag.
struct ResourceUri {
  std::string plugin = "resource";
  std::vector<std::string> segments;
  std::string query;  // without '?'
  // "/kbs/v0/<plugin>/<seg>/...[?query]", appended to the base URL.
  std::string RequestPath() const;
  // "repo/type/tag" (or "plugin:a/b"), for messages.
  std::string Display() const;
  // "kbs:///repo/type/tag[?query]", the form a Confidential Data Hub takes.
  std::string KbsUri() const;
};
// kInvalidArgument when the id is malformed; the `resource` plugin needs exactly three segments
// matching [A-Za-z0-9_-][A-Za-z0-9_.-]*.
Result<ResourceUri> ParseResourceUri(std::string_view key_id);

}  // namespace cachefs::keyagent
