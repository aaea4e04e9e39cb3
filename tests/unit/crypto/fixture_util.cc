#include "fixture_util.h"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

namespace cachefs::crypto::testing {

namespace fs = std::filesystem;

fs::path FixturePath(std::string_view relative) {
  return fs::path(CACHEFS_FIXTURES_DIR) / "gocryptfs" / fs::path(relative);
}

std::vector<uint8_t> ReadFileBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::string ReadFileText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<CipherEntry> ListTree(const fs::path& root, const std::vector<std::string>& symlinks) {
  std::vector<CipherEntry> entries;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    CipherEntry entry;
    entry.key = fs::relative(it->path(), root).generic_string();
    const fs::file_status status = it->symlink_status();
    if (fs::is_symlink(status)) {
      entry.type = EntryType::kSymlink;
      entry.link_target = fs::read_symlink(it->path()).string();
    } else if (fs::is_directory(status)) {
      entry.type = EntryType::kDirectory;
    } else if (std::find(symlinks.begin(), symlinks.end(), entry.key) != symlinks.end()) {
      entry.type = EntryType::kSymlink;
      entry.link_target = ReadFileText(it->path());
    } else if (fs::is_regular_file(status)) {
      entry.type = EntryType::kFile;
      entry.size = fs::file_size(it->path());
    } else {
      entry.type = EntryType::kOther;
    }
    entries.push_back(std::move(entry));
  }
  std::sort(entries.begin(), entries.end(),
            [](const CipherEntry& a, const CipherEntry& b) { return a.key < b.key; });
  return entries;
}

SmallObjectReader DiskReader(const fs::path& root) {
  return [root](const std::string& key, size_t max_size) -> Result<std::vector<uint8_t>> {
    std::error_code ec;
    const uint64_t size = fs::file_size(root / key, ec);
    if (ec) {
      return Error(Errc::kNotFound, key + ": " + ec.message());
    }
    if (size > max_size) {
      return Error(Errc::kCorrupt, key + ": larger than " + std::to_string(max_size));
    }
    return ReadFileBytes(root / key);
  };
}

std::vector<uint8_t> Unhex(std::string_view hex) {
  std::vector<uint8_t> out;
  int high = -1;
  for (char c : hex) {
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      continue;
    }
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  return out;
}

std::string Hex(std::span<const uint8_t> data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : data) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::string Sha256Hex(std::span<const uint8_t> data) {
  uint8_t digest[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest);
}

std::string Sha256Hex(std::string_view data) {
  return Sha256Hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

SecretBytes Password(std::string_view text) { return SecretBytes::CopyOf(text); }

Result<std::unique_ptr<Volume>> UnlockFixture(const fs::path& dir, std::string_view password,
                                              std::string_view conf_name) {
  CACHEFS_ASSIGN_OR_RETURN(VolumeConfig config,
                           ParseVolumeConfig(ReadFileText(dir / fs::path(conf_name))));
  return Volume::Unlock(config, Password(password));
}

Result<std::string> DecryptWholeFile(const ContentCipher& cipher, std::span<const uint8_t> file,
                                     TaskPool* pool) {
  if (file.size() <= ContentCipher::kHeaderSize) {
    return std::string();
  }
  CACHEFS_ASSIGN_OR_RETURN(FileId id, cipher.ParseHeader(file.first(ContentCipher::kHeaderSize)));
  const auto body = file.subspan(ContentCipher::kHeaderSize);
  std::string plain(cipher.PlainSize(file.size()), '\0');
  CACHEFS_ASSIGN_OR_RETURN(
      size_t n,
      cipher.DecryptBlocks(
          body, 0, id, std::span<uint8_t>(reinterpret_cast<uint8_t*>(plain.data()), plain.size()),
          pool));
  plain.resize(n);
  return plain;
}

}  // namespace cachefs::crypto::testing
