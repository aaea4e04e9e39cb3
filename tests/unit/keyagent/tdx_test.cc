// TDX quote, TDREPORT and CC event log parsing on the real samples in shared/fixtures/kbs, and
// the quote-generation plumbing that can run without TDX hardware.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <array>
#include <filesystem>

#include "keyagent/encoding.h"
#include "keyagent/nvidia_gpu.h"
#include "keyagent/tdx_attester.h"
#include "keyagent/tdx_quote.h"
#include "tests/unit/keyagent/test_util.h"

namespace cachefs::keyagent {
namespace {

using testing::ReadFixture;

TEST(TdxQuoteTest, V4MatchesTrusteeClaims) {
  std::vector<uint8_t> raw = ReadFixture("tdx_quote_v4.dat");
  ASSERT_EQ(raw.size(), 4936u);
  auto quote = ParseTdxQuote(raw);
  ASSERT_TRUE(quote) << quote.error().message();
  Json claims = testing::ReadJsonFixture("tdx_claims_expected_quote_v4.json");
  const Json& body = claims["quote"]["body"];
  const Json& header = claims["quote"]["header"];
  EXPECT_EQ(quote->version, 4);
  EXPECT_EQ(quote->att_key_type, 2);
  EXPECT_TRUE(quote->intel_qe());
  EXPECT_EQ(HexEncode(quote->qe_vendor_id), header["vendor_id"]);
  EXPECT_EQ(HexEncode(quote->user_data), header["user_data"]);
  EXPECT_EQ(HexEncode(quote->td.mr_td), body["mr_td"]);
  EXPECT_EQ(HexEncode(quote->mr_seam), body["mr_seam"]);
  EXPECT_EQ(HexEncode(quote->td.mr_config_id), body["mr_config_id"]);
  EXPECT_EQ(HexEncode(quote->tee_tcb_svn), body["tcb_svn"]);
  EXPECT_EQ(HexEncode(quote->report_data), body["report_data"]);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(HexEncode(quote->td.rtmr[i]), body["rtmr_" + std::to_string(i)]) << i;
  }
  EXPECT_EQ(quote->td.debug(), claims["td_attributes"]["debug"].get<bool>());
  EXPECT_EQ(quote->signature_data_len, 4300u);
  EXPECT_EQ(quote->used_bytes, raw.size());
}

TEST(TdxQuoteTest, V5Tdx15Body) {
  auto quote = ParseTdxQuote(ReadFixture("tdx_quote_v5_tdx15.dat"));
  ASSERT_TRUE(quote) << quote.error().message();
  EXPECT_EQ(quote->version, 5);
  EXPECT_EQ(quote->body_type, 3);
  EXPECT_EQ(HexEncode(quote->td.mr_td).substr(0, 16), "dfba221b48a22af8");
  EXPECT_EQ(HexEncode(quote->report_data).substr(0, 16), "6d6ab13b046cff60");
  EXPECT_EQ(quote->signature_data_len, 4300u);
  EXPECT_EQ(quote->used_bytes, 5006u);
}

TEST(TdxQuoteTest, ZeroPaddedV4IsAcceptedAndTruncationIsNot) {
  std::vector<uint8_t> raw = ReadFixture("tdx_quote_v4_zero_padded.dat");
  auto quote = ParseTdxQuote(raw);
  ASSERT_TRUE(quote) << quote.error().message();
  EXPECT_EQ(quote->used_bytes, 4936u);
  for (size_t cut : {0ul, 47ul, 48ul, 600ul, 636ul, 4935ul}) {
    auto truncated = ParseTdxQuote(std::span(raw).first(cut));
    EXPECT_FALSE(truncated) << cut;
  }
  std::vector<uint8_t> wrong_version = raw;
  wrong_version[0] = 3;
  EXPECT_EQ(ParseTdxQuote(wrong_version).error().code(), Errc::kUnsupported);
  std::vector<uint8_t> sgx = raw;
  sgx[4] = 0;  // tee_type SGX
  EXPECT_EQ(ParseTdxQuote(sgx).error().code(), Errc::kCorrupt);
}

TEST(TdReportTest, ParsesTdInfo) {
  auto report = ParseTdReport(ReadFixture("tdreport_1024.bin"));
  ASSERT_TRUE(report);
  EXPECT_EQ(HexEncode(report->td.rtmr[0]).substr(0, 8), "f4ec1a04");
  EXPECT_FALSE(ParseTdReport(std::vector<uint8_t>(100)));
}

TEST(EventLogTest, SummarizesOvmfCcel) {
  std::vector<uint8_t> raw = ReadFixture("ccel_ovmf.bin");
  auto summary = SummarizeEventLog(raw);
  ASSERT_TRUE(summary) << summary.error().message();
  EXPECT_GT(summary->events, 10u);
  EXPECT_LT(summary->used_bytes, raw.size());
  EXPECT_NE(std::find(summary->algorithms.begin(), summary->algorithms.end(), 0x0c),
            summary->algorithms.end());  // SHA-384
  EXPECT_FALSE(SummarizeEventLog(std::vector<uint8_t>(64, 0xff)));
}

TEST(CcelTableTest, ParsesAcpiHeader) {
  std::vector<uint8_t> table(56, 0);
  std::memcpy(table.data(), "CCEL", 4);
  table[4] = 56;
  table[40] = 0x00;
  table[41] = 0x00;
  table[42] = 0x01;  // LAML = 0x10000
  table[48] = 0x00;
  table[50] = 0x7f;  // LASA = 0x7f0000
  auto parsed = ParseCcelTable(table);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->log_area_min_length, 0x10000u);
  EXPECT_EQ(parsed->log_area_start, 0x7f0000u);
  table[0] = 'X';
  EXPECT_FALSE(ParseCcelTable(table));
}

