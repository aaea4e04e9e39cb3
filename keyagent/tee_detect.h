#pragma once

// Whether this machine is a confidential guest, detected the way Linux exposes it.

#include <string>

namespace cachefs::keyagent {

struct TeeEnvironment {
  bool tdx_guest = false;     // "tdx_guest" in /proc/cpuinfo flags
  bool configfs_tsm = false;  // /sys/kernel/config/tsm/report exists (quote generation)
  bool tdx_device = false;    // /dev/tdx_guest exists
  bool in_tdx() const { return tdx_guest || tdx_device; }
  // One line for logs: "TDX guest (cpu flag, configfs-tsm)" or "not a TDX guest (...)".
  std::string Describe() const;
};

// `root` prefixes every path read, for tests ("" on a live system).
TeeEnvironment DetectTee(const std::string& root = "");

}  // namespace cachefs::keyagent
