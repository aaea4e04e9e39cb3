#include "keyagent/extpass.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "common/log.h"

namespace cachefs::keyagent {
namespace {

constexpr size_t kMaxPasswordBytes = 2048;
constexpr char kCleanPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string Resolve(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    return program;
  }
  std::istringstream dirs(kCleanPath);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = dir + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

}  // namespace

Result<SecretBytes> FirstLine(SecretBytes data, const std::string& what) {
  size_t end = 0;
  while (end < data.size() && data.data()[end] != '\n') {
    ++end;
  }
  if (end > kMaxPasswordBytes) {
    return Error(Errc::kInvalidArgument, what + ": password longer than 2048 bytes");
  }
  if (end == 0) {
    return Error(Errc::kInvalidArgument, what + ": password (first line) is empty");
  }
  data.Truncate(end);
  return data;
}

Result<SecretBytes> RunExtpass(const std::string& command, std::chrono::milliseconds timeout) {
  std::vector<std::string> words;
  std::istringstream split(command);
  std::string word;
  while (split >> word) {
    words.push_back(word);
  }
  if (words.empty()) {
    return Error(Errc::kInvalidArgument, "--extpass: empty command");
  }
  std::string path = Resolve(words[0]);
  if (path.empty()) {
    return Error(Errc::kNotFound, "--extpass: " + words[0] + " not found in " + kCleanPath);
  }
  // Everything the child needs is built before fork(): after it only async-signal-safe calls.
  std::vector<char*> argv;
  for (std::string& w : words) {
    argv.push_back(w.data());
  }
  argv.push_back(nullptr);
  std::string env_path = std::string("PATH=") + kCleanPath;
  std::string env_lang = "LANG=C.UTF-8";
  char* envp[] = {env_path.data(), env_lang.data(), nullptr};

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Error::FromErrno(errno, "--extpass pipe");
  }
  pid_t pid = fork();
  if (pid < 0) {
    int saved = errno;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return Error::FromErrno(saved, "--extpass fork");
  }
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(pipe_fds[1], STDOUT_FILENO) < 0) {
      _exit(127);
    }
    // No descriptor of the daemon (sockets, key files, /dev/fuse) reaches the command.
    syscall(SYS_close_range, 3U, ~0U, 0U);
    execve(path.c_str(), argv.data(), envp);
    _exit(127);
  }
  close(pipe_fds[1]);

  SecretBytes output(kMaxPasswordBytes + 2);
  size_t got = 0;
  bool overflow = false;
  bool timed_out = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{.fd = pipe_fds[0], .events = POLLIN, .revents = 0};
    int ready = poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready <= 0) {
      timed_out = ready == 0;
      break;
    }
    if (got == output.size()) {
      // Only the first line matters; once it is complete the rest is drained and dropped.
      if (std::memchr(output.data(), '\n', got) == nullptr) {
        overflow = true;
        break;
      }
      char sink[512];
      ssize_t n = read(pipe_fds[0], sink, sizeof(sink));
      OPENSSL_cleanse(sink, sizeof(sink));
      if (n <= 0 && !(n < 0 && errno == EINTR)) {
        break;
      }
      continue;
    }
    ssize_t n = read(pipe_fds[0], output.data() + got, output.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  close(pipe_fds[0]);
  if (timed_out || overflow) {
    kill(pid, SIGKILL);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return Error(Errc::kTimeout, "--extpass " + words[0] + ": no password within " +
                                     std::to_string(timeout.count() / 1000) + " s");
  }
  if (overflow) {
    return Error(Errc::kInvalidArgument,
                 "--extpass " + words[0] + ": password longer than 2048 bytes");
  }
  if (WIFSIGNALED(status)) {
    return Error(Errc::kIo,
                 "--extpass " + words[0] + " killed by signal " + std::to_string(WTERMSIG(status)));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error(Errc::kIo, "--extpass " + words[0] + " exited with status " +
                                std::to_string(WEXITSTATUS(status)));
  }
  output.Truncate(got);
  return FirstLine(std::move(output), "--extpass " + words[0]);
}

}  // namespace cachefs::keyagent