TEST(QgsTest, RequestLayoutAndResponseDecoding) {
  std::vector<uint8_t> tdreport(1024, 0xab);
  std::vector<uint8_t> request = EncodeQgsGetQuoteRequest(tdreport);
  ASSERT_EQ(request.size(), 16u + 8u + 1024u);
  EXPECT_EQ(request[0], 1);                       // major version
  EXPECT_EQ(request[4], 0);                       // GET_QUOTE_REQ
  EXPECT_EQ(request[8] | request[9] << 8, 1048);  // total size
  EXPECT_EQ(request[16] | request[17] << 8, 1024);

  std::vector<uint8_t> quote = ReadFixture("tdx_quote_v4.dat");
  std::vector<uint8_t> reply = {1, 0, 0, 0, 1, 0, 0, 0};
  uint32_t total = static_cast<uint32_t>(16 + 8 + 2 + quote.size());
  for (int i = 0; i < 4; ++i)
    reply.push_back(static_cast<uint8_t>(total >> (8 * i)));
  for (int i = 0; i < 4; ++i)
    reply.push_back(0);                     // error_code
  reply.insert(reply.end(), {2, 0, 0, 0});  // selected id size
  uint32_t qsize = static_cast<uint32_t>(quote.size());
  for (int i = 0; i < 4; ++i)
    reply.push_back(static_cast<uint8_t>(qsize >> (8 * i)));
  reply.insert(reply.end(), {0xee, 0xee});
  reply.insert(reply.end(), quote.begin(), quote.end());
  auto decoded = DecodeQgsGetQuoteResponse(reply);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(*decoded, quote);

  std::vector<uint8_t> failed = reply;
  failed[12] = 0x11;  // error_code
  EXPECT_EQ(DecodeQgsGetQuoteResponse(failed).error().code(), Errc::kUnavailable);
  EXPECT_FALSE(DecodeQgsGetQuoteResponse(std::span(reply).first(30)));
}

TEST(TdxQuoteSourceTest, NoInterfaceIsAClearError) {
  TdxPaths paths;
  paths.tsm_report = "/nonexistent/tsm/report";
  paths.tdx_guest = "/nonexistent/tdx_guest";
  std::array<uint8_t, kTdxReportDataSize> rd{};
  auto quote = GetTdxQuote(paths, rd);
  ASSERT_FALSE(quote);
  EXPECT_EQ(quote.error().code(), Errc::kUnsupported);
  EXPECT_NE(quote.error().message().find("configfs-tsm"), std::string::npos);
}

