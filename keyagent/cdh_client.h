#pragma once

// A client of an already running Confidential Data Hub (guest-components CDH or Alibaba's
// Trustiflux), which attests and talks to Trustee itself. The CDH serves its API as ttrpc on a
// Unix socket (default unix:///run/confidential-containers/cdh.sock; its gRPC build listens on
// TCP 127.0.0.1:50000 instead, which --cdh-socket does not take). We speak ttrpc directly: the
// framing and the two messages involved are small, and decoding by hand keeps the secret in
// SecretBytes all the way (kbs-protocol.md §5.1-5.2).

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/secret_bytes.h"
#include "keyagent/kbs_protocol.h"

namespace cachefs::keyagent {

inline constexpr char kDefaultCdhSocket[] = "/run/confidential-containers/cdh.sock";

// api.GetResourceService/GetResource(ResourcePath = resource.KbsUri()) on `socket` (a path or a
// unix:// URI). Errors: kUnavailable when the CDH is not reachable, a CDH error status mapped to
// kNotFound / kPermissionDenied / kUnavailable by its text, kCorrupt on a malformed reply,
// kTimeout when no reply arrives within `timeout`.
Result<SecretBytes> CdhGetResource(const std::string& socket, const ResourceUri& resource,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(120));

// One ttrpc request frame (10-byte header + ttrpc.Request protobuf); exposed for tests.
std::vector<uint8_t> EncodeTtrpcRequest(uint32_t stream_id, std::string_view service,
                                        std::string_view method, std::span<const uint8_t> payload,
                                        int64_t timeout_nano);

// Decodes a ttrpc.Response protobuf carrying an api.GetResourceResponse into the resource bytes.
Result<SecretBytes> DecodeGetResourceResponse(std::span<const uint8_t> response);

}  // namespace cachefs::keyagent
