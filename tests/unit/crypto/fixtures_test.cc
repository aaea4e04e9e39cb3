// End-to-end checks against the gocryptfs fixture volumes (shared/fixtures/gocryptfs): unlock
// with the password, decode the tree, decrypt every file and symlink.

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <string>

#include "common/task_pool.h"
#include "crypto/tree_decoder.h"
#include "crypto/volume.h"
#include "fixture_util.h"

namespace cachefs::crypto {
namespace {

using testing::DecryptWholeFile;
using testing::DiskReader;
using testing::FixturePath;
using testing::Hex;
using testing::ListTree;
using testing::ReadFileBytes;
using testing::ReadFileText;
using testing::Sha256Hex;
using testing::Unhex;
using testing::UnlockFixture;

const std::string kLongName = "longname_255_" + std::string(242, 'x');
constexpr char kStatusSha256[] = "534c3073bb1d373b2c76f9c85cc7373658a7dbbe7cc7eccdf5af751ed91951df";
constexpr char kZero10000Sha256[] =
    "95b532cc4381affdff0d956e12520a04129ed49d37e154228368fe5621f0b9a2";
constexpr char kZero5000Sha256[] =
    "7ca5bd879f393d9dd05b14f38add9c0fc6b67928f7f2d261b2e47a32ee8219e3";

struct ForwardFixture {
  const char* dir;
  const char* master_key;  // README notation
  ContentAlgorithm algorithm;
  bool longname;
  std::vector<std::string> symlinks;  // cipher keys of rel and abs (see ListTree)
};

// Every mountable forward-mode volume of the README, plus the snapshots of reverse-mode views.
const ForwardFixture kForwardFixtures[] = {
    {"v0.7",
     "ed7f6d83-40cce86c-0e7d79c2-a9438710-575221bf-30a0eb60-2821fa8f-7f3123bf",
     ContentAlgorithm::kAesGcm,
     false,
     {"dwPcZNei4HN4qPA6FxoG_A==", "4tRF1LdULRFLiXwfze671Q=="}},
    {"v0.7-plaintextnames",
     "6d96397b-585631e1-c7cba69d-61e738b6-4d5ad2c2-e21f0fb3-52f60d3a-b08526f7",
     ContentAlgorithm::kAesGcm,
     false,
     {"rel", "abs"}},
    {"v0.9",
     "1cafe3f4-bc316466-2214c47c-ecd89bf3-4e078fe4-f5faeea7-8b7cab02-884f5e1c",
     ContentAlgorithm::kAesGcm,
     true,
     {"00msNUi5h5aKMX_f-4pBhA==", "hwE1RKIXtF8hmQMvEXSTtg=="}},
    {"v1.1-aessiv",
     "eaf371c3-f9a55336-8819f22b-7bccd7c2-a738cf61-7261c658-14c28a03-9428992b",
     ContentAlgorithm::kAesSiv,
     true,
     {"jCGXyJJqu4sdxRLsDQNEtA==", "Sjl6QXHm2IjuKwaKgJ5jig=="}},
    {"v1.3",
     "fd890dab-86bf61cf-ec5ad460-ad3ed01f-9c52d546-2a31783d-a56b088d-3d05232e",
     ContentAlgorithm::kAesGcm,
     true,
     {"uD4PVrDBY5y2k_qLKNOFvA", "gv65k_g2NQyBsSv_5dzMVQ"}},
    {"v2.2-deterministic-names",
     "722733f5-b0f399f5-5465ad7a-f0bed125-e82de7b4-045e7608-a5e5c78e-04a1a61e",
     ContentAlgorithm::kAesGcm,
     true,
     {"5rnuPVh7zU9h5w36GgJfsQ", "YAqFj7_ODPtY1Xsfjfq3Zw"}},
    {"v2.2-xchacha",
     "44670e7e-32475bfc-bdfb8a8c-be17a767-0679cac0-be705d8c-af41c411-28c40f26",
     ContentAlgorithm::kXChaCha20Poly1305,
     true,
     {"Y4Z6p3_XZ2yoqHuuJX4l6w", "-d6B3-vXduk3KfmLhIOD_Q"}},
    {"v2.2-xchacha-deterministic-names",
     "beba88a9-c6cd1dc0-b69c6f9d-9daea493-9ae87082-4ffc40bf-b44e52db-3933af39",
     ContentAlgorithm::kXChaCha20Poly1305,
     true,
     {"QCVelV3GWR6e2tG6SEivxA", "pU6pYJvzh5ekRiQUuhQm0w"}},
    {"_extra/v1.3-reverse-ciphertext-snapshot",
     "2290a7f4-3e1908fb-b006f7d9-261bdaf1-4b72bc38-3b24956c-db7d8a8d-d996076a",
     ContentAlgorithm::kAesSiv,
     true,
     {"3-4cq_ip9yXRxYXRjtyMtg", "Hc6uo8KX5qYbx93JPJ9kAw"}},
    {"_extra/v1.1-reverse-ciphertext-snapshot",
     "68b51855-042abd80-635ae1ba-90152a78-2ec2d243-832ac72a-eab0561a-f2d37913",
     ContentAlgorithm::kAesSiv,
     true,
     {"e_m9tKNx32KkylweWIOC4g==", "gjYU6PmqFqj2a6IEM5dE1Q=="}},
    {"_extra/v1.1-reverse-plaintextnames-ciphertext-snapshot",
     "e7fb8f0d-2a81df9e-26611e4b-5540b218-e48aa458-c2a623af-d0c82637-1466b5f2",
     ContentAlgorithm::kAesSiv,
     true,
     {"rel", "abs"}},
};

class ForwardFixtureTest : public ::testing::TestWithParam<ForwardFixture> {};

TEST_P(ForwardFixtureTest, UnwrapsTheDocumentedMasterKey) {
  const ForwardFixture& fixture = GetParam();
  auto config = ParseVolumeConfig(ReadFileText(FixturePath(fixture.dir) / "gocryptfs.conf"));
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config->content_algorithm, fixture.algorithm);
  auto master = UnwrapMasterKey(*config, testing::Password());
  ASSERT_TRUE(master) << master.error().message();
  EXPECT_EQ(Hex(master->span()), Hex(Unhex(fixture.master_key)));
}

TEST_P(ForwardFixtureTest, DecodesTreeAndDecryptsEveryFile) {
  const ForwardFixture& fixture = GetParam();
  const auto root = FixturePath(fixture.dir);
  auto volume = UnlockFixture(root);
  ASSERT_TRUE(volume) << volume.error().message();
  const auto entries = ListTree(root, fixture.symlinks);
  DecodeStats stats;
  auto tree = DecodeTree(**volume, entries, DiskReader(root), &stats);
  ASSERT_TRUE(tree) << tree.error().message();
  EXPECT_EQ(stats.rejected_names, 0u);
  EXPECT_EQ(stats.damaged_entries, 0u);

  ASSERT_FALSE(tree->empty());
  EXPECT_EQ((*tree)[0].path, "");
  EXPECT_EQ((*tree)[0].type, EntryType::kDirectory);

  std::map<std::string, const PlainEntry*> by_path;
  for (const PlainEntry& entry : *tree) {
    EXPECT_TRUE(by_path.emplace(entry.path, &entry).second) << "duplicate " << entry.path;
  }
  std::map<std::string, EntryType> expected = {
      {"", EntryType::kDirectory},
      {"status.txt", EntryType::kFile},
      {"rel", EntryType::kSymlink},
      {"abs", EntryType::kSymlink},
  };
  if (fixture.longname) {
    expected[kLongName] = EntryType::kFile;
  }
  const bool has_dir1 = std::string(fixture.dir).find("v1.3-reverse") != std::string::npos;
  if (has_dir1) {
    expected["dir1"] = EntryType::kDirectory;
    expected["dir1/dir2"] = EntryType::kDirectory;
    expected["dir1/dir2/file"] = EntryType::kFile;
  }
  ASSERT_EQ(by_path.size(), expected.size());
  for (const auto& [path, type] : expected) {
    ASSERT_TRUE(by_path.count(path)) << "missing " << path;
    EXPECT_EQ(by_path[path]->type, type) << path;
    EXPECT_FALSE(by_path[path]->damaged) << path;
  }
  EXPECT_EQ(by_path["rel"]->symlink_target, "status.txt");
  EXPECT_EQ(by_path["rel"]->plain_size, 10u);
  EXPECT_EQ(by_path["abs"]->symlink_target, "/a/b/c/d");
  EXPECT_EQ(by_path["abs"]->plain_size, 8u);

  // Parents come before children.
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < tree->size(); ++i) {
    const std::string& path = (*tree)[i].path;
    position[path] = i;
    if (!path.empty()) {
      const size_t slash = path.rfind('/');
      const std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
      ASSERT_TRUE(position.count(parent)) << path << " before its parent";
    }
  }

