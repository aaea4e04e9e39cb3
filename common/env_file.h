#pragma once

// Reader for env-files such as the CAI `env/cai.env`: a strict, documented subset of the
// shell/systemd/docker syntaxes, because those tools disagree on quoting and expansion.
//
// Format, one entry per line:
//   KEY=VALUE            KEY matches [A-Za-z_][A-Za-z0-9_]*; nothing is trimmed inside VALUE
//                        except spaces and tabs around it
//   export KEY=VALUE     the `export ` prefix is accepted and dropped (files written for `.`)
//   KEY="VALUE" / 'VALUE'  one level of matching surrounding quotes is removed; nothing inside
//                        them is interpreted (no escapes)
//   # comment            a line whose first non-blank character is '#'; blank lines are ignored
// Not supported, on purpose: `$VAR` / `${VAR}` expansion (a `$` is kept literally), escapes,
// multi-line values, trailing comments after a value (a `#` inside a value is part of it).
// A duplicate key is an error naming both line numbers. Unknown keys are returned like any
// other: which keys mean something is the caller's business.
//
// Permissions: env-files carry credentials (MODEL_OSS_SECRET_ACCESS_KEY, session tokens), so
// every env-file is checked, whatever it holds, as s3fs does for its passwd file: it must be a
// regular file owned by the effective uid or by root, with no permission bits for others, no
// group write or execute bit, and group read only when the group is root (0600, 0400 or 0640
// root:root). Anything else is refused with a one-line error naming the file and its mode,
// unless `allow_insecure_permissions` (the CLI's `--insecure-permissions`) is set.
//
// Thread-safe (no shared state). The file's bytes are wiped from memory after parsing; the
// returned values are ordinary strings, so callers move secrets into their own storage.

#include <map>
#include <string>

#include "common/error.h"

namespace cachefs {

// Files larger than this are refused: an env-file is a handful of lines.
inline constexpr size_t kMaxEnvFileSize = 1 << 20;

// Errors: kNotFound (missing file), kPermissionDenied (mode or owner too open),
// kInvalidArgument ("PATH:LINE: ..." for a syntax error or a duplicate key), kIo.
Result<std::map<std::string, std::string>> ReadEnvFile(const std::string& path,
                                                       bool allow_insecure_permissions = false);

// Parses env-file text (the same rules, no permission check); `name` prefixes error messages.
Result<std::map<std::string, std::string>> ParseEnvFile(std::string_view text,
                                                        const std::string& name);

}  // namespace cachefs
