#include "tools/cachefs/mount_command.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/env_file.h"
#include "common/process_hardening.h"
#include "common/task_pool.h"
#include "crypto/volume.h"
#include "crypto/volume_config.h"
#include "fetch/caching_origin.h"
#include "fs/filesystem.h"
#include "fs/mountpoint.h"
#include "fs/namespace_builder.h"
#include "keyagent/tee_detect.h"
#include "p2p/codec.h"
#include "p2p/sharing_group.h"
#include "tools/cachefs/control_server.h"
#include "tools/cachefs/exit_codes.h"
#include "tools/cachefs/readiness.h"

namespace cachefs::tools {
namespace {

constexpr size_t kMaxConfigBytes = 64 * 1024;

// Absolute form of a path given relative to the caller's directory (the daemon chdirs to /).
std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') {
    return path;
  }
  char cwd[PATH_MAX];
  if (getcwd(cwd, sizeof(cwd)) == nullptr) {
    return path;
  }
  return std::string(cwd) + "/" + path;
}

// Drops trailing slashes so the path matches /proc/self/mountinfo.
std::string Normalize(std::string path) {
  while (path.size() > 1 && path.back() == '/') {
    path.pop_back();
  }
  return path;
}

void FillFromEnvFile(MountCommand& command, const std::map<std::string, std::string>& env) {
  auto take = [&](const char* key, std::string& field) {
    auto it = env.find(key);
    if (field.empty() && it != env.end()) {
      field = it->second;
    }
  };
  take("MODEL_OSS_BUCKET_PATH", command.origin);
  take("MODEL_MOUNT_POINT", command.mountpoint);
  take("TRUSTEE_URL", command.key.trustee_url);
  take("MODEL_KEY_ID", command.key.key_id);
  take("TRUSTEE_POLICY", command.key.trustee_policy);
  take("MODEL_SHARING_PEER", command.peers);
}

// Joins the sharing group named by --peers and puts it in front of the origin: misses ask the
// chunk's owner first. Only remote origins have a chunk cache to share; a local directory
// needs no group (nullptr and a warning).
Result<std::shared_ptr<p2p::SharingGroup>> StartSharingGroup(const MountCommand& command,
                                                             fetch::Origin& origin,
                                                             const fs::OriginListing& listing,
                                                             const crypto::Volume& volume) {
  auto* cache = dynamic_cast<fetch::CachingOrigin*>(&origin);
  if (cache == nullptr) {
    CACHEFS_LOG(kWarn, "p2p") << "--peers ignored: a local origin is not shared";
    return std::shared_ptr<p2p::SharingGroup>();
  }
  p2p::GroupOptions options;
  CACHEFS_ASSIGN_OR_RETURN(options.seeds, p2p::ParsePeerList(command.peers));
  options.listen = command.p2p_listen.empty() ? "0.0.0.0:" + std::to_string(p2p::kDefaultPeerPort)
                                              : command.p2p_listen;
  options.fetch_deadline = std::chrono::milliseconds(
      static_cast<int64_t>(std::clamp(command.p2p_deadline_s, 0.1, 600.0) * 1000));
  options.serve_rate_per_peer = command.p2p_peer_rate;
  // TEST-ONLY fault switch for the integration suite: serve chunks that fail verification.
  const char* corrupt = std::getenv("CACHEFS_TEST_CORRUPT_PEER_CHUNKS");
  if (corrupt != nullptr && std::string_view(corrupt) == "1") {
    CACHEFS_LOG(kWarn, "p2p") << "TEST FAULT SWITCH: serving corrupted chunks to peers";
    options.test_corrupt_served_chunks = true;
  }
  auto objects = std::make_shared<std::unordered_map<std::string, fetch::ObjectInfo>>();
  for (const auto& object : listing.objects) {
    (*objects)[object.key] = object;
  }
  auto lookup = [objects](std::string_view key) -> std::optional<fetch::ObjectInfo> {
    auto it = objects->find(std::string(key));
    return it == objects->end() ? std::nullopt : std::optional(it->second);
  };
  CACHEFS_ASSIGN_OR_RETURN(
      auto group, p2p::SharingGroup::Start(std::move(options), volume.sharing_group_key().span(),
                                           *cache, std::move(lookup)));
  cache->SetChunkSource(group->MakeChunkSource(cache->chunk_source()));
  return group;
}