  TaskPool pool(1);
  for (const PlainEntry& entry : *tree) {
    if (entry.type != EntryType::kFile) {
      continue;
    }
    const auto bytes = ReadFileBytes(root / entries[entry.cipher_index].key);
    EXPECT_EQ(entry.plain_size, (*volume)->content().PlainSize(bytes.size()));
    auto plain = DecryptWholeFile((*volume)->content(), bytes, &pool);
    ASSERT_TRUE(plain) << entry.path << ": " << plain.error().message();
    EXPECT_EQ(plain->size(), entry.plain_size);
    if (entry.path == "dir1/dir2/file") {
      EXPECT_EQ(Sha256Hex(*plain), kZero10000Sha256);
    } else {
      EXPECT_EQ(Sha256Hex(*plain), kStatusSha256) << entry.path;
      EXPECT_EQ(*plain, ReadFileText(FixturePath("content") / entry.path));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ForwardFixtureTest, ::testing::ValuesIn(kForwardFixtures),
                         [](const ::testing::TestParamInfo<ForwardFixture>& info) {
                           std::string name = info.param.dir;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) {
                               c = '_';
                             }
                           }
                           return name;
                         });

TEST(FixtureTest, V13ReverseSnapshotPinsTheRepoMd5) {
  const auto file = ReadFileBytes(FixturePath(
      "_extra/v1.3-reverse-ciphertext-snapshot/zOsW1-BUX54hC2hmhu2EOw/4ZqrpGQdw5r07KR1qw2ZeQ/"
      "tfCm9Sp9J_Dvc-jD7J6p8g"));
  uint8_t digest[16];
  unsigned int len = 0;
  EVP_Digest(file.data(), file.size(), digest, &len, EVP_md5(), nullptr);
  EXPECT_EQ(Hex(digest), "9818501d214c5eb42ca2472caf6c82a1");
}

