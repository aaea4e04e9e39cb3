#include "fs/mountpoint.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/log.h"

namespace cachefs::fs {
namespace {

struct MountInfoLine {
  std::string device;  // major:minor
  std::string mountpoint;
  std::string fstype;
};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = (field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0');
      out += static_cast<char>(value);
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

// The last mount at `path` (later lines stack on earlier ones), or nothing.
bool FindMount(const std::string& path, MountInfoLine* found) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  bool any = false;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mountpoint;
    fields >> id >> parent >> device >> root >> mountpoint;
    std::string field;
    while (fields >> field && field != "-") {
    }
    std::string fstype;
    fields >> fstype;
    if (Unescape(mountpoint) == path) {
      *found = {device, path, fstype};
      any = true;
    }
  }
  return any;
}

}  // namespace

namespace {

// A FUSE mount whose daemon died answers ENOTCONN ("Transport endpoint is not connected").
// stat() may still succeed from cached attributes; statfs() always asks the daemon.
bool IsDeadFuseMount(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) != 0 && errno == ENOTCONN;
}

Status DetachStaleMount(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) != 0) {
    return Error::FromErrno(errno, "mountpoint " + path + ": cannot detach the stale mount");
  }
  CACHEFS_LOG(kWarn, "fs").Kv("mountpoint", path) << "detached a stale mount left by a dead daemon";
  return Status::Ok();
}

}  // namespace

Result<MountpointState> PrepareMountpoint(const std::string& path) {
  MountpointState state;
  MountInfoLine mount;
  bool fuse_mounted = FindMount(path, &mount) && mount.fstype.rfind("fuse", 0) == 0;
  if (fuse_mounted && IsDeadFuseMount(path)) {
    CACHEFS_RETURN_IF_ERROR(DetachStaleMount(path));
    fuse_mounted = FindMount(path, &mount) && mount.fstype.rfind("fuse", 0) == 0;
  }
  if (fuse_mounted) {
    return Error(Errc::kInvalidArgument, "mountpoint " + path + ": already mounted (" +
                                             mount.fstype + "); unmount it first");
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return Error::FromErrno(errno, "mountpoint " + path);
    }
    if (mkdir(path.c_str(), 0755) != 0) {
      return Error::FromErrno(errno, "mountpoint " + path);
    }
    state.created = true;
    return state;
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(Errc::kInvalidArgument, "mountpoint " + path + ": not a directory");
  }
  return state;
}

Result<std::string> MountDevice(const std::string& path) {
  MountInfoLine mount;
  if (!FindMount(path, &mount)) {
    return Error(Errc::kNotFound, path + ": not a mount point");
  }
  return mount.device;
}

bool IsMountedAs(const std::string& path, const std::string& fstype) {
  MountInfoLine mount;
  return FindMount(path, &mount) && mount.fstype == fstype;
}

Status SetReadaheadKb(const std::string& device, unsigned kilobytes) {
  std::string sysfs = "/sys/class/bdi/" + device + "/read_ahead_kb";
  std::ofstream out(sysfs);
  out << kilobytes;
  out.flush();
  if (!out) {
    return Error(Errc::kIo, "cannot set " + sysfs);
  }
  return Status::Ok();
}

}  // namespace cachefs::fs
