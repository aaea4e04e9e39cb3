#pragma once

// One event per line on stderr (text or JSON), or to syslog once the daemon has detached.
//
//   CACHEFS_LOG(kWarn, "fs").Kv("file", path).Kv("block", 7) << "authentication failed";
//
// Thread-safe: each line is emitted with a single write. Never log secrets or plaintext:
// SecretBytes deliberately has no stream operator, so it cannot be streamed here by accident.

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

namespace cachefs {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kText, kJson };
enum class LogSink { kStderr, kSyslog };

struct LogOptions {
  LogLevel min_level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
  LogSink sink = LogSink::kStderr;
};

void ConfigureLogging(const LogOptions& options);
LogOptions CurrentLogOptions();
bool LogEnabled(LogLevel level);

// Parses "debug", "info", "warn" or "error"; false on anything else.
bool ParseLogLevel(std::string_view text, LogLevel* level);

// Escapes a string for use inside a JSON string literal.
std::string JsonEscape(std::string_view text);

class LogLine {
 public:
  LogLine(LogLevel level, std::string_view component);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& Kv(std::string_view key, std::string_view value);
  LogLine& Kv(std::string_view key, const char* value) { return Kv(key, std::string_view(value)); }
  LogLine& Kv(std::string_view key, const std::string& value) {
    return Kv(key, std::string_view(value));
  }
  LogLine& Kv(std::string_view key, int64_t value);
  LogLine& Kv(std::string_view key, uint64_t value);
  LogLine& Kv(std::string_view key, int value) { return Kv(key, static_cast<int64_t>(value)); }
  LogLine& Kv(std::string_view key, unsigned value) {
    return Kv(key, static_cast<uint64_t>(value));
  }
  LogLine& Kv(std::string_view key, double value);

  template <typename T>
  LogLine& operator<<(const T& value) {
    if (enabled_) {
      message_ << value;
    }
    return *this;
  }

 private:
  void AddField(std::string_view key, std::string_view rendered, bool quote);

  bool enabled_;
  LogLevel level_;
  std::string component_;
  std::ostringstream message_;
  std::string fields_;  // pre-rendered " key=value" (text) or ,"key":value (JSON)
};

}  // namespace cachefs

#define CACHEFS_LOG(level, component) ::cachefs::LogLine(::cachefs::LogLevel::level, component)
