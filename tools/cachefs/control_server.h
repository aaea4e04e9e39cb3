#pragma once

// The daemon's side of cachefsctl: a gRPC service (proto/control.proto) on a Unix socket.
//
// Access control is the file system's: the socket is created mode 0600 (under a umask of
// 0177, so it never exists with a wider mode) and, when the daemon creates the socket's
// directory, that directory is 0700. Only the daemon's user (and root) can connect.
//
// Requests are bounded (kMaxControlRequestBytes; a larger one fails with RESOURCE_EXHAUSTED),
// validated (INVALID_ARGUMENT), and served on at most kMaxThreads threads, so a misbehaving
// client cannot disturb the FUSE workers.

#include <memory>
#include <string>

#include "common/error.h"
#include "tools/cachefs/control_state.h"
#include "tools/cachefs/metrics_server.h"

namespace grpc {
class Server;
}

namespace cachefs::tools {

class ControlService;

class ControlServer {
 public:
  // Listens on `socket_path` (DefaultControlSocketPath(state.mountpoint()) when empty).
  // Creates a missing directory (0700), replaces a stale socket nobody listens on, and fails
  // when the path is not a socket or another daemon answers there.
  static Result<std::unique_ptr<ControlServer>> Start(ControlState& state, std::string socket_path);
  // Stops serving (calls in flight get two seconds, then are cancelled) and removes the socket.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& socket_path() const { return socket_path_; }

 private:
  ControlServer(std::string socket_path, std::unique_ptr<ControlService> service,
                std::unique_ptr<grpc::Server> server);

  std::string socket_path_;
  std::unique_ptr<ControlService> service_;
  std::unique_ptr<grpc::Server> server_;
};

// Both listeners of a mount; destroying it stops them.
struct ControlPlane {
  std::unique_ptr<ControlServer> control;
  std::unique_ptr<MetricsServer> metrics;  // null without --metrics-listen
};

// Starts the control socket (`socket_path`, default from the mount point) and, when
// `metrics_listen` is not empty, the metrics listener. Call after any fork: gRPC and Asio
// threads do not survive one.
Result<ControlPlane> StartControlPlane(ControlState& state, const std::string& socket_path,
                                       const std::string& metrics_listen);

}  // namespace cachefs::tools
