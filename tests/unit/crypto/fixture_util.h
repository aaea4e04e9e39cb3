#pragma once

// Test helpers: read gocryptfs fixture volumes from disk the way fs/ feeds crypto/ from an
// origin listing (CipherEntry values plus a small-object reader).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/secret_bytes.h"
#include "crypto/tree_decoder.h"
#include "crypto/volume.h"

namespace cachefs::crypto::testing {

// CACHEFS_FIXTURES_DIR/gocryptfs/<relative>.
std::filesystem::path FixturePath(std::string_view relative);

std::vector<uint8_t> ReadFileBytes(const std::filesystem::path& path);
std::string ReadFileText(const std::filesystem::path& path);

// Every object below `root` (not following symlinks), keys relative to it, sorted.
//
// The fixture copy on this machine lost its symlinks: each is a regular file holding the
// stored link target. Keys listed in `symlinks` are turned back into symlinks (real symlinks
// are recognised as such anyway).
std::vector<CipherEntry> ListTree(const std::filesystem::path& root,
                                  const std::vector<std::string>& symlinks = {});

// Reads objects below `root` from disk, refusing more than max_size bytes.
SmallObjectReader DiskReader(const std::filesystem::path& root);

// Hex to bytes; '-', ' ' and newlines are ignored (the README's master-key notation).
std::vector<uint8_t> Unhex(std::string_view hex);
std::string Hex(std::span<const uint8_t> data);
std::string Sha256Hex(std::span<const uint8_t> data);
std::string Sha256Hex(std::string_view data);

SecretBytes Password(std::string_view text = "test");

// Parses <dir>/<conf_name> and unlocks it with `password`.
Result<std::unique_ptr<Volume>> UnlockFixture(const std::filesystem::path& dir,
                                              std::string_view password = "test",
                                              std::string_view conf_name = "gocryptfs.conf");

// Decrypts a whole ciphertext file as the read path does (header, then all blocks).
Result<std::string> DecryptWholeFile(const ContentCipher& cipher, std::span<const uint8_t> file,
                                     TaskPool* pool = nullptr);

}  // namespace cachefs::crypto::testing
