// cachefsctl health: exit 0 only when the mount serves reads, for Kubernetes startup and
// readiness probes. Two checks: the daemon reads one byte of a file through its read path
// (origin, cache, decryption), then this process reads the same byte through the kernel mount,
// which also catches a dead FUSE connection (ENOTCONN) or a hung loop (timeout).

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tools/cachefsctl/command.h"

namespace cachefs::ctl {
namespace {

struct KernelCheck {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::string error;  // empty when the read worked
};

// Reads one byte of `path` (or stats the directory when `path` is a directory) on a detached
// thread: a hung FUSE mount blocks it in the kernel forever, and the process must still exit.
std::string ReadThroughMount(const std::string& path, bool is_file, double timeout_s) {
  auto check = std::make_shared<KernelCheck>();
  std::thread([check, path, is_file] {
    std::string error;
    int fd = open(path.c_str(), (is_file ? O_RDONLY : O_RDONLY | O_DIRECTORY) | O_CLOEXEC);
    if (fd < 0) {
      error = path + ": " + std::strerror(errno);
    } else {
      char byte;
      if (is_file && read(fd, &byte, 1) != 1) {
        error = path + ": read failed: " + std::strerror(errno);
      }
      close(fd);
    }
    std::lock_guard lock(check->mu);
    check->error = error;
    check->done = true;
    check->cv.notify_all();
  }).detach();
  std::unique_lock lock(check->mu);
  if (!check->cv.wait_for(lock, std::chrono::duration<double>(timeout_s),
                          [&] { return check->done; })) {
    return path + ": no answer through the mount within the timeout";
  }
  return check->error;
}

int Run(const GlobalOptions& globals, bool daemon_only, bool quiet) {
  ControlClient client(globals);
  if (!client.Check()) {
    return kExitUnreachable;
  }
  control::HealthReply reply;
  auto context = client.Context();
  grpc::Status status = client.stub().CheckHealth(context.get(), control::HealthRequest(), &reply);
  if (!status.ok()) {
    return ReportRpcError("health", status);
  }
  if (!reply.healthy()) {
    std::fprintf(stderr, "unhealthy: %s\n", reply.detail().c_str());
    return kExitFailure;
  }
  std::string detail = reply.detail();
  if (!daemon_only) {
    bool is_file = !reply.probe_path().empty();
    std::string path = reply.mountpoint() + (is_file ? "/" + reply.probe_path() : "");
    std::string error = ReadThroughMount(path, is_file, globals.timeout_s);
    if (!error.empty()) {
      std::fprintf(stderr, "unhealthy: the daemon reads, but the mount does not: %s\n",
                   error.c_str());
      return kExitFailure;
    }
    detail += "; and through the mount";
  }
  if (!quiet) {
    std::printf("healthy: %s (%.3f s)\n", detail.c_str(), reply.check_seconds());
  }
  return kExitOk;
}

}  // namespace

void RegisterHealthCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code) {
  struct Options {
    bool daemon_only = false;
    bool quiet = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand(
      "health", "Exit 0 only when the mount serves reads (Kubernetes startup/readiness probe)");
  command->add_flag("--daemon-only", options->daemon_only,
                    "Skip the read through the kernel mount (when this process cannot see it)");
  command->add_flag("-q,--quiet", options->quiet, "Print nothing when healthy");
  command->callback([&globals, exit_code, options] {
    *exit_code = Run(globals, options->daemon_only, options->quiet);
  });
}

}  // namespace cachefs::ctl
