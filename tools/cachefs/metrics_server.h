#pragma once

// --metrics-listen ADDR: a tiny HTTP/1.1 listener (Boost.Asio, one thread) serving
//   GET /metrics  Prometheus text format 0.0.4 (RenderMetrics)
//   GET /healthz  200 while the daemon runs (liveness; no dependency on the origin)
//   GET /readyz   200 once the mount serves, 503 before (readiness)
// Requests are bounded (8 KiB of headers, 5 s to send them); one response per connection.
// Kubernetes httpGet probes come from the node to the pod IP, not loopback: bind 0.0.0.0 or
// the pod IP for them (ecosystem.md §3.5).

#include <memory>
#include <string>

#include "common/error.h"
#include "tools/cachefs/control_state.h"

namespace cachefs::tools {

class MetricsServer {
 public:
  // `listen`: "HOST:PORT", "[V6]:PORT", ":PORT" (all interfaces) or "PORT" (all interfaces).
  // Port 0 picks a free one (see address()). Fails when the address does not parse or bind.
  static Result<std::unique_ptr<MetricsServer>> Start(ControlState& state,
                                                      const std::string& listen);
  ~MetricsServer();  // stops the thread and closes the listener
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound address, "127.0.0.1:9567".
  std::string address() const;

 private:
  struct Impl;  // keeps Boost.Asio out of the daemon's other files
  explicit MetricsServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

// The /metrics body for the current state (exposed for tests).
std::string RenderMetrics(ControlState& state);

}  // namespace cachefs::tools
