#pragma once

// `cachefsctl attest`: what evidence this machine can produce and whether Trustee accepts it.

#include <ostream>

#include "keyagent/key_source.h"

namespace cachefs::keyagent {

// Prints, one fact per line, the TEE detection, a TDX quote summary (MRTD, RTMRs, debug flag)
// made with zero REPORTDATA, the CC event log, the NVIDIA GPU state, and the attester
// `options.attester` selects; then, when options.trustee_url is set, runs the KBS handshake
// (protocol version, accepted or rejected, token expiry and EAR status per submodule) and, when
// options.key_id is set too, whether the resource is released (its size only: the key is never
// printed). Returns a process exit code: 0 all good, 12 attestation or key denied, 1 anything
// else (style.md §6).
int RunAttestDiagnostic(const KeySourceOptions& options, std::ostream& out);

}  // namespace cachefs::keyagent
