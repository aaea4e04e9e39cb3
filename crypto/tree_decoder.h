#pragma once

// Turns a listing of a gocryptfs cipher directory into the plaintext tree: reads each
// directory's gocryptfs.diriv and each long-name companion, decrypts every name and symlink
// target, and drops what gocryptfs never shows (gocryptfs.conf in the root, gocryptfs.diriv,
// *.name companions, entries that fail to decrypt). Spec: gocryptfs-format.md §6, §7.1.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "crypto/volume.h"

namespace cachefs::crypto {

enum class EntryType { kFile, kDirectory, kSymlink, kOther };

// One entry of the cipher tree. `key` is relative to the cipher root, '/'-separated.
struct CipherEntry {
  std::string key;
  EntryType type = EntryType::kFile;
  uint64_t size = 0;        // ciphertext size (files)
  std::string link_target;  // stored target (symlinks)
};

struct PlainEntry {
  std::string path;  // plaintext, relative to the root, '/'-separated; "" is the root
  EntryType type = EntryType::kFile;
  size_t cipher_index = 0;  // index into the CipherEntry list (the root: SIZE_MAX)
  uint64_t plain_size = 0;  // files: plaintext size; symlinks: target length
  std::string symlink_target;
  // Set when the entry is visible but unusable: a symlink whose target does not decrypt
  // (readlink gives EIO, size 0), or a directory without a valid diriv (listing gives EIO).
  bool damaged = false;
};

struct DecodeStats {
  uint64_t rejected_names = 0;  // entries skipped because their names did not decrypt
  uint64_t damaged_entries = 0;
};

// Reads a whole small object of the cipher tree (a diriv, a .name companion), refusing more
// than `max_size` bytes.
using SmallObjectReader =
    std::function<Result<std::vector<uint8_t>>(const std::string& key, size_t max_size)>;

// Every directory of the input appears before its children in the output, the root first;
// the children of one directory are sorted by plaintext name. Fails only when the tree as a
// whole is unusable (e.g. the root diriv is missing or invalid); a bad entry is logged (one
// warning line with the cipher directory and the cipher name, never a plaintext name), counted
// in `stats` and skipped.
//
// Input: every directory must be listed as a kDirectory entry; entries below a directory that
// is missing from the listing are skipped and counted as rejected. `read_small` is called from
// the calling thread, once per directory (its gocryptfs.diriv) and once per long name (its
// .name companion), never for an object absent from `entries`.
//
// Rules beyond gocryptfs 2.3 (stricter, documented in gocryptfs-format.md as allowed):
//  * names decode with strict base64 (gocryptfs 2.5), so of two spellings of one name only the
//    canonical one is shown (fixture _extra/fsck/malleable_base64);
//  * a .name companion must hash to its gocryptfs.longname.<hash> object; otherwise the entry
//    is skipped (gocryptfs would list it, but its plaintext name could never be looked up, and
//    a copied companion would show one name twice);
//  * a second entry with the same plaintext name in one directory is skipped.
// Thread-safety: reentrant; `volume` is only read. `stats` may be nullptr.
Result<std::vector<PlainEntry>> DecodeTree(const Volume& volume,
                                           const std::vector<CipherEntry>& entries,
                                           const SmallObjectReader& read_small, DecodeStats* stats);

}  // namespace cachefs::crypto
