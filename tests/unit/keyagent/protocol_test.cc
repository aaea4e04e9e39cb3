// Message parsing of the KBS protocol: challenges, tokens, error bodies, resource ids.

#include <gtest/gtest.h>

#include "keyagent/encoding.h"
#include "keyagent/kbs_client.h"
#include "keyagent/kbs_protocol.h"
#include "tests/unit/keyagent/test_util.h"

namespace cachefs::keyagent {
namespace {

TEST(ChallengeTest, DefaultsToSha384AndHonoursSelection) {
  auto plain = ParseChallenge(R"({"nonce":"abc=","extra-params":""})");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->nonce, "abc=");
  EXPECT_EQ(plain->hash, HashAlgorithm::kSha384);
  auto se = ParseChallenge(R"({"nonce":"n","extra-params":{"selected-hash-algorithm":"SHA512"}})");
  ASSERT_TRUE(se);
  EXPECT_EQ(se->hash, HashAlgorithm::kSha512);
  EXPECT_EQ(ParseChallenge(R"({"nonce":"n","extra-params":{"selected-hash-algorithm":"md5"}})")
                .error()
                .code(),
            Errc::kUnsupported);
  EXPECT_EQ(ParseChallenge("{nonce").error().code(), Errc::kCorrupt);
  EXPECT_EQ(ParseChallenge(R"({"nonce":7})").error().code(), Errc::kCorrupt);
  EXPECT_EQ(ParseChallenge("[]").error().code(), Errc::kCorrupt);
}

TEST(AuthRequestTest, ShapesPerVersion) {
  Json v = testing::Vectors();
  EXPECT_EQ(BuildAuthRequest("0.4.0", "sample", ""), v["request"]);
  Json with_policy = BuildAuthRequest("0.4.0", "tdx", "gpu-model-policy");
  EXPECT_EQ(with_policy["extra-params"]["trustee-policy"], "gpu-model-policy");
  EXPECT_EQ(with_policy["tee"], "tdx");
}

TEST(VersionTest, LayoutsAndDemandedVersion) {
  EXPECT_TRUE(LayoutOf("0.4.0")->runtime_data_object);
  EXPECT_FALSE(LayoutOf("0.2.0")->runtime_data_object);
  EXPECT_FALSE(LayoutOf("0.2.0")->legacy_0_1);
  EXPECT_TRUE(LayoutOf("0.1.1")->legacy_0_1);
  EXPECT_EQ(LayoutOf("0.3.0").error().code(), Errc::kUnsupported);
  EXPECT_EQ(ExpectedVersionFromDetail("Attestation error: RCAR handshake Auth failed: KBS Client "
                                      "Protocol Version Mismatch: expect =0.4.0 while the "
                                      "request is 0.1.0"),
            "0.4.0");
  EXPECT_EQ(ExpectedVersionFromDetail("Protocol Version Mismatch: expect =0.1.0 while the "
                                      "request is 0.4.0"),
            "0.1.0");
  EXPECT_FALSE(ExpectedVersionFromDetail("Access denied by policy"));
}

TEST(TokenTest, ReadsUnverifiedClaimsOfRealEarToken) {
  std::vector<uint8_t> raw = testing::ReadFixture("openanolis_tdx_ear_token.jwt");
  std::string token(raw.begin(), raw.end());
  while (!token.empty() && (token.back() == '\n' || token.back() == ' ')) {
    token.pop_back();
  }
  auto claims = UnverifiedJwtClaims(token);
  ASSERT_TRUE(claims) << claims.error().message();
  EXPECT_EQ((*claims)["iat"], 1754278480);
  EXPECT_EQ((*claims)["exp"], 1754278480 + 300);
  EXPECT_EQ((*claims)["submods"]["cpu"]["ear.status"], "contraindicated");
  EXPECT_EQ(UnverifiedJwtClaims("abc").error().code(), Errc::kCorrupt);
  EXPECT_EQ(UnverifiedJwtClaims("a.!!.c").error().code(), Errc::kCorrupt);
  EXPECT_EQ(ParseAttestReply(R"({"token":"a.b.c"})").value(), "a.b.c");
  EXPECT_EQ(ParseAttestReply(R"({"tok":1})").error().code(), Errc::kCorrupt);
}

TEST(ErrorTest, EachStatusHasItsOwnErrc) {
  Json v = testing::Vectors();
  auto error = [](long status, std::string body, std::string stage = "resource a/b/c") {
    return KbsHttpError(HttpResponse{status, std::move(body), {}}, stage);
  };
  Error deny = error(401, v["error_example"].dump());
  EXPECT_EQ(deny.code(), Errc::kPermissionDenied);
  EXPECT_NE(deny.message().find("policy denied"), std::string::npos) << deny.message();
  EXPECT_NE(deny.message().find("Access denied by policy"), std::string::npos);
  EXPECT_EQ(error(403, "{}").code(), Errc::kPermissionDenied);
  EXPECT_EQ(error(404, "").code(), Errc::kNotFound);
  Error bad_prefix = error(404, "<html>", "/auth");
  EXPECT_NE(bad_prefix.message().find("prefix"), std::string::npos);
  EXPECT_EQ(error(503, "busy").code(), Errc::kUnavailable);
  EXPECT_EQ(error(500, "x").code(), Errc::kUnavailable);
  Error token = error(401, R"({"type":"x/errors/TokenVerifierError","detail":"expired"})");
  EXPECT_EQ(token.code(), Errc::kPermissionDenied);
  EXPECT_NE(token.message().find("token"), std::string::npos);
  Error missing = error(401, R"({"type":"x/errors/PluginInternalError","detail":"no such"})");
  EXPECT_EQ(missing.code(), Errc::kNotFound);
  Error evidence =
      error(401, R"({"type":"x/errors/AttestationError","detail":"bad quote"})", "/attest");
  EXPECT_EQ(evidence.code(), Errc::kPermissionDenied);
  EXPECT_NE(evidence.message().find("rejected the attestation"), std::string::npos);
  // openanolis answers RCAR failures with 502 but the body still names the variant.
  EXPECT_EQ(error(502, R"({"type":"x/errors/AttestationError","detail":"d"})", "/attest").code(),
            Errc::kPermissionDenied);
  EXPECT_EQ(error(400, "bad").code(), Errc::kInvalidArgument);
  // Messages stay on one line whatever the server sends.
  EXPECT_EQ(error(500, "a\nb\r\nc").message().find('\n'), std::string::npos);
}

TEST(RedactUrlTest, DropsCredentialsAndQuery) {
  EXPECT_EQ(RedactUrl("https://u:p@kbs:8081/api?sig=x"), "https://kbs:8081/api");
  EXPECT_EQ(RedactUrl("http://kbs:8080"), "http://kbs:8080");
  EXPECT_EQ(RedactUrl("http://kbs/a@b"), "http://kbs/a@b");
}

TEST(ResourceUriTest, AcceptsTheUsualForms) {
  auto a = ParseResourceUri("kbs:///default/aliyun/model-decryption-key");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->RequestPath(), "/kbs/v0/resource/default/aliyun/model-decryption-key");
  EXPECT_EQ(a->Display(), "default/aliyun/model-decryption-key");
  EXPECT_EQ(a->KbsUri(), "kbs:///default/aliyun/model-decryption-key");
  EXPECT_EQ(ParseResourceUri("default/key/1")->RequestPath(), "/kbs/v0/resource/default/key/1");
  EXPECT_EQ(ParseResourceUri("kbs://kbs.example:8080/r/t/v1.2")->RequestPath(),
            "/kbs/v0/resource/r/t/v1.2");
  auto plugin = ParseResourceUri("kbs+pkcs11:///a/b/c?x=1");
  ASSERT_TRUE(plugin);
  EXPECT_EQ(plugin->RequestPath(), "/kbs/v0/pkcs11/a/b/c?x=1");
  EXPECT_EQ(plugin->KbsUri(), "kbs+pkcs11:///a/b/c?x=1");
}

TEST(ResourceUriTest, RejectsMalformed) {
  for (const char* bad : {"", "a/b", "a/b/c/d", "kbs:///a/../c", "kbs:///a/b/c/", "http://a/b/c",
                          "kbs:/a/b/c", "a//c", "a/b/.c", "kbs:///a/b/c?x y"}) {
    auto r = ParseResourceUri(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace cachefs::keyagent
