#pragma once

// Error values for the data path. Functions that can fail return Result<T> (or Status), never
// throw; the control plane (CLI parsing, start-up) may use exceptions and converts at main().

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace cachefs {

// What went wrong, independent of where. fs/ maps each kind to one errno (ToErrno); the CLI maps
// start-up failures to exit codes.
enum class Errc {
  kInvalidArgument,   // malformed input from a user or a config file
  kNotFound,          // object, file, key or resource does not exist
  kPermissionDenied,  // credentials refused, wrong password, policy denied
  kUnsupported,       // a feature or format version we do not implement
  kCorrupt,           // data failed authentication or a structural check
  kChanged,           // the origin object changed since it was pinned at mount
  kIo,                // local or remote I/O failure
  kUnavailable,       // a service is unreachable or overloaded (retryable)
  kTimeout,           // a deadline passed
  kCancelled,         // the operation was stopped (shutdown)
  kInternal,          // a bug: an invariant did not hold
};

const char* ErrcName(Errc code);

class Error {
 public:
  Error(Errc code, std::string message, int sys_errno = 0)
      : code_(code), sys_errno_(sys_errno), message_(std::move(message)) {}

  // An error from a failed system call: the message gets strerror(sys_errno) appended.
  static Error FromErrno(int sys_errno, std::string_view what);

  Errc code() const { return code_; }
  // The errno of the failed system call, 0 when the error did not come from one.
  int sys_errno() const { return sys_errno_; }
  const std::string& message() const { return message_; }

  // The errno a FUSE reply should carry for this error.
  int ToErrno() const;

  // Returns the same error with "context: " prepended to its message.
  Error WithContext(std::string_view context) const&;
  Error WithContext(std::string_view context) &&;

 private:
  Errc code_;
  int sys_errno_;
  std::string message_;
};

// A value or an Error; an expected-like type because GCC 12 has no std::expected in C++20.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(state_));
  }
  const Error& error() const {
    assert(!has_value());
    return std::get<1>(state_);
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> state_;
};

// Success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit

  static Status Ok() { return {}; }
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_{Errc::kInternal, ""};
  bool ok_ = true;
};

}  // namespace cachefs

// Propagates an error from an expression yielding Status or Result<T>.
#define CACHEFS_RETURN_IF_ERROR(expr) \
  do {                                \
    auto cachefs_status_ = (expr);    \
    if (!cachefs_status_) {           \
      return cachefs_status_.error(); \
    }                                 \
  } while (0)

#define CACHEFS_CONCAT_INNER_(a, b) a##b
#define CACHEFS_CONCAT_(a, b) CACHEFS_CONCAT_INNER_(a, b)

// Declares `lhs` from a Result<T>, or returns its error.
#define CACHEFS_ASSIGN_OR_RETURN(lhs, expr) \
  CACHEFS_ASSIGN_OR_RETURN_IMPL_(CACHEFS_CONCAT_(cachefs_result_, __LINE__), lhs, expr)
#define CACHEFS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp) {                                          \
    return tmp.error();                                \
  }                                                    \
  lhs = std::move(tmp).value()
