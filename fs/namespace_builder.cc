#include "fs/namespace_builder.h"

#include <sys/stat.h>

#include <unordered_map>

#include "common/log.h"

namespace cachefs::fs {
namespace {

crypto::EntryType ToEntryType(fetch::ObjectType type) {
  switch (type) {
    case fetch::ObjectType::kFile:
      return crypto::EntryType::kFile;
    case fetch::ObjectType::kDirectory:
      return crypto::EntryType::kDirectory;
    case fetch::ObjectType::kSymlink:
      return crypto::EntryType::kSymlink;
    case fetch::ObjectType::kOther:
      return crypto::EntryType::kOther;
  }
  return crypto::EntryType::kOther;
}

uint32_t DefaultMode(NodeType type) {
  switch (type) {
    case NodeType::kFile:
      return 0444;
    case NodeType::kDirectory:
      return 0555;
    case NodeType::kSymlink:
      return 0777;
  }
  return 0444;
}

std::string_view ParentPath(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

const fetch::ObjectInfo* OriginListing::Find(std::string_view key) const {
  for (const auto& object : objects) {
    if (object.key == key) {
      return &object;
    }
  }
  return nullptr;
}

Result<OriginListing> ListOrigin(fetch::Origin& origin) {
  CACHEFS_ASSIGN_OR_RETURN(auto objects, origin.List());
  return OriginListing{std::move(objects)};
}

Result<std::unique_ptr<InodeTable>> BuildNamespace(fetch::Origin& origin,
                                                   const OriginListing& listing,
                                                   const crypto::Volume& volume,
                                                   NamespaceStats* stats) {
  const auto& objects = listing.objects;
  std::vector<crypto::CipherEntry> entries;
  entries.reserve(objects.size());
  std::unordered_map<std::string_view, size_t> by_key;
  by_key.reserve(objects.size());
  for (size_t i = 0; i < objects.size(); ++i) {
    entries.push_back(
        {objects[i].key, ToEntryType(objects[i].type), objects[i].size, objects[i].link_target});
    by_key.emplace(objects[i].key, i);
  }
  stats->cipher_objects = objects.size();

  auto read_small = [&](const std::string& key, size_t max_size) -> Result<std::vector<uint8_t>> {
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      return Error(Errc::kNotFound, key + ": not in the origin listing");
    }
    return fetch::ReadWholeObject(origin, objects[it->second], max_size);
  };
  CACHEFS_ASSIGN_OR_RETURN(auto plain,
                           crypto::DecodeTree(volume, entries, read_small, &stats->decode));

  std::vector<Inode> inodes;
  inodes.reserve(plain.size());
  std::unordered_map<std::string, InodeNumber> ino_by_path;
  ino_by_path.reserve(plain.size());
  for (const crypto::PlainEntry& entry : plain) {
    Inode inode;
    inode.ino = inodes.size() + 1;
    inode.path = entry.path;
    inode.damaged = entry.damaged;
    bool is_root = entry.path.empty();
    const fetch::ObjectInfo* object = is_root ? nullptr : &objects[entry.cipher_index];
    switch (entry.type) {
      case crypto::EntryType::kFile:
        inode.type = NodeType::kFile;
        inode.size = entry.plain_size;
        inode.object = *object;
        break;
      case crypto::EntryType::kDirectory:
        inode.type = NodeType::kDirectory;
        inode.nlink = 2;
        break;
      case crypto::EntryType::kSymlink:
        inode.type = NodeType::kSymlink;
        inode.symlink_target = entry.symlink_target;
        inode.size = entry.damaged ? 0 : entry.symlink_target.size();
        break;
      case crypto::EntryType::kOther:
        continue;  // FIFOs, sockets and devices have no place in a model directory
    }
    if (object != nullptr) {
      inode.mode = object->mode & 07777;
      inode.mtime_sec = object->mtime_sec;
    } else if (const auto* conf = listing.Find("gocryptfs.conf")) {
      inode.mtime_sec = conf->mtime_sec;
    }
    if (inode.mode == 0) {
      inode.mode = DefaultMode(inode.type);
    }

    if (is_root) {
      if (!inodes.empty()) {
        return Error(Errc::kInternal, "decoded tree has a second root");
      }
      ino_by_path.emplace("", inode.ino);
      inodes.push_back(std::move(inode));
      continue;
    }
    auto parent_it = ino_by_path.find(std::string(ParentPath(entry.path)));
    if (parent_it == ino_by_path.end()) {
      return Error(Errc::kInternal, "decoded entry before its parent: " + entry.path);
    }
    Inode& parent = inodes[parent_it->second - 1];
    auto [path_it, inserted] = ino_by_path.emplace(entry.path, inode.ino);
    if (!inserted) {
      ++stats->duplicate_names;
      CACHEFS_LOG(kWarn, "fs").Kv("path", entry.path).Kv("cipher", objects[entry.cipher_index].key)
          << "two cipher entries decrypt to the same name; serving the first";
      continue;
    }
    inode.parent = parent.ino;
    parent.children.push_back({std::string(BaseName(entry.path)), inode.ino});
    if (inode.type == NodeType::kDirectory) {
      ++parent.nlink;
    }
    inodes.push_back(std::move(inode));
  }
  if (inodes.empty()) {
    return Error(Errc::kInternal, "decoded tree has no root");
  }
  inodes[0].parent = kRootInode;
  return std::make_unique<InodeTable>(std::move(inodes));
}

}  // namespace cachefs::fs
