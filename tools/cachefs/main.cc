// cachefs: mounts a gocryptfs-encrypted model read-only, decrypting inside the TEE.
//
//   cachefs mount [OPTIONS] ORIGIN MOUNTPOINT
//   cachefs ORIGIN MOUNTPOINT -o opt[=value],...     (the form mount.fuse3 and fstab use)

#include <CLI/CLI.hpp>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "tools/cachefs/exit_codes.h"
#include "tools/cachefs/mount_command.h"
#include "tools/cli_parse.h"

namespace cachefs::tools {
namespace {

constexpr const char* kVersion = "cachefs 0.1.0";

// Options that only mean something to mount(8) and fstab; mount.fuse3 strips most of them, but
// a direct `cachefs SRC MNT -o ...` call may carry them.
const std::set<std::string> kFstabOnlyOptions = {"_netdev", "nofail", "auto",     "noauto", "user",
                                                 "users",   "nouser", "defaults", "ro"};
// Generic mount flags passed through to the kernel mount.
const std::set<std::string> kKernelOptions = {"nodev",      "nosuid", "noexec", "noatime",
                                              "nodiratime", "dev",    "suid",   "exec"};

// Rewrites "-o a=b,c,nodev" into "--a=b --c --kernel-option=nodev" so that every -o option is
// checked by the same parser as its long-flag form. Underscores become dashes (allow_other).
Result<std::vector<std::string>> ExpandMountOptions(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "-o") {
      out.push_back(args[i]);
      continue;
    }
    if (i + 1 >= args.size()) {
      return Error(Errc::kInvalidArgument, "-o needs a value");
    }
    std::string list = args[++i];
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = list.find(',', start);
      std::string item =
          list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      start = comma == std::string::npos ? list.size() + 1 : comma + 1;
      if (item.empty() || kFstabOnlyOptions.count(item) != 0) {
        continue;
      }
      if (kKernelOptions.count(item) != 0) {
        out.push_back("--kernel-option=" + item);
        continue;
      }
      size_t equals = item.find('=');
      std::string key = item.substr(0, equals);
      for (char& c : key) {
        if (c == '_') {
          c = '-';
        }
      }
      out.push_back("--" + key + (equals == std::string::npos ? "" : item.substr(equals)));
    }
  }
  return out;
}

