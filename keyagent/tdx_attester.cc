#include "keyagent/tdx_attester.h"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <openssl/rand.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/log.h"
#include "keyagent/encoding.h"
#include "keyagent/nvidia_gpu.h"
#include "keyagent/socket_io.h"
#include "keyagent/tdx_quote.h"

namespace cachefs::keyagent {
namespace {

constexpr size_t kMaxQuoteBytes = 1 << 20;
constexpr size_t kMaxEventLogBytes = 16 << 20;
constexpr int kTsmAttempts = 3;

// linux/tdx-guest.h (not shipped by Debian 12's linux-libc-dev).
struct TdxReportRequest {
  uint8_t reportdata[kTdxReportDataSize];
  uint8_t tdreport[kTdReportSize];
};
constexpr unsigned long kTdxCmdGetReport0 = _IOWR('T', 1, TdxReportRequest);

// Intel DCAP qgs_msg_lib constants.
constexpr uint16_t kQgsMajorVersion = 1;
constexpr uint16_t kQgsMinorVersion = 0;
constexpr uint32_t kQgsGetQuoteRequest = 0;
constexpr uint32_t kQgsGetQuoteResponse = 1;
constexpr size_t kQgsHeaderSize = 16;
constexpr unsigned kVsockHostCid = 2;  // VMADDR_CID_HOST

Result<std::vector<uint8_t>> ReadWholeFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Error::FromErrno(errno, path);
  }
  std::vector<uint8_t> out;
  uint8_t buffer[16384];
  while (true) {
    ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Error::FromErrno(errno, path);
    }
    if (n == 0) {
      return out;
    }
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return Error(Errc::kCorrupt, path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.insert(out.end(), buffer, buffer + n);
  }
}

Status WriteWholeFile(const std::string& path, std::span<const uint8_t> data) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Error::FromErrno(errno, path);
  }
  // configfs binary attributes take the whole blob in one write.
  ssize_t n = write(fd.get(), data.data(), data.size());
  if (n < 0) {
    return Error::FromErrno(errno, path);
  }
  if (static_cast<size_t>(n) != data.size()) {
    return Error(Errc::kIo, path + ": short write");
  }
  return Status::Ok();
}

std::string Trim(std::vector<uint8_t> bytes) {
  std::string text(bytes.begin(), bytes.end());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\0')) {
    text.pop_back();
  }
  return text;
}

Result<std::vector<uint8_t>> TsmAttempt(const std::string& entry,
                                        std::span<const uint8_t, kTdxReportDataSize> report_data) {
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> provider_raw,
                           ReadWholeFile(entry + "/provider", 64));
  std::string provider = Trim(std::move(provider_raw));
  if (provider != "tdx_guest") {
    return Error(Errc::kUnsupported,
                 "configfs-tsm provider is \"" + provider + "\", not tdx_guest");
  }
  CACHEFS_RETURN_IF_ERROR(WriteWholeFile(entry + "/inblob", report_data));
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> quote,
                           ReadWholeFile(entry + "/outblob", kMaxQuoteBytes));
  CACHEFS_ASSIGN_OR_RETURN(std::vector<uint8_t> generation_raw,
                           ReadWholeFile(entry + "/generation", 32));
  std::string generation = Trim(std::move(generation_raw));
  if (generation != "1") {
    // Someone else wrote inblob between our write and read: the quote may not be ours.
    return Error(Errc::kUnavailable, "configfs-tsm report entry was written concurrently");
  }
  if (quote.empty()) {
    return Error(Errc::kIo, "configfs-tsm returned an empty quote");
  }
  return quote;
}

Result<int> QgsPort(const std::string& config_path) {
  std::ifstream in(config_path);
  if (!in) {
    return Error(Errc::kNotFound, config_path + " not found (no QGS vsock port configured)");
  }
  std::string line;
  while (std::getline(in, line)) {
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') {
      continue;
    }
    if (line.compare(start, 5, "port=") == 0) {
      int port = std::atoi(line.c_str() + start + 5);
      if (port > 0 && port < 65536) {
        return port;
      }
    }
  }
  return Error(Errc::kNotFound, config_path + " has no port=N line");
}

