#pragma once

// The read path: plaintext range -> gocryptfs blocks -> ciphertext range from the origin ->
// authenticated decryption on the task pool, straight into the caller's buffer.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_set>
#include <vector>

#include "common/error.h"
#include "common/task_pool.h"
#include "crypto/content_cipher.h"
#include "fetch/origin.h"
#include "fs/inode_table.h"

namespace cachefs::fs {

struct ReadStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> plaintext_bytes{0};
  std::atomic<uint64_t> ciphertext_bytes{0};
  std::atomic<uint64_t> corrupt_blocks{0};  // reads refused because a block failed auth
  std::atomic<uint64_t> origin_errors{0};   // reads failed by the origin (I/O, changed object)
};

// Thread-safe; shared by every FUSE worker and the kernel-cache filler.
class FileReader {
 public:
  FileReader(const InodeTable& table, fetch::Origin& origin, const crypto::ContentCipher& cipher,
             TaskPool& pool);

  // Reads up to `length` plaintext bytes of `inode` at `offset`. Returns a view into a
  // thread-local buffer that stays valid until this thread's next Read: the caller hands it
  // to the kernel without another copy. Short only at end of file. A block failing
  // authentication fails the whole read with Errc::kCorrupt (logged once per file and block);
  // other blocks of the file stay readable.
  // `spread` splits the decryption across the task pool even when other reads are in flight:
  // for decrypt-ahead, which must outrun the reader to be of use.
  Result<std::span<const uint8_t>> Read(const Inode& inode, uint64_t offset, size_t length,
                                        bool spread = false);

  const ReadStats& stats() const { return stats_; }

 private:
  struct FileState {
    std::once_flag header_once;
    Result<crypto::FileId> file_id{Error(Errc::kInternal, "header not read")};
    std::mutex logged_mutex;
    std::unordered_set<uint64_t> logged_bad_blocks;  // guarded by logged_mutex
  };

  Result<crypto::FileId> FileIdOf(const Inode& inode);
  void ReportBadBlock(const Inode& inode, const Error& error);

  fetch::Origin& origin_;
  const crypto::ContentCipher& cipher_;
  TaskPool& pool_;
  std::unique_ptr<FileState[]> files_;  // indexed by inode number - 1
  std::atomic<int> reads_in_flight_{0};
  ReadStats stats_;
};

}  // namespace cachefs::fs