void AddMountOptions(CLI::App& mount, MountCommand& command) {
  mount.add_option("ORIGIN", command.origin,
                   "Ciphertext location: /path, file:///path, oss://bucket/prefix, "
                   "bucket:/prefix, s3://bucket/prefix, http(s)://host/path/");
  mount.add_option("MOUNTPOINT", command.mountpoint, "Where the plaintext appears (/tmp/model)");
  mount.add_option("--env-file", command.env_file,
                   "CAI env-file (MODEL_OSS_*, TRUSTEE_URL, MODEL_KEY_ID, MODEL_MOUNT_POINT)");
  mount.add_flag("-f,--foreground", command.foreground,
                 "Stay attached: log to stderr, no fork (containers, systemd)");
  mount.add_flag("--allow-other", command.mount.allow_other,
                 "Let other users (e.g. the vLLM container's) read the mount");
  mount.add_flag("--insecure-allow-non-tee", command.insecure_allow_non_tee,
                 "Serve plaintext outside a TDX guest (development and tests only)");
  mount.add_flag("--insecure-permissions", command.insecure_permissions,
                 "Accept an env-file readable by group or others");

  auto* key = "Key";
  mount
      .add_option("--passfile", command.key.passfile,
                  "Read the password from the first line of FILE (development)")
      ->group(key);
  mount
      .add_option("--extpass", command.key.extpass,
                  "Run CMD and use the first line it prints as the password (development)")
      ->group(key);
  mount.add_option("--trustee-url", command.key.trustee_url, "Trustee (KBS) base URL")->group(key);
  mount.add_option("--key-id", command.key.key_id, "KBS resource: kbs:///repo/type/tag")
      ->group(key);
  mount.add_option("--trustee-policy", command.key.trustee_policy, "Trustee policy (opaque)")
      ->group(key);
  mount.add_option("--attester", command.key.attester, "auto, tdx, tdx+nvidia or sample")
      ->check(CLI::IsMember({"auto", "tdx", "tdx+nvidia", "sample"}))
      ->group(key);
  mount
      .add_option("--cdh-socket", command.key.cdh_socket,
                  "Ask a running Confidential Data Hub at this socket")
      ->group(key);
  mount.add_option("--trustee-ca", command.key.trustee_ca, "Extra CA bundle for Trustee")
      ->group(key);
  mount
      .add_option("--key-retries", command.key.retries,
                  "Retries after the first failed attempt to reach Trustee")
      ->group(key);
  mount
      .add_option("--gpu-evidence", command.key.gpu_evidence,
                  "GPU evidence: auto, additional (upstream Trustee) or inline (openanolis)")
      ->check(CLI::IsMember({"auto", "additional", "inline"}))
      ->group(key);
  mount
      .add_option("--kbs-protocol", command.key.kbs_protocol,
                  "Force a KBS protocol version (default: negotiate)")
      ->group(key);

  auto* origin = "Origin";
  auto& o = command.origin_options;
  mount.add_option("--endpoint", o.endpoint, "OSS/S3 endpoint URL")->group(origin);
  mount.add_option("--region", o.region, "Region (derived from OSS endpoints when omitted)")
      ->group(origin);
  mount.add_flag("--path-style", o.path_style, "Path-style bucket addressing")->group(origin);
  mount.add_option("--access-key-id", o.access_key_id, "Access key id")->group(origin);
  mount
      .add_option("--access-key-secret", o.secret_access_key,
                  "Access key secret (prefer the environment or --env-file: argv is public)")
      ->group(origin);
  mount.add_option("--session-token", o.session_token, "STS session token")->group(origin);
  mount.add_flag("--anonymous", o.anonymous, "Unsigned requests (public-read buckets)")
      ->group(origin);
  mount.add_option("--ca-bundle", o.ca_bundle, "CA bundle for the origin")->group(origin);
  mount.add_option("--oss-signature", o.oss_signature, "OSS request signing: v4 or v1")
      ->check(CLI::IsMember({"v4", "v1"}))
      ->capture_default_str()
      ->group(origin);
  mount
      .add_option("--parallel-fetches", o.max_parallel_fetches,
                  "Read-ahead range requests in flight")
      ->check(CLI::Range(1, 256))
      ->capture_default_str()
      ->group(origin);
  mount
      .add_option("--stall-timeout", o.stall_timeout_s,
                  "Seconds below 16 KiB/s before a transfer is cut and retried")
      ->check(CLI::Range(1, 600))
      ->capture_default_str()
      ->group(origin);
  mount.add_option("--cache-dir", o.cache_dir, "Disk tier of the ciphertext cache")->group(origin);
  mount.add_option("--cache-size", o.cache_size, "Disk tier size limit (e.g. 20GiB)")
      ->transform(CLI::AsSizeValue(false))
      ->group(origin);
  mount.add_option("--part-size", o.part_size, "Range request size (default 8MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->group(origin);
  mount
      .add_option("--memory-budget", o.memory_budget,
                  "Memory for read-ahead and the memory cache (default 512MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->group(origin);

  auto* tuning = "Tuning";
  mount
      .add_option("--readahead-kb", command.mount.readahead_kb,
                  "Kernel readahead window of the mount")
      ->capture_default_str()
      ->group(tuning);
  mount.add_option("--fuse-threads", command.mount.max_threads, "Most FUSE worker threads")
      ->capture_default_str()
      ->group(tuning);
  mount
      .add_option("--decrypt-threads", command.decrypt_threads,
                  "Decryption threads (default: one per core)")
      ->group(tuning);
  mount
      .add_flag("!--no-decrypt-ahead", command.mount.decrypt_ahead,
                "Do not decrypt opened files ahead into the kernel page cache")
      ->group(tuning);
  mount
      .add_option("--decrypt-ahead-budget", command.mount.decrypt_ahead_budget,
                  "Most plaintext decrypted ahead into open files' page cache (default: half "
                  "of RAM or of the cgroup's memory limit)")
      ->transform(CLI::AsSizeValue(false))
      ->group(tuning);
  mount
      .add_option("--kernel-option", command.mount.kernel_options,
                  "Extra kernel mount option (nodev, nosuid, noexec, noatime)")
      ->group(tuning);

  auto* control = "Control";
  mount
      .add_option("--control-socket", command.control_socket,
                  "cachefsctl socket, mode 0600 (default /run/cachefs/<mount point>.sock)")
      ->group(control);
  mount
      .add_option("--metrics-listen", command.metrics_listen,
                  "Serve Prometheus /metrics, /healthz and /readyz on HOST:PORT")
      ->group(control);

  auto* sharing = "Sharing group";
  mount
      .add_option("--peers", command.peers,
                  "Join these members: \"HOST[:PORT] ...\" (port 7070 when omitted; env-file "
                  "MODEL_SHARING_PEER); empty: no sharing")
      ->group(sharing);
  mount
      .add_option("--p2p-listen", command.p2p_listen,
                  "Serve the group on HOST:PORT (default 0.0.0.0:7070); chunk data uses "
                  "PORT+1")
      ->group(sharing);
  mount
      .add_option("--p2p-deadline", command.p2p_deadline_s,
                  "Seconds to wait for a peer's chunk before reading it from the origin")
      ->capture_default_str()
      ->group(sharing);
  mount
      .add_option("--p2p-peer-rate", command.p2p_peer_rate,
                  "Bandwidth cap per peer served, bytes/s (e.g. 200MB; 0: none)")
      ->transform(CLI::AsSizeValue(false))
      ->group(sharing);

  auto* logging = "Logging";
  mount
      .add_option_function<std::string>(
          "--log-level",
          [&command](const std::string& value) {
            if (!ParseLogLevel(value, &command.log.min_level)) {
              throw CLI::ValidationError("--log-level", "expected debug, info, warn or error");
            }
          },
          "debug, info, warn or error")
      ->group(logging);
  mount
      .add_option_function<std::string>(
          "--log-format",
          [&command](const std::string& value) {
            command.log.format = value == "json" ? LogFormat::kJson : LogFormat::kText;
          },
          "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->group(logging);
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // The mount.fuse3 form has no subcommand: "cachefs SOURCE MOUNTPOINT -o ...".
  static const std::set<std::string> kSubcommands = {"mount", "help",      "--help",
                                                     "-h",    "--version", "version"};
  if (!args.empty() && kSubcommands.count(args[0]) == 0 && args[0][0] != '-') {
    args.insert(args.begin(), "mount");
  }
  auto expanded = ExpandMountOptions(args);
  if (!expanded) {
    std::fprintf(stderr, "cachefs: %s\n", expanded.error().message().c_str());
    return kExitUsage;
  }

  CLI::App app{"cachefs: mount an encrypted model read-only inside a confidential VM"};
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);
  MountCommand command;
  CLI::App* mount =
      app.add_subcommand("mount", "Mount ORIGIN (gocryptfs ciphertext) at MOUNTPOINT");
  AddMountOptions(*mount, command);

  std::vector<std::string> reversed(expanded->rbegin(), expanded->rend());
  if (auto exit_code = ParseCommandLine(app, "cachefs", [&] { app.parse(reversed); })) {
    return *exit_code;
  }
  return RunMount(std::move(command));
}

}  // namespace
}  // namespace cachefs::tools

int main(int argc, char** argv) { return cachefs::tools::Main(argc, argv); }
