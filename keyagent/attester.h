#pragma once

// Attesters produce the evidence that Trustee appraises: one primary (CPU) TEE and optional
// devices (GPUs) whose evidence is chained into the primary's report data (kbs-protocol.md §1.6).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "keyagent/json_util.h"

namespace cachefs::keyagent {

class NvidiaGpu;

// The CPU TEE. Not thread-safe; used by one attestation at a time.
class Attester {
 public:
  virtual ~Attester() = default;
  // The `tee` of the KBS Request: "tdx" or "sample".
  virtual std::string tee() const = 0;
  // Evidence whose report data commits to `digest` (the runtime-data hash, 32-64 bytes). With
  // `inline_devices`, device (GPU) evidence is embedded in the primary evidence, as openanolis
  // Trustee expects, bound to the first 32 bytes of the report data.
  virtual Result<Json> Evidence(std::span<const uint8_t> digest, bool inline_devices) = 0;
  // Whether Evidence(…, true) adds device evidence.
  virtual bool has_inline_devices() const { return false; }
  // One line for logs and diagnostics.
  virtual std::string Describe() const = 0;
};

// A device sent as upstream Trustee's additional evidence.
class DeviceAttester {
 public:
  virtual ~DeviceAttester() = default;
  // The key in the additional-evidence map: "nvidia" or "sampledevice".
  virtual std::string tee() const = 0;
  // Evidence bound to the device digest (NVIDIA: its first 32 bytes as the SPDM nonce).
  virtual Result<Json> Evidence(std::span<const uint8_t> digest) = 0;
  virtual std::string Describe() const = 0;
};

struct AttesterSet {
  std::unique_ptr<Attester> primary;
  std::vector<std::unique_ptr<DeviceAttester>> devices;
  // "tdx + nvidia (2 GPU(s), CC on)".
  std::string Describe() const;
};

// Where the TDX attester finds the kernel and firmware interfaces; tests point these elsewhere.
struct TdxPaths {
  std::string tsm_report = "/sys/kernel/config/tsm/report";
  std::string tdx_guest = "/dev/tdx_guest";
  std::string ccel_data = "/sys/firmware/acpi/tables/data/CCEL";
  std::string ccel_table = "/sys/firmware/acpi/tables/CCEL";
  std::string guest_memory = "/dev/mem";
  std::string qgs_config = "/etc/tdx-attest.conf";
};

struct AttesterConfig {
  // auto | tdx | tdx+nvidia | sample | sample+sampledevice
  std::string spec = "auto";
  // The sample attesters prove nothing and are refused unless this is set
  // (--insecure-allow-non-tee).
  bool allow_non_tee = false;
  TdxPaths tdx;
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string root;  // prefix for TEE detection ("" on a live system)
};

// Builds the attesters `config.spec` names. `auto` takes TDX when this is a TDX guest, adding the
// NVIDIA GPUs when NVML works and CC mode is on (else logs why not); outside a TEE it takes
// `sample` only with allow_non_tee. Fails with kPermissionDenied for a sample attester without
// allow_non_tee, kUnsupported when the named TEE or GPU is not available, kInvalidArgument for an
// unknown spec.
Result<AttesterSet> MakeAttesters(const AttesterConfig& config);

// `sample` evidence {"svn":"1","report_data":b64(digest)} and `sampledevice` {"svn":"2",...}.
// (The TDX attester's factory is in tdx_attester.h.)
std::unique_ptr<Attester> MakeSampleAttester();
std::unique_ptr<DeviceAttester> MakeSampleDeviceAttester();
std::unique_ptr<DeviceAttester> MakeNvidiaDeviceAttester(std::shared_ptr<NvidiaGpu> gpu);

}  // namespace cachefs::keyagent
