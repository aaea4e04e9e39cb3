// The read path on real gocryptfs ciphertext (fixture _extra/xray_tests/aesgcm_fs: 5000 zero
// bytes in two blocks), served from memory so that faults can be injected.

#include "fs/file_reader.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "crypto/volume.h"
#include "fs/kernel_cache_filler.h"
#include "fs/namespace_builder.h"

namespace cachefs::fs {
namespace {

const std::string kVolume =
    std::string(CACHEFS_FIXTURES_DIR) + "/gocryptfs/_extra/xray_tests/aesgcm_fs/";

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// An origin holding a few objects in memory.
class MemoryOrigin : public fetch::Origin {
 public:
  std::map<std::string, std::vector<uint8_t>> objects;
  int reads = 0;

  std::string Describe() const override { return "memory"; }
  Result<std::vector<fetch::ObjectInfo>> List() override {
    std::vector<fetch::ObjectInfo> out;
    for (const auto& [key, data] : objects) {
      out.push_back({key, fetch::ObjectType::kFile, data.size(), "v1", 0, 0444, ""});
    }
    return out;
  }
  Result<size_t> ReadRange(const fetch::ObjectInfo& object, uint64_t offset,
                           std::span<uint8_t> dst) override {
    ++reads;
    const auto& data = objects.at(object.key);
    if (offset >= data.size()) {
      return size_t{0};
    }
    size_t n = std::min<size_t>(dst.size(), data.size() - offset);
    std::copy_n(data.begin() + static_cast<long>(offset), n, dst.begin());
    return n;
  }
};

class FileReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"gocryptfs.conf", "gocryptfs.diriv", "VnvoeSetPaOFjZDaZAh0lA"}) {
      origin_.objects[name] = ReadFile(kVolume + name);
      ASSERT_FALSE(origin_.objects[name].empty()) << name;
    }
    const auto& conf = origin_.objects["gocryptfs.conf"];
    auto config = crypto::ParseVolumeConfig(
        std::string_view(reinterpret_cast<const char*>(conf.data()), conf.size()));
    ASSERT_TRUE(config) << config.error().message();
    auto volume = crypto::Volume::Unlock(*config, SecretBytes::CopyOf(std::string_view("test")));
    ASSERT_TRUE(volume) << volume.error().message();
    volume_ = std::move(volume).value();
    BuildTable();
  }

  void BuildTable() {
    auto listing = ListOrigin(origin_);
    ASSERT_TRUE(listing);
    NamespaceStats stats;
    auto table = BuildNamespace(origin_, *listing, *volume_, &stats);
    ASSERT_TRUE(table) << table.error().message();
    table_ = std::move(table).value();
    file_ = table_->Lookup(kRootInode, "zero5000");
    ASSERT_NE(file_, nullptr);
  }

  MemoryOrigin origin_;
  std::unique_ptr<crypto::Volume> volume_;
  std::unique_ptr<InodeTable> table_;
  const Inode* file_ = nullptr;
  TaskPool pool_{1};
};

TEST_F(FileReaderTest, ReadsAnyRangeOfRealCiphertext) {
  ASSERT_EQ(file_->size, 5000u);
  FileReader reader(*table_, origin_, volume_->content(), pool_);
  for (uint64_t offset : {0u, 1u, 4095u, 4096u, 4097u, 4999u}) {
    for (size_t length : {1u, 100u, 4096u, 8192u}) {
      auto data = reader.Read(*file_, offset, length);
      ASSERT_TRUE(data) << data.error().message();
      EXPECT_EQ(data->size(), std::min<uint64_t>(length, 5000 - offset));
      EXPECT_TRUE(std::all_of(data->begin(), data->end(), [](uint8_t b) { return b == 0; }));
    }
  }
  auto past_end = reader.Read(*file_, 5000, 10);
  ASSERT_TRUE(past_end);
  EXPECT_TRUE(past_end->empty());
  EXPECT_EQ(reader.stats().plaintext_bytes.load() > 0, true);
}

TEST_F(FileReaderTest, ABadBlockFailsOnlyReadsThatTouchIt) {
  origin_.objects["VnvoeSetPaOFjZDaZAh0lA"][18 + 4128 + 40] ^= 1;  // inside block 1
  FileReader reader(*table_, origin_, volume_->content(), pool_);
  EXPECT_TRUE(reader.Read(*file_, 0, 4096));
  auto bad = reader.Read(*file_, 4096, 10);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kCorrupt);
  EXPECT_NE(bad.error().message().find("block 1"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(reader.Read(*file_, 4000, 200));  // straddles blocks 0 and 1
  EXPECT_TRUE(reader.Read(*file_, 0, 4096));
  EXPECT_EQ(reader.stats().corrupt_blocks.load(), 2u);
}

TEST_F(FileReaderTest, TheHeaderIsReadOncePerFile) {
  FileReader reader(*table_, origin_, volume_->content(), pool_);
  origin_.reads = 0;
  ASSERT_TRUE(reader.Read(*file_, 0, 10));
  ASSERT_TRUE(reader.Read(*file_, 100, 10));
  EXPECT_EQ(origin_.reads, 3);  // header once, then one ranged read per request
}

TEST_F(FileReaderTest, DecryptAheadPushesEveryByteOnceAndSkipsServedSegments) {
  FileReader reader(*table_, origin_, volume_->content(), pool_);
  std::mutex mutex;
  std::vector<std::pair<uint64_t, size_t>> stored;
  std::condition_variable done;
  {
    KernelCacheFiller filler(
        *table_, reader,
        [&](InodeNumber ino, uint64_t offset, std::span<const uint8_t> data) {
          EXPECT_EQ(ino, file_->ino);
          std::lock_guard lock(mutex);
          stored.emplace_back(offset, data.size());
          done.notify_all();
          return 0;
        },
        UINT64_MAX / 2);
    filler.FileOpened(*file_);
    filler.FileOpened(*file_);  // queued once
    std::unique_lock lock(mutex);
    ASSERT_TRUE(done.wait_for(lock, std::chrono::seconds(10), [&] { return !stored.empty(); }));
  }
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0], std::make_pair(uint64_t{0}, size_t{5000}));

  // A file whose only segment a READ already served is not pushed again.
  stored.clear();
  KernelCacheFiller filler(
      *table_, reader,
      [&](InodeNumber, uint64_t offset, std::span<const uint8_t> data) {
        std::lock_guard lock(mutex);
        stored.emplace_back(offset, data.size());
        return 0;
      },
      UINT64_MAX / 2);
  filler.MarkServed(file_->ino, 0, 5000);
  filler.FileOpened(*file_);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::lock_guard lock(mutex);
  EXPECT_TRUE(stored.empty());
}

