#include "keyagent/tdx_quote.h"

#include <algorithm>
#include <cstring>

namespace cachefs::keyagent {
namespace {

constexpr size_t kHeaderSize = 48;
constexpr size_t kBody10Size = 584;
constexpr size_t kBody15Size = 648;
constexpr uint32_t kTeeTypeTdx = 0x81;
constexpr uint8_t kIntelQeVendorId[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                          0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

// A bounds-checked little-endian reader; every failed read poisons it.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}
  bool ok() const { return ok_; }
  size_t offset() const { return offset_; }
  void Seek(size_t offset) {
    if (offset > data_.size()) {
      ok_ = false;
    }
    offset_ = std::min(offset, data_.size());
  }
  template <size_t N>
  void Bytes(std::array<uint8_t, N>* out) {
    if (!Need(N)) {
      return;
    }
    std::memcpy(out->data(), data_.data() + offset_, N);
    offset_ += N;
  }
  uint64_t Uint(size_t width) {
    if (!Need(width)) {
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) {
      v |= static_cast<uint64_t>(data_[offset_ + i]) << (8 * i);
    }
    offset_ += width;
    return v;
  }
  void Skip(size_t n) {
    if (Need(n)) {
      offset_ += n;
    }
  }

 private:
  bool Need(size_t n) {
    if (!ok_ || data_.size() - offset_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }

  std::span<const uint8_t> data_;
  size_t offset_ = 0;
  bool ok_ = true;
};

void ReadTdInfo(Reader* r, TdInfo* td) {
  r->Bytes(&td->td_attributes);
  r->Bytes(&td->xfam);
  r->Bytes(&td->mr_td);
  r->Bytes(&td->mr_config_id);
  r->Bytes(&td->mr_owner);
  r->Bytes(&td->mr_owner_config);
  for (Measurement& m : td->rtmr) {
    r->Bytes(&m);
  }
}

}  // namespace

bool TdxQuote::intel_qe() const {
  return std::equal(qe_vendor_id.begin(), qe_vendor_id.end(), std::begin(kIntelQeVendorId));
}

Result<TdxQuote> ParseTdxQuote(std::span<const uint8_t> quote) {
  TdxQuote q;
  Reader r(quote);
  q.version = static_cast<uint16_t>(r.Uint(2));
  q.att_key_type = static_cast<uint16_t>(r.Uint(2));
  q.tee_type = static_cast<uint32_t>(r.Uint(4));
  r.Skip(4);  // reserved
  r.Bytes(&q.qe_vendor_id);
  r.Bytes(&q.user_data);
  if (!r.ok()) {
    return Error(Errc::kCorrupt, "TDX quote shorter than its 48-byte header");
  }
  if (q.version != 4 && q.version != 5) {
    return Error(Errc::kUnsupported,
                 "TDX quote version " + std::to_string(q.version) + " (expected 4 or 5)");
  }
  if (q.tee_type != kTeeTypeTdx) {
    return Error(Errc::kCorrupt, "quote TEE type is not TDX");
  }
  size_t body_size = kBody10Size;
  if (q.version == 5) {
    q.body_type = static_cast<uint16_t>(r.Uint(2));
    uint32_t declared = static_cast<uint32_t>(r.Uint(4));
    if (q.body_type == 2) {
      body_size = kBody10Size;
    } else if (q.body_type == 3) {
      body_size = kBody15Size;
    } else {
      return Error(Errc::kUnsupported,
                   "TDX quote v5 body type " + std::to_string(q.body_type) + " (expected 2 or 3)");
    }
    if (declared != body_size) {
      return Error(Errc::kCorrupt, "TDX quote v5 body size does not match its type");
    }
  }
  size_t body_start = r.offset();
  r.Bytes(&q.tee_tcb_svn);
  r.Bytes(&q.mr_seam);
  r.Bytes(&q.mrsigner_seam);
  r.Bytes(&q.seam_attributes);
  ReadTdInfo(&r, &q.td);
  r.Bytes(&q.report_data);
  if (q.body_type == 3) {
    r.Bytes(&q.tee_tcb_svn2);
    r.Bytes(&q.mr_servicetd);
  }
  if (!r.ok() || r.offset() != body_start + body_size) {
    return Error(Errc::kCorrupt, "TDX quote truncated in its TD report body");
  }
  q.signature_data_len = static_cast<uint32_t>(r.Uint(4));
  r.Skip(q.signature_data_len);
  if (!r.ok()) {
    return Error(Errc::kCorrupt, "TDX quote truncated in its signature data");
  }
  q.used_bytes = r.offset();
  return q;
}

Result<TdReport> ParseTdReport(std::span<const uint8_t> report) {
  if (report.size() != kTdReportSize) {
    return Error(Errc::kCorrupt, "TDREPORT is not 1024 bytes");
  }
  TdReport t;
  Reader r(report);
  r.Seek(128);
  r.Bytes(&t.report_data);
  r.Seek(512);
  ReadTdInfo(&r, &t.td);
  if (!r.ok()) {
    return Error(Errc::kInternal, "TDREPORT layout");
  }
  return t;
}

Result<EventLogSummary> SummarizeEventLog(std::span<const uint8_t> log) {
  constexpr uint32_t kEvNoAction = 3;
  constexpr char kSpecId[] = "Spec ID Event03";
  EventLogSummary summary;
  Reader r(log);
  // First record: the SHA-1 format TCG_PCR_EVENT carrying TCG_EfiSpecIdEvent.
  r.Uint(4);  // PCR index
  uint32_t type = static_cast<uint32_t>(r.Uint(4));
  r.Skip(20);
  uint32_t size = static_cast<uint32_t>(r.Uint(4));
  size_t event_start = r.offset();
  std::array<uint8_t, 16> signature{};
  r.Bytes(&signature);
  if (!r.ok() || type != kEvNoAction ||
      std::memcmp(signature.data(), kSpecId, sizeof(kSpecId)) != 0) {
    return Error(Errc::kCorrupt, "event log does not start with a Spec ID Event03 header");
  }
  r.Skip(4 + 1 + 1 + 1 + 1);  // platformClass, spec versions, uintnSize
  uint32_t algorithm_count = static_cast<uint32_t>(r.Uint(4));
  if (!r.ok() || algorithm_count == 0 || algorithm_count > 16) {
    return Error(Errc::kCorrupt, "event log header lists no usable digest algorithms");
  }
  std::vector<std::pair<uint16_t, uint16_t>> digest_sizes;
  for (uint32_t i = 0; i < algorithm_count; ++i) {
    uint16_t id = static_cast<uint16_t>(r.Uint(2));
    uint16_t digest_size = static_cast<uint16_t>(r.Uint(2));
    digest_sizes.emplace_back(id, digest_size);
    summary.algorithms.push_back(id);
  }
  r.Seek(event_start + size);
  if (!r.ok()) {
    return Error(Errc::kCorrupt, "event log header truncated");
  }
  summary.events = 1;
  summary.used_bytes = r.offset();
  // TCG_PCR_EVENT2 records until a terminator (all-ones or all-zero index/type) or the end.
  while (true) {
    uint32_t pcr = static_cast<uint32_t>(r.Uint(4));
    uint32_t event_type = static_cast<uint32_t>(r.Uint(4));
    if (!r.ok() || (pcr == 0xffffffff && event_type == 0xffffffff) ||
        (pcr == 0 && event_type == 0)) {
      break;
    }
    uint32_t count = static_cast<uint32_t>(r.Uint(4));
    if (count == 0 || count > digest_sizes.size()) {
      break;
    }
    for (uint32_t i = 0; i < count && r.ok(); ++i) {
      uint16_t id = static_cast<uint16_t>(r.Uint(2));
      auto it = std::find_if(digest_sizes.begin(), digest_sizes.end(),
                             [id](const auto& entry) { return entry.first == id; });
      if (it == digest_sizes.end()) {
        return Error(Errc::kCorrupt, "event log record uses an undeclared digest algorithm");
      }
      r.Skip(it->second);
    }
    uint32_t event_size = static_cast<uint32_t>(r.Uint(4));
    r.Skip(event_size);
    if (!r.ok()) {
      break;
    }
    ++summary.events;
    summary.used_bytes = r.offset();
  }
  return summary;
}

Result<CcelTable> ParseCcelTable(std::span<const uint8_t> table) {
  Reader r(table);
  std::array<uint8_t, 4> signature{};
  r.Bytes(&signature);
  uint32_t length = static_cast<uint32_t>(r.Uint(4));
  r.Seek(36);  // end of the ACPI description header
  r.Skip(4);   // CC type, subtype, reserved
  CcelTable ccel;
  ccel.log_area_min_length = r.Uint(8);
  ccel.log_area_start = r.Uint(8);
  if (!r.ok() || std::memcmp(signature.data(), "CCEL", 4) != 0 || length != table.size()) {
    return Error(Errc::kCorrupt, "not an ACPI CCEL table");
  }
  return ccel;
}

}  // namespace cachefs::keyagent
