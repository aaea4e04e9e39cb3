#include "tools/cachefs/readiness.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log.h"

namespace cachefs::tools {
namespace {

void WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;
    }
    done += static_cast<size_t>(n);
  }
}

// The parent's side: "<code> <message>\n" from the child decides the exit status.
[[noreturn]] void WaitForChild(int read_fd, pid_t child) {
  std::string report;
  char buffer[512];
  while (report.find('\n') == std::string::npos) {
    ssize_t n = read(read_fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    report.append(buffer, static_cast<size_t>(n));
  }
  if (report.find('\n') == std::string::npos) {
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status)) {
      std::fprintf(stderr,
                   "cachefs: the daemon was killed by signal %d before the mount was ready\n",
                   WTERMSIG(status));
    } else {
      std::fprintf(stderr, "cachefs: the daemon exited (status %d) before the mount was ready\n",
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    std::_Exit(1);
  }
  report.resize(report.find('\n'));
  int code = std::atoi(report.c_str());
  std::string message = report.substr(report.find(' ') + 1);
  if (code == 0) {
    std::fprintf(stdout, "%s\n", message.c_str());
  } else {
    std::fprintf(stderr, "cachefs: %s\n", message.c_str());
    int status;
    waitpid(child, &status, 0);
  }
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace

Readiness Readiness::Foreground() { return Readiness(-1, CurrentLogOptions()); }

Readiness Readiness::Daemonize(const LogOptions& detached_log) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "cachefs: pipe: %s\n", std::strerror(errno));
    std::exit(1);
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "cachefs: fork: %s\n", std::strerror(errno));
    std::exit(1);
  }
  if (pid > 0) {
    close(fds[1]);
    WaitForChild(fds[0], pid);
  }
  close(fds[0]);
  setsid();
  LogOptions until_ready = detached_log;
  until_ready.sink = LogSink::kStderr;
  if (until_ready.min_level < LogLevel::kWarn) {
    until_ready.min_level = LogLevel::kWarn;
  }
  ConfigureLogging(until_ready);
  return Readiness(fds[1], detached_log);
}

void Readiness::Ready(const std::string& message) {
  NotifySystemd("READY=1\nSTATUS=" + message);
  if (pipe_fd_ < 0) {
    CACHEFS_LOG(kInfo, "cachefs") << message;
    return;
  }
  // From here on nobody reads our stderr: log to syslog and let go of the caller's terminal.
  LogOptions options = detached_log_;
  options.sink = LogSink::kSyslog;
  ConfigureLogging(options);
  CACHEFS_LOG(kInfo, "cachefs") << message;
  WriteAll(pipe_fd_, "0 " + message + "\n");
  close(pipe_fd_);
  pipe_fd_ = -1;
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) {
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    close(null_fd);
  }
  if (chdir("/") != 0) {
    CACHEFS_LOG(kWarn, "cachefs") << "chdir /: " << std::strerror(errno);
  }
}

void Readiness::Fail(int exit_code, const std::string& message) {
  if (pipe_fd_ >= 0) {
    WriteAll(pipe_fd_, std::to_string(exit_code) + " " + message + "\n");
  } else {
    std::fprintf(stderr, "cachefs: %s\n", message.c_str());
  }
  std::fflush(nullptr);
  std::_Exit(exit_code);
}

void NotifySystemd(const std::string& state) {
  const char* socket_path = std::getenv("NOTIFY_SOCKET");
  if (socket_path == nullptr || socket_path[0] == '\0') {
    return;
  }
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  size_t length = std::strlen(socket_path);
  if (length >= sizeof(address.sun_path)) {
    return;
  }
  std::memcpy(address.sun_path, socket_path, length);
  if (address.sun_path[0] == '@') {
    address.sun_path[0] = '\0';  // abstract namespace
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return;
  }
  sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&address),
         static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length));
  close(fd);
}

}  // namespace cachefs::tools
