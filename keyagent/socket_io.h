#pragma once

// Blocking whole-buffer socket I/O for the key agent's local peers (the Confidential Data Hub's
// Unix socket, the TDX quote generation service over vsock).

#include <unistd.h>

#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"

namespace cachefs::keyagent {

// Owns a file descriptor and closes it.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Sends all of `data`; `peer` names the other side in errors.
Status SendAll(int fd, std::span<const uint8_t> data, const std::string& peer);

// Receives exactly data.size() bytes. The peer closing early is Errc::kUnavailable; a receive
// timeout (SO_RCVTIMEO) is Errc::kTimeout.
Status RecvAll(int fd, std::span<uint8_t> data, const std::string& peer);

}  // namespace cachefs::keyagent
