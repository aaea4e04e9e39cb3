#pragma once

// Process-wide protections for a daemon that holds keys and plaintext.

namespace cachefs {

// Makes the process non-dumpable (no core dumps, no same-uid ptrace, /proc/<pid>/mem and
// /environ owned by root), sets RLIMIT_CORE to 0 and initialises the secure heap. Call first
// thing in main().
void HardenProcess();

// Removes `name` from the environment and overwrites the original string in the initial
// environment block, which /proc/<pid>/environ keeps showing after unsetenv().
void ScrubEnvironmentVariable(const char* name);

}  // namespace cachefs
