#include "keyagent/tee_detect.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

namespace cachefs::keyagent {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool CpuHasFlag(const std::string& cpuinfo_path, const std::string& flag) {
  std::ifstream in(cpuinfo_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) {
      continue;
    }
    std::istringstream words(line.substr(line.find(':') + 1));
    std::string word;
    while (words >> word) {
      if (word == flag) {
        return true;
      }
    }
    return false;  // every CPU lists the same flags; the first line decides
  }
  return false;
}

}  // namespace

std::string TeeEnvironment::Describe() const {
  std::string evidence;
  auto add = [&](bool present, const char* what) {
    if (present) {
      evidence += evidence.empty() ? what : std::string(", ") + what;
    }
  };
  add(tdx_guest, "tdx_guest cpu flag");
  add(configfs_tsm, "configfs-tsm");
  add(tdx_device, "/dev/tdx_guest");
  if (in_tdx()) {
    return "TDX guest (" + evidence + ")";
  }
  return "not a TDX guest (no tdx_guest cpu flag, no /dev/tdx_guest)";
}

TeeEnvironment DetectTee(const std::string& root) {
  TeeEnvironment env;
  env.tdx_guest = CpuHasFlag(root + "/proc/cpuinfo", "tdx_guest");
  env.configfs_tsm = Exists(root + "/sys/kernel/config/tsm/report");
  env.tdx_device = Exists(root + "/dev/tdx_guest");
  return env;
}

}  // namespace cachefs::keyagent
