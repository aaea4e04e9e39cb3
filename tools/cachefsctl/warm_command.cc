// cachefsctl warm [PATH...]: prefetches files (default: the whole model) into the daemon's
// ciphertext cache, showing bytes, rate and ETA: a one-line bar on a terminal, a progress line
// every few seconds otherwise. Ctrl-C stops the warm-up.
//
// The daemon does the reading (Warm RPC): ciphertext goes from the origin into its memory and
// disk tiers without being decrypted or copied to this process; the plaintext is produced
// later, on the reads that need it.

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tools/cachefsctl/command.h"

namespace cachefs::ctl {
namespace {

constexpr auto kPlainInterval = std::chrono::seconds(5);
constexpr int kBarWidth = 30;

std::string Progress(const control::WarmProgress& p) {
  double rate =
      p.elapsed_seconds() > 0 ? static_cast<double>(p.bytes_done()) / p.elapsed_seconds() : 0;
  double percent = p.bytes_total() > 0 ? 100.0 * static_cast<double>(p.bytes_done()) /
                                             static_cast<double>(p.bytes_total())
                                       : 100.0;
  std::string eta = "-";
  if (p.finished()) {
    eta = "done in " + FormatDuration(p.elapsed_seconds());
  } else if (rate > 0) {
    eta = "ETA " + FormatDuration(static_cast<double>(p.bytes_total() - p.bytes_done()) / rate);
  }
  char text[256];
  std::snprintf(text, sizeof(text), "%5.1f%%  %s / %s  %llu/%llu files  %s/s  %s", percent,
                FormatBytes(p.bytes_done()).c_str(), FormatBytes(p.bytes_total()).c_str(),
                static_cast<unsigned long long>(p.files_done()),
                static_cast<unsigned long long>(p.files_total()),
                FormatBytes(static_cast<uint64_t>(rate)).c_str(), eta.c_str());
  return text;
}

std::string Bar(const control::WarmProgress& p) {
  int filled = p.bytes_total() > 0 ? static_cast<int>(kBarWidth * p.bytes_done() / p.bytes_total())
                                   : kBarWidth;
  return "[" + std::string(filled, '#') + std::string(kBarWidth - filled, '-') + "] ";
}

int Run(const GlobalOptions& globals, const std::vector<std::string>& paths) {
  // Blocked before gRPC starts its threads, so only the waiter below sees Ctrl-C and can turn
  // it into a cancelled call (the daemon then stops reading).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ControlClient client(globals);
  if (!client.Check()) {
    return kExitUnreachable;
  }
  control::WarmRequest request;
  for (const std::string& path : paths) {
    request.add_paths(path);
  }
  grpc::ClientContext context;  // no deadline: a warm-up takes as long as the model needs
  std::atomic<bool> interrupted{false};
  std::thread([&context, &interrupted, signals] {
    int signal_number = 0;
    if (sigwait(&signals, &signal_number) == 0) {
      interrupted = true;
      context.TryCancel();
    }
  }).detach();

  const bool tty = isatty(STDOUT_FILENO) == 1;
  auto reader = client.stub().Warm(&context, request);
  control::WarmProgress progress;
  control::WarmProgress last;
  auto last_print = std::chrono::steady_clock::time_point();
  while (reader->Read(&progress)) {
    last = progress;
    if (tty) {
      std::printf("\r%s%s\033[K", Bar(progress).c_str(), Progress(progress).c_str());
      std::fflush(stdout);
    } else if (progress.finished() ||
               std::chrono::steady_clock::now() - last_print >= kPlainInterval) {
      std::printf("warm: %s\n", Progress(progress).c_str());
      std::fflush(stdout);
      last_print = std::chrono::steady_clock::now();
    }
  }
  grpc::Status status = reader->Finish();
  if (tty) {
    std::printf("\n");
  }
  if (interrupted) {
    std::fprintf(stderr, "cachefsctl: warm-up stopped at %s\n",
                 FormatBytes(last.bytes_done()).c_str());
    return kExitInterrupted;
  }
  if (!status.ok()) {
    return ReportRpcError("warm", status);
  }
  if (last.failed_files() > 0) {
    std::fprintf(stderr, "cachefsctl: %llu files could not be read; last error: %s\n",
                 static_cast<unsigned long long>(last.failed_files()), last.last_error().c_str());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void RegisterWarmCommand(CLI::App& app, const GlobalOptions& globals, int* exit_code) {
  auto paths = std::make_shared<std::vector<std::string>>();
  CLI::App* command = app.add_subcommand(
      "warm", "Prefetch files into the ciphertext cache (default: the whole model)");
  command->add_option("PATH", *paths,
                      "Files or directories, relative to the mount point or absolute under it");
  command->callback([&globals, exit_code, paths] { *exit_code = Run(globals, *paths); });
}

}  // namespace cachefs::ctl
