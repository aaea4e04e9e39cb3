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
  void Prefetch(const ObjectInfo& object, uint64_t offset, uint64_t length) override;

 private:
  FileOrigin(std::string root, int root_fd) : root_(std::move(root)), root_fd_(root_fd) {}
  // Returns an fd for `key`, opened once and kept: a model has few, large files.
  Result<int> FileFor(const ObjectInfo& object);

  std::string root_;
  int root_fd_;
  std::mutex mutex_;
  std::unordered_map<std::string, int> fds_;  // guarded by mutex_
};

}  // namespace cachefs::fetch
