#pragma once

// A fixed-bucket latency histogram for Prometheus (cachefs_read_duration_seconds): FUSE workers
// record without locks; the metrics server takes snapshots. Buckets span 50 µs (page-cache-
// warm decrypts) to 10 s (cold reads from a slow origin).
//
// Thread-safe. A snapshot taken while workers record may be off by the reads in flight, which
// Prometheus tolerates (counters only grow).

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace cachefs::fs {

class LatencyHistogram {
 public:
  // Upper bounds in seconds; a last, implicit bucket is +Inf.
  static constexpr std::array<double, 16> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   10};
  static constexpr size_t kBuckets = kBounds.size() + 1;

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};  // per bucket, not cumulative
    uint64_t count = 0;
    double sum_seconds = 0;
  };

  void Record(std::chrono::nanoseconds duration) {
    double seconds = std::chrono::duration<double>(duration).count();
    size_t bucket = 0;
    while (bucket < kBounds.size() && seconds > kBounds[bucket]) {
      ++bucket;
    }
    buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<uint64_t>(duration.count()), std::memory_order_relaxed);
  }

  Snapshot Take() const {
    Snapshot snapshot;
    for (size_t i = 0; i < kBuckets; ++i) {
      snapshot.counts[i] = buckets_[i].load(std::memory_order_relaxed);
      snapshot.count += snapshot.counts[i];
    }
    snapshot.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return snapshot;
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace cachefs::fs
