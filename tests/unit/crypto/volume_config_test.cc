#include "crypto/volume_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "crypto/volume.h"
#include "fixture_util.h"

namespace cachefs::crypto {
namespace {

using nlohmann::json;
using testing::FixturePath;
using testing::Hex;
using testing::ReadFileText;
using testing::Unhex;

Result<VolumeConfig> ParseFixture(const std::string& relative) {
  return ParseVolumeConfig(ReadFileText(FixturePath(relative)));
}

// v1.3's config (today's default flag set) as a JSON object to mutate.
json BaseConfig() { return json::parse(ReadFileText(FixturePath("v1.3/gocryptfs.conf"))); }

Result<VolumeConfig> Parse(const json& config) { return ParseVolumeConfig(config.dump()); }

// Expects a refusal whose single-line message contains `needle`.
void ExpectRefused(const Result<VolumeConfig>& result, Errc code, const std::string& needle) {
  ASSERT_FALSE(result) << needle;
  EXPECT_EQ(result.error().code(), code) << result.error().message();
  EXPECT_NE(result.error().message().find(needle), std::string::npos) << result.error().message();
  EXPECT_EQ(result.error().message().find('\n'), std::string::npos);
  EXPECT_EQ(result.error().message().rfind("gocryptfs.conf: ", 0), 0u);
}

TEST(VolumeConfigTest, DefaultFlagSet) {
  auto config = ParseFixture("v1.3/gocryptfs.conf");
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config->creator, "gocryptfs v1.2.1-23-gd78a8d1-dirty");
  EXPECT_TRUE(config->hkdf);
  EXPECT_TRUE(config->raw64);
  EXPECT_FALSE(config->plaintext_names);
  EXPECT_FALSE(config->deterministic_names);
  EXPECT_EQ(config->content_algorithm, ContentAlgorithm::kAesGcm);
  EXPECT_EQ(config->long_name_max, 255u);
  EXPECT_EQ(config->scrypt.n, 1024u);
  EXPECT_EQ(config->scrypt.r, 8u);
  EXPECT_EQ(config->scrypt.p, 1u);
  EXPECT_EQ(config->scrypt.key_len, 32u);
  EXPECT_EQ(config->scrypt.salt.size(), 32u);
  EXPECT_EQ(config->encrypted_key.size(), 64u);
  EXPECT_EQ(config->feature_flags.size(), 6u);
}

TEST(VolumeConfigTest, FlagMapping) {
  auto det = ParseFixture("v2.2-deterministic-names/gocryptfs.conf");
  ASSERT_TRUE(det);
  EXPECT_TRUE(det->deterministic_names);
  auto plain = ParseFixture("v0.7-plaintextnames/gocryptfs.conf");
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->plaintext_names);
  EXPECT_FALSE(plain->deterministic_names);
  EXPECT_FALSE(plain->hkdf);
  EXPECT_EQ(plain->encrypted_key.size(), 60u);
  auto xchacha = ParseFixture("v2.2-xchacha/gocryptfs.conf");
  ASSERT_TRUE(xchacha);
  EXPECT_EQ(xchacha->content_algorithm, ContentAlgorithm::kXChaCha20Poly1305);
  auto siv = ParseFixture("v1.1-aessiv/gocryptfs.conf");
  ASSERT_TRUE(siv);
  EXPECT_EQ(siv->content_algorithm, ContentAlgorithm::kAesSiv);
  EXPECT_FALSE(siv->raw64);
  EXPECT_STREQ(ContentAlgorithmName(ContentAlgorithm::kAesSiv), "AES-SIV-512");
}

TEST(VolumeConfigTest, RefusesLegacyVolumes) {
  for (const char* dir : {"v0.4", "v0.5", "v0.6", "v0.6-plaintextnames"}) {
    ExpectRefused(ParseFixture(std::string(dir) + "/gocryptfs.conf"), Errc::kUnsupported,
                  "AES-GCM requires GCMIV128 feature flag");
  }
  ExpectRefused(ParseFixture("_extra/config_test/v1.conf"), Errc::kUnsupported,
                "unsupported on-disk format version 1");
  ExpectRefused(ParseFixture("_extra/config_test/StrangeFeature.conf"), Errc::kUnsupported,
                "unknown feature flag \"StrangeFeatureFlag\"");
}

