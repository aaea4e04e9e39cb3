#include "common/memory_info.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <string>

namespace cachefs {
namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\n");
  if (begin == std::string_view::npos) {
    return {};
  }
  return text.substr(begin, text.find_last_not_of(" \t\n") - begin + 1);
}

std::optional<uint64_t> ParseUnsigned(std::string_view text) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<uint64_t> ParseMeminfoBytes(std::string_view meminfo, std::string_view key) {
  size_t line_start = 0;
  while (line_start < meminfo.size()) {
    size_t line_end = meminfo.find('\n', line_start);
    std::string_view line =
        meminfo.substr(line_start, line_end == std::string_view::npos ? std::string_view::npos
                                                                      : line_end - line_start);
    // "MemTotal:       24683856 kB"
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      std::string_view value = Trim(line.substr(key.size() + 1));
      bool kilobytes = value.size() > 3 && value.substr(value.size() - 3) == " kB";
      if (kilobytes) {
        value = Trim(value.substr(0, value.size() - 3));
      }
      auto number = ParseUnsigned(value);
      if (!number) {
        return std::nullopt;
      }
      return kilobytes ? *number * 1024 : *number;
    }
    if (line_end == std::string_view::npos) {
      break;
    }
    line_start = line_end + 1;
  }
  return std::nullopt;
}

std::optional<uint64_t> ParseCgroupMemoryMax(std::string_view text) {
  return ParseUnsigned(Trim(text));  // "max" is not a number: no limit
}

std::optional<std::string_view> ParseCgroupV2Path(std::string_view proc_self_cgroup) {
  size_t at = 0;
  while (at < proc_self_cgroup.size()) {
    size_t end = proc_self_cgroup.find('\n', at);
    std::string_view line = proc_self_cgroup.substr(
        at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (line.substr(0, 3) == "0::") {
      return line.substr(3);
    }
    if (end == std::string_view::npos) {
      break;
    }
    at = end + 1;
  }
  return std::nullopt;
}

uint64_t MemoryLimitBytes() {
  uint64_t limit = ParseMeminfoBytes(ReadSmallFile("/proc/meminfo"), "MemTotal").value_or(0);
  std::string cgroups = ReadSmallFile("/proc/self/cgroup");
  auto path = ParseCgroupV2Path(cgroups);
  if (!path) {
    return limit;
  }
  // A parent's limit binds its children too: take the smallest on the way up.
  std::string dir(*path);
  while (true) {
    auto max = ParseCgroupMemoryMax(ReadSmallFile("/sys/fs/cgroup" + dir + "/memory.max"));
    if (max && (limit == 0 || *max < limit)) {
      limit = *max;
    }
    if (dir.empty() || dir == "/") {
      break;
    }
    dir.erase(dir.rfind('/'));
  }
  return limit;
}

std::optional<uint64_t> AvailableMemoryBytes() {
  return ParseMeminfoBytes(ReadSmallFile("/proc/meminfo"), "MemAvailable");
}

}  // namespace cachefs