const std::string kQgsPeer = "the quote generation service (QGS)";

void PutLe(std::vector<uint8_t>* out, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) {
    out->push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
}

uint32_t GetLe32(std::span<const uint8_t> in, size_t at) {
  return static_cast<uint32_t>(in[at]) | static_cast<uint32_t>(in[at + 1]) << 8 |
         static_cast<uint32_t>(in[at + 2]) << 16 | static_cast<uint32_t>(in[at + 3]) << 24;
}

Result<std::vector<uint8_t>> QuoteViaIoctlAndQgs(
    const TdxPaths& paths, std::span<const uint8_t, kTdxReportDataSize> report_data, int* port) {
  UniqueFd dev(open(paths.tdx_guest.c_str(), O_RDWR | O_CLOEXEC));
  if (dev.get() < 0) {
    return Error::FromErrno(errno, paths.tdx_guest);
  }
  TdxReportRequest request{};
  std::memcpy(request.reportdata, report_data.data(), kTdxReportDataSize);
  if (ioctl(dev.get(), kTdxCmdGetReport0, &request) != 0) {
    return Error::FromErrno(errno, paths.tdx_guest + " TDX_CMD_GET_REPORT0");
  }
  // The quote is only as good as the TDREPORT under it: make sure it binds our report data.
  CACHEFS_ASSIGN_OR_RETURN(TdReport report, ParseTdReport(request.tdreport));
  if (!std::equal(report.report_data.begin(), report.report_data.end(), report_data.begin())) {
    return Error(Errc::kCorrupt, "TDREPORT does not carry the requested REPORTDATA");
  }
  CACHEFS_ASSIGN_OR_RETURN(*port, QgsPort(paths.qgs_config));
  UniqueFd sock(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) {
    return Error::FromErrno(errno, "vsock socket");
  }
  timeval timeout{.tv_sec = 60, .tv_usec = 0};
  setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = kVsockHostCid;
  addr.svm_port = static_cast<unsigned>(*port);
  // sockaddr_vm is the vsock member of the sockaddr family; connect() takes the generic type.
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error::FromErrno(errno, "connect to QGS on vsock port " + std::to_string(*port));
  }
  std::vector<uint8_t> message = EncodeQgsGetQuoteRequest(request.tdreport);
  uint32_t size = static_cast<uint32_t>(message.size());
  uint8_t prefix[4] = {static_cast<uint8_t>(size >> 24), static_cast<uint8_t>(size >> 16),
                       static_cast<uint8_t>(size >> 8), static_cast<uint8_t>(size)};
  CACHEFS_RETURN_IF_ERROR(SendAll(sock.get(), prefix, kQgsPeer));
  CACHEFS_RETURN_IF_ERROR(SendAll(sock.get(), message, kQgsPeer));
  CACHEFS_RETURN_IF_ERROR(RecvAll(sock.get(), prefix, kQgsPeer));
  size_t reply_size = static_cast<size_t>(prefix[0]) << 24 | static_cast<size_t>(prefix[1]) << 16 |
                      static_cast<size_t>(prefix[2]) << 8 | prefix[3];
  if (reply_size < kQgsHeaderSize || reply_size > kMaxQuoteBytes) {
    return Error(Errc::kCorrupt, "QGS reply has an impossible size");
  }
  std::vector<uint8_t> reply(reply_size);
  CACHEFS_RETURN_IF_ERROR(RecvAll(sock.get(), reply, kQgsPeer));
  return DecodeQgsGetQuoteResponse(reply);
}

}  // namespace

std::vector<uint8_t> EncodeQgsGetQuoteRequest(std::span<const uint8_t> tdreport) {
  std::vector<uint8_t> out;
  uint32_t total = static_cast<uint32_t>(kQgsHeaderSize + 8 + tdreport.size());
  PutLe(&out, kQgsMajorVersion, 2);
  PutLe(&out, kQgsMinorVersion, 2);
  PutLe(&out, kQgsGetQuoteRequest, 4);
  PutLe(&out, total, 4);
  PutLe(&out, 0, 4);  // error_code
  PutLe(&out, tdreport.size(), 4);
  PutLe(&out, 0, 4);  // id_list_size: let QGS pick the quoting enclave
  out.insert(out.end(), tdreport.begin(), tdreport.end());
  return out;
}

