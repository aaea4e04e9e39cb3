#pragma once

// "cachefs mount returns only once the mount works": in the background mode the process forks,
// the parent waits on a pipe for the child's verdict and exits with it; in the foreground the
// verdict goes to stderr and, under a systemd Type=notify unit, to $NOTIFY_SOCKET.

#include <string>

#include "common/log.h"

namespace cachefs::tools {

class Readiness {
 public:
  // Foreground: no fork.
  static Readiness Foreground();
  // Forks. Only the child returns; the parent waits for Ready() or Fail() and exits with the
  // child's verdict (or 1 when the child dies without one). The child starts a new session so
  // that Ctrl-C in the calling shell and a closing terminal do not reach it. Until Ready() the
  // child logs only warnings and errors to the caller's terminal, so that a failed mount
  // prints its one-line reason and little else; `detached_log` applies once it runs in the
  // background (logging to syslog).
  static Readiness Daemonize(const LogOptions& detached_log);

  // The mount works: tells the waiting parent (which prints `message` and exits 0) or
  // systemd. In the background mode also detaches stdio (logs go to syslog) and chdirs to "/".
  void Ready(const std::string& message);
  // Reports `message` (one line) and exits with `exit_code`.
  [[noreturn]] void Fail(int exit_code, const std::string& message);

  bool background() const { return pipe_fd_ >= 0; }

 private:
  Readiness(int pipe_fd, const LogOptions& detached_log)
      : pipe_fd_(pipe_fd), detached_log_(detached_log) {}
  int pipe_fd_;  // write end towards the waiting parent; -1 in the foreground
  LogOptions detached_log_;
};

// Sends a state line ("READY=1", "STOPPING=1", "STATUS=...") to $NOTIFY_SOCKET if set.
void NotifySystemd(const std::string& state);

}  // namespace cachefs::tools
