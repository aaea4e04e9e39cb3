// Chunk throughput between two sharing-group members, TLS and tags included.
//
//   p2p_throughput serve LISTEN                      serves until killed
//   p2p_throughput fetch LISTEN PEER [THREADS] [GiB] fetches every chunk PEER owns, prints GB/s
//
// Both ends share a fixed group key and a synthetic 4 GiB object of incompressible bytes (a
// 256 MiB random block repeated), so the origin costs one memcpy and the figure is the peer
// path: CachingOrigin on the server, the TLS data channel, GMAC tag on both ends.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fetch/caching_origin.h"
#include "p2p/sharing_group.h"

namespace {

using namespace cachefs;

constexpr uint64_t kChunk = 8ull << 20;
constexpr uint64_t kBlock = 256ull << 20;

class SyntheticOrigin final : public fetch::Origin {
 public:
  SyntheticOrigin() : block_(kBlock) {
    std::mt19937_64 rng(7);
    for (size_t i = 0; i < block_.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(block_.data() + i, &v, 8);
    }
  }
  std::string Describe() const override { return "synthetic://"; }
  Result<std::vector<fetch::ObjectInfo>> List() override {
    return std::vector<fetch::ObjectInfo>{};
  }
  Result<size_t> ReadRange(const fetch::ObjectInfo& object, uint64_t offset,
                           std::span<uint8_t> dst) override {
    size_t n = std::min<uint64_t>(dst.size(), object.size - offset);
    for (size_t done = 0; done < n;) {
      uint64_t at = (offset + done) % kBlock;
      size_t step = std::min<uint64_t>(n - done, kBlock - at);
      std::memcpy(dst.data() + done, block_.data() + at, step);
      done += step;
    }
    return n;
  }

 private:
  std::vector<uint8_t> block_;
};

fetch::ObjectInfo Object(uint64_t gib) {
  fetch::ObjectInfo info;
  info.key = "bench/model.safetensors";
  info.size = gib << 30;
  info.etag = "\"bench\"";
  return info;
}

int Run(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: p2p_throughput serve LISTEN | fetch LISTEN PEER [THREADS] [GiB]\n");
    return 2;
  }
  std::string mode = argv[1];
  int threads = argc > 4 ? std::atoi(argv[4]) : 8;
  uint64_t gib = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 4;
  const fetch::ObjectInfo object = Object(gib);
  fetch::CacheOptions cache_options;
  cache_options.chunk_size = kChunk;
  cache_options.memory_budget = 1ull << 30;
  fetch::CachingOrigin cache(std::make_unique<SyntheticOrigin>(), cache_options, nullptr);
  p2p::GroupOptions options;
  options.listen = argv[2];
  if (mode == "fetch") {
    if (argc < 4) {
      return 2;
    }
    options.seeds = {argv[3]};
  }
  std::vector<uint8_t> key(32, 0x42);
  auto group = p2p::SharingGroup::Start(
      options, key, cache, [&](std::string_view k) -> std::optional<fetch::ObjectInfo> {
        if (k == object.key) {
          return object;
        }
        return std::nullopt;
      });
  if (!group) {
    std::fprintf(stderr, "p2p_throughput: %s\n", group.error().message().c_str());
    return 1;
  }
  if (mode == "serve") {
    std::printf("READY\n");
    std::fflush(stdout);
    while (true) {
      std::this_thread::sleep_for(std::chrono::seconds(60));
    }
  }
  if ((*group)->Stats().alive != 1) {
    std::fprintf(stderr, "p2p_throughput: the peer did not join\n");
    return 1;
  }
  const uint64_t chunks = object.size / kChunk;
  std::atomic<uint64_t> next{0}, bytes{0}, errors{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      std::vector<uint8_t> buffer(kChunk);
      for (uint64_t i = next++; i < chunks; i = next++) {
        auto got = (*group)->FetchFromOwner(object, i, kChunk, buffer);
        if (!got) {
          errors++;
        } else if (got->has_value()) {
          bytes += **got;
        }
      }
    });
  }
  for (auto& w : workers) {
    w.join();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"bytes\": %llu, \"seconds\": %.3f, \"gbps\": %.3f, \"errors\": %llu, "
      "\"threads\": %d}\n",
      static_cast<unsigned long long>(bytes.load()), seconds, bytes / seconds / 1e9,
      static_cast<unsigned long long>(errors.load()), threads);
  (*group)->Stop();
  return errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
