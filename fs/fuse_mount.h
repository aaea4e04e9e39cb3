#pragma once

// The libfuse low-level adapter: creates the session, mounts, serves requests on libfuse's
// multithreaded loop and unmounts. Every handler is a thin translation to Filesystem; the
// only logic here is what only the kernel interface knows (entry timeouts, keep_cache,
// readdir buffers, decrypt-ahead with notify_store).

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "fs/filesystem.h"
#include "fs/kernel_cache_filler.h"
#include "fs/latency_histogram.h"

struct fuse_session;

namespace cachefs::fs {

struct MountOptions {
  std::string mountpoint;  // absolute
  std::string fsname;      // source shown in /proc/mounts (no secrets)
  bool allow_other = false;
  std::vector<std::string> kernel_options;  // extra -o options (nodev, nosuid, noexec, ...)
  unsigned readahead_kb = 4096;
  unsigned max_threads = 16;
  // The model is immutable while mounted: attributes, entries and misses can be cached long.
  double cache_timeout_sec = 24 * 3600;
  bool decrypt_ahead = true;
  // Most bytes decrypt-ahead keeps in the page cache of open files; 0: half of the memory this
  // process may fill (MemoryLimitBytes()).
  uint64_t decrypt_ahead_budget = 0;
};

class FuseMount {
 public:
  // Creates the session and mounts it. On success the kernel mount exists: requests queue
  // until Serve() runs. On failure nothing is left mounted.
  static Result<std::unique_ptr<FuseMount>> Create(Filesystem& fs, const MountOptions& options);
  ~FuseMount();
  FuseMount(const FuseMount&) = delete;
  FuseMount& operator=(const FuseMount&) = delete;

  // Serves requests until the mount goes away (Stop(), fusermount -u, umount) and then
  // unmounts. Call once, from the thread that will own the session's teardown.
  Status Serve();

  // Thread-safe, from any thread (a signal thread): ends Serve() by detaching the mount, since
  // the multithreaded loop of libfuse 3.14 only notices an exit flag when a read on /dev/fuse
  // returns.
  void Stop();

  // Drops every plaintext page of the mount from the kernel page cache; later reads decrypt
  // again. Decrypt-ahead restarts when files are next opened.
  void InvalidateKernelCache();

  const MountOptions& options() const { return options_; }
  Filesystem& filesystem() { return fs_; }
  // nullptr when decrypt-ahead is off.
  const KernelCacheFiller* filler() const { return filler_.get(); }
  // Time the read path (cache, origin, decryption) took per FUSE READ
  // (cachefs_read_duration_seconds).
  const LatencyHistogram& read_latency() const { return read_latency_; }

 private:
  FuseMount(Filesystem& fs, MountOptions options) : fs_(fs), options_(std::move(options)) {}
  void WidenReadahead();

  Filesystem& fs_;
  MountOptions options_;
  fuse_session* session_ = nullptr;
  std::atomic<bool> mounted_{false};
  std::unique_ptr<KernelCacheFiller> filler_;
  std::once_flag readahead_once_;
  LatencyHistogram read_latency_;

  friend struct FuseHandlers;
};

}  // namespace cachefs::fs