// Master keys listed in the fixture README (password "test").
TEST(VolumeConfigTest, UnwrapsConfigOnlyFixtures) {
  const std::pair<const char*, const char*> cases[] = {
      {"_extra/config_test/v2.conf",
       "f6f174d6-065bc093-97be7731-d4ce504e-1ce30089-fd0651ba-9e7248fe-4af3a486"},
      {"_extra/config_test/PlaintextNames.conf",
       "1266e3b5-ea503b53-80c1429e-6c267e35-be49b385-5a3530fb-a1d50939-8e338f6f"},
      {"_extra/cli/gocryptfs.conf.b9e5ba23",
       "b9e5ba23-981a22b8-c8d790d8-627add29-f680513f-b7b7035f-d203fb83-21d82205"},
  };
  for (const auto& [path, key] : cases) {
    auto config = ParseFixture(path);
    ASSERT_TRUE(config) << path << ": " << config.error().message();
    auto master = UnwrapMasterKey(*config, testing::Password());
    ASSERT_TRUE(master) << path << ": " << master.error().message();
    EXPECT_EQ(Hex(master->span()), Hex(Unhex(key))) << path;
  }
}

TEST(VolumeConfigTest, WrongPasswordIsPermissionDenied) {
  auto config = ParseFixture("v1.3/gocryptfs.conf");
  ASSERT_TRUE(config);
  auto master = UnwrapMasterKey(*config, testing::Password("Test"));
  ASSERT_FALSE(master);
  EXPECT_EQ(master.error().code(), Errc::kPermissionDenied);
  EXPECT_EQ(master.error().message(), "password incorrect");
  auto volume = Volume::Unlock(*config, testing::Password("test\n"));
  ASSERT_FALSE(volume);
  EXPECT_EQ(volume.error().code(), Errc::kPermissionDenied);
  auto empty = UnwrapMasterKey(*config, SecretBytes());
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code(), Errc::kInvalidArgument);
  // Non-HKDF volumes use a 12-byte key-wrap nonce; the wrong password fails the same way.
  auto legacy = ParseFixture("v0.9/gocryptfs.conf");
  ASSERT_TRUE(legacy);
  auto legacy_master = UnwrapMasterKey(*legacy, testing::Password("wrong"));
  ASSERT_FALSE(legacy_master);
  EXPECT_EQ(legacy_master.error().code(), Errc::kPermissionDenied);
}

TEST(VolumeConfigTest, KeysMatchCaseInsensitivelyAndUnknownKeysAreIgnored) {
  json config = BaseConfig();
  json renamed;
  renamed["creator"] = config["Creator"];
  renamed["ENCRYPTEDKEY"] = config["EncryptedKey"];
  renamed["scryptobject"] = {
      {"salt", config["ScryptObject"]["Salt"]}, {"n", 1024}, {"r", 8}, {"p", 1}, {"keylen", 32}};
  renamed["version"] = 2;
  renamed["featureFlags"] = config["FeatureFlags"];
  renamed["VolumeName"] = "from cppcryptfs";
  renamed["Unknown"] = {{"nested", {1, 2, 3}}};
  auto parsed = Parse(renamed);
  ASSERT_TRUE(parsed) << parsed.error().message();
  auto master = UnwrapMasterKey(*parsed, testing::Password());
  ASSERT_TRUE(master) << master.error().message();
  EXPECT_EQ(Hex(master->span()),
            "fd890dab86bf61cfec5ad460ad3ed01f9c52d5462a31783da56b088d3d05232e");
}

TEST(VolumeConfigTest, NullFeatureFlagsMeansNoFlags) {
  json config = BaseConfig();
  config["FeatureFlags"] = nullptr;
  // No flags at all is the v0.4 case: AES-GCM with 96-bit nonces, refused for that reason.
  ExpectRefused(Parse(config), Errc::kUnsupported, "GCMIV128");
}

