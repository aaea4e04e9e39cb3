#include "tools/cachefs/control_state.h"

#include <unistd.h>

#include <algorithm>
#include <unordered_set>

#include "common/log.h"
#include "tools/cachefs/readiness.h"

namespace cachefs::tools {
namespace {

constexpr auto kSampleInterval = std::chrono::seconds(1);
constexpr size_t kSamplesKept = 11;  // 10 intervals

int64_t UnixSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

double Ratio(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

// Splits "a/b//c/" into {"a", "b", "c"}; false for "." or ".." components, which the namespace
// never has and which would only serve to probe outside it.
bool SplitPath(const std::string& path, std::vector<std::string>* parts) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    size_t end = slash == std::string::npos ? path.size() : slash;
    std::string part = path.substr(start, end - start);
    if (part == "." || part == "..") {
      return false;
    }
    if (!part.empty()) {
      parts->push_back(std::move(part));
    }
    start = end + 1;
  }
  return true;
}

}  // namespace

ControlState::ControlState(std::string mountpoint, std::string key_source,
                           keyagent::TeeEnvironment tee)
    : mountpoint_(std::move(mountpoint)),
      key_source_(std::move(key_source)),
      tee_(tee),
      start_(std::chrono::system_clock::now()) {
  sampler_ = std::thread([this] {
    std::unique_lock lock(sample_mu_);
    while (!sampler_cv_.wait_for(lock, kSampleInterval, [this] { return stop_sampler_; })) {
      lock.unlock();
      Sample();
      lock.lock();
    }
  });
}

ControlState::~ControlState() {
  {
    std::lock_guard lock(sample_mu_);
    stop_sampler_ = true;
  }
  sampler_cv_.notify_all();
  sampler_.join();
}

void ControlState::SetOrigin(fetch::Origin* origin) {
  std::lock_guard lock(mu_);
  origin_ = origin;
}

void ControlState::SetVolume(const crypto::VolumeConfig& config) {
  std::lock_guard lock(mu_);
  volume_.set_creator(config.creator);
  volume_.clear_feature_flags();
  for (const std::string& flag : config.feature_flags) {
    volume_.add_feature_flags(flag);
  }
  volume_.set_content_algorithm(crypto::ContentAlgorithmName(config.content_algorithm));
  volume_.set_plaintext_names(config.plaintext_names);
  volume_.set_deterministic_names(config.deterministic_names);
  volume_.set_hkdf(config.hkdf);
  volume_.set_raw64(config.raw64);
  // The volume is only configured once the key unlocked it.
  key_obtained_ = true;
  key_obtained_unix_ = UnixSeconds(std::chrono::system_clock::now());
}

void ControlState::SetNamespace(const fs::InodeTable::Counts& counts, uint64_t rejected_names) {
  std::lock_guard lock(mu_);
  namespace_.set_files(counts.files);
  namespace_.set_directories(counts.directories);
  namespace_.set_symlinks(counts.symlinks);
  namespace_.set_plaintext_bytes(counts.plaintext_bytes);
  namespace_.set_rejected_names(rejected_names);
}

void ControlState::SetMount(fs::FuseMount* mount) {
  std::lock_guard lock(mu_);
  mount_ = mount;
  probe_ = nullptr;
  probe_searched_ = false;
}

void ControlState::SetReady() {
  uint64_t bytes = PlaintextBytes();
  std::lock_guard lock(mu_);
  ready_unix_ = UnixSeconds(std::chrono::system_clock::now());
  ready_at_ = std::chrono::steady_clock::now();
  bytes_at_ready_ = bytes;
  state_ = control::STATE_READY;
}

void ControlState::SetStopping() { state_ = control::STATE_STOPPING; }

void ControlState::SetPeersProvider(PeersProvider provider) {
  std::lock_guard lock(mu_);
  peers_provider_ = std::move(provider);
}

void ControlState::SetAttestationProvider(AttestationProvider provider) {
  std::lock_guard lock(mu_);
  attestation_provider_ = std::move(provider);
}

fetch::Origin* ControlState::origin() {
  std::lock_guard lock(mu_);
  return origin_;
}

uint64_t ControlState::PlaintextBytes() {
  std::lock_guard lock(mu_);
  return mount_ == nullptr ? 0 : mount_->filesystem().reader().stats().plaintext_bytes.load();
}

void ControlState::Sample() {
  uint64_t bytes = PlaintextBytes();
  std::lock_guard lock(sample_mu_);
  samples_.emplace_back(std::chrono::steady_clock::now(), bytes);
  while (samples_.size() > kSamplesKept) {
    samples_.pop_front();
  }
}

