#pragma once

// Parsers for what a TDX guest produces: the Intel DCAP quote (v4 and v5, kbs-protocol.md §3.3),
// the 1024-byte TDREPORT of TDX_CMD_GET_REPORT0, and the CC event log (CCEL) headers. They read
// untrusted bytes with bounds checks only; signatures and collateral are Trustee's business.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"

namespace cachefs::keyagent {

using Measurement = std::array<uint8_t, 48>;

// The TD's own measurements (TDINFO), laid out alike in a quote's TD report body and in
// TDREPORT.
struct TdInfo {
  std::array<uint8_t, 8> td_attributes{};
  std::array<uint8_t, 8> xfam{};
  Measurement mr_td{};
  Measurement mr_config_id{};
  Measurement mr_owner{};
  Measurement mr_owner_config{};
  std::array<Measurement, 4> rtmr{};

  bool debug() const { return (td_attributes[0] & 1) != 0; }
};

struct TdxQuote {
  uint16_t version = 0;       // 4 or 5
  uint16_t att_key_type = 0;  // 2 = ECDSA-256 (P-256)
  uint32_t tee_type = 0;      // 0x81 = TDX
  std::array<uint8_t, 16> qe_vendor_id{};
  std::array<uint8_t, 20> user_data{};
  uint16_t body_type = 2;  // 2 = TDX 1.0 body (all v4 quotes), 3 = TDX 1.5 body
  std::array<uint8_t, 16> tee_tcb_svn{};
  Measurement mr_seam{};
  Measurement mrsigner_seam{};
  std::array<uint8_t, 8> seam_attributes{};
  TdInfo td;
  std::array<uint8_t, 64> report_data{};
  std::array<uint8_t, 16> tee_tcb_svn2{};  // TDX 1.5 body only
  Measurement mr_servicetd{};              // TDX 1.5 body only
  uint32_t signature_data_len = 0;
  size_t used_bytes = 0;  // header + body + signature data; trailing padding is ignored

  bool intel_qe() const;
};

// Parses a DCAP TDX quote. Trailing bytes after the signature data (zero padding, as some
// providers return) are allowed. kCorrupt on truncation or a wrong version/TEE type.
Result<TdxQuote> ParseTdxQuote(std::span<const uint8_t> quote);

// TDREPORT (TDX module ABI): REPORTMACSTRUCT (256 B) then TDINFO at 512.
struct TdReport {
  std::array<uint8_t, 64> report_data{};  // REPORTMACSTRUCT offset 128
  TdInfo td;                              // offset 512
};
inline constexpr size_t kTdReportSize = 1024;
Result<TdReport> ParseTdReport(std::span<const uint8_t> report);

// Summary of a TCG2 crypto-agile event log as found in the ACPI CCEL data area.
struct EventLogSummary {
  size_t events = 0;                 // records before the terminator or padding
  size_t used_bytes = 0;             // bytes those records take
  std::vector<uint16_t> algorithms;  // TPM_ALG_IDs from the Spec ID event (0x0c = SHA-384)
};
// kCorrupt when the log does not start with a valid "Spec ID Event03" header.
Result<EventLogSummary> SummarizeEventLog(std::span<const uint8_t> log);

// The ACPI CCEL table (/sys/firmware/acpi/tables/CCEL): where firmware put the event log.
struct CcelTable {
  uint64_t log_area_min_length = 0;  // LAML
  uint64_t log_area_start = 0;       // LASA (guest physical address)
};
Result<CcelTable> ParseCcelTable(std::span<const uint8_t> table);

}  // namespace cachefs::keyagent
