#pragma once

// NVIDIA GPU attestation evidence through NVML, loaded at run time so that cachefs runs (and
// builds) on machines without the NVIDIA driver (kbs-protocol.md §4).
//
// Thread safety: one NvidiaGpu per attestation flow; calls are not concurrent.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "keyagent/json_util.h"

namespace cachefs::keyagent {

inline constexpr size_t kGpuNonceSize = 32;

// One GPU's evidence for one nonce.
struct GpuReport {
  unsigned index = 0;
  std::string arch;  // "HOPPER", "BLACKWELL" or "UNKNOWN"
  std::string uuid;
  std::string name;
  std::string driver_version;
  std::string vbios_version;
  std::vector<uint8_t> report;             // SPDM GET_MEASUREMENTS request + signed response
  std::vector<uint8_t> cert_chain;         // NVML certChain (device identity chain)
  std::vector<uint8_t> attestation_chain;  // NVML attestationCertChain (signs the report)
};

class NvidiaGpu {
 public:
  // Loads `library` with dlopen, initialises NVML and checks that the system is in confidential
  // computing mode with at least one GPU. kUnsupported with a one-line reason when the library is
  // missing, no GPU is present or CC mode is off.
  static Result<std::unique_ptr<NvidiaGpu>> Open(const std::string& library = "libnvidia-ml.so.1");
  ~NvidiaGpu();
  NvidiaGpu(const NvidiaGpu&) = delete;
  NvidiaGpu& operator=(const NvidiaGpu&) = delete;

  unsigned device_count() const { return device_count_; }
  // "2 GPU(s), CC on, driver 550.54.15, GPUs ready" for diagnostics.
  std::string Describe() const;

  // Attestation reports of every GPU for `nonce`. Then sets the CC "GPUs ready" state if unset:
  // in CC mode CUDA refuses work until whoever attests the GPUs sets it.
  Result<std::vector<GpuReport>> Collect(std::span<const uint8_t, kGpuNonceSize> nonce);

  struct Api;  // resolved NVML entry points

 private:
  NvidiaGpu() = default;

  void* handle_ = nullptr;
  std::unique_ptr<Api> api_;
  unsigned device_count_ = 0;
  std::string driver_version_;
};

// Upstream Trustee's `nvidia` additional-evidence value:
// {"device_evidence_list":[{"arch","uuid","evidence":b64,"certificate":b64(PEM chain)}]}.
Json UpstreamGpuEvidence(const std::vector<GpuReport>& reports);
// openanolis Trustee's `gpu_evidence` member of the TDX evidence (Trustiflux shape, §4.3).
Json InlineGpuEvidence(const std::vector<GpuReport>& reports);

}  // namespace cachefs::keyagent
