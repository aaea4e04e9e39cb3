// cachefsctl flush [--memory] [--disk] [--kernel]: drops cached ciphertext and the kernel page
// cache of the mount (default: all three). Reads keep working; they fetch and decrypt again.

#include <cstdio>
#include <memory>
#include <string>

#include "tools/cachefsctl/command.h"

namespace cachefs::ctl {
namespace {

int Run(const GlobalOptions& globals, const control::FlushRequest& request) {
  ControlClient client(globals);
  if (!client.Check()) {
    return kExitUnreachable;
  }
  control::FlushReply reply;
  auto context = client.Context();
  grpc::Status status = client.stub().Flush(context.get(), request, &reply);
  if (!status.ok()) {
    return ReportRpcError("flush", status);
  }
  if (reply.memory()) {
    std::printf("memory tier: %s dropped\n", FormatBytes(reply.memory_bytes_dropped()).c_str());
  }
  if (reply.disk()) {
    std::printf("disk tier: %s dropped\n", FormatBytes(reply.disk_bytes_dropped()).c_str());
  }
  if (reply.kernel()) {
    std::printf("kernel page cache: invalidated for %llu files\n",
                static_cast<unsigned long long>(reply.kernel_files_invalidated()));
  }
  if (!reply.note().empty()) {
    std::printf("note: %s\n", reply.note().c_str());
  }
  return kExitOk;
}

}  // namespace

void RegisterFlushCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code) {
  auto memory = std::make_shared<bool>(false);
  auto disk = std::make_shared<bool>(false);
  auto kernel = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand(
      "flush", "Drop cached ciphertext and the kernel page cache (default: all of them)");
  command->add_flag("--memory", *memory, "The memory tier of the ciphertext cache");
  command->add_flag("--disk", *disk, "The disk tier (--cache-dir)");
  command->add_flag("--kernel", *kernel, "The kernel page cache of the mount");
  command->callback([&globals, exit_code, memory, disk, kernel] {
    control::FlushRequest request;
    request.set_memory(*memory);
    request.set_disk(*disk);
    request.set_kernel(*kernel);
    *exit_code = Run(globals, request);
  });
}

}  // namespace cachefs::ctl
