#include "fetch/remote_origin.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace cachefs::fetch {
namespace {

// A listening socket that never accepts: connections complete in the backlog and requests
// get no answer, like a server that hangs.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_;
};

std::unique_ptr<RemoteOrigin> HttpOriginAt(int port) {
  auto engine = HttpEngine::Create({});
  EXPECT_TRUE(engine);
  RemoteConfig config;
  config.protocol = RemoteProtocol::kHttp;
  config.scheme = "http";
  config.host = "127.0.0.1:" + std::to_string(port);
  config.prefix = "/";
  config.retry.max_attempts = 100;
  return std::make_unique<RemoteOrigin>(config, MakeAnonymousSigner(),
                                        std::shared_ptr<HttpEngine>(std::move(*engine)));
}

TEST(RemoteOriginTest, CancelCutsAHangingRequestAndItsRetries) {
  SilentServer server;
  auto origin = HttpOriginAt(server.port());
  ObjectInfo object;
  object.key = "big";
  object.size = 1 << 20;
  std::vector<uint8_t> buf(4096);
  auto start = std::chrono::steady_clock::now();
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    origin->Cancel();
  });
  auto r = origin->ReadRange(object, 0, buf);
  canceller.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // Later requests fail at once.
  auto again = origin->ReadRange(object, 0, buf);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Errc::kCancelled);
}

TEST(RemoteOriginTest, RefusedConnectionsAreRetriedThenReported) {
  int port;
  {
    SilentServer reserve;  // a port nobody listens on once it is closed
    port = reserve.port();
  }
  auto engine = HttpEngine::Create({});
  ASSERT_TRUE(engine);
  RemoteConfig config;
  config.protocol = RemoteProtocol::kHttp;
  config.scheme = "http";
  config.host = "127.0.0.1:" + std::to_string(port);
  config.prefix = "/m/";
  config.retry = {3, 1, 5};
  RemoteOrigin origin(config, MakeAnonymousSigner(),
                      std::shared_ptr<HttpEngine>(std::move(*engine)));
  auto list = origin.List();
  ASSERT_FALSE(list);
  EXPECT_EQ(list.error().code(), Errc::kUnavailable);
  EXPECT_NE(list.error().message().find("giving up after 3 attempts"), std::string::npos);
  OriginStats stats;
  origin.CollectStats(stats);
  EXPECT_EQ(stats.origin_retries, 2u);
  EXPECT_EQ(stats.errors_transport, 3u);
}

}  // namespace
}  // namespace cachefs::fetch
