#include "p2p/auth.h"

#include <gtest/gtest.h>

#include <vector>

namespace cachefs::p2p {
namespace {

std::vector<uint8_t> Key(uint8_t fill) { return std::vector<uint8_t>(32, fill); }

TEST(GroupKeys, ProofsBindKeyRoleNoncesAndCertificates) {
  auto keys = GroupKeys::Derive(Key(1));
  auto other = GroupKeys::Derive(Key(2));
  ASSERT_TRUE(keys && other);
  std::vector<uint8_t> cn(32, 3), sn(32, 4), a(16, 5), b(16, 6);
  Fingerprint fa{}, fb{};
  fa[0] = 1;
  fb[0] = 2;
  auto proof = keys->Proof("server", cn, sn, a, b, fa, fb);
  EXPECT_TRUE(keys->CheckProof(proof, "server", cn, sn, a, b, fa, fb));
  EXPECT_FALSE(other->CheckProof(proof, "server", cn, sn, a, b, fa, fb));
  EXPECT_FALSE(keys->CheckProof(proof, "client", cn, sn, a, b, fa, fb));
  EXPECT_FALSE(keys->CheckProof(proof, "server", sn, cn, a, b, fa, fb));
  // A relay presents its own certificate: the proof no longer checks.
  EXPECT_FALSE(keys->CheckProof(proof, "server", cn, sn, a, b, fb, fa));
  EXPECT_FALSE(keys->CheckProof(std::span(proof).first(31), "server", cn, sn, a, b, fa, fb));
  EXPECT_FALSE(GroupKeys::Derive(std::vector<uint8_t>(16, 1)));
}

TEST(GroupKeys, ChunkTagsCoverIdentityAndBytes) {
  auto keys = GroupKeys::Derive(Key(7));
  ASSERT_TRUE(keys);
  std::vector<uint8_t> nonce(kTagNonceSize, 9);
  std::vector<uint8_t> bytes(100000, 0x5a);
  auto tag = keys->ChunkTag(nonce, "dir/obj", "\"etag\"", 5000000, 3, bytes);
  ASSERT_TRUE(tag);
  EXPECT_TRUE(keys->CheckChunkTag(*tag, nonce, "dir/obj", "\"etag\"", 5000000, 3, bytes));
  EXPECT_FALSE(keys->CheckChunkTag(*tag, nonce, "dir/obj", "\"etag\"", 5000000, 4, bytes));
  EXPECT_FALSE(keys->CheckChunkTag(*tag, nonce, "dir/obk", "\"etag\"", 5000000, 3, bytes));
  EXPECT_FALSE(keys->CheckChunkTag(*tag, nonce, "dir/obj", "\"etah\"", 5000000, 3, bytes));
  EXPECT_FALSE(keys->CheckChunkTag(*tag, nonce, "dir/obj", "\"etag\"", 5000001, 3, bytes));
  bytes[77777] ^= 1;
  auto bad = keys->CheckChunkTag(*tag, nonce, "dir/obj", "\"etag\"", 5000000, 3, bytes);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Errc::kCorrupt);
  EXPECT_FALSE(keys->ChunkTag(std::vector<uint8_t>(5), "k", "", 1, 0, bytes));
}

TEST(TlsIdentity, FreshKeysAndStableFingerprints) {
  auto a = MakeTlsIdentity("node-a");
  auto b = MakeTlsIdentity("node-b");
  ASSERT_TRUE(a && b) << (a ? b.error().message() : a.error().message());
  EXPECT_NE(a->fingerprint, b->fingerprint);
  EXPECT_NE(a->certificate_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(a->private_key_pem.find("PRIVATE KEY"), std::string::npos);
  auto again = CertificateFingerprint(a->certificate_pem);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, a->fingerprint);
  EXPECT_FALSE(CertificateFingerprint("not a certificate"));
}

}  // namespace
}  // namespace cachefs::p2p
