#pragma once

// How much memory this process may fill: the machine's RAM, or less when the process runs in
// a cgroup (v2) with memory.max set, as in a Kubernetes pod with a memory limit. Page cache
// that the process fills counts against its cgroup, so a limit there is the real ceiling.

#include <cstdint>
#include <optional>
#include <string_view>

namespace cachefs {

// The smaller of MemTotal and every memory.max from this process's cgroup up to the root;
// MemTotal alone where cgroup v2 is absent. 0 when not even /proc/meminfo can be read.
uint64_t MemoryLimitBytes();

// MemAvailable from /proc/meminfo: what can be allocated without swapping, page cache that
// can be dropped included. nullopt when unknown.
std::optional<uint64_t> AvailableMemoryBytes();

// Parsers, exposed for tests.
// The value of `key` ("MemTotal") in /proc/meminfo text, in bytes.
std::optional<uint64_t> ParseMeminfoBytes(std::string_view meminfo, std::string_view key);
// A cgroup v2 memory.max value: a byte count, or nullopt for "max" (no limit) or garbage.
std::optional<uint64_t> ParseCgroupMemoryMax(std::string_view text);
// The cgroup v2 path ("/kubepods/pod1/ctr") from /proc/self/cgroup text; nullopt without a
// "0::" line (cgroup v1 only).
std::optional<std::string_view> ParseCgroupV2Path(std::string_view proc_self_cgroup);

}  // namespace cachefs
