#include "fetch/disk_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/log.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace cachefs::fetch {
namespace {

constexpr char kMagic[8] = {'C', 'F', 'S', 'C', 'H', 'N', 'K', '1'};
constexpr size_t kFixedHeader = 56;
constexpr size_t kMaxNameField = 4096;
constexpr std::string_view kSuffix = ".chunk";

void Put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void Put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t Get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t Crc32cSoftware(std::span<const uint8_t> data, uint32_t crc) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) {
        c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      }
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (uint8_t b : data) {
    crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  }
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(std::span<const uint8_t> data,
                                                          uint32_t crc) {
  uint64_t c = ~crc;
  const uint8_t* p = data.data();
  size_t n = data.size();
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n-- > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
  }
  return ~c32;
}
#endif

bool ReadFull(int fd, uint8_t* dst, size_t n, off_t offset) {
  while (n > 0) {
    ssize_t r = pread(fd, dst, n, offset);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      return false;
    }
    dst += r;
    n -= static_cast<size_t>(r);
    offset += r;
  }
  return true;
}

bool WriteFull(int fd, const uint8_t* src, size_t n) {
  while (n > 0) {
    ssize_t r = write(fd, src, n);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      return false;
    }
    src += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

uint32_t Crc32c(std::span<const uint8_t> data, uint32_t crc) {
#if defined(__x86_64__)
  static const bool has_sse42 = __builtin_cpu_supports("sse4.2");
  if (has_sse42) {
    return Crc32cHardware(data, crc);
  }
#endif
  return Crc32cSoftware(data, crc);
}

Result<std::unique_ptr<DiskCache>> DiskCache::Open(const std::string& dir, uint64_t limit_bytes) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::FromErrno(errno, "cache directory " + dir);
  }
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return Error::FromErrno(errno, "cache directory " + dir);
  }
  if (limit_bytes == 0) {
    struct statvfs vfs;
    if (statvfs(dir.c_str(), &vfs) == 0) {
      limit_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize / 10 * 8;
    }
  }
  std::unique_ptr<DiskCache> cache(new DiskCache(dir, limit_bytes));
  struct Found {
    std::string name;
    uint64_t bytes;
    int64_t mtime_ns;
  };
  std::vector<Found> found;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name.find(".tmp.") != std::string::npos) {
      unlinkat(dirfd(d), name.c_str(), 0);  // left by a crash mid-write
      continue;
    }
    if (name.size() <= kSuffix.size() ||
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    struct stat st;
    if (fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      continue;
    }
    found.push_back({name, static_cast<uint64_t>(st.st_size),
                     st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec});
  }
  closedir(d);
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.mtime_ns > b.mtime_ns; });
  std::lock_guard lock(cache->mu_);
  for (const auto& f : found) {
    cache->lru_.push_back(f.name);
    cache->entries_[f.name] = {f.bytes, std::prev(cache->lru_.end())};
    cache->used_ += f.bytes;
  }
  cache->EvictLocked();
  CACHEFS_LOG(kInfo, "fetch")
          .Kv("dir", dir)
          .Kv("files", static_cast<uint64_t>(cache->entries_.size()))
          .Kv("bytes", cache->used_)
          .Kv("limit", limit_bytes)
      << "disk cache opened";
  return cache;
}

std::string DiskCache::FileName(const ObjectInfo& object, uint64_t index, uint64_t chunk_size) {
  std::string id = object.key + '\0' + object.etag + '\0' + std::to_string(chunk_size);
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(id.data()), id.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name;
  for (int i = 0; i < 20; ++i) {
    name.push_back(kHex[digest[i] >> 4]);
    name.push_back(kHex[digest[i] & 0xf]);
  }
  return name + "-" + std::to_string(index) + std::string(kSuffix);
}

uint64_t DiskCache::used() const {
  std::lock_guard lock(mu_);
  return used_;
}

void DiskCache::Remove(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(name);
    if (it != entries_.end()) {
      used_ -= it->second.bytes;
      lru_.erase(it->second.lru);
      entries_.erase(it);
    }
  }
  unlink((dir_ + "/" + name).c_str());
}

void DiskCache::Touch(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
}

uint64_t DiskCache::Clear() {
  std::lock_guard lock(mu_);
  uint64_t freed = used_;
  for (const auto& name : lru_) {
    unlink((dir_ + "/" + name).c_str());
  }
  lru_.clear();
  entries_.clear();
  used_ = 0;
  return freed;
}

void DiskCache::EvictLocked() {
  while (used_ > limit_ && !lru_.empty()) {
    const std::string& name = lru_.back();
    auto it = entries_.find(name);
    used_ -= it->second.bytes;
    unlink((dir_ + "/" + name).c_str());
    entries_.erase(it);
    lru_.pop_back();
  }
}

