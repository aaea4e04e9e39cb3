#include "crypto/tree_decoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "fixture_util.h"

namespace cachefs::crypto {
namespace {

using testing::DecryptWholeFile;
using testing::DiskReader;
using testing::FixturePath;
using testing::ListTree;
using testing::ReadFileBytes;
using testing::UnlockFixture;

const std::string kLongName = "longname_255_" + std::string(242, 'x');

// A fixture volume held in memory so tests can damage it: the listing plus the bytes of every
// regular file.
class MemoryTree {
 public:
  MemoryTree(const std::string& dir, const std::vector<std::string>& symlinks = {}) {
    const auto root = FixturePath(dir);
    auto volume = UnlockFixture(root);
    EXPECT_TRUE(volume) << volume.error().message();
    volume_ = std::move(volume).value();
    entries_ = ListTree(root, symlinks);
    for (const CipherEntry& entry : entries_) {
      if (entry.type == EntryType::kFile) {
        objects_[entry.key] = ReadFileBytes(root / entry.key);
      }
    }
  }

  const Volume& volume() const { return *volume_; }
  std::vector<CipherEntry>& entries() { return entries_; }

  CipherEntry* Find(const std::string& key) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const CipherEntry& e) { return e.key == key; });
    return it == entries_.end() ? nullptr : &*it;
  }
  void Remove(const std::string& key) {
    std::erase_if(entries_, [&](const CipherEntry& e) { return e.key == key; });
    objects_.erase(key);
  }
  void PutFile(const std::string& key, const std::string& content) {
    Remove(key);
    entries_.push_back({key, EntryType::kFile, content.size(), ""});
    objects_[key] = std::vector<uint8_t>(content.begin(), content.end());
  }
  void PutEntry(CipherEntry entry) {
    Remove(entry.key);
    entries_.push_back(std::move(entry));
  }

  Result<std::vector<PlainEntry>> Decode() {
    stats_ = {};
    return DecodeTree(*volume_, entries_, Reader(), &stats_);
  }
  SmallObjectReader Reader() {
    return [this](const std::string& key, size_t max_size) -> Result<std::vector<uint8_t>> {
      ++reads_;
      auto it = objects_.find(key);
      if (it == objects_.end()) {
        return Error(Errc::kNotFound, key + ": no such object");
      }
      if (it->second.size() > max_size) {
        return Error(Errc::kCorrupt, key + ": too large");
      }
      return it->second;
    };
  }
  const DecodeStats& stats() const { return stats_; }
  int reads() const { return reads_; }

 private:
  std::unique_ptr<Volume> volume_;
  std::vector<CipherEntry> entries_;
  std::map<std::string, std::vector<uint8_t>> objects_;
  DecodeStats stats_;
  int reads_ = 0;
};

std::map<std::string, PlainEntry> ByPath(const std::vector<PlainEntry>& tree) {
  std::map<std::string, PlainEntry> out;
  for (const PlainEntry& entry : tree) {
    out[entry.path] = entry;
  }
  return out;
}

std::vector<std::string> Paths(const std::vector<PlainEntry>& tree) {
  std::vector<std::string> out;
  for (const PlainEntry& entry : tree) {
    out.push_back(entry.path);
  }
  return out;
}

const std::vector<std::string> kV13Symlinks = {"uD4PVrDBY5y2k_qLKNOFvA", "gv65k_g2NQyBsSv_5dzMVQ"};
const std::string kV13LongName = "gocryptfs.longname.QhUr5d9FHerwEs--muUs6_80cy6JRp89c1otLwp92Cs";
const std::string kV13Status = "mGj2_hdnHe34Sp0iIQUwuw";

TEST(TreeDecoderTest, V13TreeInOrder) {
  MemoryTree tree("v1.3", kV13Symlinks);
  auto plain = tree.Decode();
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(Paths(*plain), (std::vector<std::string>{"", "abs", kLongName, "rel", "status.txt"}));
  EXPECT_EQ((*plain)[0].cipher_index, SIZE_MAX);
  // One read for the root diriv and one for the long-name companion.
  EXPECT_EQ(tree.reads(), 2);
}

TEST(TreeDecoderTest, BrokenNamesEntryIsSkipped) {
  const auto root = FixturePath("_extra/hkdf_sanity/broken_names");
  auto volume = UnlockFixture(root);
  ASSERT_TRUE(volume) << volume.error().message();
  DecodeStats stats;
  auto plain = DecodeTree(**volume, ListTree(root), DiskReader(root), &stats);
  ASSERT_TRUE(plain);
  EXPECT_EQ(Paths(*plain), std::vector<std::string>{""});
  EXPECT_EQ(stats.rejected_names, 1u);
}

