#include "common/log.h"

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace cachefs {
namespace {

std::mutex g_options_mutex;
LogOptions g_options;
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

int SyslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return LOG_DEBUG;
    case LogLevel::kInfo:
      return LOG_INFO;
    case LogLevel::kWarn:
      return LOG_WARNING;
    case LogLevel::kError:
      return LOG_ERR;
  }
  return LOG_INFO;
}

std::string Timestamp() {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &utc);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buffer, static_cast<int>(millis));
  return out;
}

// Text values are quoted only when they need it, as logfmt does.
bool NeedsQuoting(std::string_view value) {
  if (value.empty()) {
    return true;
  }
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

}  // namespace

void ConfigureLogging(const LogOptions& options) {
  std::lock_guard lock(g_options_mutex);
  if (options.sink == LogSink::kSyslog && g_options.sink != LogSink::kSyslog) {
    openlog("cachefs", LOG_PID, LOG_DAEMON);
  }
  g_options = options;
  g_min_level.store(static_cast<int>(options.min_level));
}

LogOptions CurrentLogOptions() {
  std::lock_guard lock(g_options_mutex);
  return g_options;
}

bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_min_level.load(); }

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "debug") {
    *level = LogLevel::kDebug;
  } else if (text == "info") {
    *level = LogLevel::kInfo;
  } else if (text == "warn" || text == "warning") {
    *level = LogLevel::kWarn;
  } else if (text == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

LogLine::LogLine(LogLevel level, std::string_view component)
    : enabled_(LogEnabled(level)), level_(level), component_(component) {}

void LogLine::AddField(std::string_view key, std::string_view rendered, bool quote) {
  if (!enabled_) {
    return;
  }
  bool json = CurrentLogOptions().format == LogFormat::kJson;
  if (json) {
    fields_ += ",\"";
    fields_ += JsonEscape(key);
    fields_ += "\":";
    if (quote) {
      fields_ += '"';
      fields_ += JsonEscape(rendered);
      fields_ += '"';
    } else {
      fields_ += rendered;
    }
  } else {
    fields_ += ' ';
    fields_ += key;
    fields_ += '=';
    if (quote && NeedsQuoting(rendered)) {
      fields_ += '"';
      fields_ += JsonEscape(rendered);
      fields_ += '"';
    } else {
      fields_ += rendered;
    }
  }
}

LogLine& LogLine::Kv(std::string_view key, std::string_view value) {
  AddField(key, value, true);
  return *this;
}

LogLine& LogLine::Kv(std::string_view key, int64_t value) {
  AddField(key, std::to_string(value), false);
  return *this;
}

LogLine& LogLine::Kv(std::string_view key, uint64_t value) {
  AddField(key, std::to_string(value), false);
  return *this;
}

LogLine& LogLine::Kv(std::string_view key, double value) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", value);
  AddField(key, buf, false);
  return *this;
}

LogLine::~LogLine() {
  if (!enabled_) {
    return;
  }
  LogOptions options = CurrentLogOptions();
  std::string message = message_.str();
  std::string line;
  if (options.format == LogFormat::kJson) {
    line = "{\"ts\":\"" + Timestamp() + "\",\"level\":\"" + LevelName(level_) +
           "\",\"component\":\"" + JsonEscape(component_) + "\",\"msg\":\"" + JsonEscape(message) +
           "\"" + fields_ + "}\n";
  } else {
    line =
        Timestamp() + " " + LevelName(level_) + " " + component_ + ": " + message + fields_ + "\n";
  }
  if (options.sink == LogSink::kSyslog) {
    line.pop_back();
    syslog(SyslogPriority(level_), "%s", line.c_str());
    return;
  }
  // One write per line keeps lines from different threads whole.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace cachefs
