#pragma once

// TDX quote generation on Linux (kbs-protocol.md §3.1): configfs-tsm (kernel >= 6.7), else the
// /dev/tdx_guest TDREPORT ioctl plus the host's Quote Generation Service over vsock; and the CC
// event log from ACPI.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "keyagent/attester.h"

namespace cachefs::keyagent {

inline constexpr size_t kTdxReportDataSize = 64;

struct TdxQuoteResult {
  std::vector<uint8_t> quote;
  std::string method;  // "configfs-tsm" or "tdx_guest ioctl + QGS vsock port N"
};

// A DCAP quote whose REPORTDATA is `report_data`. Tries configfs-tsm first; when it is absent,
// the ioctl + QGS path. Errors name every path tried (kUnsupported when none exists).
Result<TdxQuoteResult> GetTdxQuote(const TdxPaths& paths,
                                   std::span<const uint8_t, kTdxReportDataSize> report_data);

// Through configfs-tsm only: mkdir a report entry, check provider == tdx_guest, write inblob,
// read outblob, and retry when `generation` shows another writer raced us.
Result<std::vector<uint8_t>> GetQuoteConfigfsTsm(
    const std::string& tsm_report_dir, std::span<const uint8_t, kTdxReportDataSize> report_data);

// The QGS wire messages (Intel DCAP qgs_msg_lib, version 1.0) for a GET_QUOTE of `tdreport`, and
// the quote out of a GET_QUOTE response; exposed for tests.
std::vector<uint8_t> EncodeQgsGetQuoteRequest(std::span<const uint8_t> tdreport);
Result<std::vector<uint8_t>> DecodeQgsGetQuoteResponse(std::span<const uint8_t> message);

// Produces a quote for 64 bytes of REPORTDATA; GetTdxQuote on a live system.
using TdxQuoteProvider =
    std::function<Result<TdxQuoteResult>(std::span<const uint8_t, kTdxReportDataSize>)>;

// The `tdx` attester: evidence {"cc_eventlog": b64|null, "quote": b64} with REPORTDATA = the
// runtime-data digest zero-padded to 64 bytes, plus "gpu_evidence" (openanolis shape) when asked
// for inline devices and `gpu` is set. `quote_provider` defaults to GetTdxQuote(paths, ...);
// tests pass a stand-in because quotes need TDX hardware.
std::unique_ptr<Attester> MakeTdxAttester(TdxPaths paths, std::shared_ptr<NvidiaGpu> gpu,
                                          TdxQuoteProvider quote_provider = nullptr);

// The raw CC event log: the ACPI CCEL data file, else the log area the CCEL table points at in
// guest memory (as the upstream attestation agent reads it). kNotFound when neither exists.
Result<std::vector<uint8_t>> ReadCcEventLog(const TdxPaths& paths);

}  // namespace cachefs::keyagent
