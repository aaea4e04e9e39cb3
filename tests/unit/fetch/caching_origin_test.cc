#include "fetch/caching_origin.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "fetch/origin_factory.h"

namespace cachefs::fetch {
namespace {

constexpr uint64_t kChunk = 64 << 10;

// An in-memory origin that counts ranged reads and can be slowed down or made to fail.
class FakeOrigin final : public Origin {
 public:
  explicit FakeOrigin(size_t size) : data_(size) {
    std::mt19937 rng(1);
    for (auto& b : data_) {
      b = static_cast<uint8_t>(rng());
    }
    object_.key = "obj";
    object_.size = size;
    object_.etag = "\"v1\"";
  }
  std::string Describe() const override { return "fake"; }
  Result<std::vector<ObjectInfo>> List() override { return std::vector<ObjectInfo>{object_}; }
  Result<size_t> ReadRange(const ObjectInfo& object, uint64_t offset,
                           std::span<uint8_t> dst) override {
    reads++;
    if (offset == 0) {
      reads_at_zero++;
    }
    if (delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
    if (object.etag != object_.etag) {
      return Error(Errc::kChanged, "changed");
    }
    size_t n = std::min<uint64_t>(dst.size(), data_.size() - offset);
    std::memcpy(dst.data(), data_.data() + offset, n);
    return n;
  }
  const ObjectInfo& object() const { return object_; }
  const std::vector<uint8_t>& data() const { return data_; }

  std::atomic<int> reads{0};
  std::atomic<int> reads_at_zero{0};
  int delay_ms = 0;

 private:
  std::vector<uint8_t> data_;
  ObjectInfo object_;
};

struct Fixture {
  explicit Fixture(size_t size, CacheOptions options = {}, std::unique_ptr<DiskCache> disk = {}) {
    auto fake_ptr = std::make_unique<FakeOrigin>(size);
    fake = fake_ptr.get();
    options.chunk_size = kChunk;
    cache = std::make_unique<CachingOrigin>(std::move(fake_ptr), options, std::move(disk));
  }
  OriginStats Stats() {
    OriginStats s;
    cache->CollectStats(s);
    return s;
  }
  FakeOrigin* fake;
  std::unique_ptr<CachingOrigin> cache;
};

std::vector<uint8_t> ReadAll(Origin& origin, const ObjectInfo& object, size_t piece) {
  std::vector<uint8_t> out(object.size);
  for (uint64_t off = 0; off < object.size; off += piece) {
    size_t n = std::min<uint64_t>(piece, object.size - off);
    auto r = origin.ReadRange(object, off, std::span<uint8_t>(out.data() + off, n));
    EXPECT_TRUE(r);
    EXPECT_EQ(*r, n);
  }
  return out;
}

TEST(CachingOriginTest, ReadsAcrossChunkBoundaries) {
  Fixture f(10 * kChunk + 123);
  EXPECT_EQ(ReadAll(*f.cache, f.fake->object(), 10000), f.fake->data());
  std::vector<uint8_t> tail(1000);
  auto r = f.cache->ReadRange(f.fake->object(), f.fake->object().size - 10, tail);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 10u);
}

TEST(CachingOriginTest, SingleFlightPerChunk) {
  Fixture f(4 * kChunk);
  f.fake->delay_ms = 100;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      std::vector<uint8_t> buf(1000);
      auto r = f.cache->ReadRange(f.fake->object(), 100 * i, buf);
      EXPECT_TRUE(r);
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(f.fake->reads_at_zero, 1);
  EXPECT_GE(f.Stats().single_flight_waits, 1u);
}

TEST(CachingOriginTest, SequentialReadsReadAheadRandomReadsDoNot) {
  Fixture seq(64 * kChunk);
  seq.fake->delay_ms = 2;  // a network that takes time, so read-ahead can run ahead
  ReadAll(*seq.cache, seq.fake->object(), 16 << 10);
  auto s = seq.Stats();
  EXPECT_GE(s.readahead_issued, 16u);
  EXPECT_EQ(seq.fake->reads, 64);  // every chunk once, read-ahead or not

  Fixture rnd(1024 * kChunk);
  std::mt19937 rng(5);
  std::vector<uint8_t> buf(4096);
  for (int i = 0; i < 256; ++i) {
    uint64_t off = (rng() % 1024) * kChunk + rng() % (kChunk - buf.size());
    ASSERT_TRUE(rnd.cache->ReadRange(rnd.fake->object(), off, buf));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LE(rnd.Stats().readahead_issued, 2u);
}

TEST(CachingOriginTest, StaysWithinMemoryBudget) {
  CacheOptions options;
  options.memory_budget = 8 * kChunk;
  options.max_readahead = 64 * kChunk;
  Fixture f(200 * kChunk, options);
  f.fake->delay_ms = 1;
  uint64_t peak = 0;
  std::vector<uint8_t> buf(32 << 10);
  for (uint64_t off = 0; off < f.fake->object().size; off += buf.size()) {
    ASSERT_TRUE(f.cache->ReadRange(f.fake->object(), off, buf));
    peak = std::max(peak, f.Stats().memory_used);
  }
  // A reader's own chunk may come on top of a full budget.
  EXPECT_LE(peak, options.memory_budget + kChunk);
  EXPECT_GT(f.Stats().readahead_issued, 25u);
}

TEST(CachingOriginTest, ErrorsReachTheReader) {
  Fixture f(4 * kChunk);
  ObjectInfo other = f.fake->object();
  other.etag = "\"v0\"";
  std::vector<uint8_t> buf(10);
  auto r = f.cache->ReadRange(other, 0, buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kChanged);
}

TEST(CachingOriginTest, ChunkSourceSeamIsUsedOnMisses) {
  Fixture f(4 * kChunk);
  struct PeerStandIn final : ChunkSource {
    explicit PeerStandIn(Origin& o) : origin(o) {}
    Result<size_t> FetchChunk(const ObjectInfo& object, uint64_t index, uint64_t chunk_size,
                              std::span<uint8_t> dst) override {
      calls++;
      return origin.ReadRange(object, index * chunk_size, dst);
    }
    Origin& origin;
    std::atomic<int> calls{0};
  };
  auto peer = std::make_shared<PeerStandIn>(*f.fake);
  f.cache->SetChunkSource(peer);
  EXPECT_EQ(ReadAll(*f.cache, f.fake->object(), kChunk), f.fake->data());
  EXPECT_EQ(peer->calls, 4);
  auto chunk = f.cache->GetChunk(f.fake->object(), 2);
  ASSERT_TRUE(chunk);
  EXPECT_EQ(peer->calls, 4);  // served from memory
  EXPECT_EQ((*chunk)->bytes().size(), kChunk);
}

class DiskCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cachefs_disk_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(DiskCacheTest, ReusedAfterRestartAndCheckedOnRead) {
  std::vector<uint8_t> data;
  {
    auto disk = DiskCache::Open(dir_, 0);
    ASSERT_TRUE(disk);
    Fixture f(6 * kChunk + 5, {}, std::move(*disk));
    data = ReadAll(*f.cache, f.fake->object(), kChunk);
  }  // the destructor drains the disk writer
  {
    auto disk = DiskCache::Open(dir_, 0);
    ASSERT_TRUE(disk);
    Fixture f(6 * kChunk + 5, {}, std::move(*disk));
    EXPECT_EQ(ReadAll(*f.cache, f.fake->object(), kChunk), f.fake->data());
    EXPECT_EQ(f.fake->reads, 0);
    EXPECT_EQ(f.Stats().disk_hits, 7u);
  }
  // Corrupt one file and truncate another: both are detected and fetched again.
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    files.push_back(e.path());
  }
  ASSERT_EQ(files.size(), 7u);
  std::sort(files.begin(), files.end());
  {
    std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put('\x5a' ^ 0x01);
  }
  std::filesystem::resize_file(files[1], 40);
  auto disk = DiskCache::Open(dir_, 0);
  ASSERT_TRUE(disk);
  Fixture f(6 * kChunk + 5, {}, std::move(*disk));
  EXPECT_EQ(ReadAll(*f.cache, f.fake->object(), kChunk), f.fake->data());
  EXPECT_LE(f.fake->reads, 2);
  EXPECT_GE(f.fake->reads, 1);  // the flipped byte may have been 0x5b already
  EXPECT_EQ(f.Stats().disk_corrupt, static_cast<uint64_t>(f.fake->reads.load()));
}

TEST_F(DiskCacheTest, LruBound) {
  auto disk = DiskCache::Open(dir_, 3 * (kChunk + 200));
  ASSERT_TRUE(disk);
  Fixture f(10 * kChunk, {}, std::move(*disk));
  ReadAll(*f.cache, f.fake->object(), kChunk);
  f.cache.reset();
  size_t count = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    (void)e;
    ++count;
  }
  EXPECT_LE(count, 3u);
  EXPECT_GE(count, 1u);
}

TEST_F(DiskCacheTest, DropCacheEmptiesBothTiers) {
  auto disk = DiskCache::Open(dir_, 0);
  ASSERT_TRUE(disk);
  Fixture f(4 * kChunk, {}, std::move(*disk));
  ReadAll(*f.cache, f.fake->object(), kChunk);
  // Let the disk writer catch up.
  for (int i = 0; i < 100 && f.Stats().disk_used < 4 * kChunk; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(f.cache->DropCache(true, true), 8 * kChunk);
  EXPECT_EQ(f.Stats().disk_used, 0u);
  int before = f.fake->reads;
  EXPECT_EQ(ReadAll(*f.cache, f.fake->object(), kChunk), f.fake->data());
  EXPECT_EQ(f.fake->reads, before + 4);
}

TEST(Crc32cTest, KnownValue) {
  const char* text = "123456789";
  EXPECT_EQ(Crc32c({reinterpret_cast<const uint8_t*>(text), 9}), 0xE3069283u);
}

}  // namespace
}  // namespace cachefs::fetch
