#include "common/task_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace cachefs {
namespace {

TEST(TaskPoolTest, RunsEveryIndexOnce) {
  TaskPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.ParallelFor(hits.size(), [&](size_t i) { hits[i].fetch_add(1); });
  for (auto& hit : hits) {
    EXPECT_EQ(hit.load(), 1);
  }
}

TEST(TaskPoolTest, ConcurrentCallersEachWaitForTheirOwnWork) {
  TaskPool pool(2);
  std::atomic<long> total{0};
  std::vector<std::thread> callers;
  for (int caller = 0; caller < 8; ++caller) {
    callers.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        std::atomic<int> done{0};
        pool.ParallelFor(17, [&](size_t) { done.fetch_add(1); });
        EXPECT_EQ(done.load(), 17);  // all of this call's indices finished before it returned
        total.fetch_add(done.load());
      }
    });
  }
  for (auto& thread : callers) {
    thread.join();
  }
  EXPECT_EQ(total.load(), 8L * 200 * 17);
}

TEST(TaskPoolTest, ZeroAndOneItems) {
  TaskPool pool(1);
  int calls = 0;
  pool.ParallelFor(0, [&](size_t) { ++calls; });
  pool.ParallelFor(1, [&](size_t) { ++calls; });
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace cachefs
