#include "crypto/tree_decoder.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "common/log.h"

namespace cachefs::crypto {
namespace {

constexpr std::string_view kConfName = "gocryptfs.conf";
constexpr std::string_view kDirIvName = "gocryptfs.diriv";
constexpr size_t kDirIvSize = 16;

std::string_view BaseName(std::string_view key) {
  const size_t slash = key.rfind('/');
  return slash == std::string_view::npos ? key : key.substr(slash + 1);
}

std::string_view ParentKey(std::string_view key) {
  const size_t slash = key.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : key.substr(0, slash);
}

std::string ChildKey(std::string_view dir_key, std::string_view name) {
  std::string key(dir_key);
  if (!key.empty()) {
    key += '/';
  }
  key += name;
  return key;
}

// A usable relative key: no empty, "." or ".." component (so no leading, trailing or double
// slash). Anything else cannot come from a gocryptfs tree and could escape the root.
bool ValidKey(std::string_view key) {
  if (key.empty()) {
    return false;
  }
  size_t start = 0;
  while (true) {
    const size_t slash = key.find('/', start);
    const std::string_view part =
        key.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string_view::npos) {
      return false;
    }
    if (slash == std::string_view::npos) {
      return true;
    }
    start = slash + 1;
  }
}

std::string DisplayDir(std::string_view dir_key) { return "/" + std::string(dir_key); }

class Decoder {
 public:
  Decoder(const Volume& volume, const std::vector<CipherEntry>& entries,
          const SmallObjectReader& read_small, DecodeStats* stats)
      : volume_(volume), entries_(entries), read_small_(read_small), stats_(*stats) {}

  Result<std::vector<PlainEntry>> Run() {
    for (size_t i = 0; i < entries_.size(); ++i) {
      const std::string_view key = entries_[i].key;
      if (!ValidKey(key)) {
        Reject(ParentKey(key), key, "invalid object key");
        continue;
      }
      by_key_.emplace(key, i);
      children_[ParentKey(key)].push_back(i);
    }
    std::vector<PlainEntry> out;
    PlainEntry root;
    root.path = "";
    root.type = EntryType::kDirectory;
    root.cipher_index = SIZE_MAX;
    out.push_back(std::move(root));

    const bool names_encrypted = !volume_.config().plaintext_names;
    DirIv root_iv{};
    if (names_encrypted && !volume_.config().deterministic_names) {
      auto iv = ReadDirIv("");
      if (!iv) {
        return iv.error().WithContext("root directory");
      }
      root_iv = *iv;
    }
    std::deque<Pending> queue;
    ListDirectory("", "", root_iv, &out, &queue);
    while (!queue.empty()) {
      const Pending dir = queue.front();
      queue.pop_front();
      DirIv iv{};
      if (names_encrypted && !volume_.config().deterministic_names) {
        auto read = ReadDirIv(dir.cipher_key);
        if (!read) {
          CACHEFS_LOG(kWarn, "crypto").Kv("dir", DisplayDir(dir.cipher_key))
              << "directory is unusable: " << read.error().message();
          out[dir.out_index].damaged = true;
          ++stats_.damaged_entries;
          continue;
        }
        iv = *read;
      }
      const std::string plain_path = out[dir.out_index].path;
      ListDirectory(dir.cipher_key, plain_path, iv, &out, &queue);
    }
    RejectOrphans();
    return out;
  }

 private:
  // A directory whose PlainEntry is out[out_index] and whose listing is still to be decoded.
  struct Pending {
    std::string_view cipher_key;
    size_t out_index;
  };

  // Appends the visible children of one directory to `out`, sorted by name, and queues the
  // subdirectories.
  void ListDirectory(std::string_view dir_key, const std::string& plain_dir, const DirIv& iv,
                     std::vector<PlainEntry>* out, std::deque<Pending>* queue) {
    auto it = children_.find(dir_key);
    if (it == children_.end()) {
      return;
    }
    std::vector<PlainEntry> listed;
    std::unordered_set<std::string> seen;
    for (size_t index : it->second) {
      const CipherEntry& entry = entries_[index];
      const std::string_view name = BaseName(entry.key);
      auto plain_name = PlainName(dir_key, name, iv);
      if (!plain_name) {
        continue;  // hidden, or rejected and logged
      }
      if (!seen.insert(*plain_name).second) {
        Reject(dir_key, name, "duplicate plaintext name");
        continue;
      }
      PlainEntry plain;
      plain.path = plain_dir.empty() ? *plain_name : plain_dir + "/" + *plain_name;
      plain.type = entry.type;
      plain.cipher_index = index;
      switch (entry.type) {
        case EntryType::kFile:
          plain.plain_size = volume_.content().PlainSize(entry.size);
          break;
        case EntryType::kSymlink: {
          auto target = volume_.DecryptSymlinkTarget(entry.link_target);
          if (target) {
            plain.symlink_target = std::move(target).value();
            plain.plain_size = plain.symlink_target.size();
          } else {
            CACHEFS_LOG(kWarn, "crypto").Kv("dir", DisplayDir(dir_key)).Kv("name", name)
                << "symlink target does not decrypt: " << target.error().message();
            plain.damaged = true;
            ++stats_.damaged_entries;
          }
          break;
        }
        case EntryType::kDirectory:
        case EntryType::kOther:
          break;
      }
      listed.push_back(std::move(plain));
    }
    // Sorted by name so the output does not depend on the order of the origin listing.
    std::sort(listed.begin(), listed.end(),
              [](const PlainEntry& a, const PlainEntry& b) { return a.path < b.path; });
    for (PlainEntry& plain : listed) {
      if (plain.type == EntryType::kDirectory) {
        queue->push_back({entries_[plain.cipher_index].key, out->size()});
      }
      out->push_back(std::move(plain));
    }
  }

