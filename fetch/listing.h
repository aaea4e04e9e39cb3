#pragma once

// Parsing of object-store listings (S3 ListObjectsV2 and OSS ListObjectsV2 share the XML) and
// of the cachefs manifest used by plain HTTP origins, plus the directory completion both need.
// Pure functions: thread-safe, no I/O. Input is untrusted; everything is bounded and checked.

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "fetch/origin.h"

namespace cachefs::fetch {

// Name of the manifest object an HTTP origin reads beside the ciphertext.
inline constexpr std::string_view kManifestName = "cachefs-manifest.json";
// A manifest larger than this is refused (about a million entries).
inline constexpr size_t kMaxManifestSize = 256u << 20;

struct ListPage {
  std::vector<ObjectInfo> objects;  // keys as the store returns them (prefix included)
  bool truncated = false;
  std::string next_continuation_token;
};

// Parses one ListBucketResult page. Fails with kCorrupt on malformed XML.
Result<ListPage> ParseListObjectsV2(std::string_view xml);

// Reads "<Code>" and "<Message>" of an S3/OSS error body, for error messages: "Code: Message".
std::string ParseErrorBody(std::string_view xml);

// Turns a flat listing (keys relative to the origin root) into a tree: "dir/" markers become
// kDirectory entries without the slash, every parent directory implied by a key is added as a
// kDirectory once, duplicates and the root itself are dropped, and keys with empty, "." or
// ".." components are refused (kCorrupt): they would escape or confuse the namespace.
Result<std::vector<ObjectInfo>> CompleteTree(std::vector<ObjectInfo> objects);

// The manifest: {"format": "cachefs-manifest", "version": 1, "objects": [{"key": "...",
// "type": "file"|"dir"|"symlink", "size": N, "etag": "...", "mtime": N, "target": "..."}]}.
Result<std::vector<ObjectInfo>> ParseManifest(std::string_view json);
std::string SerializeManifest(const std::vector<ObjectInfo>& objects);

// The nginx-style ETag ("<mtime hex>-<size hex>", quotes included) that nginx sends for a file
// with this mtime and size; BuildManifest uses it for local trees that nginx will serve.
std::string NginxEtag(int64_t mtime_sec, uint64_t size);

}  // namespace cachefs::fetch
