// cachefsctl peers [--json]: the sharing group as the daemon sees it.

#include <cstdio>
#include <memory>
#include <string>

#include "tools/cachefsctl/command.h"

namespace cachefs::ctl {
namespace {

int Run(const GlobalOptions& globals, bool json) {
  ControlClient client(globals);
  if (!client.Check()) {
    return kExitUnreachable;
  }
  control::PeersReply reply;
  auto context = client.Context();
  grpc::Status status = client.stub().ListPeers(context.get(), control::PeersRequest(), &reply);
  if (!status.ok()) {
    return ReportRpcError("peers", status);
  }
  if (json) {
    std::printf("%s\n", ToJson(reply.peers()).c_str());
    return kExitOk;
  }
  const control::PeersInfo& info = reply.peers();
  if (!info.enabled()) {
    std::printf("sharing group not configured (no peers)\n");
    return kExitOk;
  }
  if (!info.listen().empty()) {
    std::printf("listening on %s\n", info.listen().c_str());
  }
  std::printf("%-28s %-14s %12s %12s %8s %8s %7s  %s\n", "PEER", "STATE", "RECEIVED", "SENT",
              "CHUNKS<", "CHUNKS>", "ERRORS", "LAST SEEN");
  for (const control::PeerInfo& peer : info.peers()) {
    std::printf("%-28s %-14s %12s %12s %8llu %8llu %7llu  %s\n", peer.address().c_str(),
                peer.state().c_str(), FormatBytes(peer.bytes_received()).c_str(),
                FormatBytes(peer.bytes_sent()).c_str(),
                static_cast<unsigned long long>(peer.chunks_received()),
                static_cast<unsigned long long>(peer.chunks_sent()),
                static_cast<unsigned long long>(peer.errors()),
                FormatUnixTime(peer.last_seen_unix()).c_str());
  }
  return kExitOk;
}

}  // namespace

void RegisterPeersCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code) {
  auto json = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand("peers", "List the peers of the sharing group");
  command->add_flag("--json", *json, "Stable JSON (field names as in proto/control.proto)");
  command->callback([&globals, exit_code, json] { *exit_code = Run(globals, *json); });
}

}  // namespace cachefs::ctl
