#pragma once

// Builds the plaintext namespace at mount: lists the origin once, reads every diriv and
// long-name companion, decrypts every name (crypto::DecodeTree) and lays out the inode table.

#include <memory>

#include "common/error.h"
#include "crypto/tree_decoder.h"
#include "crypto/volume.h"
#include "fetch/origin.h"
#include "fs/inode_table.h"

namespace cachefs::fs {

struct NamespaceStats {
  uint64_t cipher_objects = 0;
  crypto::DecodeStats decode;
  uint64_t duplicate_names = 0;  // two cipher entries decrypting to one name: first one wins
};

// The origin's listing, kept for what the tree needs beyond names (gocryptfs.conf).
struct OriginListing {
  std::vector<fetch::ObjectInfo> objects;
  // The object called `key`, or nullptr.
  const fetch::ObjectInfo* Find(std::string_view key) const;
};

Result<OriginListing> ListOrigin(fetch::Origin& origin);

Result<std::unique_ptr<InodeTable>> BuildNamespace(fetch::Origin& origin,
                                                   const OriginListing& listing,
                                                   const crypto::Volume& volume,
                                                   NamespaceStats* stats);

}  // namespace cachefs::fs