// The sharing group's state for cachefsctl status/peers and /metrics.
void FillPeersInfo(const p2p::GroupStats& stats, control::PeersInfo* info) {
  info->set_enabled(true);
  info->set_listen(stats.address);
  const double now = static_cast<double>(std::time(nullptr));
  for (const auto& peer : stats.peers) {
    control::PeerInfo* out = info->add_peers();
    out->set_address(peer.address);
    out->set_state(p2p::PeerStateName(peer.state));
    out->set_bytes_received(peer.bytes_received);
    out->set_bytes_sent(peer.bytes_served);
    out->set_chunks_received(peer.chunks_received);
    out->set_chunks_sent(peer.chunks_served);
    out->set_errors(peer.failures + peer.corrupt_chunks);
    out->set_last_seen_unix(
        peer.seconds_since_heard < 0 ? 0 : static_cast<int64_t>(now - peer.seconds_since_heard));
  }
}

// Serialises shutdown against start-up: a signal before the mount exists ends the process
// (removing a mount point we created); after, it detaches the mount and Serve() returns.
class Shutdown {
 public:
  Shutdown() {
    sigset_t signals = HandledSignals();
    // Blocked before any thread starts, so every thread inherits the mask and only sigwait()
    // below sees these signals.
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);
    thread_ = std::thread([this] { Wait(); });
    thread_.detach();
  }

  void SetCreatedMountpoint(const std::string& path) {
    std::lock_guard lock(mutex_);
    created_mountpoint_ = path;
  }
  void SetMount(fs::FuseMount* mount) {
    std::lock_guard lock(mutex_);
    mount_ = mount;
  }
  // A signal also cancels origin requests in flight, so that FUSE workers waiting on a hanging
  // origin are released and the loop can end.
  void SetOrigin(fetch::Origin* origin) {
    std::lock_guard lock(mutex_);
    origin_ = origin;
  }
  bool signalled() const { return signalled_.load(); }

 private:
  static sigset_t HandledSignals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    return signals;
  }

  void Wait() {
    sigset_t signals = HandledSignals();
    while (true) {
      int signal_number = 0;
      if (sigwait(&signals, &signal_number) != 0) {
        continue;
      }
      if (signal_number == SIGHUP) {
        // Nothing to reload; the daemon runs in its own session, so a closing terminal does
        // not send this.
        continue;
      }
      CACHEFS_LOG(kInfo, "cachefs").Kv("signal", signal_number) << "unmounting";
      NotifySystemd("STOPPING=1");
      signalled_ = true;
      std::lock_guard lock(mutex_);
      if (origin_ != nullptr) {
        origin_->Cancel();
      }
      if (mount_ != nullptr) {
        mount_->Stop();
        continue;
      }
      if (!created_mountpoint_.empty()) {
        rmdir(created_mountpoint_.c_str());
      }
      std::_Exit(kExitSignal);
    }
  }

  std::mutex mutex_;
  fs::FuseMount* mount_ = nullptr;   // guarded by mutex_
  fetch::Origin* origin_ = nullptr;  // guarded by mutex_
  std::string created_mountpoint_;   // guarded by mutex_
  std::atomic<bool> signalled_{false};
  std::thread thread_;
};

}  // namespace

