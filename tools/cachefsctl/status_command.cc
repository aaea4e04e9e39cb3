// cachefsctl status [--json]: what the daemon is doing. Exit 0 when ready, 1 when up but not
// ready, 3 when unreachable, so it doubles as an exec probe.

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "tools/cachefsctl/command.h"

namespace cachefs::ctl {
namespace {

const char* StateName(control::State state) {
  switch (state) {
    case control::STATE_MOUNTING:
      return "mounting";
    case control::STATE_READY:
      return "ready";
    case control::STATE_STOPPING:
      return "stopping";
    default:
      return "unknown";
  }
}

std::string Percent(double ratio) {
  char text[16];
  std::snprintf(text, sizeof(text), "%.1f%%", ratio * 100);
  return text;
}

std::string Rate(double bytes_per_second) {
  return FormatBytes(static_cast<uint64_t>(bytes_per_second)) + "/s";
}

void Line(const char* key, const std::string& value) {
  std::printf("%-11s %s\n", key, value.c_str());
}

std::string Errors(const control::ErrorCounts& e) {
  const std::pair<const char*, uint64_t> kinds[] = {
      {"corrupt blocks", e.corrupt_blocks()}, {"read failures", e.read_origin_errors()},
      {"not found", e.origin_not_found()},    {"denied", e.origin_denied()},
      {"changed", e.origin_changed()},        {"transport", e.origin_transport()},
      {"timeout", e.origin_timeout()},        {"server", e.origin_server()},
      {"throttled", e.origin_throttled()},    {"short body", e.origin_short_body()},
      {"retries", e.origin_retries()},        {"disk corrupt", e.disk_corrupt()},
      {"disk write", e.disk_write_errors()},  {"writes refused", e.write_attempts()}};
  std::string out;
  for (const auto& [kind, count] : kinds) {
    if (count > 0) {
      out += (out.empty() ? "" : ", ") + std::string(kind) + " " + std::to_string(count);
    }
  }
  return out.empty() ? "none" : out;
}

void PrintTable(const control::StatusReply& s, const std::string& socket) {
  std::printf("cachefs %s (pid %d): %s, up %s\n", s.version().c_str(), s.pid(),
              StateName(s.state()), FormatDuration(s.uptime_seconds()).c_str());
  if (!s.message().empty()) {
    Line("", s.message());
  }
  Line("mount", s.mountpoint());
  Line("origin", s.origin().empty() ? "-" : s.origin());
  Line("socket", socket);

  const control::VolumeInfo& v = s.volume();
  if (!v.content_algorithm().empty()) {
    std::string flags;
    for (const std::string& flag : v.feature_flags()) {
      flags += (flags.empty() ? "" : " ") + flag;
    }
    Line("volume", v.content_algorithm() + ", created by " + v.creator());
    Line("flags", flags);
  }

  const control::KeyInfo& k = s.key();
  Line("key", k.source() +
                  (k.obtained() ? ", obtained " + FormatUnixTime(k.obtained_unix()) : ", pending"));
  Line("tee", k.tee());
  if (k.has_attestation()) {
    const control::AttestationInfo& a = k.attestation();
    Line("attested", a.tee_type() + " at " + FormatUnixTime(a.attested_unix()) +
                         ", token expires " + FormatUnixTime(a.token_expires_unix()) +
                         " (KBS protocol " + a.protocol_version() + ")");
  }

  const control::NamespaceInfo& n = s.namespace_();
  Line("namespace",
       std::to_string(n.files()) + " files, " + std::to_string(n.directories()) + " directories, " +
           std::to_string(n.symlinks()) + " symlinks, " + FormatBytes(n.plaintext_bytes()) +
           (n.rejected_names() > 0 ? ", " + std::to_string(n.rejected_names()) + " names rejected"
                                   : ""));

  const control::TrafficInfo& t = s.traffic();
  Line("reads", std::to_string(t.read_requests()) + " requests, " +
                    FormatBytes(t.plaintext_bytes()) + " plaintext; now " +
                    Rate(t.current_bytes_per_second()) + ", average " +
                    Rate(t.average_bytes_per_second()));
  const control::BytesBySource& b = t.bytes_by_source();
  Line("sources", "memory " + FormatBytes(b.memory()) + ", disk " + FormatBytes(b.disk()) +
                      ", peers " + FormatBytes(b.peers()) + ", origin " + FormatBytes(b.origin()));
  const control::CacheInfo& c = s.cache();
  if (c.present()) {
    Line("hits", "memory " + Percent(t.memory_hit_ratio()) + ", memory+disk " +
                     Percent(t.cache_hit_ratio()) + " of " +
                     std::to_string(t.memory_hits() + t.disk_hits() + t.source_fetches()) +
                     " chunk lookups");
    Line("cache", "memory " + FormatBytes(c.memory_used()) + " / " + FormatBytes(c.memory_limit()) +
                      ", disk " +
                      (c.disk_enabled() || c.disk_limit() > 0
                           ? FormatBytes(c.disk_used()) + " / " + FormatBytes(c.disk_limit()) +
                                 (c.disk_enabled() ? "" : " (writes off)")
                           : std::string("off")));
    const control::ReadAheadInfo& r = s.read_ahead();
    Line("read-ahead", std::to_string(r.streams()) + " streams, " + std::to_string(r.inflight()) +
                           " in flight, " + std::to_string(r.used()) + " of " +
                           std::to_string(r.issued()) + " chunks used");
  } else {
    Line("cache", "none (the origin is read in place)");
  }
  Line("kernel", FormatBytes(t.kernel_cache_bytes()) + " decrypted ahead into the page cache" +
                     (t.kernel_cache_budget_bytes() > 0
                          ? "; open files hold " + FormatBytes(t.kernel_cache_held_bytes()) +
                                " of its " + FormatBytes(t.kernel_cache_budget_bytes()) + " budget"
                          : ""));

  const control::WarmInfo& w = s.warm();
  if (w.files_total() > 0) {
    Line("warm", FormatBytes(w.bytes_done()) + " / " + FormatBytes(w.bytes_total()) + ", " +
                     std::to_string(w.files_done()) + " / " + std::to_string(w.files_total()) +
                     " files" + (w.active() ? " (running)" : ""));
  }
  Line("errors", Errors(s.errors()));

  const control::PeersInfo& p = s.peers();
  if (!p.enabled()) {
    Line("peers", "none (sharing group not configured)");
  } else {
    std::map<std::string, int> by_state;
    for (const control::PeerInfo& peer : p.peers()) {
      by_state[peer.state()]++;
    }
    std::string summary = std::to_string(p.peers_size()) + " peers";
    for (const auto& [state, count] : by_state) {
      summary += ", " + std::to_string(count) + " " + state;
    }
    Line("peers", summary + (p.listen().empty() ? "" : "; listening on " + p.listen()));
  }
}

int Run(const GlobalOptions& globals, bool json) {
  ControlClient client(globals);
  if (!client.Check()) {
    return kExitUnreachable;
  }
  control::StatusReply reply;
  auto context = client.Context();
  grpc::Status status = client.stub().GetStatus(context.get(), control::StatusRequest(), &reply);
  if (!status.ok()) {
    return ReportRpcError("status", status);
  }
  if (json) {
    std::printf("%s\n", ToJson(reply).c_str());
  } else {
    PrintTable(reply, client.socket_path());
  }
  return reply.state() == control::STATE_READY ? kExitOk : kExitFailure;
}

}  // namespace

void RegisterStatusCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code) {
  auto json = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand(
      "status",
      "Show the mount, key, cache, traffic, errors and peers (exit 0 ready, 1 not "
      "ready, 3 unreachable)");
  command->add_flag("--json", *json, "Stable JSON (field names as in proto/control.proto)");
  command->callback([&globals, exit_code, json] { *exit_code = Run(globals, *json); });
}

}  // namespace cachefs::ctl