TEST(TdxQuoteSourceTest, ConfigfsTsmEntryIsRemovedOnFailure) {
  // A plain directory stands in for configfs: mkdir works, but no provider file appears.
  std::string dir = ::testing::TempDir() + "/tsm-report";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::array<uint8_t, kTdxReportDataSize> rd{};
  auto quote = GetQuoteConfigfsTsm(dir, rd);
  ASSERT_FALSE(quote);
  EXPECT_NE(quote.error().message().find("provider"), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(CcelReadTest, ReadsDataFileElseReportsAbsence) {
  TdxPaths paths;
  paths.ccel_data = testing::FixturePath("ccel_ovmf.bin");
  auto log = ReadCcEventLog(paths);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->size(), 65536u);
  paths.ccel_data = "/nonexistent/CCEL";
  paths.ccel_table = "/nonexistent/CCEL-table";
  EXPECT_EQ(ReadCcEventLog(paths).error().code(), Errc::kNotFound);
}

// Stands in for configfs-tsm: the real v4 quote with the requested REPORTDATA written in.
TdxQuoteProvider FixtureQuotes() {
  return [](std::span<const uint8_t, kTdxReportDataSize> report_data) -> Result<TdxQuoteResult> {
    std::vector<uint8_t> quote = ReadFixture("tdx_quote_v4.dat");
    std::copy(report_data.begin(), report_data.end(), quote.begin() + 568);
    return TdxQuoteResult{std::move(quote), "fixture"};
  };
}

TEST(TdxAttesterTest, EvidenceBindsThePaddedDigestAndCarriesTheEventLog) {
  TdxPaths paths;
  paths.ccel_data = testing::FixturePath("ccel_ovmf.bin");
  auto attester = MakeTdxAttester(paths, nullptr, FixtureQuotes());
  EXPECT_EQ(attester->tee(), "tdx");
  EXPECT_FALSE(attester->has_inline_devices());
  std::vector<uint8_t> digest(48);
  for (size_t i = 0; i < digest.size(); ++i) {
    digest[i] = static_cast<uint8_t>(0xa0 + i);
  }
  auto evidence = attester->Evidence(digest, /*inline_devices=*/true);
  ASSERT_TRUE(evidence) << evidence.error().message();
  EXPECT_FALSE(evidence->contains("gpu_evidence"));
  auto quote = ParseTdxQuote(*Base64Decode((*evidence)["quote"].get<std::string>()));
  ASSERT_TRUE(quote);
  EXPECT_TRUE(std::equal(digest.begin(), digest.end(), quote->report_data.begin()));
  EXPECT_TRUE(std::all_of(quote->report_data.begin() + 48, quote->report_data.end(),
                          [](uint8_t b) { return b == 0; }));
  EXPECT_EQ(Base64Decode((*evidence)["cc_eventlog"].get<std::string>())->size(), 65536u);

  paths.ccel_data = "/nonexistent/CCEL";
  paths.ccel_table = "/nonexistent/CCEL-table";
  auto no_log = MakeTdxAttester(paths, nullptr, FixtureQuotes())->Evidence(digest, false);
  ASSERT_TRUE(no_log);
  EXPECT_TRUE((*no_log)["cc_eventlog"].is_null());
  EXPECT_FALSE(
      MakeTdxAttester(paths, nullptr, FixtureQuotes())->Evidence(std::vector<uint8_t>(65), false));
}

TEST(TdxAttesterTest, InlineGpuEvidenceUsesTheReportDataAsNonce) {
  auto gpu = NvidiaGpu::Open(FAKE_NVML_PATH);
  ASSERT_TRUE(gpu) << gpu.error().message();
  TdxPaths paths;
  paths.ccel_data = testing::FixturePath("ccel_ovmf.bin");
  auto attester =
      MakeTdxAttester(paths, std::shared_ptr<NvidiaGpu>(std::move(*gpu)), FixtureQuotes());
  EXPECT_TRUE(attester->has_inline_devices());
  std::vector<uint8_t> digest(48, 0x42);
  digest[0] = 0x01;
  auto additional_mode = attester->Evidence(digest, false);
  ASSERT_TRUE(additional_mode);
  EXPECT_FALSE(additional_mode->contains("gpu_evidence"));
  auto evidence = attester->Evidence(digest, true);
  ASSERT_TRUE(evidence) << evidence.error().message();
  const Json& item = (*evidence)["gpu_evidence"]["evidence_list"][0];
  auto report = Base64Decode(item["attestation_report"].get<std::string>());
  ASSERT_TRUE(report);
  EXPECT_TRUE(std::equal(digest.begin(), digest.begin() + 32, report->begin() + 4));
  EXPECT_EQ(item["uuid"], "GPU-fake-0");
}

}  // namespace
}  // namespace cachefs::keyagent
