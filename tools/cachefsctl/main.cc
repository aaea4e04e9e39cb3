// cachefsctl: talks to a running cachefs daemon over its control socket.
//
//   cachefsctl [--mountpoint DIR | --socket PATH] [--timeout S] COMMAND [OPTIONS]

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "tools/cachefsctl/command.h"
#include "tools/cli_parse.h"

namespace cachefs::ctl {
namespace {

constexpr const char* kVersion = "cachefsctl " CACHEFS_VERSION;

// One line per subcommand; each lives in its own <name>_command.cc.
constexpr Registrar kCommands[] = {
    &RegisterStatusCommand, &RegisterHealthCommand,   &RegisterFlushCommand,
    &RegisterWarmCommand,   &RegisterPeersCommand,    &RegisterUnmountCommand,
    &RegisterAttestCommand, &RegisterManifestCommand,
};

int Main(int argc, char** argv) {
  CLI::App app{"cachefsctl: inspect and steer a running cachefs mount"};
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);
  GlobalOptions globals;
  if (const char* mountpoint = std::getenv("CACHEFS_MOUNTPOINT")) {
    globals.mountpoint = mountpoint;
  }
  if (const char* socket = std::getenv("CACHEFS_CONTROL_SOCKET")) {
    globals.socket = socket;
  }
  app.add_option("-m,--mountpoint", globals.mountpoint,
                 "Mount point of the daemon to talk to (env CACHEFS_MOUNTPOINT)")
      ->capture_default_str();
  app.add_option("-s,--socket", globals.socket,
                 "Control socket, instead of the one derived from --mountpoint "
                 "(env CACHEFS_CONTROL_SOCKET)");
  app.add_option("--timeout", globals.timeout_s, "Seconds to wait for each answer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.fallthrough();

  int exit_code = kExitOk;
  for (Registrar add : kCommands) {
    add(app, globals, &exit_code);
  }
  if (auto usage_exit =
          cachefs::tools::ParseCommandLine(app, "cachefsctl", [&] { app.parse(argc, argv); })) {
    return *usage_exit;
  }
  return exit_code;
}

}  // namespace
}  // namespace cachefs::ctl

int main(int argc, char** argv) { return cachefs::ctl::Main(argc, argv); }
