#include "keyagent/nvidia_gpu.h"

#include <dlfcn.h>

#include <chrono>
#include <cstring>
#include <ctime>

#include "common/log.h"
#include "keyagent/encoding.h"

namespace cachefs::keyagent {

// NVML ABI subset (nvml.h, CUDA 12): layouts and constants must match the driver's library.
namespace {

using NvmlDevice = void*;
using NvmlReturn = int;
constexpr NvmlReturn kNvmlSuccess = 0;
constexpr unsigned kNvmlCcFeatureEnabled = 1;
constexpr unsigned kArchHopper = 9;
constexpr unsigned kArchBlackwell = 10;

struct NvmlConfComputeSystemState {
  unsigned environment;
  unsigned cc_feature;
  unsigned dev_tools_mode;
};

struct NvmlGpuCertificate {
  unsigned cert_chain_size;
  unsigned attestation_cert_chain_size;
  unsigned char cert_chain[0x1000];
  unsigned char attestation_cert_chain[0x1400];
};

struct NvmlGpuAttestationReport {
  unsigned is_cec_attestation_report_present;
  unsigned attestation_report_size;
  unsigned cec_attestation_report_size;
  unsigned char nonce[kGpuNonceSize];
  unsigned char attestation_report[0x2000];
  unsigned char cec_attestation_report[0x1000];
};

}  // namespace

struct NvidiaGpu::Api {
  NvmlReturn (*init)();
  NvmlReturn (*shutdown)();
  const char* (*error_string)(NvmlReturn);
  NvmlReturn (*get_cc_state)(NvmlConfComputeSystemState*);
  NvmlReturn (*get_count)(unsigned*);
  NvmlReturn (*get_handle)(unsigned, NvmlDevice*);
  NvmlReturn (*get_architecture)(NvmlDevice, unsigned*);
  NvmlReturn (*get_uuid)(NvmlDevice, char*, unsigned);
  NvmlReturn (*get_name)(NvmlDevice, char*, unsigned);
  NvmlReturn (*get_driver_version)(char*, unsigned);
  NvmlReturn (*get_vbios_version)(NvmlDevice, char*, unsigned);
  NvmlReturn (*get_certificate)(NvmlDevice, NvmlGpuCertificate*);
  NvmlReturn (*get_report)(NvmlDevice, NvmlGpuAttestationReport*);
  NvmlReturn (*get_ready_state)(unsigned*);
  NvmlReturn (*set_ready_state)(unsigned);

