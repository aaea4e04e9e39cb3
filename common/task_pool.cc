#include "common/task_pool.h"

#include <algorithm>
#include <atomic>

namespace cachefs {

struct TaskPool::Job {
  const std::function<void(size_t)>* fn;
  size_t count;
  std::atomic<size_t> next{0};
  std::atomic<size_t> done{0};
  std::mutex mutex;
  std::condition_variable finished;
};

TaskPool::TaskPool(size_t workers) {
  if (workers == 0) {
    size_t cores = std::max(1u, std::thread::hardware_concurrency());
    workers = cores > 1 ? cores - 1 : 1;
  }
  threads_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
}

TaskPool::~TaskPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_available_.notify_all();
  for (auto& thread : threads_) {
    thread.join();
  }
}

void TaskPool::RunShare(Job& job) {
  size_t finished_here = 0;
  for (size_t i = job.next.fetch_add(1); i < job.count; i = job.next.fetch_add(1)) {
    (*job.fn)(i);
    ++finished_here;
  }
  if (finished_here > 0 && job.done.fetch_add(finished_here) + finished_here == job.count) {
    std::lock_guard lock(job.mutex);
    job.finished.notify_all();
  }
}

void TaskPool::ParallelFor(size_t count, const std::function<void(size_t)>& fn) {
  if (count == 0) {
    return;
  }
  if (count == 1) {
    fn(0);
    return;
  }
  Job job;
  job.fn = &fn;
  job.count = count;
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(&job);
  }
  work_available_.notify_all();
  RunShare(job);
  {
    // Unpublish before waiting so no worker picks the job up after it is gone.
    std::lock_guard lock(mutex_);
    jobs_.erase(std::find(jobs_.begin(), jobs_.end(), &job));
  }
  std::unique_lock lock(job.mutex);
  job.finished.wait(lock, [&] { return job.done.load() == job.count; });
}

void TaskPool::WorkerLoop() {
  std::unique_lock lock(mutex_);
  while (true) {
    work_available_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) {
      return;
    }
    // Claim one index while holding mutex_: the owner unpublishes its job under mutex_ before it
    // waits, so a published job is alive here. Once claimed, the job cannot finish (and be
    // destroyed) until this worker adds its index to `done`; after that it is never touched.
    Job* claimed = nullptr;
    size_t index = 0;
    for (Job* job : jobs_) {
      index = job->next.fetch_add(1);
      if (index < job->count) {
        claimed = job;
        break;
      }
    }
    if (claimed == nullptr) {
      // Every published job is fully claimed; wait for its owner to unpublish it.
      work_available_.wait(lock, [this] {
        if (stopping_) {
          return true;
        }
        for (Job* job : jobs_) {
          if (job->next.load() < job->count) {
            return true;
          }
        }
        return false;
      });
      continue;
    }
    lock.unlock();
    (*claimed->fn)(index);
    if (claimed->done.fetch_add(1) + 1 == claimed->count) {
      std::lock_guard job_lock(claimed->mutex);
      claimed->finished.notify_all();
    }
    lock.lock();
  }
}

}  // namespace cachefs
