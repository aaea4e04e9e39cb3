// Base64/hex, the JWE decryption and the runtime-data binding, against the protocol vectors in
// shared/fixtures/kbs (made by make_vectors.py, which mirrors Trustee and guest-components).

#include <gtest/gtest.h>

#include "keyagent/encoding.h"
#include "keyagent/kbs_protocol.h"
#include "keyagent/tee_key.h"
#include "tests/unit/keyagent/test_util.h"

namespace cachefs::keyagent {
namespace {

using testing::SealEcdhEs;
using testing::Vectors;

std::string Hex(const SecretBytes& bytes) { return HexEncode(bytes.span()); }

TEST(EncodingTest, Base64RoundTripsBothAlphabets) {
  std::vector<uint8_t> data = {0xfb, 0xff, 0x00, 0x01, 0x3e};
  EXPECT_EQ(Base64Encode(data), "+/8AAT4=");
  EXPECT_EQ(Base64UrlEncode(data), "-_8AAT4");
  EXPECT_EQ(*Base64Decode("+/8AAT4="), data);
  EXPECT_EQ(*Base64Decode("-_8AAT4"), data);
  EXPECT_EQ(Base64Encode({}), "");
  EXPECT_TRUE(Base64Decode("")->empty());
}

TEST(EncodingTest, Base64RejectsMalformed) {
  EXPECT_EQ(Base64Decode("a").error().code(), Errc::kCorrupt);
  EXPECT_FALSE(Base64Decode("ab!d"));
  EXPECT_FALSE(Base64Decode("ab=d"));
  EXPECT_FALSE(Base64Decode("ab==="));
  EXPECT_FALSE(Base64Decode("AB"));  // non-zero trailing bits
}

TEST(EncodingTest, Hex) { EXPECT_EQ(HexEncode(std::vector<uint8_t>{0x00, 0xff, 0xa0}), "00ffa0"); }

// RFC 7518 Appendix C: ECDH-ES key agreement, Concat KDF output for A128GCM.
TEST(ConcatKdfTest, Rfc7518AppendixC) {
  std::vector<uint8_t> z = {158, 86,  217, 29,  129, 113, 53,  211, 114, 131, 66,
                            131, 191, 132, 38,  156, 251, 49,  110, 163, 218, 128,
                            106, 72,  246, 218, 167, 121, 140, 254, 144, 196};
  SecretBytes key = ConcatKdf(z, "A128GCM", AsBytes("Alice"), AsBytes("Bob"), 128);
  EXPECT_EQ(Base64UrlEncode(key.span()), "VqqN6vgjbSBcIijNcacQGg");
}

TEST(TeeKeyTest, DecryptsEcdhEsVector) {
  Json v = Vectors();
  auto key = TeeKeyPair::FromPrivateKeyPem(v["tee_private_key_pkcs8_pem"].get<std::string>(),
                                           TeeKeyAlgorithm::kEcdhEsA256kwP256);
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(key->public_jwk(), v["attestation"]["runtime-data"]["tee-pubkey"]);
  auto plain = key->Decrypt(v["resource_response_ecdh_es_a256kw_p256"]);
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(Hex(*plain), v["resource_plaintext_hex"]);
}

TEST(TeeKeyTest, DecryptsRsaOaep256Vector) {
  Json v = Vectors();
  auto key = TeeKeyPair::FromPrivateKeyPem(v["rsa_private_key_pkcs1_pem"].get<std::string>(),
                                           TeeKeyAlgorithm::kRsaOaep256);
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(key->public_jwk(), v["rsa_tee_pubkey"]);
  auto plain = key->Decrypt(v["resource_response_rsa_oaep_256"]);
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(Hex(*plain), v["resource_plaintext_hex"]);
}

TEST(TeeKeyTest, DecryptsLegacyRsa15Vector) {
  Json v = Vectors();
  Json legacy = v["legacy_protocol_0_1_0"];
  auto key = TeeKeyPair::FromPrivateKeyPem(v["rsa_private_key_pkcs1_pem"].get<std::string>(),
                                           TeeKeyAlgorithm::kRsa1_5);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->public_jwk(), legacy["attestation"]["tee-pubkey"]);
  auto plain = key->Decrypt(legacy["resource_response"]);
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(Hex(*plain), v["resource_plaintext_hex"]);
}

TEST(TeeKeyTest, RejectsTamperedAndMismatchedReplies) {
  Json v = Vectors();
  auto key = TeeKeyPair::FromPrivateKeyPem(v["tee_private_key_pkcs8_pem"].get<std::string>(),
                                           TeeKeyAlgorithm::kEcdhEsA256kwP256);
  ASSERT_TRUE(key);
  Json jwe = v["resource_response_ecdh_es_a256kw_p256"];

  Json bad_tag = jwe;
  std::string tag = bad_tag["tag"];
  tag[0] = tag[0] == 'A' ? 'B' : 'A';
  bad_tag["tag"] = tag;
  EXPECT_EQ(key->Decrypt(bad_tag).error().code(), Errc::kCorrupt);

  // The AAD is the protected string: re-encoding the same header differently must fail.
  Json bad_aad = jwe;
  bad_aad["aad"] = "eA";
  EXPECT_EQ(key->Decrypt(bad_aad).error().code(), Errc::kCorrupt);

  Json no_iv = jwe;
  no_iv.erase("iv");
  EXPECT_EQ(key->Decrypt(no_iv).error().code(), Errc::kCorrupt);

  EXPECT_EQ(key->Decrypt(Json::array()).error().code(), Errc::kCorrupt);
  EXPECT_EQ(key->Decrypt(Json{{"protected", "!!"}}).error().code(), Errc::kCorrupt);

  // Sealed to someone else's key: the key unwrap fails.
  auto other = TeeKeyPair::Generate(TeeKeyAlgorithm::kEcdhEsA256kwP256);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->Decrypt(jwe).error().code(), Errc::kCorrupt);

