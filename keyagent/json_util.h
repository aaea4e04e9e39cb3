#pragma once

// nlohmann::json without exceptions: the KBS replies are untrusted input, and the data path never
// throws (style.md §6). Every accessor here checks the type before reading.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/error.h"

namespace cachefs::keyagent {

using Json = nlohmann::json;

// Parses `text`; on malformed JSON fails with kCorrupt naming `what` ("Trustee /auth reply").
Result<Json> ParseJson(std::string_view text, std::string_view what);

// The member `key` of object `obj` if it exists and is a string, else nullptr.
const std::string* FindString(const Json& obj, std::string_view key);
// The member `key` of object `obj` if it exists (any type), else nullptr.
const Json* FindMember(const Json& obj, std::string_view key);

// Compact serialisation; never throws (invalid UTF-8, impossible from parsed input, is replaced).
std::string DumpJson(const Json& value);

// RFC 8785 (JCS) canonical form for JSON whose leaves are strings, objects, arrays, booleans or
// null, which is all the KBS runtime data contains: compact, object members sorted by key, minimal
// escaping. nlohmann's object type is a std::map, so members are already sorted by byte order,
// which equals JCS's UTF-16 order for the ASCII keys the protocol uses. Numbers are not
// canonicalised (JCS's ES6 number form) and must not occur.
std::string CanonicalJson(const Json& value);

// `text` on one line and at most `max` bytes, for quoting a server's error detail in a message.
std::string OneLine(std::string_view text, size_t max = 300);

}  // namespace cachefs::keyagent
