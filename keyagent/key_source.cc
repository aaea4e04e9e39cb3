#include "keyagent/key_source.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>

#include "common/log.h"

namespace cachefs::keyagent {

namespace {
constexpr size_t kMaxPasswordBytes = 2048;
}  // namespace

std::string DescribeKeySource(const KeySourceOptions& options) {
  if (!options.trustee_url.empty()) {
    return "trustee " + options.trustee_url + " key " + options.key_id;
  }
  if (!options.cdh_socket.empty()) {
    return "cdh " + options.cdh_socket + " key " + options.key_id;
  }
  if (!options.extpass.empty()) {
    return "extpass";
  }
  if (!options.passfile.empty()) {
    return "passfile " + options.passfile;
  }
  return "none";
}

Result<SecretBytes> ReadPassFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Error::FromErrno(errno, "passfile " + path);
  }
  // Read one byte more than allowed so an over-long first line is detected.
  SecretBytes buffer(kMaxPasswordBytes + 2);
  size_t got = 0;
  while (got < buffer.size()) {
    ssize_t n = read(fd, buffer.data() + got, buffer.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int saved = errno;
      close(fd);
      return Error::FromErrno(saved, "passfile " + path);
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  close(fd);
  size_t line_end = 0;
  while (line_end < got && buffer.data()[line_end] != '\n') {
    ++line_end;
  }
  if (line_end > kMaxPasswordBytes) {
    return Error(Errc::kInvalidArgument, "passfile " + path + ": password longer than 2048 bytes");
  }
  if (line_end == 0) {
    return Error(Errc::kInvalidArgument, "passfile " + path + ": first line is empty");
  }
  if (line_end + 1 < got) {
    CACHEFS_LOG(kWarn, "keyagent").Kv("passfile", path)
        << "passfile has more than one line; only the first is used";
  }
  buffer.Truncate(line_end);
  return buffer;
}

Result<SecretBytes> ObtainPassword(const KeySourceOptions& options) {
  if (!options.passfile.empty()) {
    return ReadPassFile(options.passfile);
  }
  return Error(Errc::kInvalidArgument,
               "no key source: give --passfile, --extpass, --cdh-socket or --trustee-url");
}

}  // namespace cachefs::keyagent
