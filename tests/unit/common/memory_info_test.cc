#include "common/memory_info.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

namespace cachefs {
namespace {

constexpr std::string_view kMeminfo =
    "MemTotal:       24683856 kB\n"
    "MemFree:        19714772 kB\n"
    "MemAvailable:   24194944 kB\n"
    "HugePages_Total:       0\n";

TEST(MemoryInfoTest, ReadsMeminfoFieldsInBytes) {
  EXPECT_EQ(ParseMeminfoBytes(kMeminfo, "MemTotal"), 24683856ull * 1024);
  EXPECT_EQ(ParseMeminfoBytes(kMeminfo, "MemAvailable"), 24194944ull * 1024);
  EXPECT_EQ(ParseMeminfoBytes(kMeminfo, "HugePages_Total"), 0u);  // a count, no unit
  EXPECT_EQ(ParseMeminfoBytes(kMeminfo, "Mem"), std::nullopt);    // prefixes do not match
  EXPECT_EQ(ParseMeminfoBytes(kMeminfo, "SwapTotal"), std::nullopt);
  EXPECT_EQ(ParseMeminfoBytes("MemTotal: lots kB\n", "MemTotal"), std::nullopt);
}

TEST(MemoryInfoTest, ReadsCgroupLimits) {
  EXPECT_EQ(ParseCgroupMemoryMax("8589934592\n"), 8589934592u);
  EXPECT_EQ(ParseCgroupMemoryMax("max\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupMemoryMax(""), std::nullopt);
  EXPECT_EQ(ParseCgroupV2Path("0::/kubepods/burstable/pod1/ctr\n"), "/kubepods/burstable/pod1/ctr");
  // A hybrid hierarchy lists v1 controllers first.
  EXPECT_EQ(ParseCgroupV2Path("12:memory:/user.slice\n0::/user.slice/session-1.scope\n"),
            "/user.slice/session-1.scope");
  EXPECT_EQ(ParseCgroupV2Path("12:memory:/user.slice\n"), std::nullopt);
}

TEST(MemoryInfoTest, TheLimitOfThisMachineIsPositiveAndAtMostItsRam) {
  std::ifstream in("/proc/meminfo");
  std::string meminfo{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  auto ram = ParseMeminfoBytes(meminfo, "MemTotal");
  ASSERT_TRUE(ram.has_value());
  uint64_t limit = MemoryLimitBytes();
  EXPECT_GT(limit, 0u);
  EXPECT_LE(limit, *ram);
  auto available = AvailableMemoryBytes();
  ASSERT_TRUE(available.has_value());
  EXPECT_GT(*available, 0u);
}

}  // namespace
}  // namespace cachefs
