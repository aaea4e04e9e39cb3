#include "fetch/file_origin.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace cachefs::fetch {
namespace {

// MADV_POPULATE_READ (Linux 5.14) is missing from Debian 12's glibc headers; older kernels
// answer EINVAL and the pages fault in on access instead.
constexpr int kMadvPopulateRead = 22;

// The local stand-in for an ETag: a file replaced or rewritten in place changes one of these.
std::string LocalEtag(const struct stat& st) {
  return std::to_string(st.st_ino) + "-" + std::to_string(st.st_size) + "-" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

ObjectType TypeOf(mode_t mode) {
  if (S_ISREG(mode)) {
    return ObjectType::kFile;
  }
  if (S_ISDIR(mode)) {
    return ObjectType::kDirectory;
  }
  if (S_ISLNK(mode)) {
    return ObjectType::kSymlink;
  }
  return ObjectType::kOther;
}

// Appends every entry below directory `dir_fd` (whose key is `prefix`) to `out`, depth first.
Status Walk(int dir_fd, const std::string& prefix, std::vector<ObjectInfo>& out) {
  DIR* dir = fdopendir(dir_fd);
  if (dir == nullptr) {
    int saved = errno;
    close(dir_fd);
    return Error::FromErrno(saved, "opendir " + (prefix.empty() ? "." : prefix));
  }
  Status status;
  while (status.ok()) {
    errno = 0;
    struct dirent* entry = readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) {
        status = Error::FromErrno(errno, "readdir " + prefix);
      }
      break;
    }
    std::string name = entry->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    struct stat st;
    if (fstatat(dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      status = Error::FromErrno(errno, "stat " + prefix + name);
      break;
    }
    ObjectInfo info;
    info.key = prefix + name;
    info.type = TypeOf(st.st_mode);
    info.size = info.type == ObjectType::kFile ? static_cast<uint64_t>(st.st_size) : 0;
    info.etag = LocalEtag(st);
    info.mtime_sec = st.st_mtim.tv_sec;
    info.mode = st.st_mode & 07777;
    if (info.type == ObjectType::kSymlink) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = readlinkat(dirfd(dir), name.c_str(), target.data(), target.size());
      if (n < 0) {
        status = Error::FromErrno(errno, "readlink " + info.key);
        break;
      }
      target.resize(static_cast<size_t>(n));
      info.link_target = std::move(target);
    }
    bool is_dir = info.type == ObjectType::kDirectory;
    out.push_back(std::move(info));
    if (is_dir) {
      int child = openat(dirfd(dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (child < 0) {
        status = Error::FromErrno(errno, "open directory " + prefix + name);
        break;
      }
      status = Walk(child, prefix + name + "/", out);
    }
  }
  closedir(dir);
  return status;
}

}  // namespace

Result<std::vector<uint8_t>> ReadWholeObject(Origin& origin, const ObjectInfo& object,
                                             size_t max_size) {
  if (object.size > max_size) {
    return Error(Errc::kCorrupt, object.key + ": " + std::to_string(object.size) +
                                     " bytes, more than the " + std::to_string(max_size) +
                                     " such a file can have");
  }
  std::vector<uint8_t> data(object.size);
  CACHEFS_ASSIGN_OR_RETURN(size_t got, origin.ReadRange(object, 0, data));
  if (got != data.size()) {
    return Error(Errc::kChanged, object.key + ": shorter than when listed");
  }
  return data;
}

Result<std::unique_ptr<FileOrigin>> FileOrigin::Open(const std::string& root) {
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Error::FromErrno(errno, "origin " + root);
  }
  return std::unique_ptr<FileOrigin>(new FileOrigin(root, fd));
}

FileOrigin::~FileOrigin() {
  for (auto& [key, file] : files_) {
    if (file->map != nullptr) {
      munmap(const_cast<uint8_t*>(file->map), file->map_size);
    }
    close(file->fd);
  }
  close(root_fd_);
}

std::string FileOrigin::Describe() const { return "file://" + root_; }

