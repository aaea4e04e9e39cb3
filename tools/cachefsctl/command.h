#pragma once

// What every cachefsctl subcommand shares: the global options, the connection to a daemon's
// control socket, exit codes and output helpers.
//
// Adding a subcommand: write <name>_command.cc defining a Register<Name>Command function with
// the Registrar signature, declare it below and add it to kCommands in main.cc. CMake picks up
// every *_command.cc by itself.

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "proto/control.grpc.pb.h"

namespace cachefs::ctl {

namespace control = ::cachefs::control::v1;

// Exit codes (ecosystem.md §3.4): status and health work as exec probes.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,  // also: the daemon is up but not ready, or not healthy
  kExitUsage = 2,
  kExitUnreachable = 3,  // no daemon at the socket, or not allowed to talk to it
  kExitInterrupted = 130,
};

struct GlobalOptions {
  std::string mountpoint = "/tmp/model";
  std::string socket;     // overrides the path derived from mountpoint
  double timeout_s = 10;  // per call; warm has none

  // The socket to talk to: --socket, else the daemon default for --mountpoint.
  std::string SocketPath() const;
};

// A channel to one daemon. Construction does not connect; Check() does.
class ControlClient {
 public:
  explicit ControlClient(const GlobalOptions& options);

  // Connects once by hand to name the failure precisely (no socket, permission denied, nobody
  // listening). Prints it and returns false when the daemon is unreachable.
  bool Check() const;
  control::Control::Stub& stub() { return *stub_; }
  // A context with the --timeout deadline.
  std::unique_ptr<grpc::ClientContext> Context() const;
  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;
  double timeout_s_;
  std::unique_ptr<control::Control::Stub> stub_;
};

// Prints "cachefsctl: WHAT: MESSAGE" and returns the exit code for a failed call:
// kExitUnreachable when the daemon could not be reached, kExitFailure otherwise.
int ReportRpcError(const std::string& what, const grpc::Status& status);

// "1.5 GiB", "312 KiB", "17 B".
std::string FormatBytes(uint64_t bytes);
// "1h02m", "3m07s", "12s".
std::string FormatDuration(double seconds);
// "2024-05-01T12:00:00Z"; "-" for 0.
std::string FormatUnixTime(int64_t unix_seconds);

// The stable JSON form of a reply: every field present (zero values too), field names as in
// control.proto, 64-bit integers as JSON numbers, enums as lower-case names without their
// prefix ("ready"). Fields are only ever added, so scripts keep working.
std::string ToJson(const google::protobuf::Message& message);

// Subcommand registration: adds the subcommand to `app`; its callback stores the exit code in
// `*exit_code`.
using Registrar = void (*)(CLI::App& app, const GlobalOptions& globals, int* exit_code);

void RegisterStatusCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code);
void RegisterHealthCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code);
void RegisterFlushCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code);
void RegisterWarmCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code);
void RegisterPeersCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code);
void RegisterUnmountCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code);
void RegisterAttestCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code);
void RegisterManifestCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code);

}  // namespace cachefs::ctl
