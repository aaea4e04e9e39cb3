// The KBS client against an in-process Trustee stand-in (sample TEE verification, tokens with
// expiry, resource policy, JWE sealing), plus the other key sources and the no-secret-in-logs
// rule.

#include "keyagent/kbs_client.h"

#include <gtest/gtest.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/log.h"
#include "keyagent/cdh_client.h"
#include "keyagent/encoding.h"
#include "keyagent/extpass.h"
#include "keyagent/key_source.h"
#include "keyagent/tdx_attester.h"
#include "keyagent/tdx_quote.h"
#include "tests/unit/keyagent/test_util.h"

namespace cachefs::keyagent {
namespace {

constexpr char kSecret[] = "Zq9-known-secret-4711";

// Speaks protocol `version` (0.4.0 or 0.2.0) like upstream Trustee with the allow_all policy.
class FakeKbs : public HttpTransport {
 public:
  std::string version = "0.4.0";
  std::map<std::string, std::string> resources = {{"default/model/key", kSecret}};
  bool deny = false;
  bool forget_tokens = false;  // as after a Trustee restart
  long fail_status = 0;        // answer every request with this status
  bool malformed_resource = false;
  bool reject_additional = false;  // like openanolis Trustee, which has no nvidia verifier
  bool saw_inline_gpu = false;
  int token_lifetime_s = 300;
  int auth_calls = 0;
  int attest_calls = 0;
  int resource_calls = 0;

  Result<HttpResponse> Send(const HttpRequest& request) override {
    const std::string base = "http://kbs.test/api";
    EXPECT_EQ(request.url.rfind(base, 0), 0u) << request.url;
    std::string path = request.url.substr(base.size());
    if (fail_status != 0) {
      return HttpResponse{fail_status, "upstream unavailable", {}};
    }
    if (path == "/kbs/v0/auth") {
      return Auth(request);
    }
    if (path == "/kbs/v0/attest") {
      return Attest(request);
    }
    if (path.rfind("/kbs/v0/resource/", 0) == 0) {
      return Resource(request, path.substr(17));
    }
    return HttpResponse{404, "", {}};
  }