TEST(TreeDecoderTest, BrokenContentFailsToDecrypt) {
  const auto root = FixturePath("_extra/hkdf_sanity/broken_content");
  auto volume = UnlockFixture(root);
  ASSERT_TRUE(volume) << volume.error().message();
  const auto entries = ListTree(root);
  auto plain = DecodeTree(**volume, entries, DiskReader(root), nullptr);
  ASSERT_TRUE(plain);
  ASSERT_EQ(Paths(*plain), (std::vector<std::string>{"", "status.txt"}));
  const auto bytes = ReadFileBytes(root / entries[(*plain)[1].cipher_index].key);
  auto content = DecryptWholeFile((*volume)->content(), bytes);
  ASSERT_FALSE(content);
  EXPECT_EQ(content.error().code(), Errc::kCorrupt);
  EXPECT_EQ(content.error().message(), "block 0: authentication failed");
}

// gocryptfs 2.3 -fsck reports "10 corrupt files" here: three bad names, three unusable
// directories, two corrupt files and two corrupt symlinks.
TEST(TreeDecoderTest, BrokenFsV14ReportsEveryDamage) {
  const auto root = FixturePath("_extra/fsck/broken_fs_v1.4");
  const std::vector<std::string> symlinks = {"GUvJFSfy7S1AXUdy4pDRLw", "s-P7PcQDUcVkoeMDnC3EYA",
                                             "iI0MtUdzELPeOAZYwYZFee169hpGgd3l2PXQBcc9sl4"};
  auto volume = UnlockFixture(root);
  ASSERT_TRUE(volume) << volume.error().message();
  const auto entries = ListTree(root, symlinks);
  DecodeStats stats;
  auto plain = DecodeTree(**volume, entries, DiskReader(root), &stats);
  ASSERT_TRUE(plain) << plain.error().message();
  EXPECT_EQ(stats.rejected_names, 3u);
  EXPECT_EQ(stats.damaged_entries, 5u);
  auto by_path = ByPath(*plain);
  for (const char* dir : {"diriv_too_long", "diriv_too_short", "missing_diriv"}) {
    ASSERT_TRUE(by_path.count(dir)) << dir;
    EXPECT_EQ(by_path[dir].type, EntryType::kDirectory);
    EXPECT_TRUE(by_path[dir].damaged) << dir;
  }
  EXPECT_FALSE(by_path["good_dir"].damaged);
  EXPECT_TRUE(by_path.count("good_dir/foo"));
  for (const auto& [path, entry] : by_path) {
    EXPECT_NE(path.rfind("missing_diriv/", 0), 0u) << path;
  }
  EXPECT_FALSE(by_path["good_symlink"].damaged);
  EXPECT_FALSE(by_path["good_symlink"].symlink_target.empty());
  for (const char* link : {"corrupt_symlink", "corrupt_symlink_2"}) {
    EXPECT_EQ(by_path[link].type, EntryType::kSymlink);
    EXPECT_TRUE(by_path[link].damaged) << link;
    EXPECT_EQ(by_path[link].plain_size, 0u);
  }

  int corrupt_files = 0;
  for (const PlainEntry& entry : *plain) {
    if (entry.type != EntryType::kFile) {
      continue;
    }
    auto content = DecryptWholeFile((*volume)->content(),
                                    ReadFileBytes(root / entries[entry.cipher_index].key));
    if (!content) {
      EXPECT_EQ(content.error().code(), Errc::kCorrupt);
      ++corrupt_files;
    } else if (entry.path == "good_file") {
      EXPECT_EQ(content->size(), 13u);
    } else if (entry.path.rfind("incomplete_file_", 0) == 0) {
      EXPECT_EQ(entry.plain_size, 0u);  // 1, 8 and 18 bytes: shorter than header + block
    }
  }
  EXPECT_EQ(corrupt_files, 2);  // corrupt_file (tag), corrupt_file_2 (header)
  EXPECT_EQ(stats.rejected_names + stats.damaged_entries + corrupt_files, 10u);
}

// Two spellings of one name that differ only in unused base64 bits: strict decoding (gocryptfs
// 2.5) shows one `foo` and rejects the other.
TEST(TreeDecoderTest, MalleableBase64ShowsOneName) {
  const auto root = FixturePath("_extra/fsck/malleable_base64");
  auto volume = UnlockFixture(root);
  ASSERT_TRUE(volume) << volume.error().message();
  DecodeStats stats;
  auto plain = DecodeTree(**volume, ListTree(root), DiskReader(root), &stats);
  ASSERT_TRUE(plain);
  EXPECT_EQ(Paths(*plain), (std::vector<std::string>{"", "foo"}));
  EXPECT_EQ(stats.rejected_names, 1u);
}

