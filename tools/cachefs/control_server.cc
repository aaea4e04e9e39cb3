#include "tools/cachefs/control_server.h"

#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.h"
#include "proto/control.grpc.pb.h"
#include "tools/cachefs/control_socket.h"

namespace cachefs::tools {
namespace {

constexpr int kMaxThreads = 16;
constexpr int kMaxWarmPaths = 4096;
constexpr uint64_t kWarmPiece = 8ull << 20;  // the cache's default chunk size
constexpr int kWarmWorkers = 4;
constexpr auto kWarmReportInterval = std::chrono::milliseconds(200);
constexpr auto kShutdownGrace = std::chrono::seconds(2);

std::string Errno(const std::string& what, int error) { return what + ": " + std::strerror(error); }

// mkdir -p, the last component owner-only.
Status MakeSocketDirectory(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? Status::Ok()
                               : Status(Error(Errc::kInvalidArgument, dir + " is not a directory"));
  }
  size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    std::string parent = dir.substr(0, slash);
    if (stat(parent.c_str(), &st) != 0 && mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
      return Error(Errc::kIo, Errno("creating " + parent, errno));
    }
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(Errc::kIo, Errno("creating " + dir, errno));
  }
  return Status::Ok();
}

// A socket file left by a daemon that died is removed; a live one is someone else's.
Status ClaimSocketPath(const std::string& path) {
  sockaddr_un address{};
  if (path.size() >= sizeof(address.sun_path)) {
    return Error(Errc::kInvalidArgument,
                 "control socket path " + path + " is longer than a Unix socket name may be");
  }
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok() : Status(Error(Errc::kIo, Errno(path, errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Error(Errc::kInvalidArgument, path + " exists and is not a socket");
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Error(Errc::kIo, Errno("socket", errno));
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  // sockaddr_un is the sockaddr the kernel expects for AF_UNIX.
  int connected = connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  close(fd);
  if (connected == 0) {
    return Error(Errc::kInvalidArgument,
                 "another daemon serves the control socket " + path +
                     " (is this mount point mounted already? else pass --control-socket)");
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Error(Errc::kIo, Errno("removing the stale socket " + path, errno));
  }
  return Status::Ok();
}

// One warm-up: ciphertext pieces of the files, read by a few workers through the origin (and
// so into its cache tiers) and thrown away. Plaintext is never produced.
class WarmJob {
 public:
  WarmJob(ControlState& state, fetch::Origin& origin, std::vector<const fs::Inode*> files)
      : state_(state), origin_(origin), files_(std::move(files)) {
    remaining_ = std::make_unique<std::atomic<uint64_t>[]>(files_.size());
    failed_ = std::make_unique<std::atomic<bool>[]>(files_.size());
    for (size_t i = 0; i < files_.size(); ++i) {
      uint64_t size = files_[i]->object.size;
      uint64_t pieces = (size + kWarmPiece - 1) / kWarmPiece;
      remaining_[i] = pieces;
      failed_[i] = false;
      bytes_total_ += size;
      for (uint64_t p = 0; p < pieces; ++p) {
        pieces_.push_back({i, p * kWarmPiece, std::min(kWarmPiece, size - p * kWarmPiece)});
      }
      if (pieces == 0) {
        files_done_++;
      }
    }
  }

  ~WarmJob() {
    stop_ = true;
    for (std::thread& worker : workers_) {
      worker.join();
    }
  }

  void Start() {
    state_.WarmStarted(files_.size(), bytes_total_);
    if (files_done_ > 0) {
      state_.WarmFileDone(files_done_);  // empty files: nothing to read
    }
    int workers = static_cast<int>(std::min<size_t>(kWarmWorkers, pieces_.size()));
    running_ = workers;
    for (int i = 0; i < workers; ++i) {
      workers_.emplace_back([this] { Work(); });
    }
  }

  void Stop() { stop_ = true; }

  // Waits up to `timeout` for the job to end; true when it has.
  bool WaitDone(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return done_cv_.wait_for(lock, timeout, [this] { return running_ == 0; });
  }

  void Fill(control::WarmProgress* progress, double elapsed) {
    progress->set_bytes_done(bytes_done_.load());
    progress->set_bytes_total(bytes_total_);
    progress->set_files_done(files_done_.load());
    progress->set_files_total(files_.size());
    progress->set_failed_files(failed_files_.load());
    progress->set_elapsed_seconds(elapsed);
    std::lock_guard lock(mu_);
    progress->set_last_error(last_error_);
  }

 private:
  struct Piece {
    size_t file;
    uint64_t offset;
    uint64_t length;
  };

  void Work() {
    std::vector<uint8_t> buffer(kWarmPiece);
    while (!stop_) {
      size_t index = next_.fetch_add(1);
      if (index >= pieces_.size()) {
        break;
      }
      const Piece& piece = pieces_[index];
      const fs::Inode& file = *files_[piece.file];
      auto got = origin_.ReadRange(file.object, piece.offset,
                                   std::span<uint8_t>(buffer.data(), piece.length));
      if (got) {
        bytes_done_.fetch_add(*got);
        state_.WarmProgressed(*got);
      } else if (!failed_[piece.file].exchange(true)) {
        CACHEFS_LOG(kWarn, "control").Kv("path", file.path).Kv("error", got.error().message())
            << "warm-up could not read a file";
        std::lock_guard lock(mu_);
        last_error_ = file.path + ": " + got.error().message();
      }
      if (remaining_[piece.file].fetch_sub(1) == 1) {
        if (failed_[piece.file]) {
          failed_files_++;
        } else {
          files_done_++;
          state_.WarmFileDone();
        }
      }
    }
    std::lock_guard lock(mu_);
    if (--running_ == 0) {
      done_cv_.notify_all();
    }
  }

  ControlState& state_;
  fetch::Origin& origin_;
  const std::vector<const fs::Inode*> files_;
  std::vector<Piece> pieces_;
  std::unique_ptr<std::atomic<uint64_t>[]> remaining_;  // pieces left per file
  std::unique_ptr<std::atomic<bool>[]> failed_;
  uint64_t bytes_total_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bytes_done_{0}, files_done_{0}, failed_files_{0};
  std::vector<std::thread> workers_;

  std::mutex mu_;
  std::condition_variable done_cv_;
  int running_ = 0;         // guarded by mu_
  std::string last_error_;  // guarded by mu_
};

}  // namespace

class ControlService final : public control::Control::Service {
 public:
  explicit ControlService(ControlState& state) : state_(state) {}

  grpc::Status GetStatus(grpc::ServerContext*, const control::StatusRequest*,
                         control::StatusReply* reply) override {
    state_.FillStatus(reply);
    return grpc::Status::OK;
  }

  grpc::Status CheckHealth(grpc::ServerContext*, const control::HealthRequest*,
                           control::HealthReply* reply) override {
    state_.CheckHealth(reply);
    return grpc::Status::OK;
  }

  grpc::Status Flush(grpc::ServerContext*, const control::FlushRequest* request,
                     control::FlushReply* reply) override {
    std::string error;
    if (!state_.Flush(*request, reply, &error)) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, error);
    }
    return grpc::Status::OK;
  }

  grpc::Status ListPeers(grpc::ServerContext*, const control::PeersRequest*,
                         control::PeersReply* reply) override {
    state_.FillPeers(reply->mutable_peers());
    return grpc::Status::OK;
  }

  grpc::Status Unmount(grpc::ServerContext*, const control::UnmountRequest*,
                       control::UnmountReply* reply) override {
    std::string error;
    if (!state_.Unmount(&error)) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, error);
    }
    reply->set_mountpoint(state_.mountpoint());
    return grpc::Status::OK;
  }

  grpc::Status Warm(grpc::ServerContext* context, const control::WarmRequest* request,
                    grpc::ServerWriter<control::WarmProgress>* writer) override {
    if (request->paths_size() > kMaxWarmPaths) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "at most " + std::to_string(kMaxWarmPaths) + " paths per warm-up");
    }
    if (state_.state() != control::STATE_READY || state_.origin() == nullptr) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "not mounted yet");
    }
    std::vector<const fs::Inode*> files;
    std::string error;
    if (!state_.ResolveWarmPaths(*request, &files, &error)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error);
    }
    auto start = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    WarmJob job(state_, *state_.origin(), std::move(files));
    job.Start();
    CACHEFS_LOG(kInfo, "control").Kv("paths", request->paths_size()) << "warm-up started";
    grpc::Status result = grpc::Status::OK;
    while (true) {
      bool done = job.WaitDone(kWarmReportInterval);
      control::WarmProgress progress;
      job.Fill(&progress, elapsed());
      progress.set_finished(done);
      if (context->IsCancelled() || state_.state() != control::STATE_READY ||
          !writer->Write(progress)) {
        job.Stop();
        result = grpc::Status(grpc::StatusCode::CANCELLED, "warm-up stopped");
        break;
      }
      if (done) {
        break;
      }
    }
    job.WaitDone(std::chrono::hours(1));
    state_.WarmFinished();
    control::WarmProgress last;
    job.Fill(&last, elapsed());
    CACHEFS_LOG(kInfo, "control")
            .Kv("bytes", last.bytes_done())
            .Kv("files", last.files_done())
            .Kv("failed", last.failed_files())
            .Kv("dur_s", last.elapsed_seconds())
        << (result.ok() ? "warm-up finished" : "warm-up stopped");
    return result;
  }

 private:
  ControlState& state_;
};