struct XrayFixture {
  const char* dir;
  const char* master_key_file;
  const char* file;
  ContentAlgorithm algorithm;
};

class XrayFixtureTest : public ::testing::TestWithParam<XrayFixture> {};

// gocryptfs-xray output (aes*_fs.xray.txt) as a byte-layout vector: header, offsets, nonces and
// tags (for AES-SIV the "tag" is the SIV that follows the nonce).
TEST_P(XrayFixtureTest, MatchesXrayLayoutAndDecrypts) {
  const XrayFixture& fixture = GetParam();
  const auto root = FixturePath(std::string("_extra/xray_tests/") + fixture.dir);
  const std::string xray =
      ReadFileText(FixturePath(std::string("_extra/xray_tests/") + fixture.dir + ".xray.txt"));
  const std::string masterkey_text =
      ReadFileText(FixturePath(std::string("_extra/xray_tests/") + fixture.master_key_file));

  auto config = ParseVolumeConfig(ReadFileText(root / "gocryptfs.conf"));
  ASSERT_TRUE(config) << config.error().message();
  ASSERT_EQ(config->content_algorithm, fixture.algorithm);
  auto master = UnwrapMasterKey(*config, testing::Password());
  ASSERT_TRUE(master) << master.error().message();
  const size_t colon = masterkey_text.find(':');
  EXPECT_EQ(Hex(master->span()), Hex(Unhex(masterkey_text.substr(colon + 1))));

  auto volume = Volume::Create(*config, std::move(master).value());
  ASSERT_TRUE(volume);
  const auto bytes = ReadFileBytes(root / fixture.file);
  ASSERT_EQ(bytes.size(), 5082u);
  const ContentCipher& cipher = (*volume)->content();
  auto id = cipher.ParseHeader(bytes);
  ASSERT_TRUE(id);
  EXPECT_NE(xray.find("Id: " + Hex(*id)), std::string::npos) << xray;

  const size_t cbs = cipher.cipher_block_size();
  for (size_t block = 0; block < 2; ++block) {
    const size_t offset = ContentCipher::kHeaderSize + block * cbs;
    const size_t length = std::min(cbs, bytes.size() - offset);
    const std::span<const uint8_t> chunk(bytes.data() + offset, length);
    const std::string nonce = Hex(chunk.first(16));
    const std::string tag = fixture.algorithm == ContentAlgorithm::kAesSiv
                                ? Hex(chunk.subspan(16, 16))
                                : Hex(chunk.last(16));
    char line[200];
    std::snprintf(line, sizeof(line), "Block %2zu: IV: %s, Tag: %s, Offset: %5zu Len: %zu", block,
                  nonce.c_str(), tag.c_str(), offset, length);
    EXPECT_NE(xray.find(line), std::string::npos) << line << "\n" << xray;
  }
  auto plain = DecryptWholeFile(cipher, bytes);
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(Sha256Hex(*plain), kZero5000Sha256);

  DecodeStats stats;
  auto tree = DecodeTree(**volume, ListTree(root), DiskReader(root), &stats);
  ASSERT_TRUE(tree);
  ASSERT_EQ(tree->size(), 2u);
  EXPECT_EQ((*tree)[1].path, "zero5000");
  EXPECT_EQ((*tree)[1].plain_size, 5000u);
}

