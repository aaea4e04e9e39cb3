#include "p2p/codec.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace cachefs::p2p {
namespace {

TEST(ParsePeerList, DefaultPortSpacesAndDuplicates) {
  auto list = ParsePeerList("10.0.0.2 10.0.0.3:7071,  node4\t10.0.0.2:7070 [fd00::5]:9 fd00::6");
  ASSERT_TRUE(list) << list.error().message();
  EXPECT_EQ(*list, (std::vector<std::string>{"10.0.0.2:7070", "10.0.0.3:7071", "node4:7070",
                                             "[fd00::5]:9", "[fd00::6]:7070"}));
  EXPECT_TRUE(ParsePeerList("")->empty());
  EXPECT_TRUE(ParsePeerList("   ")->empty());
}

TEST(ParsePeerList, RejectsBadPorts) {
  EXPECT_FALSE(ParsePeerList("host:0"));
  EXPECT_FALSE(ParsePeerList("host:65536"));
  EXPECT_FALSE(ParsePeerList("host:x"));
  EXPECT_FALSE(ParsePeerList(":7070"));
  EXPECT_FALSE(ParsePeerList(std::string(400, 'a')));
}

TEST(Rendezvous, StableAndBalanced) {
  std::vector<std::string> members = {"a", "b", "c", "d"};
  std::map<int, int> counts;
  for (uint64_t i = 0; i < 4000; ++i) {
    int owner = RendezvousOwner(members, "model.safetensors", i);
    ASSERT_GE(owner, 0);
    counts[owner]++;
    // Order of the member list does not matter.
    std::vector<std::string> reversed(members.rbegin(), members.rend());
    EXPECT_EQ(members[owner], reversed[RendezvousOwner(reversed, "model.safetensors", i)]);
  }
  for (auto& [owner, n] : counts) {
    EXPECT_GT(n, 800) << owner;
    EXPECT_LT(n, 1200) << owner;
  }
  EXPECT_EQ(RendezvousOwner({}, "k", 1), -1);
}

TEST(Rendezvous, RemovingAMemberMovesOnlyItsChunks) {
  std::vector<std::string> four = {"a", "b", "c", "d"};
  std::vector<std::string> three = {"a", "b", "d"};
  for (uint64_t i = 0; i < 1000; ++i) {
    std::string before = four[RendezvousOwner(four, "k", i)];
    std::string after = three[RendezvousOwner(three, "k", i)];
    if (before != "c") {
      EXPECT_EQ(before, after);
    }
  }
}

TEST(Members, RoundTripAndCompression) {
  std::vector<MemberEntry> members;
  for (int i = 0; i < 100; ++i) {
    members.push_back({"10.0.0." + std::to_string(i) + ":7070", std::string(16, 'x')});
  }
  auto packed = PackMembers(members);
  EXPECT_TRUE(packed.lz4);
  EXPECT_LT(packed.data.size(), packed.raw_size / 2);
  auto back = UnpackMembers(packed);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->size(), members.size());
  EXPECT_EQ((*back)[42].address, "10.0.0.42:7070");

  auto small = PackMembers({{"h:1", "id"}});
  EXPECT_FALSE(small.lz4);
  EXPECT_EQ(UnpackMembers(small)->at(0).address, "h:1");
}

TEST(Members, MalformedListsAreRejected) {
  PackedMembers bad{1000, true, "garbage"};
  EXPECT_FALSE(UnpackMembers(bad));
  PackedMembers huge{1u << 30, true, "x"};
  EXPECT_FALSE(UnpackMembers(huge));
  PackedMembers mismatch{5, false, "abc"};
  EXPECT_FALSE(UnpackMembers(mismatch));
  auto bad_address = PackMembers({{"no-port", "id"}});
  EXPECT_FALSE(UnpackMembers(bad_address));
  PackedMembers not_proto{3, false, "\xff\xff\xff"};
  EXPECT_FALSE(UnpackMembers(not_proto));
}

TEST(Chunks, ZerosCompressCiphertextDoesNot) {
  std::vector<uint8_t> zeros(8 << 20, 0);
  auto encoded = EncodeChunk(zeros);
  ASSERT_TRUE(encoded.lz4);
  EXPECT_LT(encoded.compressed.size(), 64u << 10);
  std::vector<uint8_t> out(zeros.size(), 1);
  ASSERT_TRUE(DecodeChunk(
      true,
      {reinterpret_cast<const uint8_t*>(encoded.compressed.data()), encoded.compressed.size()},
      out));
  EXPECT_EQ(out, zeros);

  std::vector<uint8_t> random(1 << 20);
  std::mt19937_64 rng(1);
  for (auto& b : random) {
    b = static_cast<uint8_t>(rng());
  }
  EXPECT_FALSE(EncodeChunk(random).lz4);
}

TEST(Chunks, DecodeRejectsLiesAboutSizes) {
  std::vector<uint8_t> zeros(1 << 20, 0);
  auto encoded = EncodeChunk(zeros);
  ASSERT_TRUE(encoded.lz4);
  std::span<const uint8_t> wire(reinterpret_cast<const uint8_t*>(encoded.compressed.data()),
                                encoded.compressed.size());
  std::vector<uint8_t> wrong(zeros.size() + 1);
  EXPECT_FALSE(DecodeChunk(true, wire, wrong));
  std::vector<uint8_t> truncated_dst(zeros.size() - 1);
  EXPECT_FALSE(DecodeChunk(true, wire, truncated_dst));
  std::vector<uint8_t> garbage(100, 0xff);
  std::vector<uint8_t> dst(1000);
  EXPECT_FALSE(DecodeChunk(true, garbage, dst));
  EXPECT_FALSE(DecodeChunk(false, garbage, dst));
}

}  // namespace
}  // namespace cachefs::p2p