fs::LatencyHistogram::Snapshot ControlState::ReadLatency() {
  std::lock_guard lock(mu_);
  return mount_ == nullptr ? fs::LatencyHistogram::Snapshot{} : mount_->read_latency().Take();
}

void ControlState::FillPeers(control::PeersInfo* peers) {
  PeersProvider provider;
  {
    std::lock_guard lock(mu_);
    provider = peers_provider_;
  }
  if (provider) {
    provider(peers);
  }
}

void ControlState::WarmStarted(uint64_t files, uint64_t bytes) {
  if (warm_active_.fetch_add(1) == 0) {
    warm_bytes_done_ = 0;
    warm_bytes_total_ = 0;
    warm_files_done_ = 0;
    warm_files_total_ = 0;
  }
  warm_files_total_.fetch_add(files);
  warm_bytes_total_.fetch_add(bytes);
}

void ControlState::FillStatus(control::StatusReply* reply) {
  auto now = std::chrono::system_clock::now();
  reply->set_state(state_.load());
  reply->set_version(CACHEFS_VERSION);
  reply->set_pid(getpid());
  reply->set_start_unix(UnixSeconds(start_));
  reply->set_uptime_seconds(std::chrono::duration<double>(now - start_).count());
  reply->set_mountpoint(mountpoint_);

  control::KeyInfo* key = reply->mutable_key();
  key->set_source(key_source_);
  key->set_tee(tee_.Describe());
  key->set_in_tee(tee_.in_tdx());

  fetch::Origin* origin = nullptr;
  fs::FuseMount* mount = nullptr;
  uint64_t bytes_at_ready = 0;
  std::chrono::steady_clock::time_point ready_at;
  {
    std::lock_guard lock(mu_);
    origin = origin_;
    mount = mount_;
    bytes_at_ready = bytes_at_ready_;
    ready_at = ready_at_;
    key->set_obtained(key_obtained_);
    key->set_obtained_unix(key_obtained_unix_);
    if (attestation_provider_) {
      attestation_provider_(key->mutable_attestation());
    }
    *reply->mutable_volume() = volume_;
    *reply->mutable_namespace_() = namespace_;
    reply->set_ready_unix(ready_unix_);
  }
  if (reply->state() == control::STATE_MOUNTING) {
    reply->set_message(!key->obtained() ? "obtaining the key and reading the origin"
                                        : "building the namespace and mounting");
  }

  fetch::OriginStats o;
  if (origin != nullptr) {
    reply->set_origin(origin->Describe());
    origin->CollectStats(o);
  }
  control::PeersInfo* peers = reply->mutable_peers();
  FillPeers(peers);
  uint64_t peer_bytes = 0;
  for (const control::PeerInfo& peer : peers->peers()) {
    peer_bytes += peer.bytes_received();
  }

  control::TrafficInfo* traffic = reply->mutable_traffic();
  control::ErrorCounts* errors = reply->mutable_errors();
  const bool has_cache = o.memory_limit > 0 || o.disk_enabled;
  if (mount != nullptr) {
    const fs::ReadStats& r = mount->filesystem().reader().stats();
    traffic->set_read_requests(r.requests.load());
    traffic->set_plaintext_bytes(r.plaintext_bytes.load());
    traffic->set_ciphertext_bytes(r.ciphertext_bytes.load());
    if (mount->filler() != nullptr) {
      traffic->set_kernel_cache_bytes(mount->filler()->bytes_pushed());
      traffic->set_kernel_cache_held_bytes(mount->filler()->held_bytes());
      traffic->set_kernel_cache_budget_bytes(mount->filler()->budget_bytes());
    }
    errors->set_corrupt_blocks(r.corrupt_blocks.load());
    errors->set_read_origin_errors(r.origin_errors.load());
    errors->set_write_attempts(mount->filesystem().stats().write_attempts.load());
  }
  control::BytesBySource* by_source = traffic->mutable_bytes_by_source();
  if (has_cache) {
    by_source->set_memory(o.bytes_from_memory);
    by_source->set_disk(o.bytes_from_disk);
    // The cache counts peer and origin fetches together as "from the source".
    by_source->set_peers(std::min(peer_bytes, o.bytes_from_origin));
    by_source->set_origin(o.bytes_from_origin - by_source->peers());
  } else {
    // Read in place: every ciphertext byte came from the origin.
    by_source->set_origin(traffic->ciphertext_bytes());
  }
  traffic->set_memory_hits(o.memory_hits);
  traffic->set_disk_hits(o.disk_hits);
  traffic->set_source_fetches(o.origin_fetches);
  traffic->set_single_flight_waits(o.single_flight_waits);
  uint64_t lookups = o.memory_hits + o.disk_hits + o.origin_fetches;
  traffic->set_memory_hit_ratio(Ratio(o.memory_hits, lookups));
  traffic->set_cache_hit_ratio(Ratio(o.memory_hits + o.disk_hits, lookups));

  if (reply->state() == control::STATE_READY) {
    double since_ready =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - ready_at).count();
    if (since_ready > 0) {
      traffic->set_average_bytes_per_second(
          static_cast<double>(traffic->plaintext_bytes() - bytes_at_ready) / since_ready);
    }
    std::lock_guard lock(sample_mu_);
    if (!samples_.empty()) {
      auto [when, bytes] = samples_.front();
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - when).count();
      if (seconds > 0 && traffic->plaintext_bytes() >= bytes) {
        traffic->set_current_bytes_per_second(
            static_cast<double>(traffic->plaintext_bytes() - bytes) / seconds);
      }
    }
  }

  control::ReadAheadInfo* read_ahead = reply->mutable_read_ahead();
  read_ahead->set_streams(o.readahead_streams);
  read_ahead->set_inflight(o.readahead_inflight);
  read_ahead->set_issued(o.readahead_issued);
  read_ahead->set_used(o.readahead_used);

  control::CacheInfo* cache = reply->mutable_cache();
  cache->set_present(has_cache);
  cache->set_memory_used(o.memory_used);
  cache->set_memory_limit(o.memory_limit);
  cache->set_disk_enabled(o.disk_enabled);
  cache->set_disk_used(o.disk_used);
  cache->set_disk_limit(o.disk_limit);

  errors->set_origin_not_found(o.errors_not_found);
  errors->set_origin_denied(o.errors_denied);
  errors->set_origin_changed(o.errors_changed);
  errors->set_origin_transport(o.errors_transport);
  errors->set_origin_timeout(o.errors_timeout);
  errors->set_origin_server(o.errors_server);
  errors->set_origin_throttled(o.errors_throttled);
  errors->set_origin_short_body(o.errors_short_body);
  errors->set_origin_retries(o.origin_retries);
  errors->set_disk_corrupt(o.disk_corrupt);
  errors->set_disk_write_errors(o.disk_write_errors);

  control::WarmInfo* warm = reply->mutable_warm();
  warm->set_active(warm_active_.load() > 0);
  warm->set_bytes_done(warm_bytes_done_.load());
  warm->set_bytes_total(warm_bytes_total_.load());
  warm->set_files_done(warm_files_done_.load());
  warm->set_files_total(warm_files_total_.load());
}