// Decrypt-ahead over a 12 MiB file: the fixture's header followed by all-zero blocks, which
// gocryptfs reads as holes (plaintext zeros).
class DecryptAheadBudgetTest : public FileReaderTest {
 protected:
  static constexpr uint64_t kMiB = 1 << 20;

  void SetUp() override {
    FileReaderTest::SetUp();
    auto& object = origin_.objects["VnvoeSetPaOFjZDaZAh0lA"];
    object.resize(18);  // keep the header (file ID)
    object.resize(18 + 12 * kMiB / 4096 * 4128, 0);
    BuildTable();
    ASSERT_EQ(file_->size, 12 * kMiB);
  }

  KernelCacheFiller::StoreFn Recorder() {
    return [this](InodeNumber, uint64_t offset, std::span<const uint8_t> data) {
      std::lock_guard lock(mutex_);
      stored_.emplace_back(offset, data.size());
      stored_bytes_ += data.size();
      changed_.notify_all();
      return 0;
    };
  }

  // Waits until `bytes` were stored, then a little longer to see that nothing more comes.
  uint64_t StoredSettlesAt(uint64_t bytes) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return stored_bytes_ >= bytes; });
    changed_.wait_for(lock, std::chrono::milliseconds(300), [&] { return stored_bytes_ > bytes; });
    return stored_bytes_;
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::pair<uint64_t, size_t>> stored_;
  uint64_t stored_bytes_ = 0;
};

TEST_F(DecryptAheadBudgetTest, OpenFilesHoldAtMostTheBudget) {
  FileReader reader(*table_, origin_, volume_->content(), pool_);
  KernelCacheFiller filler(*table_, reader, Recorder(), 4 * kMiB);
  filler.FileOpened(*file_);
  EXPECT_EQ(StoredSettlesAt(4 * kMiB), 4 * kMiB);
  {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < stored_.size(); ++i) {
      EXPECT_EQ(stored_[i], std::make_pair(i * kMiB, size_t{kMiB}));  // in order, from the start
    }
  }

  // Closing the file frees its share; the filler leaves the closed file alone...
  filler.FileReleased(file_->ino);
  EXPECT_EQ(StoredSettlesAt(4 * kMiB), 4 * kMiB);
  // ...and goes on where it stopped when the file is opened again.
  filler.FileOpened(*file_);
  EXPECT_EQ(StoredSettlesAt(8 * kMiB), 8 * kMiB);
  std::lock_guard lock(mutex_);
  EXPECT_EQ(stored_.back().first, 7 * kMiB);
}

TEST_F(DecryptAheadBudgetTest, AnUnboundedBudgetFillsTheWholeFileOnce) {
  FileReader reader(*table_, origin_, volume_->content(), pool_);
  KernelCacheFiller filler(*table_, reader, Recorder(), UINT64_MAX / 2);
  filler.FileOpened(*file_);
  filler.FileOpened(*file_);  // a second handle
  EXPECT_EQ(StoredSettlesAt(12 * kMiB), 12 * kMiB);
  filler.FileReleased(file_->ino);
  filler.FileReleased(file_->ino);
  filler.FileOpened(*file_);  // filled already: nothing to push again
  EXPECT_EQ(StoredSettlesAt(12 * kMiB), 12 * kMiB);
}

TEST_F(DecryptAheadBudgetTest, AReleaseWithoutAnOpenIsIgnored) {
  FileReader reader(*table_, origin_, volume_->content(), pool_);
  KernelCacheFiller filler(*table_, reader, Recorder(), 4 * kMiB);
  filler.FileOpened(*file_);
  EXPECT_EQ(StoredSettlesAt(4 * kMiB), 4 * kMiB);
  filler.FileReleased(file_->ino);
  filler.FileReleased(file_->ino);  // must not free budget that was never taken
  filler.FileOpened(*file_);
  EXPECT_EQ(StoredSettlesAt(8 * kMiB), 8 * kMiB);
}

}  // namespace
}  // namespace cachefs::fs
