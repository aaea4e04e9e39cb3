#pragma once

// What the control plane (cachefsctl over the control socket, Prometheus on --metrics-listen)
// knows about the running mount. RunMount fills it in as the mount progresses; the servers
// read it. The pointers it is given must outlive the servers (RunMount stops the servers
// before it tears the mount down).
//
// Thread-safe: setters come from the mount thread, reads from server threads.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "crypto/volume_config.h"
#include "fetch/origin.h"
#include "fs/fuse_mount.h"
#include "keyagent/tee_detect.h"
#include "proto/control.pb.h"

namespace cachefs::tools {

namespace control = ::cachefs::control::v1;

// Fills the sharing group's part of a status (p2p/ sets one once it is configured).
using PeersProvider = std::function<void(control::PeersInfo* peers)>;
// Fills the attestation part of a status when the key came through Trustee.
using AttestationProvider = std::function<void(control::AttestationInfo* attestation)>;

class ControlState {
 public:
  ControlState(std::string mountpoint, std::string key_source, keyagent::TeeEnvironment tee);
  ~ControlState();  // stops the throughput sampler
  ControlState(const ControlState&) = delete;
  ControlState& operator=(const ControlState&) = delete;

  // Mount progress, in this order.
  void SetOrigin(fetch::Origin* origin);
  void SetVolume(const crypto::VolumeConfig& config);  // keeps the public parts only
  void SetNamespace(const fs::InodeTable::Counts& counts, uint64_t rejected_names);
  void SetMount(fs::FuseMount* mount);  // nullptr again before the mount is destroyed
  void SetReady();
  void SetStopping();
  void SetPeersProvider(PeersProvider provider);
  void SetAttestationProvider(AttestationProvider provider);

  const std::string& mountpoint() const { return mountpoint_; }
  control::State state() const { return state_.load(); }

  void FillStatus(control::StatusReply* reply);
  void FillPeers(control::PeersInfo* peers);
  // Reads one byte of a file through the read path (origin, cache, decryption).
  void CheckHealth(control::HealthReply* reply);
  // FAILED_PRECONDITION-style errors come back as false plus a message.
  bool Flush(const control::FlushRequest& request, control::FlushReply* reply, std::string* error);
  // Detaches the mount, as SIGTERM does; Serve() then returns and the daemon exits 0.
  bool Unmount(std::string* error);

  // The inodes a warm request names, or an error naming the path that does not resolve.
  // Directories expand to every file below them; each file appears once.
  bool ResolveWarmPaths(const control::WarmRequest& request, std::vector<const fs::Inode*>* files,
                        std::string* error);
  fetch::Origin* origin();

  // Warm-up counters shown in status and metrics (the latest warm-up, or those running now).
  void WarmStarted(uint64_t files, uint64_t bytes);
  void WarmProgressed(uint64_t bytes) { warm_bytes_done_.fetch_add(bytes); }
  void WarmFileDone(uint64_t files = 1) { warm_files_done_.fetch_add(files); }
  void WarmFinished() { warm_active_.fetch_sub(1); }

  // For metrics: the read latency histogram, empty before the mount exists.
  fs::LatencyHistogram::Snapshot ReadLatency();

 private:
  uint64_t PlaintextBytes();
  void Sample();
  const fs::Inode* ProbeFile();

  const std::string mountpoint_;
  const std::string key_source_;
  const keyagent::TeeEnvironment tee_;
  const std::chrono::system_clock::time_point start_;
  std::atomic<control::State> state_{control::STATE_MOUNTING};

  std::mutex mu_;
  fetch::Origin* origin_ = nullptr;                 // guarded by mu_
  fs::FuseMount* mount_ = nullptr;                  // guarded by mu_
  control::VolumeInfo volume_;                      // guarded by mu_
  control::NamespaceInfo namespace_;                // guarded by mu_
  bool key_obtained_ = false;                       // guarded by mu_
  int64_t key_obtained_unix_ = 0;                   // guarded by mu_
  int64_t ready_unix_ = 0;                          // guarded by mu_
  uint64_t bytes_at_ready_ = 0;                     // guarded by mu_
  std::chrono::steady_clock::time_point ready_at_;  // guarded by mu_
  PeersProvider peers_provider_;                    // guarded by mu_
  AttestationProvider attestation_provider_;        // guarded by mu_
  const fs::Inode* probe_ = nullptr;                // guarded by mu_
  bool probe_searched_ = false;                     // guarded by mu_

  std::atomic<int> warm_active_{0};
  std::atomic<uint64_t> warm_bytes_done_{0}, warm_bytes_total_{0};
  std::atomic<uint64_t> warm_files_done_{0}, warm_files_total_{0};

  // Plaintext byte counts once a second for the last 10 seconds ("current throughput").
  std::mutex sample_mu_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> samples_;  // sample_mu_
  bool stop_sampler_ = false;                                                       // sample_mu_
  std::condition_variable sampler_cv_;
  std::thread sampler_;
};

}  // namespace cachefs::tools