INSTANTIATE_TEST_SUITE_P(
    Xray, XrayFixtureTest,
    ::testing::Values(XrayFixture{"aesgcm_fs", "aesgcm_fs.masterkey.txt", "VnvoeSetPaOFjZDaZAh0lA",
                                  ContentAlgorithm::kAesGcm},
                      XrayFixture{"aessiv_fs", "aessiv_fs.masterkey.txt", "klepPXQJIaEDaIx-yurAqQ",
                                  ContentAlgorithm::kAesSiv}),
    [](const ::testing::TestParamInfo<XrayFixture>& info) { return std::string(info.param.dir); });

}  // namespace
}  // namespace cachefs::crypto

namespace cachefs::crypto {
namespace {

// The -masterkey path: Volume::Create from the README key gives the same volume as Unlock.
TEST(VolumeTest, CreateFromMasterKey) {
  const auto root = FixturePath("v2.2-xchacha");
  auto config = ParseVolumeConfig(ReadFileText(root / "gocryptfs.conf"));
  ASSERT_TRUE(config);
  auto volume = Volume::Create(
      *config, SecretBytes::CopyOf(Unhex(
                   "44670e7e-32475bfc-bdfb8a8c-be17a767-0679cac0-be705d8c-af41c411-28c40f26")));
  ASSERT_TRUE(volume) << volume.error().message();
  auto plain =
      DecryptWholeFile((*volume)->content(), ReadFileBytes(root / "0FzVVSsqaL3FgoloAfeuaQ"));
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(*plain, "It works!\n");
  EXPECT_EQ(*(*volume)->DecryptSymlinkTarget(ReadFileText(root / "Y4Z6p3_XZ2yoqHuuJX4l6w")),
            "status.txt");
  EXPECT_EQ(*(*volume)->DecryptSymlinkTarget(""), "");
  auto bad = (*volume)->DecryptSymlinkTarget("not base64!");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kCorrupt);

  auto short_key = Volume::Create(*config, SecretBytes(31));
  ASSERT_FALSE(short_key);
  EXPECT_EQ(short_key.error().code(), Errc::kInvalidArgument);
  // A wrong master key gives a volume whose data does not authenticate.
  auto wrong = Volume::Create(*config, SecretBytes(32));
  ASSERT_TRUE(wrong);
  EXPECT_FALSE(
      DecryptWholeFile((*wrong)->content(), ReadFileBytes(root / "0FzVVSsqaL3FgoloAfeuaQ")));
}

TEST(VolumeTest, PlaintextNamesVolumeHasNoNameCipher) {
  auto volume = UnlockFixture(FixturePath("v0.7-plaintextnames"));
  ASSERT_TRUE(volume);
  EXPECT_EQ((*volume)->names(), nullptr);
  EXPECT_EQ(*(*volume)->DecryptSymlinkTarget("/a/b/c/d"), "/a/b/c/d");
}

}  // namespace
}  // namespace cachefs::crypto

namespace cachefs::crypto {
namespace {

// §4.9 on a real gocryptfs file: one flipped bit in block 1 of the 10000-byte AES-SIV file of
// the v1.3 reverse snapshot (3 blocks) fails block 1 only.
TEST(FixtureCorruptionTest, FlippedBitInRealFile) {
  const auto root = FixturePath("_extra/v1.3-reverse-ciphertext-snapshot");
  auto volume = UnlockFixture(root);
  ASSERT_TRUE(volume) << volume.error().message();
  const ContentCipher& cipher = (*volume)->content();
  auto file =
      ReadFileBytes(root / "zOsW1-BUX54hC2hmhu2EOw/4ZqrpGQdw5r07KR1qw2ZeQ/tfCm9Sp9J_Dvc-jD7J6p8g");
  ASSERT_EQ(file.size(), cipher.CipherSize(10000));
  const size_t cbs = cipher.cipher_block_size();
  file[ContentCipher::kHeaderSize + cbs + 500] ^= 0x04;
  auto whole = DecryptWholeFile(cipher, file);
  ASSERT_FALSE(whole);
  EXPECT_EQ(whole.error().code(), Errc::kCorrupt);
  EXPECT_EQ(whole.error().message(), "block 1: authentication failed");

  auto id = cipher.ParseHeader(file);
  ASSERT_TRUE(id);
  std::vector<uint8_t> plain(ContentCipher::kPlainBlockSize * 3);
  const std::span<const uint8_t> body(file.data() + ContentCipher::kHeaderSize,
                                      file.size() - ContentCipher::kHeaderSize);
  auto block0 = cipher.DecryptBlocks(body.first(cbs), 0, *id, plain);
  ASSERT_TRUE(block0);
  EXPECT_EQ(*block0, 4096u);
  auto block2 = cipher.DecryptBlocks(body.subspan(2 * cbs), 2, *id, plain);
  ASSERT_TRUE(block2);
  EXPECT_EQ(*block2, 10000u - 2 * 4096);
  EXPECT_TRUE(
      std::all_of(plain.begin(), plain.begin() + *block2, [](uint8_t b) { return b == 0; }));
}

}  // namespace
}  // namespace cachefs::crypto
