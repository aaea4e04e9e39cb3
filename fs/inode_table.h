#pragma once

// The whole plaintext namespace, built once at mount and immutable afterwards: lookup, getattr
// and readdir never touch the origin. Inode numbers are dense indices (root = 1), so a lookup
// by number is an array access.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "fetch/origin.h"

namespace cachefs::fs {

using InodeNumber = uint64_t;
constexpr InodeNumber kRootInode = 1;

enum class NodeType { kFile, kDirectory, kSymlink };

struct DirEntry {
  std::string name;  // plaintext name
  InodeNumber ino;
};

struct Inode {
  InodeNumber ino = 0;
  InodeNumber parent = 0;
  NodeType type = NodeType::kFile;
  std::string path;       // plaintext path relative to the root, for logs ("" for the root)
  uint64_t size = 0;      // plaintext size (files), target length (symlinks)
  uint32_t mode = 0;      // permission bits
  int64_t mtime_sec = 0;  // seconds since the epoch
  uint32_t nlink = 1;
  bool damaged = false;  // listing (directory) or readlink (symlink) gives EIO
  std::string symlink_target;
  std::vector<DirEntry> children;  // directories: sorted by name
  fetch::ObjectInfo object;        // files: the ciphertext object, version pinned
};

class InodeTable {
 public:
  // Takes the inodes in number order: inodes[0] is inode 1, the root.
  explicit InodeTable(std::vector<Inode> inodes);

  // nullptr when `ino` is not an inode of this table.
  const Inode* Find(InodeNumber ino) const;
  // The child called `name` of directory `parent`; nullptr when there is none.
  const Inode* Lookup(InodeNumber parent, std::string_view name) const;

  size_t size() const { return inodes_.size(); }
  const std::vector<Inode>& inodes() const { return inodes_; }

  struct Counts {
    uint64_t files = 0;
    uint64_t directories = 0;
    uint64_t symlinks = 0;
    uint64_t plaintext_bytes = 0;
  };
  const Counts& counts() const { return counts_; }

 private:
  std::vector<Inode> inodes_;
  Counts counts_;
};

}  // namespace cachefs::fs