Result<std::vector<uint8_t>> DecodeQgsGetQuoteResponse(std::span<const uint8_t> message) {
  if (message.size() < kQgsHeaderSize + 8) {
    return Error(Errc::kCorrupt, "QGS reply too short");
  }
  uint16_t major = static_cast<uint16_t>(message[0] | message[1] << 8);
  uint32_t type = GetLe32(message, 4);
  uint32_t size = GetLe32(message, 8);
  uint32_t error_code = GetLe32(message, 12);
  if (major != kQgsMajorVersion || type != kQgsGetQuoteResponse || size != message.size()) {
    return Error(Errc::kCorrupt, "QGS reply is not a version 1 GET_QUOTE response");
  }
  if (error_code != 0) {
    return Error(Errc::kUnavailable,
                 "QGS could not produce a quote (error " + std::to_string(error_code) + ")");
  }
  uint64_t id_size = GetLe32(message, 16);
  uint64_t quote_size = GetLe32(message, 20);
  size_t start = kQgsHeaderSize + 8;
  if (start + id_size + quote_size > message.size() || quote_size == 0) {
    return Error(Errc::kCorrupt, "QGS reply sizes exceed the message");
  }
  auto quote = message.subspan(start + id_size, quote_size);
  return std::vector<uint8_t>(quote.begin(), quote.end());
}

Result<std::vector<uint8_t>> GetQuoteConfigfsTsm(
    const std::string& tsm_report_dir, std::span<const uint8_t, kTdxReportDataSize> report_data) {
  Error last(Errc::kUnavailable, "configfs-tsm not tried");
  for (int attempt = 0; attempt < kTsmAttempts; ++attempt) {
    uint8_t id[8];
    RAND_bytes(id, sizeof(id));
    std::string entry = tsm_report_dir + "/cachefs-" + HexEncode(id);
    if (mkdir(entry.c_str(), 0700) != 0) {
      return Error::FromErrno(errno, "configfs-tsm mkdir " + entry);
    }
    Result<std::vector<uint8_t>> quote = TsmAttempt(entry, report_data);
    if (rmdir(entry.c_str()) != 0) {
      CACHEFS_LOG(kWarn, "keyagent").Kv("entry", entry) << "could not remove configfs-tsm entry";
    }
    if (quote || quote.error().code() != Errc::kUnavailable) {
      return quote;
    }
    last = quote.error();
  }
  return last;
}

Result<TdxQuoteResult> GetTdxQuote(const TdxPaths& paths,
                                   std::span<const uint8_t, kTdxReportDataSize> report_data) {
  struct stat st;
  if (stat(paths.tsm_report.c_str(), &st) == 0) {
    auto quote = GetQuoteConfigfsTsm(paths.tsm_report, report_data);
    if (!quote) {
      return quote.error().WithContext("TDX quote via configfs-tsm");
    }
    return TdxQuoteResult{std::move(*quote), "configfs-tsm"};
  }
  if (stat(paths.tdx_guest.c_str(), &st) != 0) {
    return Error(Errc::kUnsupported, "no TDX quote interface: neither " + paths.tsm_report +
                                         " (configfs-tsm) nor " + paths.tdx_guest + " exists");
  }
  int port = 0;
  auto quote = QuoteViaIoctlAndQgs(paths, report_data, &port);
  if (!quote) {
    return quote.error().WithContext("TDX quote via " + paths.tdx_guest + " + QGS (" +
                                     paths.tsm_report + " absent)");
  }
  return TdxQuoteResult{std::move(*quote),
                        "tdx_guest ioctl + QGS vsock port " + std::to_string(port)};
}