int RunMount(MountCommand command) {
  ConfigureLogging(command.log);
  std::map<std::string, std::string> env_file;
  if (!command.env_file.empty()) {
    auto read = ReadEnvFile(command.env_file, command.insecure_permissions);
    if (!read) {
      std::fprintf(stderr, "cachefs: %s\n", read.error().message().c_str());
      return kExitConfig;
    }
    env_file = std::move(read).value();
    FillFromEnvFile(command, env_file);
  }
  if (command.origin.empty() || command.mountpoint.empty()) {
    std::fprintf(stderr,
                 "cachefs: mount needs ORIGIN and MOUNTPOINT (or MODEL_OSS_BUCKET_PATH "
                 "and MODEL_MOUNT_POINT in --env-file)\n");
    return kExitUsage;
  }
  command.mountpoint = Normalize(Absolute(command.mountpoint));
  if (command.origin[0] != '/' && command.origin.find("://") == std::string::npos &&
      command.origin.find(":/") == std::string::npos) {
    command.origin = Absolute(command.origin);
  }
  command.origin_options.location = command.origin;
  command.key.allow_non_tee = command.insecure_allow_non_tee;
  if (!command.key.passfile.empty()) {
    command.key.passfile = Absolute(command.key.passfile);
  }
  command.control_socket = Absolute(command.control_socket);
  if (auto status = fetch::ApplyEnvironment(command.origin_options, env_file); !status) {
    std::fprintf(stderr, "cachefs: %s\n", status.error().message().c_str());
    return kExitConfig;
  }

  keyagent::TeeEnvironment tee = keyagent::DetectTee();
  if (!tee.in_tdx() && !command.insecure_allow_non_tee) {
    std::fprintf(stderr,
                 "cachefs: refusing to serve plaintext: %s; pass --insecure-allow-non-tee to "
                 "mount anyway (development only)\n",
                 tee.Describe().c_str());
    return kExitNotTee;
  }

  auto prepared = fs::PrepareMountpoint(command.mountpoint);
  if (!prepared) {
    std::fprintf(stderr, "cachefs: %s\n", prepared.error().message().c_str());
    return kExitMountpoint;
  }

  Readiness readiness =
      command.foreground ? Readiness::Foreground() : Readiness::Daemonize(command.log);
  // Lives until exit: its signal thread may still be waiting when RunMount returns.
  Shutdown& shutdown = *new Shutdown();
  if (prepared->created) {
    shutdown.SetCreatedMountpoint(command.mountpoint);
  }
  ControlState control(command.mountpoint, keyagent::DescribeKeySource(command.key), tee);
  ControlPlane control_plane;
  auto fail = [&](int code, const Error& error) {
    control_plane = {};  // removes the control socket
    if (prepared->created) {
      rmdir(command.mountpoint.c_str());
    }
    readiness.Fail(code, error.message());
  };
  HardenProcess();
  auto control_started = StartControlPlane(control, command.control_socket, command.metrics_listen);
  if (!control_started) {
    fail(kExitConfig, control_started.error());
  }
  control_plane = std::move(control_started).value();

  auto origin = fetch::OpenOrigin(command.origin_options);
  // The signers keep their own copies in secure memory; drop the plain strings now.
  OPENSSL_cleanse(command.origin_options.secret_access_key.data(),
                  command.origin_options.secret_access_key.size());
  OPENSSL_cleanse(command.origin_options.session_token.data(),
                  command.origin_options.session_token.size());
  command.origin_options.secret_access_key.clear();
  command.origin_options.session_token.clear();
  if (!origin) {
    fail(kExitOrigin, origin.error());
  }
  shutdown.SetOrigin(origin->get());
  control.SetOrigin(origin->get());
  auto listing = fs::ListOrigin(**origin);
  if (!listing) {
    fail(kExitOrigin, listing.error().WithContext("listing " + (*origin)->Describe()));
  }
  const fetch::ObjectInfo* conf_object = listing->Find("gocryptfs.conf");
  if (conf_object == nullptr) {
    fail(kExitConfig,
         Error(Errc::kNotFound, (*origin)->Describe() + " has no gocryptfs.conf: not a gocryptfs "
                                                        "cipher directory"));
  }
  auto conf_bytes = fetch::ReadWholeObject(**origin, *conf_object, kMaxConfigBytes);
  if (!conf_bytes) {
    fail(kExitOrigin, conf_bytes.error());
  }
  auto config = crypto::ParseVolumeConfig(
      std::string_view(reinterpret_cast<const char*>(conf_bytes->data()), conf_bytes->size()));
  if (!config) {
    fail(kExitConfig, config.error());
  }

  auto password = keyagent::ObtainPassword(command.key);
  if (!password) {
    fail(kExitKey, password.error());
  }
  if (!command.key.trustee_url.empty()) {
    control.SetAttestationProvider([key = command.key](control::AttestationInfo* info) {
      auto state = keyagent::LastAttestation(key);
      if (!state) {
        return;
      }
      auto unix_seconds = [](std::chrono::system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
      };
      info->set_tee_type(state->tee);
      info->set_protocol_version(state->protocol_version);
      info->set_token_expires_unix(state->token_expires ? unix_seconds(*state->token_expires) : 0);
      info->set_attested_unix(unix_seconds(state->attested_at));
    });
  }
  auto volume = crypto::Volume::Unlock(*config, *password);
  password = Error(Errc::kCancelled, "consumed");  // wipes the password now
  if (!volume) {
    fail(kExitKey, volume.error());
  }
  std::shared_ptr<p2p::SharingGroup> sharing_group;
  if (!command.peers.empty()) {
    auto started = StartSharingGroup(command, **origin, *listing, **volume);
    if (!started) {
      fail(kExitConfig, started.error().WithContext("sharing group"));
    }
    sharing_group = std::move(started).value();
  }
  if (sharing_group) {
    control.SetPeersProvider([group = sharing_group](control::PeersInfo* peers) {
      FillPeersInfo(group->Stats(), peers);
    });
  }
  control.SetVolume(*config);

  fs::NamespaceStats namespace_stats;
  auto table = fs::BuildNamespace(**origin, *listing, **volume, &namespace_stats);
  if (!table) {
    fail(kExitConfig, table.error().WithContext("cipher tree"));
  }

  TaskPool decrypt_pool(command.decrypt_threads);
  fs::Filesystem filesystem(std::move(table).value(), **origin, **volume, decrypt_pool);
  const auto counts = filesystem.table().counts();
  control.SetNamespace(counts, namespace_stats.decode.rejected_names);
  command.mount.fsname = "cachefs";
  command.mount.mountpoint = command.mountpoint;
  auto mount = fs::FuseMount::Create(filesystem, command.mount);
  if (!mount) {
    fail(kExitFuse, mount.error());
  }
  shutdown.SetMount(mount->get());
  control.SetMount(mount->get());

  char summary[512];
  std::snprintf(summary, sizeof(summary),
                "mounted %s at %s: %lu files, %lu directories, %.2f GiB; key from %s; %s",
                (*origin)->Describe().c_str(), command.mountpoint.c_str(),
                static_cast<unsigned long>(counts.files),
                static_cast<unsigned long>(counts.directories),
                static_cast<double>(counts.plaintext_bytes) / (1 << 30),
                keyagent::DescribeKeySource(command.key).c_str(),
                tee.in_tdx() ? tee.Describe().c_str() : "NOT a TEE (--insecure-allow-non-tee)");
  readiness.Ready(summary);
  control.SetReady();
  if (namespace_stats.decode.rejected_names > 0) {
    CACHEFS_LOG(kWarn, "cachefs").Kv("rejected", namespace_stats.decode.rejected_names)
        << "cipher entries skipped because their names did not decrypt";
  }

  Status served = (*mount)->Serve();
  if (sharing_group) {
    sharing_group->Stop();  // before the origin it serves from goes away
  }
  control.SetStopping();
  control_plane = {};  // no control request may see the mount go away
  control.SetMount(nullptr);
  shutdown.SetMount(nullptr);
  shutdown.SetOrigin(nullptr);
  mount->reset();
  if (prepared->created) {
    rmdir(command.mountpoint.c_str());
  }
  if (!served) {
    CACHEFS_LOG(kError, "cachefs") << served.error().message();
    return kExitFailure;
  }
  CACHEFS_LOG(kInfo, "cachefs").Kv("mountpoint", command.mountpoint) << "unmounted";
  return shutdown.signalled() ? kExitSignal : kExitOk;
}

}  // namespace cachefs::tools
