#pragma once

// --extpass: the password is the first line a command prints (as gocryptfs -extpass).

#include <chrono>
#include <string>

#include "common/error.h"
#include "common/secret_bytes.h"

namespace cachefs::keyagent {

// Runs `command`, split on spaces like gocryptfs's single -extpass (no shell), with a clean
// environment (PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, LANG=C.UTF-8;
// nothing of ours is inherited), stdin from /dev/null, stderr passed through and no other open
// descriptors. The password is stdout's first line; at most 2048 bytes are accepted. Fails when
// the command cannot start, exits non-zero, is killed, prints nothing, prints more than the
// limit on its first line, or runs longer than `timeout` (then it is killed).
Result<SecretBytes> RunExtpass(const std::string& command,
                               std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The first line of `data` (gocryptfs -passfile rules): `what` names the source in errors.
// Fails with kInvalidArgument when the line is empty or longer than 2048 bytes.
Result<SecretBytes> FirstLine(SecretBytes data, const std::string& what);

}  // namespace cachefs::keyagent