Result<std::vector<uint8_t>> ReadCcEventLog(const TdxPaths& paths) {
  auto data = ReadWholeFile(paths.ccel_data, kMaxEventLogBytes);
  if (data || data.error().code() != Errc::kNotFound) {
    return data;
  }
  auto table_bytes = ReadWholeFile(paths.ccel_table, 4096);
  if (!table_bytes) {
    return Error(Errc::kNotFound,
                 "no CC event log (" + paths.ccel_data + " and " + paths.ccel_table + " absent)");
  }
  CACHEFS_ASSIGN_OR_RETURN(CcelTable table, ParseCcelTable(*table_bytes));
  if (table.log_area_min_length == 0 || table.log_area_min_length > kMaxEventLogBytes) {
    return Error(Errc::kCorrupt, "CCEL table gives an implausible log size");
  }
  UniqueFd mem(open(paths.guest_memory.c_str(), O_RDONLY | O_CLOEXEC));
  if (mem.get() < 0) {
    return Error::FromErrno(errno, paths.guest_memory);
  }
  std::vector<uint8_t> log(table.log_area_min_length);
  ssize_t n = pread(mem.get(), log.data(), log.size(), static_cast<off_t>(table.log_area_start));
  if (n <= 0) {
    return Error::FromErrno(n < 0 ? errno : EIO, "read CC event log from " + paths.guest_memory);
  }
  log.resize(static_cast<size_t>(n));
  return log;
}

namespace {

class TdxAttester : public Attester {
 public:
  TdxAttester(TdxPaths paths, std::shared_ptr<NvidiaGpu> gpu, TdxQuoteProvider quote_provider)
      : paths_(std::move(paths)),
        gpu_(std::move(gpu)),
        quote_provider_(std::move(quote_provider)) {}

  std::string tee() const override { return "tdx"; }
  bool has_inline_devices() const override { return gpu_ != nullptr; }
  std::string Describe() const override { return "tdx"; }

  Result<Json> Evidence(std::span<const uint8_t> digest, bool inline_devices) override {
    if (digest.size() > kTdxReportDataSize) {
      return Error(Errc::kInternal, "TDX report data longer than 64 bytes");
    }
    // REPORTDATA = digest zero-padded to 64 bytes (§1.6).
    std::array<uint8_t, kTdxReportDataSize> report_data{};
    std::memcpy(report_data.data(), digest.data(), digest.size());
    Json evidence = Json::object();
    if (inline_devices && gpu_ != nullptr) {
      // openanolis: the GPU nonce is the first 32 bytes of REPORTDATA (§4.3).
      auto reports =
          gpu_->Collect(std::span<const uint8_t, kGpuNonceSize>(report_data.data(), kGpuNonceSize));
      if (!reports) {
        return reports.error().WithContext("NVIDIA GPU evidence");
      }
      evidence["gpu_evidence"] = InlineGpuEvidence(*reports);
    }
    CACHEFS_ASSIGN_OR_RETURN(TdxQuoteResult quote, quote_provider_
                                                       ? quote_provider_(report_data)
                                                       : GetTdxQuote(paths_, report_data));
    CACHEFS_LOG(kDebug, "keyagent").Kv("method", quote.method).Kv("bytes", quote.quote.size())
        << "got TDX quote";
    evidence["quote"] = Base64Encode(quote.quote);
    auto log = ReadCcEventLog(paths_);
    if (log) {
      evidence["cc_eventlog"] = Base64Encode(*log);
    } else {
      // Trustee can still appraise the quote; RTMR-based policies will fail, so say why.
      CACHEFS_LOG(kWarn, "keyagent").Kv("error", log.error().message())
          << "no CC event log; sending the quote without it";
      evidence["cc_eventlog"] = nullptr;
    }
    return evidence;
  }

 private:
  TdxPaths paths_;
  std::shared_ptr<NvidiaGpu> gpu_;
  TdxQuoteProvider quote_provider_;
};

}  // namespace

std::unique_ptr<Attester> MakeTdxAttester(TdxPaths paths, std::shared_ptr<NvidiaGpu> gpu,
                                          TdxQuoteProvider quote_provider) {
  return std::make_unique<TdxAttester>(std::move(paths), std::move(gpu), std::move(quote_provider));
}

}  // namespace cachefs::keyagent
