#pragma once

// A ciphertext tree in a local directory (`/path` or `file:///path`).

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "fetch/origin.h"

namespace cachefs::fetch {

class FileOrigin final : public Origin {
 public:
  // Fails when `root` is not a readable directory.
  static Result<std::unique_ptr<FileOrigin>> Open(const std::string& root);
  ~FileOrigin() override;

  std::string Describe() const override;
  Result<std::vector<ObjectInfo>> List() override;
  Result<size_t> ReadRange(const ObjectInfo& object, uint64_t offset,
                           std::span<uint8_t> dst) override;
  // Serves views of a read-only mapping of the file: the decryptor reads the page cache
  // directly, saving the copy pread would make (about a sixth of the daemon's CPU).
  Result<std::span<const uint8_t>> ReadView(const ObjectInfo& object, uint64_t offset,
                                            std::span<uint8_t> scratch) override;
  void Prefetch(const ObjectInfo& object, uint64_t offset, uint64_t length) override;

 private:
  FileOrigin(std::string root, int root_fd) : root_(std::move(root)), root_fd_(root_fd) {}
  struct OpenFile {
    int fd = -1;
    const uint8_t* map = nullptr;  // whole file, PROT_READ; nullptr until first ReadView
    uint64_t map_size = 0;
  };
  // Returns the file for `key`, opened once (and checked against the pinned version) and kept:
  // a model has few, large files.
  Result<OpenFile*> FileFor(const ObjectInfo& object);
  Result<const uint8_t*> MappingFor(const ObjectInfo& object, OpenFile& file);

  std::string root_;
  int root_fd_;
  std::mutex mutex_;
  // guarded by mutex_; entries are never removed before destruction, so pointers stay valid
  std::unordered_map<std::string, std::unique_ptr<OpenFile>> files_;
};

}  // namespace cachefs::fetch