  // The plaintext name of entry `name` in directory `dir_key`, or nullopt when gocryptfs would
  // not show it (reserved names, companions, names that do not decrypt).
  std::optional<std::string> PlainName(std::string_view dir_key, std::string_view name,
                                       const DirIv& iv) {
    if (dir_key.empty() && name == kConfName) {
      return std::nullopt;
    }
    const NameCipher* names = volume_.names();
    if (names == nullptr) {
      return std::string(name);  // PlaintextNames: stored verbatim
    }
    if (name == kDirIvName && !volume_.config().deterministic_names) {
      return std::nullopt;
    }
    if (NameCipher::IsLongNameCompanion(name)) {
      return std::nullopt;
    }
    std::string cipher_name(name);
    if (NameCipher::IsLongName(name)) {
      auto full = ReadLongName(dir_key, name);
      if (!full) {
        Reject(dir_key, name, full.error().message());
        return std::nullopt;
      }
      cipher_name = std::move(full).value();
    }
    auto plain = names->DecryptName(cipher_name, iv);
    if (!plain) {
      Reject(dir_key, name, plain.error().message());
      return std::nullopt;
    }
    return std::move(plain).value();
  }

  // The full cipher name of a long-name object, from its .name companion. Unlike gocryptfs
  // (which does not check), the companion must hash to the object's name: otherwise the entry
  // could never be looked up by its plaintext name (lookups hash the encrypted name), and a
  // copied companion would show one name twice.
  Result<std::string> ReadLongName(std::string_view dir_key, std::string_view name) {
    const std::string companion =
        ChildKey(dir_key, name) + std::string(NameCipher::kLongNameSuffix);
    auto it = by_key_.find(companion);
    if (it == by_key_.end() || entries_[it->second].type != EntryType::kFile) {
      return Error(Errc::kNotFound, "long name without .name companion");
    }
    if (entries_[it->second].size == 0 ||
        entries_[it->second].size > NameCipher::kMaxLongNameFileSize) {
      return Error(Errc::kCorrupt, ".name companion has a bad size");
    }
    auto data = read_small_(companion, NameCipher::kMaxLongNameFileSize);
    if (!data) {
      return data.error().WithContext("reading .name companion");
    }
    if (data->empty() || data->size() > NameCipher::kMaxLongNameFileSize) {
      return Error(Errc::kCorrupt, ".name companion has a bad size");
    }
    std::string full(data->begin(), data->end());
    if (volume_.names()->LongNameFor(full) != name) {
      return Error(Errc::kCorrupt, ".name companion does not hash to the long name");
    }
    return full;
  }

  Result<DirIv> ReadDirIv(std::string_view dir_key) {
    const std::string key = ChildKey(dir_key, kDirIvName);
    auto it = by_key_.find(key);
    if (it == by_key_.end() || entries_[it->second].type != EntryType::kFile) {
      return Error(Errc::kNotFound, "gocryptfs.diriv missing");
    }
    if (entries_[it->second].size != kDirIvSize) {
      return Error(Errc::kCorrupt, "gocryptfs.diriv is not 16 bytes");
    }
    auto data = read_small_(key, kDirIvSize);
    if (!data) {
      return data.error().WithContext("reading gocryptfs.diriv");
    }
    if (data->size() != kDirIvSize) {
      return Error(Errc::kCorrupt, "gocryptfs.diriv is not 16 bytes");
    }
    DirIv iv;
    std::copy(data->begin(), data->end(), iv.begin());
    if (std::all_of(iv.begin(), iv.end(), [](uint8_t b) { return b == 0; })) {
      return Error(Errc::kCorrupt, "gocryptfs.diriv is all zero");
    }
    return iv;
  }

  // Entries whose parent directory is not in the listing cannot be placed; say so instead of
  // dropping them silently. (Children of rejected or damaged directories are invisible by
  // design and not counted again.)
  void RejectOrphans() {
    for (const auto& [dir_key, indices] : children_) {
      if (dir_key.empty()) {
        continue;
      }
      auto it = by_key_.find(dir_key);
      if (it != by_key_.end() && entries_[it->second].type == EntryType::kDirectory) {
        continue;
      }
      for (size_t index : indices) {
        Reject(dir_key, BaseName(entries_[index].key), "parent directory not in the listing");
      }
    }
  }

  void Reject(std::string_view dir_key, std::string_view name, std::string_view why) {
    CACHEFS_LOG(kWarn, "crypto").Kv("dir", DisplayDir(dir_key)).Kv("name", name)
        << "skipping entry: " << why;
    ++stats_.rejected_names;
  }

  const Volume& volume_;
  const std::vector<CipherEntry>& entries_;
  const SmallObjectReader& read_small_;
  DecodeStats& stats_;
  // Views into entries_[i].key, which outlive the decoder.
  std::unordered_map<std::string_view, size_t> by_key_;
  std::unordered_map<std::string_view, std::vector<size_t>> children_;
};

}  // namespace

Result<std::vector<PlainEntry>> DecodeTree(const Volume& volume,
                                           const std::vector<CipherEntry>& entries,
                                           const SmallObjectReader& read_small,
                                           DecodeStats* stats) {
  DecodeStats local;
  Decoder decoder(volume, entries, read_small, stats != nullptr ? stats : &local);
  return decoder.Run();
}

}  // namespace cachefs::crypto
