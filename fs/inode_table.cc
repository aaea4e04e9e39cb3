#include "fs/inode_table.h"

#include <algorithm>

namespace cachefs::fs {

InodeTable::InodeTable(std::vector<Inode> inodes) : inodes_(std::move(inodes)) {
  for (Inode& inode : inodes_) {
    switch (inode.type) {
      case NodeType::kFile:
        ++counts_.files;
        counts_.plaintext_bytes += inode.size;
        break;
      case NodeType::kDirectory:
        ++counts_.directories;
        std::sort(inode.children.begin(), inode.children.end(),
                  [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
        break;
      case NodeType::kSymlink:
        ++counts_.symlinks;
        break;
    }
  }
}

const Inode* InodeTable::Find(InodeNumber ino) const {
  if (ino < kRootInode || ino > inodes_.size()) {
    return nullptr;
  }
  return &inodes_[ino - 1];
}

const Inode* InodeTable::Lookup(InodeNumber parent, std::string_view name) const {
  const Inode* dir = Find(parent);
  if (dir == nullptr || dir->type != NodeType::kDirectory) {
    return nullptr;
  }
  auto it = std::lower_bound(
      dir->children.begin(), dir->children.end(), name,
      [](const DirEntry& entry, std::string_view key) { return entry.name < key; });
  if (it == dir->children.end() || it->name != name) {
    return nullptr;
  }
  return Find(it->ino);
}

}  // namespace cachefs::fs