  std::string Explain(NvmlReturn code) const {
    const char* text = error_string != nullptr ? error_string(code) : nullptr;
    return text != nullptr ? text : "NVML error " + std::to_string(code);
  }
};

namespace {

template <typename Fn>
bool Resolve(void* handle, const char* name, Fn* out) {
  // dlsym returns an untyped object pointer; NVML exports these names as C functions with the
  // signatures declared in Api.
  *out = reinterpret_cast<Fn>(dlsym(handle, name));
  return *out != nullptr;
}

std::string StringFrom(NvmlReturn (*fn)(NvmlDevice, char*, unsigned), NvmlDevice device) {
  char buffer[96] = {};
  if (fn == nullptr || fn(device, buffer, sizeof(buffer) - 1) != kNvmlSuccess) {
    return "";
  }
  return buffer;
}

}  // namespace

Result<std::unique_ptr<NvidiaGpu>> NvidiaGpu::Open(const std::string& library) {
  std::unique_ptr<NvidiaGpu> gpu(new NvidiaGpu());
  gpu->handle_ = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (gpu->handle_ == nullptr) {
    return Error(Errc::kUnsupported, "NVIDIA GPU evidence unavailable: cannot load " + library +
                                         " (NVIDIA driver not installed?)");
  }
  gpu->api_ = std::make_unique<Api>();
  Api& api = *gpu->api_;
  void* h = gpu->handle_;
  bool ok = Resolve(h, "nvmlInit_v2", &api.init) && Resolve(h, "nvmlShutdown", &api.shutdown) &&
            Resolve(h, "nvmlDeviceGetCount_v2", &api.get_count) &&
            Resolve(h, "nvmlDeviceGetHandleByIndex_v2", &api.get_handle) &&
            Resolve(h, "nvmlDeviceGetUUID", &api.get_uuid) &&
            Resolve(h, "nvmlSystemGetConfComputeState", &api.get_cc_state) &&
            Resolve(h, "nvmlDeviceGetConfComputeGpuCertificate", &api.get_certificate) &&
            Resolve(h, "nvmlDeviceGetConfComputeGpuAttestationReport", &api.get_report);
  // Optional: descriptive fields and the ready state exist only in newer drivers.
  Resolve(h, "nvmlErrorString", &api.error_string);
  Resolve(h, "nvmlDeviceGetArchitecture", &api.get_architecture);
  Resolve(h, "nvmlDeviceGetName", &api.get_name);
  Resolve(h, "nvmlSystemGetDriverVersion", &api.get_driver_version);
  Resolve(h, "nvmlDeviceGetVbiosVersion", &api.get_vbios_version);
  Resolve(h, "nvmlSystemGetConfComputeGpusReadyState", &api.get_ready_state);
  Resolve(h, "nvmlSystemSetConfComputeGpusReadyState", &api.set_ready_state);
  if (!ok) {
    api.init = nullptr;  // nothing to shut down
    return Error(Errc::kUnsupported, "NVIDIA GPU evidence unavailable: " + library +
                                         " lacks the confidential-computing API (driver < 535?)");
  }
  NvmlReturn rc = api.init();
  if (rc != kNvmlSuccess) {
    api.init = nullptr;
    return Error(Errc::kUnsupported,
                 "NVIDIA GPU evidence unavailable: nvmlInit failed: " + api.Explain(rc));
  }
  NvmlConfComputeSystemState state{};
  rc = api.get_cc_state(&state);
  if (rc != kNvmlSuccess) {
    return Error(Errc::kUnsupported,
                 "NVIDIA GPU evidence unavailable: cannot read CC state: " + api.Explain(rc));
  }
  if (state.cc_feature != kNvmlCcFeatureEnabled) {
    return Error(Errc::kUnsupported,
                 "NVIDIA GPU evidence unavailable: confidential computing mode is off "
                 "(nvidia-smi conf-compute -srs / set CC mode on the host)");
  }
  rc = api.get_count(&gpu->device_count_);
  if (rc != kNvmlSuccess || gpu->device_count_ == 0) {
    return Error(Errc::kUnsupported, "NVIDIA GPU evidence unavailable: no GPU found");
  }
  char version[96] = {};
  if (api.get_driver_version != nullptr &&
      api.get_driver_version(version, sizeof(version) - 1) == kNvmlSuccess) {
    gpu->driver_version_ = version;
  }
  return gpu;
}

NvidiaGpu::~NvidiaGpu() {
  if (api_ && api_->init != nullptr) {
    api_->shutdown();
  }
  if (handle_ != nullptr) {
    dlclose(handle_);
  }
}

std::string NvidiaGpu::Describe() const {
  std::string out = std::to_string(device_count_) + " GPU(s), CC on";
  if (!driver_version_.empty()) {
    out += ", driver " + driver_version_;
  }
  unsigned ready = 0;
  if (api_->get_ready_state != nullptr && api_->get_ready_state(&ready) == kNvmlSuccess) {
    out += ready != 0 ? ", GPUs ready" : ", GPUs not yet ready";
  }
  return out;
}

Result<std::vector<GpuReport>> NvidiaGpu::Collect(std::span<const uint8_t, kGpuNonceSize> nonce) {
  std::vector<GpuReport> reports;
  // The NVML structs are 12-20 KiB: keep them off the stack.
  auto certificate = std::make_unique<NvmlGpuCertificate>();
  auto report = std::make_unique<NvmlGpuAttestationReport>();
  for (unsigned i = 0; i < device_count_; ++i) {
    NvmlDevice device = nullptr;
    NvmlReturn rc = api_->get_handle(i, &device);
    if (rc != kNvmlSuccess) {
      return Error(Errc::kIo, "GPU " + std::to_string(i) + ": " + api_->Explain(rc));
    }
    GpuReport out;
    out.index = i;
    out.uuid = StringFrom(api_->get_uuid, device);
    out.name = StringFrom(api_->get_name, device);
    out.vbios_version = StringFrom(api_->get_vbios_version, device);
    out.driver_version = driver_version_;
    unsigned arch = 0;
    out.arch = "UNKNOWN";
    if (api_->get_architecture != nullptr &&
        api_->get_architecture(device, &arch) == kNvmlSuccess) {
      out.arch = arch == kArchHopper ? "HOPPER" : arch == kArchBlackwell ? "BLACKWELL" : "UNKNOWN";
    }
    std::memset(certificate.get(), 0, sizeof(*certificate));
    rc = api_->get_certificate(device, certificate.get());
    if (rc != kNvmlSuccess) {
      return Error(Errc::kIo, "GPU " + std::to_string(i) +
                                  ": cannot read its certificate chain: " + api_->Explain(rc));
    }
    std::memset(report.get(), 0, sizeof(*report));
    std::memcpy(report->nonce, nonce.data(), kGpuNonceSize);
    rc = api_->get_report(device, report.get());
    if (rc != kNvmlSuccess) {
      return Error(Errc::kIo, "GPU " + std::to_string(i) +
                                  ": cannot get an attestation report: " + api_->Explain(rc));
    }
    if (report->attestation_report_size > sizeof(report->attestation_report) ||
        certificate->cert_chain_size > sizeof(certificate->cert_chain) ||
        certificate->attestation_cert_chain_size > sizeof(certificate->attestation_cert_chain)) {
      return Error(Errc::kCorrupt, "GPU " + std::to_string(i) + ": NVML returned bad sizes");
    }
    out.report.assign(report->attestation_report,
                      report->attestation_report + report->attestation_report_size);
    out.cert_chain.assign(certificate->cert_chain,
                          certificate->cert_chain + certificate->cert_chain_size);
    out.attestation_chain.assign(
        certificate->attestation_cert_chain,
        certificate->attestation_cert_chain + certificate->attestation_cert_chain_size);
    reports.push_back(std::move(out));
  }
  unsigned ready = 0;
  if (api_->get_ready_state != nullptr && api_->set_ready_state != nullptr &&
      api_->get_ready_state(&ready) == kNvmlSuccess && ready == 0) {
    NvmlReturn rc = api_->set_ready_state(1);
    if (rc == kNvmlSuccess) {
      CACHEFS_LOG(kInfo, "keyagent") << "set the NVIDIA CC GPUs ready state (CUDA may now run)";
    } else {
      CACHEFS_LOG(kWarn, "keyagent").Kv("error", api_->Explain(rc))
          << "could not set the NVIDIA CC GPUs ready state; CUDA work may be refused";
    }
  }
  return reports;
}

Json UpstreamGpuEvidence(const std::vector<GpuReport>& reports) {
  Json list = Json::array();
  for (const GpuReport& r : reports) {
    list.push_back({{"arch", r.arch},
                    {"uuid", r.uuid.empty() ? "unknown" : r.uuid},
                    {"evidence", Base64Encode(r.report)},
                    {"certificate", Base64Encode(r.attestation_chain)}});
  }
  return {{"device_evidence_list", std::move(list)}};
}

Json InlineGpuEvidence(const std::vector<GpuReport>& reports) {
  Json list = Json::array();
  for (const GpuReport& r : reports) {
    list.push_back({{"index", r.index},
                    {"uuid", r.uuid},
                    {"name", r.name},
                    {"driver_version", r.driver_version},
                    {"vbios_version", r.vbios_version},
                    {"attestation_report", Base64Encode(r.report)},
                    {"certificate", Base64Encode(r.cert_chain)},
                    {"cc_enabled", true}});
  }
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char when[32];
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return {{"evidence_list", std::move(list)}, {"collection_time", when}};
}

}  // namespace cachefs::keyagent
