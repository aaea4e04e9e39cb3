#include "common/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace cachefs {
namespace {

// Captures what the logger writes to stderr during `fn`.
template <typename Fn>
std::string CaptureStderr(Fn fn) {
  std::fflush(stderr);
  char path[] = "/tmp/cachefs-log-XXXXXX";
  int fd = mkstemp(path);
  int saved = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  std::string out;
  char buf[4096];
  lseek(fd, 0, SEEK_SET);
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  unlink(path);
  return out;
}

TEST(LogTest, TextLineHasLevelComponentMessageAndFields) {
  ConfigureLogging({LogLevel::kInfo, LogFormat::kText, LogSink::kStderr});
  std::string out = CaptureStderr(
      [] { CACHEFS_LOG(kWarn, "fs").Kv("file", "a b.safetensors").Kv("block", 7) << "bad block"; });
  EXPECT_NE(out.find(" warn fs: bad block file=\"a b.safetensors\" block=7\n"), std::string::npos)
      << out;
}

TEST(LogTest, JsonLineIsEscaped) {
  ConfigureLogging({LogLevel::kInfo, LogFormat::kJson, LogSink::kStderr});
  std::string out = CaptureStderr(
      [] { CACHEFS_LOG(kError, "fetch").Kv("status", 503) << "quote \" and\nnewline"; });
  ConfigureLogging({});
  EXPECT_NE(out.find("\"level\":\"error\",\"component\":\"fetch\","
                     "\"msg\":\"quote \\\" and\\nnewline\",\"status\":503}"),
            std::string::npos)
      << out;
}

TEST(LogTest, LevelsBelowTheMinimumAreDropped) {
  ConfigureLogging({LogLevel::kWarn, LogFormat::kText, LogSink::kStderr});
  std::string out = CaptureStderr([] { CACHEFS_LOG(kInfo, "fs") << "hidden"; });
  ConfigureLogging({});
  EXPECT_EQ(out, "");
}

TEST(LogTest, ParseLogLevel) {
  LogLevel level;
  EXPECT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_FALSE(ParseLogLevel("loud", &level));
}

}  // namespace
}  // namespace cachefs
