#include "tools/cachefs/metrics_server.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/log.h"

// Boost.Asio 1.74's awaitable.hpp uses std::exchange without including <utility>.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on

namespace cachefs::tools {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

constexpr size_t kMaxRequestBytes = 8 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(5);

// Prometheus text format 0.0.4: "# HELP", "# TYPE", then samples of the family.
class Exposition {
 public:
  void Family(const char* name, const char* type, const char* help) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  void Sample(const std::string& name, uint64_t value, const std::string& labels = "") {
    out_ << name << labels << ' ' << value << '\n';
  }
  void Sample(const std::string& name, double value, const std::string& labels = "") {
    char text[64];
    std::snprintf(text, sizeof(text), "%.9g", value);
    out_ << name << labels << ' ' << text << '\n';
  }
  // A family with one sample.
  void One(const char* name, const char* type, const char* help, uint64_t value) {
    Family(name, type, help);
    Sample(name, value);
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

std::string Label(const char* key, const std::string& value) {
  std::string escaped;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      escaped += '\\';
      escaped += c;
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return std::string("{") + key + "=\"" + escaped + "\"}";
}

void RenderProcess(Exposition& e, const control::StatusReply& status) {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  e.Family("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
  e.Sample("process_cpu_seconds_total", cpu);

  uint64_t pages_virtual = 0;
  uint64_t pages_resident = 0;
  std::ifstream statm("/proc/self/statm");
  statm >> pages_virtual >> pages_resident;
  uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  e.One("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
        pages_virtual * page);
  e.One("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        pages_resident * page);

  uint64_t fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir)) {
      fds += entry->d_name[0] != '.';
    }
    closedir(dir);
    --fds;  // the directory's own descriptor
  }
  e.One("process_open_fds", "gauge", "Number of open file descriptors.", fds);
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  e.One("process_max_fds", "gauge", "Maximum number of open file descriptors.",
        static_cast<uint64_t>(limit.rlim_cur));
  e.Family("process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
  e.Sample("process_start_time_seconds", static_cast<uint64_t>(status.start_unix()));
}

void RenderLatency(Exposition& e, const fs::LatencyHistogram::Snapshot& latency) {
  const char* name = "cachefs_read_duration_seconds";
  e.Family(name, "histogram", "Time the read path (cache, origin, decryption) took per FUSE read.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < fs::LatencyHistogram::kBuckets; ++i) {
    cumulative += latency.counts[i];
    char bound[32];
    if (i < fs::LatencyHistogram::kBounds.size()) {
      std::snprintf(bound, sizeof(bound), "%g", fs::LatencyHistogram::kBounds[i]);
    } else {
      std::snprintf(bound, sizeof(bound), "+Inf");
    }
    e.Sample(std::string(name) + "_bucket", cumulative, Label("le", bound));
  }
  e.Sample(std::string(name) + "_sum", latency.sum_seconds);
  e.Sample(std::string(name) + "_count", latency.count);
}

std::string Response(int code, const char* reason, const std::string& content_type,
                     const std::string& body, bool head) {
  std::string out =
      "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + content_type +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!head) {
    out += body;
  }
  return out;
}

// One connection: reads the request head within the limits, answers, closes.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ControlState& state)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(kMaxRequestBytes),
        state_(state) {}

  void Run() {
    auto self = shared_from_this();
    timer_.expires_after(kRequestTimeout);
    timer_.async_wait([self](const boost::system::error_code& error) {
      if (!error) {
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
    asio::async_read_until(
        socket_, buffer_, "\r\n\r\n",
        [self](const boost::system::error_code& error, size_t) { self->Answer(error); });
  }

 private:
  void Answer(const boost::system::error_code& error) {
    if (error) {
      // Timeout, a head beyond kMaxRequestBytes, or the peer went away: nothing to answer.
      timer_.cancel();
      return;
    }
    std::istream head(&buffer_);
    std::string method, target, version;
    head >> method >> target >> version;
    bool is_head = method == "HEAD";
    if (method != "GET" && !is_head) {
      response_ = Response(405, "Method Not Allowed", "text/plain", "GET only\n", false);
    } else if (target == "/metrics") {
      response_ = Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                           RenderMetrics(state_), is_head);
    } else if (target == "/healthz" || target == "/livez") {
      response_ = Response(200, "OK", "text/plain", "ok\n", is_head);
    } else if (target == "/readyz") {
      bool ready = state_.state() == control::STATE_READY;
      response_ = ready
                      ? Response(200, "OK", "text/plain", "ready\n", is_head)
                      : Response(503, "Service Unavailable", "text/plain", "not ready\n", is_head);
    } else {
      response_ = Response(404, "Not Found", "text/plain", "try /metrics\n", is_head);
    }
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(response_),
                      [self](const boost::system::error_code&, size_t) {
                        boost::system::error_code ignored;
                        self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
                        self->timer_.cancel();
                      });
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  asio::streambuf buffer_;
  ControlState& state_;
  std::string response_;
};

}  // namespace

struct MetricsServer::Impl {
  explicit Impl(ControlState& state) : state(state), acceptor(io) {}

