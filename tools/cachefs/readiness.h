#pragma once

// "cachefs mount returns only once the mount works": in the background mode the process forks,
// the parent waits on a pipe for the child's verdict and exits with it; in the foreground the
// verdict goes to stderr and, under a systemd Type=notify unit, to $NOTIFY_SOCKET.

#include <string>

namespace cachefs::tools {

class Readiness {
 public:
  // Foreground: no fork.
  static Readiness Foreground();
  // Forks. Only the child returns; the parent waits for Ready() or Fail() and exits with the
  // child's verdict (or 1 when the child dies without one). The child starts a new session so
  // that Ctrl-C in the calling shell and a closing terminal do not reach it.
  static Readiness Daemonize();

  // The mount works: tells the waiting parent (which prints `message` and exits 0) or
  // systemd. In the background mode also detaches stdio (logs go to syslog) and chdirs to "/".
  void Ready(const std::string& message);
  // Reports `message` (one line) and exits with `exit_code`.
  [[noreturn]] void Fail(int exit_code, const std::string& message);

  bool background() const { return pipe_fd_ >= 0; }

 private:
  explicit Readiness(int pipe_fd) : pipe_fd_(pipe_fd) {}
  int pipe_fd_;  // write end towards the waiting parent; -1 in the foreground
};

// Sends a state line ("READY=1", "STOPPING=1", "STATUS=...") to $NOTIFY_SOCKET if set.
void NotifySystemd(const std::string& state);

}  // namespace cachefs::tools
