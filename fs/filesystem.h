#pragma once

// The read-only filesystem behind the FUSE adapter: attribute, lookup, listing and read logic
// over the immutable inode table. Methods return an errno (0 on success) so that they can be
// tested without a kernel; fuse_adapter.cc only translates to and from libfuse.

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

#include "common/task_pool.h"
#include "crypto/volume.h"
#include "fetch/origin.h"
#include "fs/file_reader.h"
#include "fs/inode_table.h"

namespace cachefs::fs {

struct FilesystemStats {
  std::atomic<uint64_t> lookups{0};
  std::atomic<uint64_t> negative_lookups{0};
  std::atomic<uint64_t> opens{0};
  std::atomic<uint64_t> write_attempts{0};  // answered EROFS
};

class Filesystem {
 public:
  Filesystem(std::unique_ptr<InodeTable> table, fetch::Origin& origin, const crypto::Volume& volume,
             TaskPool& pool);

  const InodeTable& table() const { return *table_; }
  FileReader& reader() { return reader_; }
  const FilesystemStats& stats() const { return stats_; }

  // Fills `st` for `inode`. Owner is the daemon's uid/gid (the origin's owners mean nothing
  // here); permission bits are the origin's.
  void Stat(const Inode& inode, struct stat* st) const;

  // 0 and the child, ENOENT, or ENOTDIR.
  int Lookup(InodeNumber parent, std::string_view name, const Inode** child);
  int GetAttr(InodeNumber ino, struct stat* st) const;
  int ReadLink(InodeNumber ino, std::string_view* target) const;
  // Checks an open of `ino` with `flags`: EROFS for any write access, EISDIR, ENOENT.
  int Open(InodeNumber ino, int flags, const Inode** inode);
  // Checks an opendir: ENOTDIR, ENOENT, EIO for a directory whose diriv was bad.
  int OpenDir(InodeNumber ino, const Inode** inode) const;
  // access(2): EROFS for W_OK, else 0 (the kernel checks modes with default_permissions).
  int Access(InodeNumber ino, int mask) const;
  // Counts a refused modification and returns EROFS.
  int RefuseWrite();

 private:
  std::unique_ptr<InodeTable> table_;
  FileReader reader_;
  FilesystemStats stats_;
  uid_t uid_;
  gid_t gid_;
};

}  // namespace cachefs::fs
