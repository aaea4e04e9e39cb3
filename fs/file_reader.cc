#include "fs/file_reader.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>

#include "common/log.h"

namespace cachefs::fs {
namespace {

constexpr size_t kBlock = crypto::ContentCipher::kPlainBlockSize;

// Plaintext staging buffer of one thread: a 2 MiB-aligned transparent huge page, because the
// kernel pins this buffer page by page when it copies a reply into the page cache, and one
// huge page instead of 256 small ones makes that pinning (and the TLB) much cheaper.
class PlainBuffer {
 public:
  static constexpr size_t kHugePage = 2 << 20;

  ~PlainBuffer() {
    if (mapping_ != nullptr) {
      munmap(mapping_, mapping_size_);
    }
  }

  uint8_t* Get(size_t size) {
    if (size > capacity_) {
      if (mapping_ != nullptr) {
        munmap(mapping_, mapping_size_);
      }
      capacity_ = (size + kHugePage - 1) / kHugePage * kHugePage;
      mapping_size_ = capacity_ + kHugePage;  // room to align the start
      void* mapping =
          mmap(nullptr, mapping_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mapping == MAP_FAILED) {
        std::abort();  // a few MiB of address space: nothing sensible remains
      }
      mapping_ = static_cast<uint8_t*>(mapping);
      uintptr_t aligned =
          (reinterpret_cast<uintptr_t>(mapping_) + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
      data_ = reinterpret_cast<uint8_t*>(aligned);
      madvise(data_, capacity_, MADV_HUGEPAGE);
      // Plaintext must not reach a core dump (the process is non-dumpable too).
      madvise(mapping_, mapping_size_, MADV_DONTDUMP);
    }
    return data_;
  }

 private:
  uint8_t* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
};

// Per-thread buffers reused across requests: a FUSE worker serves one request at a time, and
// allocating 1 MiB per request would cost more than the decryption of small reads.
struct ThreadBuffers {
  std::vector<uint8_t> cipher;  // only used by origins that cannot lend a view
  PlainBuffer plain;
};
thread_local ThreadBuffers t_buffers;

}  // namespace

FileReader::FileReader(const InodeTable& table, fetch::Origin& origin,
                       const crypto::ContentCipher& cipher, TaskPool& pool)
    : origin_(origin), cipher_(cipher), pool_(pool), files_(new FileState[table.size()]) {}

Result<crypto::FileId> FileReader::FileIdOf(const Inode& inode) {
  FileState& state = files_[inode.ino - 1];
  std::call_once(state.header_once, [&] {
    uint8_t header[crypto::ContentCipher::kHeaderSize];
    auto got = origin_.ReadRange(inode.object, 0, header);
    if (!got) {
      state.file_id = got.error();
    } else if (*got != sizeof(header)) {
      state.file_id = Error(Errc::kCorrupt, "file shorter than its header");
    } else {
      state.file_id = cipher_.ParseHeader(header);
    }
  });
  return state.file_id;
}

void FileReader::ReportBadBlock(const Inode& inode, const Error& error) {
  FileState& state = files_[inode.ino - 1];
  // The kernel retries a failed readahead page by page: log each bad block once, not per retry.
  std::hash<std::string> hasher;
  uint64_t key = hasher(error.message());
  {
    std::lock_guard lock(state.logged_mutex);
    if (!state.logged_bad_blocks.insert(key).second) {
      return;
    }
  }
  CACHEFS_LOG(kError, "fs").Kv("file", inode.path).Kv("ino", inode.ino)
      << "read refused: " << error.message();
}

Result<std::span<const uint8_t>> FileReader::Read(const Inode& inode, uint64_t offset,
                                                  size_t length, bool spread) {
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  if (offset >= inode.size || length == 0) {
    return std::span<const uint8_t>();
  }
  length = static_cast<size_t>(std::min<uint64_t>(length, inode.size - offset));

  auto file_id = FileIdOf(inode);
  if (!file_id) {
    stats_.corrupt_blocks.fetch_add(1, std::memory_order_relaxed);
    ReportBadBlock(inode, file_id.error().WithContext("header"));
    return file_id.error();
  }

  const uint64_t first_block = offset / kBlock;
  const uint64_t last_block = (offset + length - 1) / kBlock;
  const size_t blocks = static_cast<size_t>(last_block - first_block + 1);
  const size_t cbs = cipher_.cipher_block_size();
  const uint64_t cipher_offset = crypto::ContentCipher::kHeaderSize + first_block * cbs;

  ThreadBuffers& buffers = t_buffers;
  buffers.cipher.resize(blocks * cbs);
  std::span<uint8_t> plain(buffers.plain.Get(blocks * kBlock), blocks * kBlock);

  auto cipher = origin_.ReadView(inode.object, cipher_offset, buffers.cipher);
  if (!cipher) {
    stats_.origin_errors.fetch_add(1, std::memory_order_relaxed);
    CACHEFS_LOG(kError, "fs").Kv("file", inode.path).Kv("offset", cipher_offset)
        << "origin read failed: " << cipher.error().message();
    return cipher.error();
  }
  stats_.ciphertext_bytes.fetch_add(cipher->size(), std::memory_order_relaxed);

  // Splitting one request across the pool pays only when the cores would otherwise idle: with
  // several READs in flight (kernel readahead, decrypt-ahead) each already keeps a core busy,
  // and the hand-off costs a few percent of CPU.
  bool alone = reads_in_flight_.fetch_add(1, std::memory_order_relaxed) == 0;
  auto plain_bytes = cipher_.DecryptBlocks(*cipher, first_block, *file_id, plain,
                                           alone || spread ? &pool_ : nullptr);
  reads_in_flight_.fetch_sub(1, std::memory_order_relaxed);
  if (!plain_bytes) {
    stats_.corrupt_blocks.fetch_add(1, std::memory_order_relaxed);
    ReportBadBlock(inode, plain_bytes.error());
    return plain_bytes.error();
  }
  size_t skip = static_cast<size_t>(offset - first_block * kBlock);
  size_t available = *plain_bytes > skip ? *plain_bytes - skip : 0;
  size_t n = std::min(length, available);
  stats_.plaintext_bytes.fetch_add(n, std::memory_order_relaxed);
  return std::span<const uint8_t>(plain.data() + skip, n);
}

}  // namespace cachefs::fs
