#pragma once

// The exit-code table of `cachefs mount`: a stable scripting interface (README "Exit codes").

namespace cachefs::tools {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,      // anything not listed below
  kExitUsage = 2,        // bad command line or -o option
  kExitMountpoint = 10,  // mount point missing, not a directory, or already mounted
  kExitConfig = 11,      // env-file, gocryptfs.conf or cipher tree unusable
  kExitKey = 12,         // no key: wrong password, attestation or key release refused
  kExitOrigin = 13,      // origin unreachable, credentials refused, listing failed
  kExitFuse = 14,        // the FUSE mount itself failed
  kExitSignal = 15,      // unmounted because of SIGINT or SIGTERM
  kExitNotTee = 16,      // refused to serve plaintext outside a TDX guest
};

}  // namespace cachefs::tools