ControlServer::ControlServer(std::string socket_path, std::unique_ptr<ControlService> service,
                             std::unique_ptr<grpc::Server> server)
    : socket_path_(std::move(socket_path)),
      service_(std::move(service)),
      server_(std::move(server)) {}

ControlServer::~ControlServer() {
  server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  server_->Wait();
  unlink(socket_path_.c_str());
}

Result<std::unique_ptr<ControlServer>> ControlServer::Start(ControlState& state,
                                                            std::string socket_path) {
  if (socket_path.empty()) {
    socket_path = DefaultControlSocketPath(state.mountpoint());
  }
  size_t slash = socket_path.rfind('/');
  if (socket_path[0] != '/' || slash == std::string::npos) {
    return Error(Errc::kInvalidArgument, "--control-socket needs an absolute path");
  }
  if (slash > 0) {
    CACHEFS_RETURN_IF_ERROR(MakeSocketDirectory(socket_path.substr(0, slash)));
  }
  CACHEFS_RETURN_IF_ERROR(ClaimSocketPath(socket_path));

  auto service = std::make_unique<ControlService>(state);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(service.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxControlRequestBytes));
  builder.SetMaxSendMessageSize(static_cast<int>(kMaxControlReplyBytes));
  grpc::ResourceQuota quota("cachefs-control");
  quota.SetMaxThreads(kMaxThreads);
  builder.SetResourceQuota(quota);
  // gRPC binds with the process umask; this one makes the socket 0600 from its first instant.
  // No other thread creates files at this point of the start-up.
  mode_t old_umask = umask(0177);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old_umask);
  if (server == nullptr) {
    return Error(Errc::kIo, "cannot listen on the control socket " + socket_path);
  }
  if (chmod(socket_path.c_str(), 0600) != 0) {
    int error = errno;
    server->Shutdown();
    return Error(Errc::kIo, Errno("chmod " + socket_path, error));
  }
  CACHEFS_LOG(kDebug, "control").Kv("socket", socket_path) << "control socket listening";
  return std::unique_ptr<ControlServer>(
      new ControlServer(std::move(socket_path), std::move(service), std::move(server)));
}

Result<ControlPlane> StartControlPlane(ControlState& state, const std::string& socket_path,
                                       const std::string& metrics_listen) {
  ControlPlane plane;
  CACHEFS_ASSIGN_OR_RETURN(plane.control, ControlServer::Start(state, socket_path));
  if (!metrics_listen.empty()) {
    CACHEFS_ASSIGN_OR_RETURN(plane.metrics, MetricsServer::Start(state, metrics_listen));
  }
  return plane;
}

}  // namespace cachefs::tools
