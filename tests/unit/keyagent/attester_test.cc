// Attester selection, the sample attesters and NVIDIA evidence through a fake NVML library.

#include "keyagent/attester.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "keyagent/encoding.h"
#include "keyagent/nvidia_gpu.h"

namespace cachefs::keyagent {
namespace {

TEST(AttesterTest, SampleNeedsInsecureFlag) {
  AttesterConfig config;
  config.spec = "sample";
  auto refused = MakeAttesters(config);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Errc::kPermissionDenied);
  EXPECT_NE(refused.error().message().find("--insecure-allow-non-tee"), std::string::npos);
  config.allow_non_tee = true;
  auto set = MakeAttesters(config);
  ASSERT_TRUE(set);
  EXPECT_EQ(set->primary->tee(), "sample");
  EXPECT_TRUE(set->devices.empty());
}

TEST(AttesterTest, SampleEvidenceCarriesTheDigest) {
  std::vector<uint8_t> digest(48, 7);
  auto evidence = MakeSampleAttester()->Evidence(digest, false);
  ASSERT_TRUE(evidence);
  EXPECT_EQ((*evidence)["svn"], "1");
  EXPECT_EQ((*evidence)["report_data"], Base64Encode(digest));
  auto device = MakeSampleDeviceAttester()->Evidence(digest);
  EXPECT_EQ((*device)["svn"], "2");
}

TEST(AttesterTest, OutsideATeeAutoAndTdxAreRefused) {
  AttesterConfig config;
  config.root = ::testing::TempDir() + "/no-tee-root";  // no cpuinfo, no devices
  config.spec = "auto";
  auto none = MakeAttesters(config);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), Errc::kUnsupported);
  EXPECT_NE(none.error().message().find("not a TDX guest"), std::string::npos);
  config.spec = "tdx";
  EXPECT_FALSE(MakeAttesters(config));
  config.spec = "auto";
  config.allow_non_tee = true;
  auto sample = MakeAttesters(config);
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->primary->tee(), "sample");
  config.spec = "sgx";
  EXPECT_EQ(MakeAttesters(config).error().code(), Errc::kInvalidArgument);
}

TEST(NvidiaGpuTest, MissingLibraryIsAClearMessage) {
  auto gpu = NvidiaGpu::Open("/nonexistent/libnvidia-ml.so.1");
  ASSERT_FALSE(gpu);
  EXPECT_EQ(gpu.error().code(), Errc::kUnsupported);
  EXPECT_NE(gpu.error().message().find("cannot load"), std::string::npos);
}

TEST(NvidiaGpuTest, CcModeOffIsAClearMessage) {
  setenv("FAKE_NVML_CC_OFF", "1", 1);
  auto gpu = NvidiaGpu::Open(FAKE_NVML_PATH);
  unsetenv("FAKE_NVML_CC_OFF");
  ASSERT_FALSE(gpu);
  EXPECT_NE(gpu.error().message().find("confidential computing mode is off"), std::string::npos);
}

TEST(NvidiaGpuTest, CollectsReportsBoundToTheNonceAndSetsReady) {
  auto gpu = NvidiaGpu::Open(FAKE_NVML_PATH);
  ASSERT_TRUE(gpu) << gpu.error().message();
  EXPECT_NE((*gpu)->Describe().find("not yet ready"), std::string::npos);
  std::array<uint8_t, kGpuNonceSize> nonce;
  for (size_t i = 0; i < nonce.size(); ++i) {
    nonce[i] = static_cast<uint8_t>(i);
  }
  auto reports = (*gpu)->Collect(nonce);
  ASSERT_TRUE(reports) << reports.error().message();
  ASSERT_EQ(reports->size(), 1u);
  const GpuReport& r = (*reports)[0];
  EXPECT_EQ(r.arch, "HOPPER");
  EXPECT_EQ(r.uuid, "GPU-fake-0");
  EXPECT_TRUE(std::equal(nonce.begin(), nonce.end(), r.report.begin() + 4));
  EXPECT_NE((*gpu)->Describe().find("GPUs ready"), std::string::npos);

  Json upstream = UpstreamGpuEvidence(*reports);
  const Json& entry = upstream["device_evidence_list"][0];
  EXPECT_EQ(entry["arch"], "HOPPER");
  EXPECT_EQ(entry["evidence"], Base64Encode(r.report));
  EXPECT_EQ(entry["certificate"], Base64Encode(AsBytes("ATTCHAIN")));

  Json inline_evidence = InlineGpuEvidence(*reports);
  const Json& item = inline_evidence["evidence_list"][0];
  EXPECT_EQ(item["certificate"], Base64Encode(AsBytes("CERTCHAIN")));
  EXPECT_EQ(item["cc_enabled"], true);
  EXPECT_EQ(item["driver_version"], "550.54.15");
  EXPECT_TRUE(inline_evidence.contains("collection_time"));

  // The upstream device attester takes the first 32 bytes of the 48-byte device digest.
  auto device = MakeNvidiaDeviceAttester(std::shared_ptr<NvidiaGpu>(std::move(*gpu)));
  std::vector<uint8_t> digest(48, 0x5a);
  auto evidence = device->Evidence(digest);
  ASSERT_TRUE(evidence);
  auto report = Base64Decode((*evidence)["device_evidence_list"][0]["evidence"].get<std::string>());
  EXPECT_TRUE(std::equal(digest.begin(), digest.begin() + 32, report->begin() + 4));
}

}  // namespace
}  // namespace cachefs::keyagent
