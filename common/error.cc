#include "common/error.h"

#include <cerrno>
#include <cstring>

namespace cachefs {

const char* ErrcName(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument:
      return "invalid argument";
    case Errc::kNotFound:
      return "not found";
    case Errc::kPermissionDenied:
      return "permission denied";
    case Errc::kUnsupported:
      return "unsupported";
    case Errc::kCorrupt:
      return "corrupt";
    case Errc::kChanged:
      return "changed at origin";
    case Errc::kIo:
      return "I/O error";
    case Errc::kUnavailable:
      return "unavailable";
    case Errc::kTimeout:
      return "timed out";
    case Errc::kCancelled:
      return "cancelled";
    case Errc::kInternal:
      return "internal error";
  }
  return "unknown error";
}

Error Error::FromErrno(int sys_errno, std::string_view what) {
  Errc code = Errc::kIo;
  switch (sys_errno) {
    case ENOENT:
    case ENOTDIR:
      code = Errc::kNotFound;
      break;
    case EACCES:
    case EPERM:
      code = Errc::kPermissionDenied;
      break;
    case EINVAL:
    case ENAMETOOLONG:
      code = Errc::kInvalidArgument;
      break;
    case ETIMEDOUT:
      code = Errc::kTimeout;
      break;
    default:
      break;
  }
  std::string message(what);
  message += ": ";
  message += std::strerror(sys_errno);
  return Error(code, std::move(message), sys_errno);
}

int Error::ToErrno() const {
  switch (code_) {
    case Errc::kInvalidArgument:
      return EINVAL;
    case Errc::kNotFound:
      return ENOENT;
    case Errc::kPermissionDenied:
      return EACCES;
    case Errc::kUnsupported:
      return EOPNOTSUPP;
    case Errc::kCancelled:
      return EINTR;
    // Corrupt data, a changed origin object, an unreachable origin and a missed deadline all
    // surface as EIO: readers such as vLLM treat any read failure alike, and EAGAIN or ETIMEDOUT
    // on a regular file make most of them retry blindly or crash with a misleading message.
    case Errc::kCorrupt:
    case Errc::kChanged:
    case Errc::kIo:
    case Errc::kUnavailable:
    case Errc::kTimeout:
    case Errc::kInternal:
      return EIO;
  }
  return EIO;
}

Error Error::WithContext(std::string_view context) const& {
  Error copy = *this;
  return std::move(copy).WithContext(context);
}

Error Error::WithContext(std::string_view context) && {
  std::string message(context);
  message += ": ";
  message += message_;
  message_ = std::move(message);
  return std::move(*this);
}

}  // namespace cachefs
