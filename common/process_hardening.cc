#include "common/process_hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/secret_bytes.h"

extern char** environ;

namespace cachefs {

void HardenProcess() {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    CACHEFS_LOG(kWarn, "common") << "prctl(PR_SET_DUMPABLE) failed: " << std::strerror(errno);
  }
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  InitSecureHeap();
}

void ScrubEnvironmentVariable(const char* name) {
  size_t name_len = std::strlen(name);
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, name, name_len) == 0 && (*entry)[name_len] == '=') {
      // The string may belong to the initial stack block; overwrite the value in place.
      char* value = *entry + name_len + 1;
      std::memset(value, 0, std::strlen(value));
    }
  }
  unsetenv(name);
}

}  // namespace cachefs
