// cachefsctl manifest ORIGIN [-o FILE]: writes cachefs-manifest.json for a ciphertext tree, so
// that a plain HTTP server, CDN or proxy serving the tree can be an origin (fetch/manifest.h).
// No daemon needed; credentials for object stores come from the environment as for mounts.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "fetch/manifest.h"
#include "fetch/origin_factory.h"
#include "tools/cachefsctl/command.h"

namespace cachefs::ctl {
namespace {

struct ManifestOptions {
  fetch::OriginOptions origin;
  std::string output;
  bool no_etags = false;
};

int Run(ManifestOptions& options) {
  if (auto status = fetch::ApplyEnvironment(options.origin, {}); !status) {
    std::fprintf(stderr, "cachefsctl: %s\n", status.error().message().c_str());
    return kExitFailure;
  }
  auto origin = fetch::OpenOrigin(options.origin);
  if (!origin) {
    std::fprintf(stderr, "cachefsctl: %s\n", origin.error().message().c_str());
    return kExitFailure;
  }
  auto manifest = fetch::BuildManifest(**origin, !options.no_etags);
  if (!manifest) {
    std::fprintf(stderr, "cachefsctl: %s\n", manifest.error().message().c_str());
    return kExitFailure;
  }
  if (options.output.empty() || options.output == "-") {
    std::cout << *manifest;
    return std::cout.good() ? kExitOk : kExitFailure;
  }
  std::ofstream out(options.output, std::ios::binary | std::ios::trunc);
  out << *manifest;
  out.close();
  if (!out) {
    std::fprintf(stderr, "cachefsctl: cannot write %s\n", options.output.c_str());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void RegisterManifestCommand(CLI::App& app, const GlobalOptions&, int* exit_code) {
  auto options = std::make_shared<ManifestOptions>();
  CLI::App* command = app.add_subcommand(
      "manifest", "Write cachefs-manifest.json for a ciphertext tree (for HTTP origins)");
  command
      ->add_option("ORIGIN", options->origin.location,
                   "The tree: /path, oss://bucket/prefix, s3://bucket/prefix")
      ->required();
  command->add_option("-o,--output", options->output, "File to write (default: stdout)");
  command->add_option("--endpoint", options->origin.endpoint, "OSS/S3 endpoint URL");
  command->add_option("--region", options->origin.region, "Region");
  command->add_flag("--no-etags", options->no_etags,
                    "Leave ETags out (servers that compute other ETags than nginx)");
  command->callback([exit_code, options] { *exit_code = Run(*options); });
}

}  // namespace cachefs::ctl