Result<size_t> DiskCache::Read(const ObjectInfo& object, uint64_t index, uint64_t chunk_size,
                               std::span<uint8_t> dst) {
  std::string name = FileName(object, index, chunk_size);
  {
    std::lock_guard lock(mu_);
    if (!entries_.contains(name)) {
      return Error(Errc::kNotFound, "not in the disk cache");
    }
  }
  std::string path = dir_ + "/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Remove(name);
    return Error(Errc::kNotFound, "not in the disk cache");
  }
  auto corrupt = [&](const char* why) -> Error {
    close(fd);
    corrupt_++;
    CACHEFS_LOG(kWarn, "fetch").Kv("file", path).Kv("object", object.key)
        << "disk cache file rejected (" << why << "); fetching the chunk again";
    Remove(name);
    return Error(Errc::kNotFound, "disk cache file rejected");
  };
  uint8_t fixed[kFixedHeader];
  if (!ReadFull(fd, fixed, kFixedHeader, 0)) {
    return corrupt("truncated header");
  }
  uint32_t header_len = Get32(fixed + 8);
  uint32_t version = Get32(fixed + 12);
  uint64_t stored_chunk_size = Get64(fixed + 16);
  uint64_t stored_index = Get64(fixed + 24);
  uint64_t data_len = Get64(fixed + 32);
  uint32_t crc = Get32(fixed + 40);
  uint32_t key_len = Get32(fixed + 44);
  uint32_t etag_len = Get32(fixed + 48);
  if (std::memcmp(fixed, kMagic, 8) != 0 || version != 1 || key_len > kMaxNameField ||
      etag_len > kMaxNameField || header_len != kFixedHeader + key_len + etag_len) {
    return corrupt("bad header");
  }
  std::string names(key_len + etag_len, '\0');
  if (!ReadFull(fd, reinterpret_cast<uint8_t*>(names.data()), names.size(), kFixedHeader)) {
    return corrupt("truncated header");
  }
  uint64_t expected_len =
      std::min(chunk_size, object.size - std::min(object.size, index * chunk_size));
  if (stored_chunk_size != chunk_size || stored_index != index || data_len != expected_len ||
      names.compare(0, key_len, object.key) != 0 || names.substr(key_len) != object.etag) {
    return corrupt("another object, version or chunk");
  }
  if (data_len > dst.size()) {
    close(fd);
    return Error(Errc::kInternal, "disk cache read buffer too small");
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) != header_len + data_len) {
    return corrupt("wrong length");
  }
  if (!ReadFull(fd, dst.data(), data_len, header_len)) {
    return corrupt("truncated data");
  }
  if (Crc32c(dst.subspan(0, data_len)) != crc) {
    return corrupt("checksum mismatch");
  }
  close(fd);
  Touch(name);
  return static_cast<size_t>(data_len);
}

void DiskCache::Write(const ObjectInfo& object, uint64_t index, uint64_t chunk_size,
                      std::span<const uint8_t> data) {
  if (!writable_ || data.size() > limit_) {
    return;
  }
  std::string name = FileName(object, index, chunk_size);
  std::string path = dir_ + "/" + name;
  std::string tmp =
      path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(tmp_counter_.fetch_add(1));
  std::vector<uint8_t> header(kFixedHeader + object.key.size() + object.etag.size());
  std::memcpy(header.data(), kMagic, 8);
  Put32(header.data() + 8, static_cast<uint32_t>(header.size()));
  Put32(header.data() + 12, 1);
  Put64(header.data() + 16, chunk_size);
  Put64(header.data() + 24, index);
  Put64(header.data() + 32, data.size());
  Put32(header.data() + 40, Crc32c(data));
  Put32(header.data() + 44, static_cast<uint32_t>(object.key.size()));
  Put32(header.data() + 48, static_cast<uint32_t>(object.etag.size()));
  Put32(header.data() + 52, 0);
  std::memcpy(header.data() + kFixedHeader, object.key.data(), object.key.size());
  std::memcpy(header.data() + kFixedHeader + object.key.size(), object.etag.data(),
              object.etag.size());

  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && WriteFull(fd, header.data(), header.size()) &&
            WriteFull(fd, data.data(), data.size());
  int saved = errno;
  if (fd >= 0 && close(fd) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (ok && rename(tmp.c_str(), path.c_str()) != 0) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    unlink(tmp.c_str());
    write_errors_++;
    if (saved == ENOSPC || saved == EDQUOT) {
      if (writable_.exchange(false)) {
        CACHEFS_LOG(kWarn, "fetch").Kv("dir", dir_)
            << "cache directory is full (" << std::strerror(saved)
            << "); continuing with the memory cache only";
      }
    } else {
      CACHEFS_LOG(kWarn, "fetch").Kv("file", tmp)
          << "disk cache write failed: " << std::strerror(saved);
    }
    return;
  }
  std::lock_guard lock(mu_);
  uint64_t bytes = header.size() + data.size();
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    used_ -= it->second.bytes;
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  lru_.push_front(name);
  entries_[name] = {bytes, lru_.begin()};
  used_ += bytes;
  EvictLocked();
}

}  // namespace cachefs::fetch
