// link_emulator: a TCP relay on 127.0.0.1 that behaves like a network link between its clients
// and one upstream server, for kernels without sch_netem (bench/origins/run.sh).
//
//   link_emulator LISTEN_PORT UPSTREAM_PORT RATE_BYTES_PER_S RTT_MS [WINDOW_BYTES]
//
// Each direction of each connection holds every piece of data for RTT/2 before passing it on
// (so a request and its answer take one RTT), all connections share one token bucket per
// direction at RATE (the link's capacity), and at most WINDOW bytes per direction and
// connection are "on the wire" (a TCP sender cannot have more unacknowledged data than its
// window; default 6 MiB, Linux's tcp_rmem maximum). Only 127.0.0.1 is used.
//
// Build: g++ -O2 -std=c++20 -pthread link_emulator.cc -o link_emulator

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Shared by all connections in one direction: the link's capacity.
class TokenBucket {
 public:
  explicit TokenBucket(double rate) : rate_(rate), last_(Clock::now()) {}
  // Blocks until `bytes` may be sent.
  void Take(size_t bytes) {
    std::unique_lock lock(mu_);
    while (true) {
      auto now = Clock::now();
      tokens_ =
          std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
      last_ = now;
      if (tokens_ >= static_cast<double>(bytes)) {
        tokens_ -= static_cast<double>(bytes);
        return;
      }
      double wait = (static_cast<double>(bytes) - tokens_) / rate_;
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      lock.lock();
    }
  }

 private:
  std::mutex mu_;
  double rate_;
  double tokens_ = 0;
  double burst_ = 256 * 1024;
  Clock::time_point last_;
};

struct Piece {
  Clock::time_point due;
  std::vector<char> data;  // empty: end of stream
};

// One direction of one connection: a reader fills the pipe, a writer drains it when due.
class Pipe {
 public:
  Pipe(int from, int to, Clock::duration delay, size_t window, TokenBucket& bucket)
      : from_(from), to_(to), delay_(delay), window_(window), bucket_(bucket) {}

  void Run() {
    std::thread writer([this] { Write(); });
    std::vector<char> buf(256 * 1024);
    while (true) {
      ssize_t n = read(from_, buf.data(), buf.size());
      {
        std::unique_lock lock(mu_);
        if (n <= 0) {
          queue_.push_back({Clock::now() + delay_, {}});
          cv_.notify_all();
          break;
        }
        cv_.wait(lock, [&] { return in_flight_ + static_cast<size_t>(n) <= window_ || dead_; });
        if (dead_) {
          break;
        }
        in_flight_ += static_cast<size_t>(n);
        queue_.push_back({Clock::now() + delay_, std::vector<char>(buf.begin(), buf.begin() + n)});
      }
      cv_.notify_all();
    }
    writer.join();
  }

 private:
  void Write() {
    while (true) {
      Piece piece;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        piece = std::move(queue_.front());
        queue_.pop_front();
      }
      std::this_thread::sleep_until(piece.due);
      if (piece.data.empty()) {
        shutdown(to_, SHUT_WR);
        return;
      }
      bucket_.Take(piece.data.size());
      size_t off = 0;
      while (off < piece.data.size()) {
        ssize_t w = write(to_, piece.data.data() + off, piece.data.size() - off);
        if (w <= 0) {
          std::lock_guard lock(mu_);
          dead_ = true;
          cv_.notify_all();
          shutdown(from_, SHUT_RD);
          return;
        }
        off += static_cast<size_t>(w);
      }
      std::lock_guard lock(mu_);
      in_flight_ -= piece.data.size();
      cv_.notify_all();
    }
  }

  int from_, to_;
  Clock::duration delay_;
  size_t window_;
  TokenBucket& bucket_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Piece> queue_;
  size_t in_flight_ = 0;
  bool dead_ = false;
};

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: link_emulator LISTEN_PORT UPSTREAM_PORT RATE_BYTES RTT_MS [WINDOW]\n");
    return 2;
  }
  int listen_port = std::atoi(argv[1]);
  int upstream_port = std::atoi(argv[2]);
  double rate = std::atof(argv[3]);
  auto delay = std::chrono::microseconds(static_cast<int64_t>(std::atof(argv[4]) * 500));
  size_t window = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 6u << 20;
  // A peer that hangs up mid-write must end its connection, not the emulator.
  std::signal(SIGPIPE, SIG_IGN);
  TokenBucket down(rate), up(rate);

  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(listen_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(lfd, 128) != 0) {
    std::perror("link_emulator: listen");
    return 1;
  }
  std::printf("READY %d\n", listen_port);
  std::fflush(stdout);
  while (true) {
    int client = accept(lfd, nullptr, nullptr);
    if (client < 0) {
      continue;
    }
    std::thread([client, upstream_port, delay, window, &down, &up] {
      int server = Connect(upstream_port);
      if (server < 0) {
        close(client);
        return;
      }
      int one = 1;
      setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      Pipe to_server(client, server, delay, window, up);
      Pipe to_client(server, client, delay, window, down);
      std::thread t([&] { to_server.Run(); });
      to_client.Run();
      t.join();
      close(client);
      close(server);
    }).detach();
  }
}