const fs::Inode* ControlState::ProbeFile() {
  std::lock_guard lock(mu_);
  if (probe_searched_ || mount_ == nullptr) {
    return probe_;
  }
  probe_searched_ = true;
  // The smallest non-empty file: one block read, cheap even from a cold remote origin.
  for (const fs::Inode& inode : mount_->filesystem().table().inodes()) {
    if (inode.type == fs::NodeType::kFile && inode.size > 0 &&
        (probe_ == nullptr || inode.size < probe_->size)) {
      probe_ = &inode;
    }
  }
  return probe_;
}

void ControlState::CheckHealth(control::HealthReply* reply) {
  auto start = std::chrono::steady_clock::now();
  reply->set_state(state_.load());
  reply->set_mountpoint(mountpoint_);
  if (reply->state() != control::STATE_READY) {
    reply->set_detail(reply->state() == control::STATE_MOUNTING ? "still mounting" : "unmounting");
    return;
  }
  fs::FuseMount* mount = nullptr;
  {
    std::lock_guard lock(mu_);
    mount = mount_;
  }
  const fs::Inode* probe = ProbeFile();
  if (probe == nullptr) {
    // Nothing to read: a model without non-empty files still lists.
    reply->set_healthy(true);
    reply->set_detail("no non-empty file to read; namespace loaded");
  } else {
    auto data = mount->filesystem().reader().Read(*probe, 0, 1);
    if (data && data->size() == 1) {
      reply->set_healthy(true);
      reply->set_probe_path(probe->path);
      reply->set_detail("read 1 byte of " + probe->path + " through the read path");
    } else {
      reply->set_detail("reading " + probe->path + ": " +
                        (data ? std::string("short read") : data.error().message()));
    }
  }
  reply->set_check_seconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

bool ControlState::Flush(const control::FlushRequest& request, control::FlushReply* reply,
                         std::string* error) {
  bool all = !request.memory() && !request.disk() && !request.kernel();
  bool memory = all || request.memory();
  bool disk = all || request.disk();
  bool kernel = all || request.kernel();
  fetch::Origin* origin = nullptr;
  fs::FuseMount* mount = nullptr;
  uint64_t files = 0;
  {
    std::lock_guard lock(mu_);
    origin = origin_;
    mount = mount_;
    files = namespace_.files();
  }
  if (state_.load() != control::STATE_READY || mount == nullptr || origin == nullptr) {
    *error = "not mounted yet";
    return false;
  }
  fetch::OriginStats before;
  origin->CollectStats(before);
  if (memory || disk) {
    uint64_t dropped = origin->DropCache(memory, disk);
    // DropCache reports one total; attribute it to the tiers by how their use changed.
    fetch::OriginStats after;
    origin->CollectStats(after);
    uint64_t memory_dropped =
        memory ? before.memory_used - std::min(before.memory_used, after.memory_used) : 0;
    reply->set_memory_bytes_dropped(std::min(memory_dropped, dropped));
    reply->set_disk_bytes_dropped(dropped - reply->memory_bytes_dropped());
    if (before.memory_limit == 0 && !before.disk_enabled) {
      reply->set_note("the origin is read in place: no ciphertext cache to drop");
    }
  }
  if (kernel) {
    mount->InvalidateKernelCache();
    reply->set_kernel_files_invalidated(files);
  }
  reply->set_memory(memory);
  reply->set_disk(disk);
  reply->set_kernel(kernel);
  CACHEFS_LOG(kInfo, "control")
          .Kv("memory", memory ? "yes" : "no")
          .Kv("disk", disk ? "yes" : "no")
          .Kv("kernel", kernel ? "yes" : "no")
          .Kv("bytes", reply->memory_bytes_dropped() + reply->disk_bytes_dropped())
      << "caches flushed";
  return true;
}

bool ControlState::Unmount(std::string* error) {
  std::lock_guard lock(mu_);
  if (mount_ == nullptr || state_.load() == control::STATE_MOUNTING) {
    *error = "not mounted yet (stop the daemon with SIGTERM instead)";
    return false;
  }
  CACHEFS_LOG(kInfo, "control").Kv("mountpoint", mountpoint_) << "unmount requested";
  NotifySystemd("STOPPING=1");
  state_ = control::STATE_STOPPING;
  mount_->Stop();
  return true;
}

bool ControlState::ResolveWarmPaths(const control::WarmRequest& request,
                                    std::vector<const fs::Inode*>* files, std::string* error) {
  fs::FuseMount* mount = nullptr;
  {
    std::lock_guard lock(mu_);
    mount = mount_;
  }
  if (state_.load() != control::STATE_READY || mount == nullptr) {
    *error = "not mounted yet";
    return false;
  }
  const fs::InodeTable& table = mount->filesystem().table();
  std::vector<const fs::Inode*> roots;
  if (request.paths().empty()) {
    roots.push_back(table.Find(fs::kRootInode));
  }
  for (const std::string& raw : request.paths()) {
    std::string path = raw;
    if (!path.empty() && path[0] == '/') {
      if (path != mountpoint_ && !path.starts_with(mountpoint_ + "/")) {
        *error = raw + ": not under the mount point " + mountpoint_;
        return false;
      }
      path = path.substr(mountpoint_.size());
    }
    std::vector<std::string> parts;
    if (!SplitPath(path, &parts)) {
      *error = raw + ": '.' and '..' are not allowed";
      return false;
    }
    const fs::Inode* inode = table.Find(fs::kRootInode);
    for (const std::string& part : parts) {
      inode = inode->type == fs::NodeType::kDirectory ? table.Lookup(inode->ino, part) : nullptr;
      if (inode == nullptr) {
        *error = raw + ": no such file or directory in the mount";
        return false;
      }
    }
    roots.push_back(inode);
  }
  std::unordered_set<fs::InodeNumber> seen;
  std::vector<const fs::Inode*> stack(roots.rbegin(), roots.rend());
  while (!stack.empty()) {
    const fs::Inode* inode = stack.back();
    stack.pop_back();
    if (!seen.insert(inode->ino).second) {
      continue;
    }
    if (inode->type == fs::NodeType::kFile) {
      files->push_back(inode);
    } else if (inode->type == fs::NodeType::kDirectory) {
      for (auto it = inode->children.rbegin(); it != inode->children.rend(); ++it) {
        stack.push_back(table.Find(it->ino));
      }
    }
  }
  return true;
}

}  // namespace cachefs::tools
