// cachefsctl unmount: asks the daemon to unmount (lazily, as on SIGTERM) and waits until it
// has exited, which it shows by removing its control socket.

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "tools/cachefsctl/command.h"

namespace cachefs::ctl {
namespace {

int Run(const GlobalOptions& globals) {
  ControlClient client(globals);
  if (!client.Check()) {
    return kExitUnreachable;
  }
  control::UnmountReply reply;
  auto context = client.Context();
  grpc::Status status = client.stub().Unmount(context.get(), control::UnmountRequest(), &reply);
  if (!status.ok()) {
    return ReportRpcError("unmount", status);
  }
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(globals.timeout_s * 1000));
  struct stat st;
  while (stat(client.socket_path().c_str(), &st) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "cachefsctl: %s unmounted, but the daemon has not exited yet\n",
                   reply.mountpoint().c_str());
      return kExitFailure;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::printf("unmounted %s\n", reply.mountpoint().c_str());
  return kExitOk;
}

}  // namespace

void RegisterUnmountCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code) {
  CLI::App* command =
      app.add_subcommand("unmount", "Unmount and stop the daemon (like umount -l, then exit 0)");
  command->callback([&globals, exit_code] { *exit_code = Run(globals); });
}

}  // namespace cachefs::ctl