  void Accept() {
    acceptor.async_accept([this](const boost::system::error_code& error, tcp::socket socket) {
      if (!error) {
        std::make_shared<Session>(std::move(socket), state)->Run();
      }
      if (acceptor.is_open()) {
        Accept();
      }
    });
  }

  ControlState& state;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::thread thread;
};

std::string RenderMetrics(ControlState& state) {
  control::StatusReply s;
  state.FillStatus(&s);
  Exposition e;
  e.Family("cachefs_build_info", "gauge", "Version and commit of the running cachefs.");
  e.Sample("cachefs_build_info", uint64_t{1},
           "{version=\"" CACHEFS_VERSION "\",commit=\"" CACHEFS_GIT_COMMIT "\"}");
  e.One("cachefs_ready", "gauge", "1 once the mount serves reads, 0 while mounting or stopping.",
        s.state() == control::STATE_READY ? 1 : 0);

  const control::NamespaceInfo& ns = s.namespace_();
  e.Family("cachefs_namespace_entries", "gauge", "Entries of the mounted namespace by type.");
  e.Sample("cachefs_namespace_entries", ns.files(), Label("type", "file"));
  e.Sample("cachefs_namespace_entries", ns.directories(), Label("type", "directory"));
  e.Sample("cachefs_namespace_entries", ns.symlinks(), Label("type", "symlink"));
  e.One("cachefs_namespace_plaintext_bytes", "gauge", "Plaintext size of every file.",
        ns.plaintext_bytes());

  const control::TrafficInfo& t = s.traffic();
  e.One("cachefs_read_requests_total", "counter",
        "Reads through the read path (FUSE reads and decrypt-ahead).", t.read_requests());
  e.One("cachefs_read_plaintext_bytes_total", "counter", "Plaintext bytes decrypted for reads.",
        t.plaintext_bytes());
  e.One("cachefs_read_ciphertext_bytes_total", "counter", "Ciphertext bytes the reads consumed.",
        t.ciphertext_bytes());
  e.One("cachefs_kernel_cache_fill_bytes_total", "counter",
        "Plaintext pushed into the kernel page cache ahead of reads.", t.kernel_cache_bytes());
  e.One("cachefs_kernel_cache_held_bytes", "gauge",
        "Plaintext pushed ahead into files that are open now (bounded by the budget).",
        t.kernel_cache_held_bytes());
  e.One("cachefs_kernel_cache_budget_bytes", "gauge",
        "Most plaintext decrypt-ahead keeps in open files at once.", t.kernel_cache_budget_bytes());
  RenderLatency(e, state.ReadLatency());

  const control::BytesBySource& b = t.bytes_by_source();
  e.Family("cachefs_source_bytes_total", "counter",
           "Ciphertext bytes handed to readers, by where they came from.");
  e.Sample("cachefs_source_bytes_total", b.memory(), Label("source", "memory"));
  e.Sample("cachefs_source_bytes_total", b.disk(), Label("source", "disk"));
  e.Sample("cachefs_source_bytes_total", b.peers(), Label("source", "peers"));
  e.Sample("cachefs_source_bytes_total", b.origin(), Label("source", "origin"));
  e.Family("cachefs_cache_hits_total", "counter", "Chunk lookups answered by a cache tier.");
  e.Sample("cachefs_cache_hits_total", t.memory_hits(), Label("tier", "memory"));
  e.Sample("cachefs_cache_hits_total", t.disk_hits(), Label("tier", "disk"));
  e.One("cachefs_cache_misses_total", "counter", "Chunks fetched from peers or the origin.",
        t.source_fetches());
  e.One("cachefs_cache_single_flight_waits_total", "counter",
        "Readers that joined a chunk fetch already in flight.", t.single_flight_waits());

  const control::CacheInfo& c = s.cache();
  e.Family("cachefs_cache_used_bytes", "gauge", "Ciphertext held by each cache tier.");
  e.Sample("cachefs_cache_used_bytes", c.memory_used(), Label("tier", "memory"));
  e.Sample("cachefs_cache_used_bytes", c.disk_used(), Label("tier", "disk"));
  e.Family("cachefs_cache_limit_bytes", "gauge", "Size limit of each cache tier.");
  e.Sample("cachefs_cache_limit_bytes", c.memory_limit(), Label("tier", "memory"));
  e.Sample("cachefs_cache_limit_bytes", c.disk_limit(), Label("tier", "disk"));
  e.One("cachefs_cache_disk_enabled", "gauge", "1 while the disk tier takes writes.",
        c.disk_enabled() ? 1 : 0);

  const control::ReadAheadInfo& r = s.read_ahead();
  e.One("cachefs_readahead_streams", "gauge", "Sequential streams tracked now.", r.streams());
  e.One("cachefs_readahead_inflight", "gauge", "Read-ahead chunk fetches running now.",
        r.inflight());
  e.Family("cachefs_readahead_chunks_total", "counter",
           "Chunks fetched ahead of readers, and of those the ones a reader then used.");
  e.Sample("cachefs_readahead_chunks_total", r.issued(), Label("outcome", "issued"));
  e.Sample("cachefs_readahead_chunks_total", r.used(), Label("outcome", "used"));

  const control::ErrorCounts& x = s.errors();
  e.Family("cachefs_errors_total", "counter", "Errors by kind.");
  const std::pair<const char*, uint64_t> kinds[] = {
      {"corrupt_block", x.corrupt_blocks()},      {"read_origin", x.read_origin_errors()},
      {"origin_not_found", x.origin_not_found()}, {"origin_denied", x.origin_denied()},
      {"origin_changed", x.origin_changed()},     {"origin_transport", x.origin_transport()},
      {"origin_timeout", x.origin_timeout()},     {"origin_server", x.origin_server()},
      {"origin_throttled", x.origin_throttled()}, {"origin_short_body", x.origin_short_body()},
      {"disk_corrupt", x.disk_corrupt()},         {"disk_write", x.disk_write_errors()},
      {"write_refused", x.write_attempts()}};
  for (const auto& [kind, count] : kinds) {
    e.Sample("cachefs_errors_total", count, Label("kind", kind));
  }
  e.One("cachefs_origin_retries_total", "counter", "Origin requests retried.", x.origin_retries());

  const control::WarmInfo& w = s.warm();
  e.Family("cachefs_warm_bytes", "gauge", "Progress of the latest warm-up (ciphertext bytes).");
  e.Sample("cachefs_warm_bytes", w.bytes_done(), Label("state", "done"));
  e.Sample("cachefs_warm_bytes", w.bytes_total(), Label("state", "total"));
  e.One("cachefs_warm_active", "gauge", "1 while a warm-up runs.", w.active() ? 1 : 0);

  // Peers are counted by state and summed: peer addresses would be an unbounded label.
  std::map<std::string, uint64_t> by_state;
  uint64_t received = 0;
  uint64_t sent = 0;
  for (const control::PeerInfo& peer : s.peers().peers()) {
    by_state[peer.state()]++;
    received += peer.bytes_received();
    sent += peer.bytes_sent();
  }
  e.Family("cachefs_peers", "gauge", "Peers of the sharing group by state.");
  for (const auto& [peer_state, count] : by_state) {
    e.Sample("cachefs_peers", count, Label("state", peer_state));
  }
  e.Family("cachefs_peer_bytes_total", "counter", "Ciphertext exchanged with peers.");
  e.Sample("cachefs_peer_bytes_total", received, Label("direction", "received"));
  e.Sample("cachefs_peer_bytes_total", sent, Label("direction", "sent"));

  RenderProcess(e, s);
  return e.str();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(ControlState& state,
                                                            const std::string& listen) {
  std::string host;
  std::string port = listen;
  size_t colon = listen.rfind(':');
  if (colon != std::string::npos) {
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) {
    host = "0.0.0.0";
  }
  auto impl = std::make_unique<Impl>(state);
  boost::system::error_code error;
  tcp::resolver resolver(impl->io);
  auto endpoints = resolver.resolve(host, port, tcp::resolver::numeric_service, error);
  if (error || endpoints.empty()) {
    return Error(Errc::kInvalidArgument, "--metrics-listen " + listen + ": " +
                                             (error ? error.message() : std::string("no address")) +
                                             " (expected HOST:PORT, [V6]:PORT or :PORT)");
  }
  tcp::endpoint endpoint = endpoints.begin()->endpoint();
  tcp::acceptor& acceptor = impl->acceptor;
  if (acceptor.open(endpoint.protocol(), error) ||
      acceptor.set_option(tcp::acceptor::reuse_address(true), error) ||
      acceptor.bind(endpoint, error) || acceptor.listen(64, error)) {
    return Error(Errc::kIo, "--metrics-listen " + listen + ": " + error.message());
  }
  impl->Accept();
  impl->thread = std::thread([raw = impl.get()] { raw->io.run(); });
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(impl)));
  CACHEFS_LOG(kInfo, "control").Kv("listen", server->address()) << "serving /metrics";
  return server;
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() {
  impl_->io.stop();
  impl_->thread.join();
}

std::string MetricsServer::address() const {
  boost::system::error_code error;
  tcp::endpoint endpoint = impl_->acceptor.local_endpoint(error);
  if (error) {
    return "?";
  }
  std::string host = endpoint.address().to_string();
  if (endpoint.address().is_v6()) {
    host = "[" + host + "]";
  }
  return host + ":" + std::to_string(endpoint.port());
}

}  // namespace cachefs::tools