Result<std::vector<ObjectInfo>> FileOrigin::List() {
  int fd = dup(root_fd_);
  if (fd < 0) {
    return Error::FromErrno(errno, "dup");
  }
  lseek(fd, 0, SEEK_SET);
  std::vector<ObjectInfo> out;
  CACHEFS_RETURN_IF_ERROR(Walk(fd, "", out));
  return out;
}

Result<FileOrigin::OpenFile*> FileOrigin::FileFor(const ObjectInfo& object) {
  {
    std::lock_guard lock(mutex_);
    auto it = files_.find(object.key);
    if (it != files_.end()) {
      return it->second.get();
    }
  }
  int fd = openat(root_fd_, object.key.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) {
      return Error(Errc::kChanged, object.key + ": removed from the origin after mount");
    }
    return Error::FromErrno(errno, "open " + object.key);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int saved = errno;
    close(fd);
    return Error::FromErrno(saved, "stat " + object.key);
  }
  if (!object.etag.empty() && LocalEtag(st) != object.etag) {
    close(fd);
    return Error(Errc::kChanged, object.key + ": changed at the origin after mount");
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  auto file = std::make_unique<OpenFile>();
  file->fd = fd;
  std::lock_guard lock(mutex_);
  auto [it, inserted] = files_.emplace(object.key, std::move(file));
  if (!inserted) {
    close(fd);  // another thread opened it first
  }
  return it->second.get();
}

Result<const uint8_t*> FileOrigin::MappingFor(const ObjectInfo& object, OpenFile& file) {
  std::lock_guard lock(mutex_);
  if (file.map == nullptr) {
    void* map = mmap(nullptr, object.size, PROT_READ, MAP_SHARED, file.fd, 0);
    if (map == MAP_FAILED) {
      return Error::FromErrno(errno, "mmap " + object.key);
    }
    madvise(map, object.size, MADV_SEQUENTIAL);
    file.map = static_cast<const uint8_t*>(map);
    file.map_size = object.size;
  }
  return file.map;
}

Result<size_t> FileOrigin::ReadRange(const ObjectInfo& object, uint64_t offset,
                                     std::span<uint8_t> dst) {
  CACHEFS_ASSIGN_OR_RETURN(OpenFile * file, FileFor(object));
  size_t done = 0;
  while (done < dst.size()) {
    ssize_t n =
        pread(file->fd, dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Error::FromErrno(errno, "read " + object.key);
    }
    if (n == 0) {
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (done < dst.size() && offset + done < object.size) {
    return Error(Errc::kChanged, object.key + ": truncated at the origin after mount");
  }
  return done;
}

Result<std::span<const uint8_t>> FileOrigin::ReadView(const ObjectInfo& object, uint64_t offset,
                                                      std::span<uint8_t> scratch) {
  if (offset >= object.size) {
    return std::span<const uint8_t>();
  }
  CACHEFS_ASSIGN_OR_RETURN(OpenFile * file, FileFor(object));
  // A mapped page beyond the current end of file raises SIGBUS: check that the file still has
  // its pinned size before touching the mapping. (Only a concurrent truncate between this
  // check and the decryption could still fault; the origin directory is the operator's own.)
  struct stat st;
  if (fstat(file->fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != object.size) {
    return Error(Errc::kChanged, object.key + ": changed at the origin after mount");
  }
  CACHEFS_ASSIGN_OR_RETURN(const uint8_t* map, MappingFor(object, *file));
  size_t length = static_cast<size_t>(std::min<uint64_t>(scratch.size(), object.size - offset));
  // Map the range's pages in one call instead of faulting on each of them.
  uintptr_t start = reinterpret_cast<uintptr_t>(map + offset) & ~uintptr_t{4095};
  madvise(reinterpret_cast<void*>(start),
          reinterpret_cast<uintptr_t>(map + offset + length) - start, kMadvPopulateRead);
  return std::span<const uint8_t>(map + offset, length);
}

void FileOrigin::Prefetch(const ObjectInfo& object, uint64_t offset, uint64_t length) {
  auto file = FileFor(object);
  if (file) {
    posix_fadvise((*file)->fd, static_cast<off_t>(offset), static_cast<off_t>(length),
                  POSIX_FADV_WILLNEED);
  }
}

}  // namespace cachefs::fetch
