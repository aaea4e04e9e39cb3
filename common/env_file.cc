#include "common/env_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string_view>

namespace cachefs {
namespace {

bool IsKeyStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsKeyChar(char c) { return IsKeyStart(c) || (c >= '0' && c <= '9'); }

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string ModeString(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Wipes the raw file bytes on every exit path: they hold the secrets in the clear.
class WipedBuffer {
 public:
  ~WipedBuffer() { OPENSSL_cleanse(data.data(), data.size()); }
  std::string data;
};

}  // namespace

Result<std::map<std::string, std::string>> ParseEnvFile(std::string_view text,
                                                        const std::string& name) {
  std::map<std::string, std::string> values;
  std::map<std::string, int> line_of;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);

    line = TrimBlanks(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    auto syntax_error = [&](const std::string& what) {
      // Never echo the line: it may hold a secret.
      return Error(Errc::kInvalidArgument, name + ":" + std::to_string(line_no) + ": " + what);
    };
    if (line.rfind("export", 0) == 0 && line.size() > 6 && (line[6] == ' ' || line[6] == '\t')) {
      line = TrimBlanks(line.substr(7));
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return syntax_error("expected KEY=VALUE");
    }
    std::string_view key = TrimBlanks(line.substr(0, eq));
    if (key.empty() || !IsKeyStart(key.front())) {
      return syntax_error("invalid variable name");
    }
    for (char c : key) {
      if (!IsKeyChar(c)) {
        return syntax_error("invalid variable name '" + std::string(key) + "'");
      }
    }
    std::string_view value = TrimBlanks(line.substr(eq + 1));
    if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
      if (value.size() < 2 || value.back() != value.front()) {
        return syntax_error("unterminated quote in the value of " + std::string(key));
      }
      value = value.substr(1, value.size() - 2);
    }
    std::string key_str(key);
    auto [it, inserted] = line_of.emplace(key_str, line_no);
    if (!inserted) {
      return syntax_error("duplicate key " + key_str + " (first set on line " +
                          std::to_string(it->second) + ")");
    }
    values.emplace(std::move(key_str), std::string(value));
  }
  return values;
}

Result<std::map<std::string, std::string>> ReadEnvFile(const std::string& path,
                                                       bool allow_insecure_permissions) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return Error::FromErrno(errno, "env-file " + path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int saved = errno;
    close(fd);
    return Error::FromErrno(saved, "env-file " + path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return Error(Errc::kInvalidArgument, "env-file " + path + " is not a regular file");
  }
  if (!allow_insecure_permissions) {
    bool group_read_ok = st.st_gid == 0;
    bool too_open = (st.st_mode & 0137) != 0 || ((st.st_mode & 0040) != 0 && !group_read_ok);
    bool bad_owner = st.st_uid != geteuid() && st.st_uid != 0;
    if (too_open || bad_owner) {
      close(fd);
      std::string why = too_open ? "mode " + ModeString(st.st_mode) + " is too open"
                                 : "it is owned by uid " + std::to_string(st.st_uid);
      return Error(Errc::kPermissionDenied,
                   "env-file " + path + " refused: " + why +
                       " (it may hold credentials: use chmod 600, owner this user or root)");
    }
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxEnvFileSize) {
    close(fd);
    return Error(Errc::kInvalidArgument, "env-file " + path + " is larger than 1 MiB");
  }
  WipedBuffer buffer;
  buffer.data.reserve(static_cast<size_t>(st.st_size) + 1);
  char chunk[4096];
  while (true) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int saved = errno;
      OPENSSL_cleanse(chunk, sizeof(chunk));
      close(fd);
      return Error::FromErrno(saved, "read env-file " + path);
    }
    if (n == 0) {
      break;
    }
    if (buffer.data.size() + static_cast<size_t>(n) > kMaxEnvFileSize) {
      OPENSSL_cleanse(chunk, sizeof(chunk));
      close(fd);
      return Error(Errc::kInvalidArgument, "env-file " + path + " is larger than 1 MiB");
    }
    // Stays within the reserved capacity for a file that did not grow, so no copy is left
    // behind in a freed allocation.
    buffer.data.append(chunk, static_cast<size_t>(n));
  }
  OPENSSL_cleanse(chunk, sizeof(chunk));
  close(fd);
  return ParseEnvFile(buffer.data, path);
}

}  // namespace cachefs
