#pragma once

// A fixed set of worker threads for CPU-bound work (decryption). ParallelFor splits a loop
// across the workers and the calling thread and returns when every index is done.

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cachefs {

class TaskPool {
 public:
  // `workers` threads besides the callers; 0 means one per core minus one (the caller works
  // too, so a ParallelFor uses every core).
  explicit TaskPool(size_t workers = 0);
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  size_t concurrency() const { return threads_.size() + 1; }

  // Runs fn(i) for i in [0, count), in parallel, at most `concurrency()` at once. fn must not
  // throw. Safe to call from several threads at once; each call waits for its own indices only.
  void ParallelFor(size_t count, const std::function<void(size_t)>& fn);

 private:
  struct Job;
  void WorkerLoop();
  static void RunShare(Job& job);

  std::mutex mutex_;
  std::condition_variable work_available_;
  std::vector<Job*> jobs_;  // guarded by mutex_; jobs that still have unclaimed indices
  bool stopping_ = false;   // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace cachefs