TEST(VolumeConfigTest, RefusesFido2) {
  json config = BaseConfig();
  config["FeatureFlags"].push_back("FIDO2");
  config["FIDO2"] = {{"CredentialID", "AAAA"}, {"HMACSalt", "AAAA"}};
  ExpectRefused(Parse(config), Errc::kUnsupported, "FIDO2");
}

TEST(VolumeConfigTest, ValidatesScrypt) {
  const std::pair<const char*, json> cases[] = {
      {"N", 512}, {"N", 1000}, {"N", 0},       {"R", 4},
      {"P", 0},   {"P", 17},   {"KeyLen", 16}, {"KeyLen", 64},
  };
  for (const auto& [field, value] : cases) {
    json config = BaseConfig();
    config["ScryptObject"][field] = value;
    ExpectRefused(Parse(config), Errc::kInvalidArgument, std::string("scrypt ") + field);
  }
  json short_salt = BaseConfig();
  short_salt["ScryptObject"]["Salt"] = "AAAAAAAAAAAAAAAAAAAAAA==";  // 16 bytes
  ExpectRefused(Parse(short_salt), Errc::kInvalidArgument, "salt");
  json missing = BaseConfig();
  missing.erase("ScryptObject");
  ExpectRefused(Parse(missing), Errc::kInvalidArgument, "salt");
  json huge = BaseConfig();
  huge["ScryptObject"]["N"] = uint64_t{1} << 30;
  ASSERT_TRUE(Parse(huge));  // valid as a file, refused when unlocking
  auto master = UnwrapMasterKey(*Parse(huge), testing::Password());
  ASSERT_FALSE(master);
  EXPECT_EQ(master.error().code(), Errc::kUnsupported);
}

TEST(VolumeConfigTest, RefusesFlagCombinations) {
  const std::tuple<std::vector<std::string>, Errc, std::string> cases[] = {
      {{"HKDF", "GCMIV128", "XChaCha20Poly1305", "AESSIV", "DirIV", "EMENames"},
       Errc::kInvalidArgument,
       "both XChaCha20Poly1305 and AESSIV"},
      {{"HKDF", "AESSIV", "DirIV", "EMENames"}, Errc::kInvalidArgument, "AESSIV requires GCMIV128"},
      {{"HKDF", "GCMIV128", "XChaCha20Poly1305", "DirIV"},
       Errc::kInvalidArgument,
       "XChaCha20Poly1305 conflicts with GCMIV128"},
      {{"XChaCha20Poly1305", "DirIV"}, Errc::kInvalidArgument, "XChaCha20Poly1305 requires HKDF"},
      {{"HKDF", "DirIV", "EMENames"}, Errc::kUnsupported, "AES-GCM requires GCMIV128"},
      {{"HKDF", "GCMIV128", "PlaintextNames", "EMENames"},
       Errc::kInvalidArgument,
       "PlaintextNames conflicts with EMENames"},
      {{"HKDF", "GCMIV128", "PlaintextNames", "DirIV"},
       Errc::kInvalidArgument,
       "PlaintextNames conflicts with DirIV"},
      {{"HKDF", "GCMIV128", "PlaintextNames", "LongNames"},
       Errc::kInvalidArgument,
       "PlaintextNames conflicts with LongNames"},
      {{"HKDF", "GCMIV128", "PlaintextNames", "Raw64"},
       Errc::kInvalidArgument,
       "PlaintextNames conflicts with Raw64"},
      {{"HKDF", "GCMIV128", "PlaintextNames", "LongNameMax"},
       Errc::kInvalidArgument,
       "PlaintextNames conflicts with LongNameMax"},
      {{"HKDF", "GCMIV128", "hkdf"}, Errc::kUnsupported, "unknown feature flag \"hkdf\""},
  };
  for (const auto& [flags, code, needle] : cases) {
    json config = BaseConfig();
    config["FeatureFlags"] = flags;
    ExpectRefused(Parse(config), code, needle);
  }
}

