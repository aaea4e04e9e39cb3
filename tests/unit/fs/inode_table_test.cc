#include "fs/inode_table.h"

#include <gtest/gtest.h>

namespace cachefs::fs {
namespace {

Inode Dir(InodeNumber ino, InodeNumber parent, std::vector<DirEntry> children) {
  Inode inode;
  inode.ino = ino;
  inode.parent = parent;
  inode.type = NodeType::kDirectory;
  inode.children = std::move(children);
  return inode;
}

Inode File(InodeNumber ino, InodeNumber parent, uint64_t size) {
  Inode inode;
  inode.ino = ino;
  inode.parent = parent;
  inode.type = NodeType::kFile;
  inode.size = size;
  return inode;
}

TEST(InodeTableTest, LookupFindsChildrenByNameWhateverTheirInputOrder) {
  std::vector<Inode> inodes;
  inodes.push_back(Dir(1, 1, {{"zeta", 2}, {"alpha", 3}, {"mid", 4}}));
  inodes.push_back(File(2, 1, 10));
  inodes.push_back(File(3, 1, 20));
  inodes.push_back(Dir(4, 1, {{"inner", 5}}));
  inodes.push_back(File(5, 4, 5));
  InodeTable table(std::move(inodes));

  ASSERT_NE(table.Lookup(1, "alpha"), nullptr);
  EXPECT_EQ(table.Lookup(1, "alpha")->ino, 3u);
  EXPECT_EQ(table.Lookup(1, "zeta")->ino, 2u);
  EXPECT_EQ(table.Lookup(4, "inner")->ino, 5u);
  EXPECT_EQ(table.Lookup(1, "alph"), nullptr);
  EXPECT_EQ(table.Lookup(1, "inner"), nullptr);
  EXPECT_EQ(table.Lookup(2, "x"), nullptr);  // a file has no children
  EXPECT_EQ(table.Find(0), nullptr);
  EXPECT_EQ(table.Find(6), nullptr);
  // Listing order is name order.
  const Inode* root = table.Find(1);
  EXPECT_EQ(root->children[0].name, "alpha");
  EXPECT_EQ(root->children[2].name, "zeta");
  EXPECT_EQ(table.counts().files, 3u);
  EXPECT_EQ(table.counts().directories, 2u);
  EXPECT_EQ(table.counts().plaintext_bytes, 35u);
}

}  // namespace
}  // namespace cachefs::fs
