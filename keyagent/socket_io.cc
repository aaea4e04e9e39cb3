#include "keyagent/socket_io.h"

#include <sys/socket.h>

#include <cerrno>

namespace cachefs::keyagent {

Status SendAll(int fd, std::span<const uint8_t> data, const std::string& peer) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return Error::FromErrno(errno, "send to " + peer);
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status RecvAll(int fd, std::span<uint8_t> data, const std::string& peer) {
  while (!data.empty()) {
    ssize_t n = recv(fd, data.data(), data.size(), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n == 0) {
      return Error(Errc::kUnavailable, peer + " closed the connection");
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return Error(Errc::kTimeout, peer + " did not answer in time");
      }
      return Error::FromErrno(errno, "receive from " + peer);
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace cachefs::keyagent