 private:
  static HttpResponse Fail(long status, const std::string& variant, const std::string& detail) {
    Json body = {{"type", "https://github.com/confidential-containers/kbs/errors/" + variant},
                 {"detail", detail}};
    return HttpResponse{status, body.dump(), {}};
  }
  bool HasCookie(const HttpRequest& request) const {
    for (const std::string& h : request.headers) {
      if (h.find("kbs-session-id=" + session_) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

  HttpResponse Auth(const HttpRequest& request) {
    ++auth_calls;
    Json body = Json::parse(request.body);
    if (body["version"] != version) {
      return Fail(401, "AttestationError",
                  "Attestation error: RCAR handshake Auth failed: KBS Client Protocol Version "
                  "Mismatch: expect =" +
                      version + " while the request is " + body["version"].get<std::string>());
    }
    uint8_t raw[32];
    RAND_bytes(raw, sizeof(raw));
    nonce_ = Base64Encode(raw);
    session_ = HexEncode(std::span(raw).first(16));
    return HttpResponse{200,
                        Json{{"nonce", nonce_}, {"extra-params", ""}}.dump(),
                        {"kbs-session-id=" + session_ + "; Expires=Wed, 01 Jan 2099 00:00:00 GMT"}};
  }

  HttpResponse Attest(const HttpRequest& request) {
    ++attest_calls;
    if (!HasCookie(request)) {
      return Fail(401, "AttestationError", "no session");
    }
    Json body = Json::parse(request.body);
    Json jwk;
    std::string digest_input;
    Json evidence;
    if (version == "0.4.0") {
      jwk = body["runtime-data"]["tee-pubkey"];
      if (body["runtime-data"]["nonce"] != nonce_) {
        return Fail(401, "AttestationError", "nonce mismatch");
      }
      std::string additional = body["tee-evidence"]["additional_evidence"];
      if (reject_additional && !additional.empty()) {
        return Fail(401, "AttestationError", "no verifier for nvidia");
      }
      digest_input = PrimaryRuntimeData(additional, nonce_, jwk);
      evidence = body["tee-evidence"]["primary_evidence"];
      saw_inline_gpu |= evidence.contains("gpu_evidence");
    } else {
      jwk = body["tee-pubkey"];
      digest_input = DeviceRuntimeData(nonce_, jwk);
      evidence = body["tee-evidence"];
    }
    std::vector<uint8_t> expected = Hash(HashAlgorithm::kSha384, digest_input);
    if (evidence.contains("quote")) {
      // TDX: REPORTDATA = digest || 16 zero bytes (signature checks are out of scope here).
      auto quote = ParseTdxQuote(*Base64Decode(evidence["quote"].get<std::string>()));
      expected.resize(64);
      if (!quote || !std::equal(expected.begin(), expected.end(), quote->report_data.begin())) {
        return Fail(401, "AttestationError", "tdx REPORTDATA mismatch");
      }
    } else if (evidence["report_data"] != Base64Encode(expected)) {
      return Fail(401, "AttestationError", "sample report_data mismatch");
    }
    jwk_ = jwk;
    Json claims = {{"exp", std::time(nullptr) + token_lifetime_s},
                   {"submods",
                    {{"cpu0",
                      {{"ear.status", "affirming"},
                       {"ear.veraison.annotated-evidence",
                        {{"runtime_data_claims", {{"tee-pubkey", jwk}}}}}}}}}};
    token_ = Base64UrlEncode(AsBytes(R"({"alg":"ES256","typ":"JWT"})")) + "." +
             Base64UrlEncode(AsBytes(claims.dump())) + ".c2ln";
    token_exp_ = std::time(nullptr) + token_lifetime_s;
    return HttpResponse{200, Json{{"token", token_}}.dump(), {}};
  }

  HttpResponse Resource(const HttpRequest& request, const std::string& name) {
    ++resource_calls;
    if (forget_tokens) {
      forget_tokens = false;
      token_ = "forgotten";
    }
    bool bearer = false;
    for (const std::string& h : request.headers) {
      bearer |= h == "Authorization: Bearer " + token_;
    }
    if (!bearer || token_.empty() || std::time(nullptr) >= token_exp_) {
      return Fail(401, "TokenVerifierError", "Token verification failed");
    }
    if (deny) {
      return Fail(401, "PolicyDeny", "Access denied by policy");
    }
    auto it = resources.find(name);
    if (it == resources.end()) {
      return HttpResponse{404, "", {}};
    }
    if (malformed_resource) {
      return HttpResponse{200, "{\"protected\":", {}};
    }
    return HttpResponse{200, testing::SealEcdhEs(jwk_, it->second).dump(), {}};
  }

  std::string nonce_;
  std::string session_;
  std::string token_;
  std::time_t token_exp_ = 0;
  Json jwk_;
};

struct Harness {
  FakeKbs* kbs;
  std::unique_ptr<KbsClient> client;
};

Harness MakeClient(std::function<void(FakeKbs*)> setup = nullptr, std::string attester = "sample") {
  auto kbs = std::make_unique<FakeKbs>();
  FakeKbs* raw = kbs.get();
  if (setup) {
    setup(raw);
  }
  AttesterConfig config;
  config.spec = std::move(attester);
  config.allow_non_tee = true;
  KbsClientOptions options;
  options.base_url = "http://kbs.test/api/";  // trailing slash is tolerated
  return {raw, std::make_unique<KbsClient>(options, *MakeAttesters(config), std::move(kbs))};
}

ResourceUri Key() { return *ParseResourceUri("kbs:///default/model/key"); }

TEST(KbsClientTest, FetchesAndReusesTheToken) {
  Harness h = MakeClient();
  auto secret = h.client->GetResource(Key());
  ASSERT_TRUE(secret) << secret.error().message();
  EXPECT_EQ(secret->view(), kSecret);
  EXPECT_EQ(h.client->summary().protocol_version, "0.4.0");
  auto again = h.client->GetResource(Key());
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(h.kbs->auth_calls, 1);
  EXPECT_EQ(h.kbs->attest_calls, 1);
  EXPECT_EQ(h.kbs->resource_calls, 2);
}

TEST(KbsClientTest, AdditionalEvidenceIsChainedIntoThePrimaryDigest) {
  Harness h = MakeClient(nullptr, "sample+sampledevice");
  auto secret = h.client->GetResource(Key());
  ASSERT_TRUE(secret) << secret.error().message();
}

// Sample evidence that, like the TDX attester with a GPU, can carry device evidence inline.
class InlineCapableAttester : public Attester {
 public:
  std::string tee() const override { return "sample"; }
  bool has_inline_devices() const override { return true; }
  std::string Describe() const override { return "sample with inline gpu"; }
  Result<Json> Evidence(std::span<const uint8_t> digest, bool inline_devices) override {
    Json evidence = {{"svn", "1"}, {"report_data", Base64Encode(digest)}};
    if (inline_devices) {
      evidence["gpu_evidence"] = {{"evidence_list", Json::array()}};
    }
    return evidence;
  }
};

class FakeGpu : public DeviceAttester {
 public:
  std::string tee() const override { return "nvidia"; }
  std::string Describe() const override { return "fake gpu"; }
  Result<Json> Evidence(std::span<const uint8_t>) override {
    return Json{{"device_evidence_list", Json::array()}};
  }
};

TEST(KbsClientTest, GpuEvidenceMovesInlineWhenTrusteeRejectsAdditionalEvidence) {
  auto kbs = std::make_unique<FakeKbs>();
  FakeKbs* fake = kbs.get();
  fake->reject_additional = true;
  fake->token_lifetime_s = 10;  // too short to reuse: the second fetch attests again
  AttesterSet attesters;
  attesters.primary = std::make_unique<InlineCapableAttester>();
  attesters.devices.push_back(std::make_unique<FakeGpu>());
  KbsClientOptions options;
  options.base_url = "http://kbs.test/api";
  KbsClient client(options, std::move(attesters), std::move(kbs));
  auto secret = client.GetResource(Key());
  ASSERT_TRUE(secret) << secret.error().message();
  EXPECT_TRUE(fake->saw_inline_gpu);
  EXPECT_TRUE(client.summary().gpu_inline);
  EXPECT_EQ(fake->attest_calls, 2);
  ASSERT_TRUE(client.GetResource(Key()));
  EXPECT_EQ(fake->attest_calls, 3);  // went inline straight away
}

TEST(KbsClientTest, TdxEvidenceWithARealQuoteLayoutIsBound) {
  auto kbs = std::make_unique<FakeKbs>();
  FakeKbs* fake = kbs.get();
  AttesterSet attesters;
  TdxPaths paths;
  paths.ccel_data = testing::FixturePath("ccel_ovmf.bin");
  attesters.primary = MakeTdxAttester(
      paths, nullptr,
      [](std::span<const uint8_t, kTdxReportDataSize> report_data) -> Result<TdxQuoteResult> {
        std::vector<uint8_t> quote = testing::ReadFixture("tdx_quote_v4.dat");
        std::copy(report_data.begin(), report_data.end(), quote.begin() + 568);
        return TdxQuoteResult{std::move(quote), "fixture"};
      });
  KbsClientOptions options;
  options.base_url = "http://kbs.test/api";
  KbsClient client(options, std::move(attesters), std::move(kbs));
  auto secret = client.GetResource(Key());
  ASSERT_TRUE(secret) << secret.error().message();
  EXPECT_EQ(secret->view(), kSecret);
  EXPECT_EQ(client.summary().tee, "tdx");
  EXPECT_EQ(fake->attest_calls, 1);
}

TEST(KbsClientTest, TokenNearExpiryIsNotReused) {
  Harness h = MakeClient([](FakeKbs* k) { k->token_lifetime_s = 10; });
  ASSERT_TRUE(h.client->GetResource(Key()));
  ASSERT_TRUE(h.client->GetResource(Key()));
  EXPECT_EQ(h.kbs->attest_calls, 2);
}

TEST(KbsClientTest, RejectedCachedTokenTriggersOneFreshAttestation) {
  Harness h = MakeClient();
  ASSERT_TRUE(h.client->GetResource(Key()));
  h.kbs->forget_tokens = true;
  auto secret = h.client->GetResource(Key());
  ASSERT_TRUE(secret) << secret.error().message();
  EXPECT_EQ(h.kbs->attest_calls, 2);
}

TEST(KbsClientTest, ExpiredFreshTokenIsAPermissionError) {
  Harness h = MakeClient([](FakeKbs* k) { k->token_lifetime_s = -5; });
  auto secret = h.client->GetResource(Key());
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().code(), Errc::kPermissionDenied);
  EXPECT_NE(secret.error().message().find("token"), std::string::npos);
  EXPECT_LE(h.kbs->attest_calls, 2);
}

TEST(KbsClientTest, PolicyDenialIsNotRetried) {
  Harness h = MakeClient([](FakeKbs* k) { k->deny = true; });
  auto secret = h.client->GetResource(Key());
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().code(), Errc::kPermissionDenied);
  EXPECT_NE(secret.error().message().find("policy denied"), std::string::npos);
  EXPECT_EQ(h.kbs->attest_calls, 1);
  EXPECT_EQ(h.kbs->resource_calls, 1);
}

TEST(KbsClientTest, MissingResourceServerErrorAndMalformedReply) {
  Harness missing = MakeClient([](FakeKbs* k) { k->resources.clear(); });
  EXPECT_EQ(missing.client->GetResource(Key()).error().code(), Errc::kNotFound);
  Harness down = MakeClient([](FakeKbs* k) { k->fail_status = 503; });
  EXPECT_EQ(down.client->GetResource(Key()).error().code(), Errc::kUnavailable);
  Harness malformed = MakeClient([](FakeKbs* k) { k->malformed_resource = true; });
  EXPECT_EQ(malformed.client->GetResource(Key()).error().code(), Errc::kCorrupt);
}

TEST(KbsClientTest, FallsBackToTheVersionTrusteeDemands) {
  Harness h = MakeClient([](FakeKbs* k) { k->version = "0.2.0"; });
  auto secret = h.client->GetResource(Key());
  ASSERT_TRUE(secret) << secret.error().message();
  EXPECT_EQ(secret->view(), kSecret);
  EXPECT_EQ(h.client->summary().protocol_version, "0.2.0");
  EXPECT_EQ(h.kbs->auth_calls, 2);
}

TEST(KbsClientTest, UnknownDemandedVersionFails) {
  Harness h = MakeClient([](FakeKbs* k) { k->version = "9.9.9"; });
  auto secret = h.client->GetResource(Key());
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().code(), Errc::kPermissionDenied);
  EXPECT_NE(secret.error().message().find("9.9.9"), std::string::npos);
}

TEST(KeySourceTest, SourcesAreExclusiveAndRequired) {
  KeySourceOptions none;
  EXPECT_EQ(ObtainPassword(none).error().code(), Errc::kInvalidArgument);
  KeySourceOptions two;
  two.passfile = "/x";
  two.trustee_url = "http://127.0.0.1:1";
  EXPECT_EQ(ObtainPassword(two).error().code(), Errc::kInvalidArgument);
  KeySourceOptions bad_url;
  bad_url.trustee_url = "kbs.example:8080";
  bad_url.key_id = "a/b/c";
  EXPECT_EQ(ObtainPassword(bad_url).error().code(), Errc::kInvalidArgument);
}

TEST(KeySourceTest, SampleAttesterRefusedWithoutInsecureFlag) {
  KeySourceOptions options;
  options.trustee_url = "http://127.0.0.1:1";
  options.key_id = "a/b/c";
  options.attester = "sample";
  auto r = ObtainPassword(options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kPermissionDenied);
}

TEST(KeySourceTest, UnreachableTrusteeIsRetriedThenUnavailable) {
  KeySourceOptions options;
  options.trustee_url = "http://127.0.0.1:1/api";
  options.key_id = "kbs:///a/b/c";
  options.attester = "sample";
  options.allow_non_tee = true;
  options.retries = 2;
  options.retry_base_delay = std::chrono::milliseconds(10);
  auto r = ObtainPassword(options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kUnavailable);
  EXPECT_NE(r.error().message().find("gave up after 3 attempts"), std::string::npos)
      << r.error().message();
}

TEST(KeySourceTest, DescriptionHasNoCredentialsOrPolicy) {
  KeySourceOptions options;
  options.trustee_url = "https://user:pa55@kbs.example:8081/api";
  options.key_id = "kbs:///default/aliyun/model-decryption-key";
  options.trustee_policy = "secret-policy-name";
  std::string d = DescribeKeySource(options);
  EXPECT_EQ(d.find("pa55"), std::string::npos) << d;
  EXPECT_EQ(d.find("secret-policy-name"), std::string::npos) << d;
  EXPECT_NE(d.find("https://kbs.example:8081/api"), std::string::npos) << d;
  EXPECT_NE(d.find("policy sha256:"), std::string::npos) << d;
}

std::string WriteScript(const std::string& name, const std::string& body) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path;
}

TEST(ExtpassTest, FirstLineWithCleanEnvironment) {
  setenv("CACHEFS_TEST_INHERITED", "leak", 1);
  std::string script = WriteScript(
      "extpass-env.sh", "printf '%s\\nsecond line\\n' \"${CACHEFS_TEST_INHERITED:-clean}$1\"");
  auto pw = RunExtpass(script + " -arg");
  unsetenv("CACHEFS_TEST_INHERITED");
  ASSERT_TRUE(pw) << pw.error().message();
  EXPECT_EQ(pw->view(), "clean-arg");
}

TEST(ExtpassTest, FailuresAreReported) {
  EXPECT_EQ(RunExtpass("false").error().code(), Errc::kIo);
  EXPECT_EQ(RunExtpass("/nonexistent/cmd").error().code(), Errc::kIo);
  EXPECT_EQ(RunExtpass("no-such-command-xyz").error().code(), Errc::kNotFound);
  EXPECT_EQ(RunExtpass("true").error().code(), Errc::kInvalidArgument);  // no output
  std::string big = WriteScript("extpass-big.sh", "head -c 5000 /dev/zero | tr '\\0' a");
  EXPECT_EQ(RunExtpass(big).error().code(), Errc::kInvalidArgument);
  std::string slow = WriteScript("extpass-slow.sh", "sleep 5");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(RunExtpass(slow, std::chrono::milliseconds(200)).error().code(), Errc::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // A long tail after a good first line is drained and ignored.
  std::string tail = WriteScript("extpass-tail.sh", "echo pw; head -c 100000 /dev/zero");
  auto pw = RunExtpass(tail);
  ASSERT_TRUE(pw) << pw.error().message();
  EXPECT_EQ(pw->view(), "pw");
}

TEST(CdhTest, TtrpcFramingAndResponseDecoding) {
  std::vector<uint8_t> frame = EncodeTtrpcRequest(1, "api.GetResourceService", "GetResource",
                                                  AsBytes("\x0a\x03"
                                                          "abc"),
                                                  0);
  ASSERT_GE(frame.size(), 10u);
  uint32_t length = frame[0] << 24 | frame[1] << 16 | frame[2] << 8 | frame[3];
  EXPECT_EQ(length, frame.size() - 10);
  EXPECT_EQ(frame[7], 1);  // stream id
  EXPECT_EQ(frame[8], 1);  // request
  std::string body(frame.begin() + 10, frame.end());
  EXPECT_EQ(body, std::string("\x0a\x16"
                              "api.GetResourceService"
                              "\x12\x0b"
                              "GetResource"
                              "\x1a\x05\x0a\x03"
                              "abc"));

  // Response{payload = GetResourceResponse{Resource = "pw\n"}}
  std::string ok("\x12\x05\x0a\x03pw\n", 7);
  auto secret = DecodeGetResourceResponse(AsBytes(ok));
  ASSERT_TRUE(secret) << secret.error().message();
  EXPECT_EQ(secret->view(), "pw\n");
  // Response{status = {code 13, message "... 401 ... denied"}}
  std::string denied = "\x0a\x1a\x08\x0d\x12\x16get resource: 401 deny";
  denied[1] = static_cast<char>(denied.size() - 2);
  denied[5] = static_cast<char>(denied.size() - 6);
  EXPECT_EQ(DecodeGetResourceResponse(AsBytes(denied)).error().code(), Errc::kPermissionDenied);
  EXPECT_EQ(DecodeGetResourceResponse(AsBytes("\x12\x09\x0a")).error().code(), Errc::kCorrupt);
  KeySourceOptions options;
  options.cdh_socket = "/nonexistent/cdh.sock";
  options.key_id = "kbs:///a/b/c";
  options.retries = 0;
  EXPECT_EQ(ObtainPassword(options).error().code(), Errc::kUnavailable);
}

// The secret passes through every path that logs (KBS client at debug level, passfile with
// extra lines, extpass, error paths) and must not appear in anything written to stderr.
TEST(SecretHygieneTest, KnownSecretNeverReachesTheLog) {
  LogOptions saved = CurrentLogOptions();
  std::string captured;
  for (LogFormat format : {LogFormat::kText, LogFormat::kJson}) {
    LogOptions verbose;
    verbose.min_level = LogLevel::kDebug;
    verbose.format = format;
    ConfigureLogging(verbose);
    testing::StderrCapture capture;
    {
      Harness h = MakeClient(nullptr, "sample+sampledevice");
      auto secret = h.client->GetResource(Key());
      ASSERT_TRUE(secret);
      h.kbs->deny = true;
      (void)h.client->GetResource(Key());

      std::string passfile = ::testing::TempDir() + "/pw";
      std::ofstream(passfile) << kSecret << "\nsecond\n";
      KeySourceOptions from_file;
      from_file.passfile = passfile;
      ASSERT_TRUE(ObtainPassword(from_file));

      KeySourceOptions from_cmd;
      from_cmd.extpass = WriteScript("extpass-secret.sh", std::string("echo ") + kSecret);
      ASSERT_TRUE(ObtainPassword(from_cmd));
      std::string failing =
          WriteScript("extpass-fail.sh", std::string("echo ") + kSecret + "; exit 3");
      auto failed = RunExtpass(failing);
      ASSERT_FALSE(failed);
      EXPECT_EQ(failed.error().message().find(kSecret), std::string::npos);
    }
    captured = capture.Text();
    EXPECT_NE(captured.find("attested to Trustee"), std::string::npos) << captured;
    EXPECT_EQ(captured.find(kSecret), std::string::npos) << captured;
    EXPECT_EQ(captured.find(Base64Encode(AsBytes(kSecret))), std::string::npos);
    EXPECT_EQ(captured.find(HexEncode(AsBytes(kSecret))), std::string::npos);
  }
  ConfigureLogging(saved);
}

}  // namespace
}  // namespace cachefs::keyagent
