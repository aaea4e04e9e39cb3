#pragma once

// Mount point checks done before mounting, and facts read from /proc/self/mountinfo.

#include <string>

#include "common/error.h"

namespace cachefs::fs {

struct MountpointState {
  bool created = false;  // PrepareMountpoint made the directory (remove it if the mount fails)
};

// Makes `path` (absolute) ready to mount on: a stale FUSE mount left by a killed daemon
// (stat fails with ENOTCONN) is detached; a live mount there is refused; a missing directory is
// created when its parent exists. Errors are one line naming the path.
Result<MountpointState> PrepareMountpoint(const std::string& path);

// The "major:minor" device of the filesystem mounted at `path`, read from mountinfo without
// touching the mount itself (which would block on a FUSE session that is not serving yet).
Result<std::string> MountDevice(const std::string& path);

// Whether `path` is a mount point of type `fstype` (e.g. "fuse.cachefs") right now.
bool IsMountedAs(const std::string& path, const std::string& fstype);

// Sets the kernel readahead window of the mount's backing device
// (/sys/class/bdi/<dev>/read_ahead_kb). FUSE caps the window it negotiates at 128 KiB; a model
// loader needs far more.
Status SetReadaheadKb(const std::string& device, unsigned kilobytes);

}  // namespace cachefs::fs