TEST(VolumeConfigTest, LongNameMaxRules) {
  json config = BaseConfig();
  config["LongNameMax"] = 100;
  ExpectRefused(Parse(config), Errc::kInvalidArgument, "LongNameMax=100 but");
  config["FeatureFlags"].push_back("LongNameMax");
  auto ok = Parse(config);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->long_name_max, 100u);
  config["LongNameMax"] = 0;
  ExpectRefused(Parse(config), Errc::kInvalidArgument, "LongNameMax feature flag is set");
  config.erase("LongNameMax");
  ExpectRefused(Parse(config), Errc::kInvalidArgument, "LongNameMax feature flag is set");
  config["LongNameMax"] = 61;
  ExpectRefused(Parse(config), Errc::kInvalidArgument, "outside 62");
  config["LongNameMax"] = 256;
  ExpectRefused(Parse(config), Errc::kInvalidArgument, "outside 62");
}

TEST(VolumeConfigTest, ChecksEncryptedKeyAndVersion) {
  json config = BaseConfig();
  config["EncryptedKey"] = "AAAA";
  ExpectRefused(Parse(config), Errc::kInvalidArgument, "EncryptedKey is 3 bytes, expected 64");
  config = BaseConfig();
  config["EncryptedKey"] = "not base64!";
  ExpectRefused(Parse(config), Errc::kInvalidArgument, "EncryptedKey is not valid base64");
  config = BaseConfig();
  config.erase("EncryptedKey");
  ExpectRefused(Parse(config), Errc::kInvalidArgument, "EncryptedKey is 0 bytes");
  config = BaseConfig();
  config["Version"] = 3;
  ExpectRefused(Parse(config), Errc::kUnsupported, "version 3");
  config.erase("Version");
  ExpectRefused(Parse(config), Errc::kUnsupported, "version 0");
}

TEST(VolumeConfigTest, MalformedJsonNeverCrashes) {
  const std::string base = BaseConfig().dump();
  std::vector<std::string> inputs = {
      "",
      "{",
      "}",
      "[]",
      "null",
      "42",
      "\"text\"",
      "{\"Version\": 2,}",
      base + "garbage",
      base.substr(0, base.size() / 2),
      std::string(100000, '['),
      std::string(3, '\0'),
      "{\"Version\": \"2\"}",
      "{\"Version\": 2.0}",
      "{\"Version\": -2}",
      "{\"Version\": 99999999999999999999999}",
      "{\"FeatureFlags\": \"HKDF\"}",
      "{\"FeatureFlags\": [1]}",
      "{\"ScryptObject\": []}",
      "{\"ScryptObject\": {\"N\": \"1024\"}}",
      "{\"ScryptObject\": {\"N\": -1024}}",
      "{\"ScryptObject\": {\"N\": 1e3}}",
      "{\"ScryptObject\": {\"Salt\": 5}}",
      "{\"ScryptObject\": {\"Salt\": \"-_-_\"}}",
      "{\"Creator\": 5}",
      "{\"LongNameMax\": 1.5}",
      "\xff\xfe{}",
  };
  // Every single-character truncation and corruption of a valid config.
  for (size_t i = 0; i < base.size(); i += 7) {
    inputs.push_back(base.substr(0, i));
    std::string corrupted = base;
    corrupted[i] = static_cast<char>(corrupted[i] ^ 0x20);
    inputs.push_back(corrupted);
  }
  for (const std::string& input : inputs) {
    auto result = ParseVolumeConfig(input);
    if (!result) {
      EXPECT_EQ(result.error().message().rfind("gocryptfs.conf: ", 0), 0u);
      EXPECT_EQ(result.error().message().find('\n'), std::string::npos);
    }
  }
  ExpectRefused(ParseVolumeConfig("{"), Errc::kInvalidArgument, "not valid JSON");
  ExpectRefused(ParseVolumeConfig("[]"), Errc::kInvalidArgument, "not a JSON object");
  ExpectRefused(ParseVolumeConfig("{\"Version\": \"2\"}"), Errc::kInvalidArgument,
                "Version is not an integer");
  ExpectRefused(ParseVolumeConfig("{\"ScryptObject\": {\"N\": -1024}}"), Errc::kInvalidArgument,
                "ScryptObject.N is out of range");
}

}  // namespace
}  // namespace cachefs::crypto
