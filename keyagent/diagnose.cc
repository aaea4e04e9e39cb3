#include "keyagent/diagnose.h"

#include <array>

#include "keyagent/attester.h"
#include "keyagent/encoding.h"
#include "keyagent/kbs_client.h"
#include "keyagent/nvidia_gpu.h"
#include "keyagent/tdx_attester.h"
#include "keyagent/tdx_quote.h"
#include "keyagent/tee_detect.h"

namespace cachefs::keyagent {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitGeneric = 1;
constexpr int kExitDenied = 12;

void PrintTdx(const TeeEnvironment& env, std::ostream& out) {
  if (!env.in_tdx() && !env.configfs_tsm) {
    out << "tdx quote: not available (not a TDX guest)\n";
    return;
  }
  TdxPaths paths;
  std::array<uint8_t, kTdxReportDataSize> zero{};
  auto quote = GetTdxQuote(paths, zero);
  if (!quote) {
    out << "tdx quote: FAILED: " << quote.error().message() << "\n";
    return;
  }
  auto parsed = ParseTdxQuote(quote->quote);
  if (!parsed) {
    out << "tdx quote: via " << quote->method << ", " << quote->quote.size()
        << " bytes, unparseable: " << parsed.error().message() << "\n";
    return;
  }
  out << "tdx quote: via " << quote->method << ", version " << parsed->version << ", "
      << quote->quote.size() << " bytes, QE vendor "
      << (parsed->intel_qe() ? "Intel" : HexEncode(parsed->qe_vendor_id)) << "\n";
  out << "  mr_td:     " << HexEncode(parsed->td.mr_td) << "\n";
  for (size_t i = 0; i < parsed->td.rtmr.size(); ++i) {
    out << "  rtmr_" << i << ":    " << HexEncode(parsed->td.rtmr[i]) << "\n";
  }
  out << "  td debug:  " << (parsed->td.debug() ? "ON (Trustee policies reject debug TDs)" : "off")
      << "\n";
  auto log = ReadCcEventLog(paths);
  if (!log) {
    out << "cc event log: not available: " << log.error().message() << "\n";
    return;
  }
  auto summary = SummarizeEventLog(*log);
  if (!summary) {
    out << "cc event log: " << log->size() << " bytes, unparseable: " << summary.error().message()
        << "\n";
    return;
  }
  out << "cc event log: " << log->size() << " bytes, " << summary->events << " events\n";
}

void PrintGpu(std::ostream& out) {
  auto gpu = NvidiaGpu::Open();
  if (!gpu) {
    out << "nvidia gpu: " << gpu.error().message() << "\n";
    return;
  }
  out << "nvidia gpu: " << (*gpu)->Describe() << "\n";
}

void PrintClaims(const Json& claims, std::ostream& out) {
  const Json* submods = FindMember(claims, "submods");
  if (submods == nullptr || !submods->is_object()) {
    return;
  }
  for (const auto& [name, submod] : submods->items()) {
    const std::string* status = FindString(submod, "ear.status");
    out << "  " << name << ": " << (status != nullptr ? *status : "(no ear.status)") << "\n";
  }
}

}  // namespace

int RunAttestDiagnostic(const KeySourceOptions& options, std::ostream& out) {
  TeeEnvironment env = DetectTee();
  out << "tee: " << env.Describe() << "\n";
  PrintTdx(env, out);
  PrintGpu(out);

  AttesterConfig config;
  config.spec = options.attester;
  config.allow_non_tee = options.allow_non_tee;
  auto attesters = MakeAttesters(config);
  if (!attesters) {
    out << "attester " << options.attester << ": " << attesters.error().message() << "\n";
    return attesters.error().code() == Errc::kPermissionDenied ? kExitDenied : kExitGeneric;
  }
  out << "attester " << options.attester << ": " << attesters->Describe() << "\n";
  if (options.trustee_url.empty()) {
    out << "trustee: not checked (no --trustee-url)\n";
    return kExitOk;
  }
  CurlOptions curl_options;
  curl_options.extra_ca_file = options.trustee_ca;
  auto transport = MakeCurlTransport(curl_options);
  if (!transport) {
    out << "trustee: " << transport.error().message() << "\n";
    return kExitGeneric;
  }
  KbsClientOptions client_options;
  client_options.base_url = options.trustee_url;
  client_options.trustee_policy = options.trustee_policy;
  client_options.protocol_version = options.kbs_protocol;
  if (options.gpu_evidence == "inline") {
    client_options.gpu_mode = GpuEvidenceMode::kInline;
  } else if (options.gpu_evidence == "additional") {
    client_options.gpu_mode = GpuEvidenceMode::kAdditional;
  }
  KbsClient client(client_options, std::move(*attesters), std::move(*transport));
  Status attested = client.Attest();
  if (!attested) {
    out << "trustee " << client.base_url() << ": attestation FAILED: " << attested.error().message()
        << "\n";
    return attested.error().code() == Errc::kPermissionDenied ? kExitDenied : kExitGeneric;
  }
  const AttestationSummary& summary = client.summary();
  out << "trustee " << client.base_url() << ": attestation accepted (KBS protocol "
      << summary.protocol_version << ", tee " << summary.tee
      << (summary.gpu_inline ? ", GPU evidence inline" : "") << ")\n";
  if (summary.expires) {
    auto left = std::chrono::duration_cast<std::chrono::seconds>(*summary.expires -
                                                                 std::chrono::system_clock::now());
    out << "  token expires in " << left.count() << " s\n";
  }
  PrintClaims(summary.token_claims, out);
  if (options.key_id.empty()) {
    out << "resource: not checked (no --key-id)\n";
    return kExitOk;
  }
  auto resource = ParseResourceUri(options.key_id);
  if (!resource) {
    out << "resource: " << resource.error().message() << "\n";
    return kExitGeneric;
  }
  auto secret = client.GetResource(*resource);
  if (!secret) {
    out << "resource " << resource->Display() << ": NOT released: " << secret.error().message()
        << "\n";
    return secret.error().code() == Errc::kPermissionDenied ? kExitDenied : kExitGeneric;
  }
  out << "resource " << resource->Display() << ": released (" << secret->size()
      << " bytes; content not shown)\n";
  return kExitOk;
}

}  // namespace cachefs::keyagent