  // An RSA reply to an EC key is refused by algorithm, before any crypto.
  EXPECT_EQ(key->Decrypt(v["resource_response_rsa_oaep_256"]).error().code(), Errc::kUnsupported);
}

TEST(TeeKeyTest, GeneratedKeyRoundTripsThroughTrusteeStyleSealing) {
  auto key = TeeKeyPair::Generate(TeeKeyAlgorithm::kEcdhEsA256kwP256);
  ASSERT_TRUE(key);
  const Json& jwk = key->public_jwk();
  EXPECT_EQ(jwk["kty"], "EC");
  EXPECT_EQ(jwk["crv"], "P-256");
  EXPECT_EQ(jwk["alg"], "ECDH-ES+A256KW");
  EXPECT_EQ(Base64Decode(jwk["x"].get<std::string>())->size(), 32u);
  auto plain = key->Decrypt(SealEcdhEs(jwk, "model password"));
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(plain->view(), "model password");
  // Plaintext lands in the small secure heap: an oversized reply is refused, not allocated.
  EXPECT_EQ(key->Decrypt(SealEcdhEs(jwk, std::string(20000, 'k'))).error().code(), Errc::kCorrupt);
}

TEST(RuntimeDataTest, MatchesVectorsByteForByte) {
  Json v = Vectors();
  const Json& attestation = v["attestation"];
  std::string nonce = v["challenge"]["nonce"];
  const Json& jwk = attestation["runtime-data"]["tee-pubkey"];
  std::string additional = attestation["tee-evidence"]["additional_evidence"];

  std::string device = DeviceRuntimeData(nonce, jwk);
  EXPECT_EQ(device, v["device_runtime_data_jcs"]);
  EXPECT_EQ(HexEncode(Hash(HashAlgorithm::kSha384, device)), v["device_runtime_data_sha384_hex"]);

  std::string primary = PrimaryRuntimeData(additional, nonce, jwk);
  EXPECT_EQ(primary, v["primary_runtime_data_jcs"]);
  std::vector<uint8_t> digest = Hash(HashAlgorithm::kSha384, primary);
  EXPECT_EQ(HexEncode(digest), v["primary_runtime_data_sha384_hex"]);

  std::vector<uint8_t> report_data = digest;
  report_data.resize(64);
  EXPECT_EQ(HexEncode(report_data), v["tdx_reportdata_64_hex"]);
  std::vector<uint8_t> device_digest = Hash(HashAlgorithm::kSha384, device);
  EXPECT_EQ(HexEncode(std::span(device_digest).first(32)), v["nvidia_spdm_nonce_32_hex"]);

  // The sample evidence carries the unpadded digest, as the vector's attestation does.
  Json expected_sample = attestation["tee-evidence"]["primary_evidence"];
  EXPECT_EQ(expected_sample["report_data"], Base64Encode(digest));

  Json built = BuildAttestation(*LayoutOf("0.4.0"), nonce, jwk, expected_sample, additional);
  EXPECT_EQ(built, attestation);
}

TEST(RuntimeDataTest, LegacyBindingMatchesVector) {
  Json legacy = Vectors()["legacy_protocol_0_1_0"];
  std::string nonce = Vectors()["challenge"]["nonce"];
  const Json& jwk = legacy["attestation"]["tee-pubkey"];
  std::string sorted = DeviceRuntimeData(nonce, jwk);
  EXPECT_EQ(sorted, legacy["runtime_data_sorted_json"]);
  std::vector<uint8_t> digest = Hash(HashAlgorithm::kSha384, sorted);
  EXPECT_EQ(HexEncode(digest), legacy["runtime_data_sha384_hex"]);
  Json evidence = {{"svn", "1"}, {"report_data", Base64Encode(digest)}};
  Json built = BuildAttestation(*LayoutOf("0.1.0"), nonce, jwk, evidence, "");
  EXPECT_EQ(built["tee-pubkey"], jwk);
  // tee-evidence is a string of JSON in 0.1.x; compare parsed, key order is free.
  EXPECT_EQ(Json::parse(built["tee-evidence"].get<std::string>()),
            Json::parse(legacy["attestation"]["tee-evidence"].get<std::string>()));
  EXPECT_EQ(BuildAuthRequest("0.1.0", "sample", "ignored"), legacy["request"]);
}

TEST(RuntimeDataTest, CanonicalJsonEscapesMinimally) {
  Json j = {{"b", "a/b\u00e9"}, {"a", "q\"\\\n\x01"}};
  EXPECT_EQ(CanonicalJson(j), "{\"a\":\"q\\\"\\\\\\n\\u0001\",\"b\":\"a/b\u00e9\"}");
}

}  // namespace
}  // namespace cachefs::keyagent
