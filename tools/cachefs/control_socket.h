#pragma once

// Where a daemon's control socket lives and how big its messages may be; shared by the daemon
// (control_server.cc) and cachefsctl so that both derive the same path from a mount point.

#include <cstddef>
#include <string>

namespace cachefs::tools {

// Owner-only directory for the sockets of every mount on the machine.
inline constexpr const char* kControlSocketDir = "/run/cachefs";

// Requests are a few bytes (warm's path list is the largest); anything bigger is hostile.
inline constexpr size_t kMaxControlRequestBytes = 64 * 1024;
// Replies: a status with many peers stays far below this.
inline constexpr size_t kMaxControlReplyBytes = 4 * 1024 * 1024;

// "/tmp/model" -> "/run/cachefs/tmp-model.sock"; "/" -> "/run/cachefs/-.sock" (systemd's
// spelling). Expects an absolute path without trailing slashes. '/' becomes '-'; distinct
// mount points such as /a-b and /a/b would share a name, which --control-socket resolves.
inline std::string DefaultControlSocketPath(const std::string& mountpoint) {
  std::string name;
  for (char c : mountpoint) {
    name += c == '/' ? '-' : c;
  }
  while (name.size() > 1 && name.front() == '-') {
    name.erase(name.begin());
  }
  return std::string(kControlSocketDir) + "/" + name + ".sock";
}

}  // namespace cachefs::tools