TEST(TreeDecoderTest, RootDirIvProblemsFailTheTree) {
  {
    MemoryTree tree("v1.3", kV13Symlinks);
    tree.Remove("gocryptfs.diriv");
    auto plain = tree.Decode();
    ASSERT_FALSE(plain);
    EXPECT_EQ(plain.error().code(), Errc::kNotFound);
    EXPECT_EQ(plain.error().message(), "root directory: gocryptfs.diriv missing");
  }
  {
    MemoryTree tree("v1.3", kV13Symlinks);
    tree.PutFile("gocryptfs.diriv", std::string(16, '\0'));
    auto plain = tree.Decode();
    ASSERT_FALSE(plain);
    EXPECT_EQ(plain.error().code(), Errc::kCorrupt);
  }
  {
    MemoryTree tree("v1.3", kV13Symlinks);
    tree.PutFile("gocryptfs.diriv", std::string(17, 'x'));
    EXPECT_FALSE(tree.Decode());
  }
}

TEST(TreeDecoderTest, SubdirectoryWithoutDirIvIsDamaged) {
  MemoryTree tree("_extra/v1.3-reverse-ciphertext-snapshot",
                  {"3-4cq_ip9yXRxYXRjtyMtg", "Hc6uo8KX5qYbx93JPJ9kAw"});
  tree.Remove("zOsW1-BUX54hC2hmhu2EOw/gocryptfs.diriv");
  auto plain = tree.Decode();
  ASSERT_TRUE(plain);
  auto by_path = ByPath(*plain);
  ASSERT_TRUE(by_path.count("dir1"));
  EXPECT_TRUE(by_path["dir1"].damaged);
  EXPECT_FALSE(by_path.count("dir1/dir2"));
  EXPECT_EQ(tree.stats().damaged_entries, 1u);
  EXPECT_EQ(tree.stats().rejected_names, 0u);
  EXPECT_TRUE(by_path.count("status.txt"));
}

TEST(TreeDecoderTest, LongNameCompanionProblems) {
  const std::string companion = kV13LongName + ".name";
  auto expect_skipped = [&](MemoryTree& tree) {
    auto plain = tree.Decode();
    ASSERT_TRUE(plain);
    auto by_path = ByPath(*plain);
    EXPECT_FALSE(by_path.count(kLongName));
    EXPECT_EQ(by_path.size(), 4u);
    EXPECT_EQ(tree.stats().rejected_names, 1u);
  };
  {
    MemoryTree tree("v1.3", kV13Symlinks);
    tree.Remove(companion);
    expect_skipped(tree);
  }
  {
    MemoryTree tree("v1.3", kV13Symlinks);
    tree.PutFile(companion, "");
    expect_skipped(tree);
  }
  {
    MemoryTree tree("v1.3", kV13Symlinks);
    tree.PutFile(companion, std::string(345, 'A'));
    expect_skipped(tree);
  }
  {
    // A valid cipher name that does not hash to the object's name (a copied companion).
    MemoryTree tree("v1.3", kV13Symlinks);
    tree.PutFile(companion, kV13Status);
    expect_skipped(tree);
  }
  {
    // The companion is listed but cannot be read.
    MemoryTree tree("v1.3", kV13Symlinks);
    tree.Find(companion)->size = 342;
    tree.PutEntry({companion, EntryType::kFile, 342, ""});
    expect_skipped(tree);
  }
}

TEST(TreeDecoderTest, DuplicatePlainNameIsSkipped) {
  MemoryTree tree("v1.3", kV13Symlinks);
  // status.txt a second time, stored in long-name form with a matching companion.
  const std::string hashed = tree.volume().names()->LongNameFor(kV13Status);
  tree.PutFile(hashed, "");
  tree.PutFile(hashed + ".name", kV13Status);
  auto plain = tree.Decode();
  ASSERT_TRUE(plain);
  const auto paths = Paths(*plain);
  EXPECT_EQ(std::count(paths.begin(), paths.end(), "status.txt"), 1);
  EXPECT_EQ(plain->size(), 5u);
  EXPECT_EQ(tree.stats().rejected_names, 1u);
}

TEST(TreeDecoderTest, CorruptSymlinkTargetIsDamaged) {
  MemoryTree tree("v1.3", kV13Symlinks);
  std::string& target = tree.Find("uD4PVrDBY5y2k_qLKNOFvA")->link_target;
  target[10] = target[10] == 'A' ? 'B' : 'A';
  auto plain = tree.Decode();
  ASSERT_TRUE(plain);
  auto by_path = ByPath(*plain);
  EXPECT_TRUE(by_path["rel"].damaged);
  EXPECT_EQ(by_path["rel"].plain_size, 0u);
  EXPECT_TRUE(by_path["rel"].symlink_target.empty());
  EXPECT_FALSE(by_path["abs"].damaged);
  EXPECT_EQ(tree.stats().damaged_entries, 1u);
}

