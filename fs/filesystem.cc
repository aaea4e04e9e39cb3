#include "fs/filesystem.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace cachefs::fs {

Filesystem::Filesystem(std::unique_ptr<InodeTable> table, fetch::Origin& origin,
                       const crypto::Volume& volume, TaskPool& pool)
    : table_(std::move(table)),
      reader_(*table_, origin, volume.content(), pool),
      uid_(getuid()),
      gid_(getgid()) {}

void Filesystem::Stat(const Inode& inode, struct stat* st) const {
  *st = {};
  st->st_ino = inode.ino;
  st->st_nlink = inode.nlink;
  st->st_uid = uid_;
  st->st_gid = gid_;
  st->st_size = static_cast<off_t>(inode.size);
  st->st_blksize = 1 << 20;  // tells readers (cp, Python) to use large requests
  st->st_blocks = static_cast<blkcnt_t>((inode.size + 511) / 512);
  st->st_mtim.tv_sec = inode.mtime_sec;
  st->st_ctim.tv_sec = inode.mtime_sec;
  st->st_atim.tv_sec = inode.mtime_sec;
  switch (inode.type) {
    case NodeType::kFile:
      st->st_mode = S_IFREG | inode.mode;
      break;
    case NodeType::kDirectory:
      st->st_mode = S_IFDIR | inode.mode;
      break;
    case NodeType::kSymlink:
      st->st_mode = S_IFLNK | inode.mode;
      break;
  }
}

int Filesystem::Lookup(InodeNumber parent, std::string_view name, const Inode** child) {
  stats_.lookups.fetch_add(1, std::memory_order_relaxed);
  const Inode* dir = table_->Find(parent);
  if (dir == nullptr) {
    return ENOENT;
  }
  if (dir->type != NodeType::kDirectory) {
    return ENOTDIR;
  }
  *child = table_->Lookup(parent, name);
  if (*child == nullptr) {
    stats_.negative_lookups.fetch_add(1, std::memory_order_relaxed);
    return ENOENT;
  }
  return 0;
}

int Filesystem::GetAttr(InodeNumber ino, struct stat* st) const {
  const Inode* inode = table_->Find(ino);
  if (inode == nullptr) {
    return ENOENT;
  }
  Stat(*inode, st);
  return 0;
}

int Filesystem::ReadLink(InodeNumber ino, std::string_view* target) const {
  const Inode* inode = table_->Find(ino);
  if (inode == nullptr) {
    return ENOENT;
  }
  if (inode->type != NodeType::kSymlink) {
    return EINVAL;
  }
  if (inode->damaged) {
    return EIO;
  }
  *target = inode->symlink_target;
  return 0;
}

int Filesystem::Open(InodeNumber ino, int flags, const Inode** inode) {
  *inode = table_->Find(ino);
  if (*inode == nullptr) {
    return ENOENT;
  }
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND | O_CREAT)) != 0) {
    return RefuseWrite();
  }
  if ((*inode)->type == NodeType::kDirectory) {
    return EISDIR;
  }
  stats_.opens.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

int Filesystem::OpenDir(InodeNumber ino, const Inode** inode) const {
  *inode = table_->Find(ino);
  if (*inode == nullptr) {
    return ENOENT;
  }
  if ((*inode)->type != NodeType::kDirectory) {
    return ENOTDIR;
  }
  if ((*inode)->damaged) {
    return EIO;
  }
  return 0;
}

int Filesystem::Access(InodeNumber ino, int mask) const {
  if (table_->Find(ino) == nullptr) {
    return ENOENT;
  }
  return (mask & W_OK) != 0 ? EROFS : 0;
}

int Filesystem::RefuseWrite() {
  stats_.write_attempts.fetch_add(1, std::memory_order_relaxed);
  return EROFS;
}

}  // namespace cachefs::fs
