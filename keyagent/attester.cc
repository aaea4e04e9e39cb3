#include "keyagent/attester.h"

#include "common/log.h"
#include "keyagent/encoding.h"
#include "keyagent/nvidia_gpu.h"
#include "keyagent/tdx_attester.h"
#include "keyagent/tee_detect.h"

namespace cachefs::keyagent {
namespace {

class SampleAttester : public Attester {
 public:
  std::string tee() const override { return "sample"; }
  std::string Describe() const override { return "sample (INSECURE: no hardware evidence)"; }
  Result<Json> Evidence(std::span<const uint8_t> digest, bool /*inline_devices*/) override {
    // The sample verifier compares the decoded report_data with the digest byte for byte.
    return Json{{"svn", "1"}, {"report_data", Base64Encode(digest)}};
  }
};

class SampleDeviceAttester : public DeviceAttester {
 public:
  std::string tee() const override { return "sampledevice"; }
  std::string Describe() const override { return "sampledevice"; }
  Result<Json> Evidence(std::span<const uint8_t> digest) override {
    return Json{{"svn", "2"}, {"report_data", Base64Encode(digest)}};
  }
};

class NvidiaDeviceAttester : public DeviceAttester {
 public:
  explicit NvidiaDeviceAttester(std::shared_ptr<NvidiaGpu> gpu) : gpu_(std::move(gpu)) {}
  std::string tee() const override { return "nvidia"; }
  std::string Describe() const override { return "nvidia (" + gpu_->Describe() + ")"; }
  Result<Json> Evidence(std::span<const uint8_t> digest) override {
    if (digest.size() < kGpuNonceSize) {
      return Error(Errc::kInternal, "device digest shorter than the 32-byte GPU nonce");
    }
    // Upstream binds each GPU through its SPDM nonce = first 32 bytes of the device digest.
    auto reports = gpu_->Collect(digest.first<kGpuNonceSize>());
    if (!reports) {
      return reports.error().WithContext("NVIDIA GPU evidence");
    }
    return UpstreamGpuEvidence(*reports);
  }

 private:
  std::shared_ptr<NvidiaGpu> gpu_;
};

Error SampleRefused() {
  return Error(Errc::kPermissionDenied,
               "the sample attester proves nothing and is for tests only; it needs "
               "--insecure-allow-non-tee");
}

}  // namespace

std::string AttesterSet::Describe() const {
  std::string out = primary ? primary->Describe() : "none";
  for (const auto& device : devices) {
    out += " + " + device->Describe();
  }
  return out;
}

std::unique_ptr<Attester> MakeSampleAttester() { return std::make_unique<SampleAttester>(); }

std::unique_ptr<DeviceAttester> MakeSampleDeviceAttester() {
  return std::make_unique<SampleDeviceAttester>();
}

std::unique_ptr<DeviceAttester> MakeNvidiaDeviceAttester(std::shared_ptr<NvidiaGpu> gpu) {
  return std::make_unique<NvidiaDeviceAttester>(std::move(gpu));
}

Result<AttesterSet> MakeAttesters(const AttesterConfig& config) {
  AttesterSet set;
  const std::string& spec = config.spec;
  if (spec == "sample" || spec == "sample+sampledevice") {
    if (!config.allow_non_tee) {
      return SampleRefused();
    }
    set.primary = MakeSampleAttester();
    if (spec == "sample+sampledevice") {
      set.devices.push_back(MakeSampleDeviceAttester());
    }
    return set;
  }
  if (spec != "auto" && spec != "tdx" && spec != "tdx+nvidia") {
    return Error(Errc::kInvalidArgument,
                 "unknown attester \"" + OneLine(spec, 40) + "\" (auto, tdx, tdx+nvidia, sample)");
  }
  TeeEnvironment env = DetectTee(config.root);
  if (!env.in_tdx() && !env.configfs_tsm) {
    if (spec == "auto" && config.allow_non_tee) {
      CACHEFS_LOG(kWarn, "keyagent")
          << "not a TEE; attesting with the INSECURE sample attester (--insecure-allow-non-tee)";
      set.primary = MakeSampleAttester();
      return set;
    }
    return Error(
        Errc::kUnsupported,
        "cannot attest: " + env.Describe() +
            (spec == "auto" ? "; for tests use --attester sample --insecure-allow-non-tee" : ""));
  }
  std::shared_ptr<NvidiaGpu> gpu;
  if (spec != "tdx") {
    auto opened = NvidiaGpu::Open(config.nvml_library);
    if (opened) {
      gpu = std::move(*opened);
    } else if (spec == "tdx+nvidia") {
      return opened.error();
    } else {
      CACHEFS_LOG(kInfo, "keyagent").Kv("reason", opened.error().message())
          << "attesting the CPU only";
    }
  }
  set.primary = MakeTdxAttester(config.tdx, gpu);
  if (gpu != nullptr) {
    set.devices.push_back(MakeNvidiaDeviceAttester(gpu));
  }
  return set;
}

}  // namespace cachefs::keyagent