TEST(TreeDecoderTest, StrayEntriesAreSkipped) {
  MemoryTree tree("v1.3", kV13Symlinks);
  tree.PutFile("not-base64!!", "x");
  tree.PutFile("gocryptfs.diriv.rmdir.1234", "x");
  tree.PutFile("AAAAAAAAAAAAAAAAAAAAAA", "x");  // decodes, but the padding is wrong
  tree.PutEntry({"missingdir/child", EntryType::kFile, 0, ""});  // parent not listed
  for (const char* bad_key : {"/abs", "a//b", "../x", "x/.", "trailing/"}) {
    tree.PutEntry({bad_key, EntryType::kFile, 0, ""});
  }
  auto plain = tree.Decode();
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->size(), 5u);
  EXPECT_EQ(tree.stats().rejected_names, 9u);
}

TEST(TreeDecoderTest, ReservedNamesPerMode) {
  {
    // Deterministic names: no diriv files, and one named gocryptfs.diriv is not special.
    MemoryTree tree("v2.2-deterministic-names",
                    {"5rnuPVh7zU9h5w36GgJfsQ", "YAqFj7_ODPtY1Xsfjfq3Zw"});
    tree.PutFile("gocryptfs.diriv", std::string(16, 'x'));
    auto plain = tree.Decode();
    ASSERT_TRUE(plain) << plain.error().message();
    EXPECT_EQ(plain->size(), 5u);
    EXPECT_EQ(tree.stats().rejected_names, 1u);
    EXPECT_EQ(tree.reads(), 1);  // only the long-name companion
  }
  {
    // PlaintextNames: only the root's gocryptfs.conf is hidden; nothing is read.
    MemoryTree tree("v0.7-plaintextnames", {"rel", "abs"});
    tree.PutFile("gocryptfs.diriv", std::string(16, 'x'));
    tree.PutEntry({"sub", EntryType::kDirectory, 0, ""});
    tree.PutFile("sub/gocryptfs.conf", "{}");
    tree.PutFile("gocryptfs.longname.abc", "");
    auto plain = tree.Decode();
    ASSERT_TRUE(plain);
    EXPECT_EQ(Paths(*plain),
              (std::vector<std::string>{"", "abs", "gocryptfs.diriv", "gocryptfs.longname.abc",
                                        "rel", "status.txt", "sub", "sub/gocryptfs.conf"}));
    EXPECT_EQ(tree.reads(), 0);
  }
  {
    // gocryptfs.conf is hidden only in the root: elsewhere it is just an undecryptable name.
    MemoryTree tree("_extra/v1.3-reverse-ciphertext-snapshot",
                    {"3-4cq_ip9yXRxYXRjtyMtg", "Hc6uo8KX5qYbx93JPJ9kAw"});
    tree.PutFile("zOsW1-BUX54hC2hmhu2EOw/gocryptfs.conf", "{}");
    auto plain = tree.Decode();
    ASSERT_TRUE(plain);
    EXPECT_EQ(tree.stats().rejected_names, 1u);
  }
}

TEST(TreeDecoderTest, SpecialFilesAndSizes) {
  MemoryTree tree("v1.3", kV13Symlinks);
  DirIv iv{};
  const auto diriv = ReadFileBytes(FixturePath("v1.3/gocryptfs.diriv"));
  std::copy(diriv.begin(), diriv.end(), iv.begin());
  auto fifo = tree.volume().names()->EncryptName("fifo", iv);
  ASSERT_TRUE(fifo);
  tree.PutEntry({*fifo, EntryType::kOther, 0, ""});
  auto big = tree.volume().names()->EncryptName("big.bin", iv);
  ASSERT_TRUE(big);
  tree.PutEntry({*big, EntryType::kFile, 21135378, ""});  // a 20 MiB file, never read
  auto plain = tree.Decode();
  ASSERT_TRUE(plain);
  auto by_path = ByPath(*plain);
  EXPECT_EQ(by_path["fifo"].type, EntryType::kOther);
  EXPECT_EQ(by_path["fifo"].plain_size, 0u);
  EXPECT_EQ(by_path["big.bin"].plain_size, 20971520u);
  EXPECT_EQ(tree.reads(), 2);
}

}  // namespace
}  // namespace cachefs::crypto
