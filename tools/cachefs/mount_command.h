#pragma once

// `cachefs mount ORIGIN MOUNTPOINT`: the composition root that wires key agent, origin, crypto
// and FUSE together.

#include <map>
#include <string>

#include "common/log.h"
#include "fetch/origin_factory.h"
#include "fs/fuse_mount.h"
#include "keyagent/key_source.h"

namespace cachefs::tools {

struct MountCommand {
  std::string origin;
  std::string mountpoint;
  std::string env_file;
  bool foreground = false;
  bool insecure_allow_non_tee = false;
  bool insecure_permissions = false;
  unsigned decrypt_threads = 0;  // 0: one per core
  std::string control_socket;    // empty: DefaultControlSocketPath(mountpoint)
  std::string metrics_listen;    // empty: no metrics listener
  // Sharing group (p2p/): --peers or MODEL_SHARING_PEER; empty disables sharing.
  std::string peers;
  std::string p2p_listen;      // HOST:PORT; empty: 0.0.0.0 on the default peer port
  double p2p_deadline_s = 5;   // a peer's chunk, else the origin
  uint64_t p2p_peer_rate = 0;  // bytes/s served to one peer; 0: no cap
  LogOptions log;
  keyagent::KeySourceOptions key;
  fetch::OriginOptions origin_options;
  fs::MountOptions mount;
};

// Runs the mount to completion (until unmounted) and returns the process exit code.
int RunMount(MountCommand command);

}  // namespace cachefs::tools
