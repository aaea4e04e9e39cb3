#include "fetch/listing.h"

#include <gtest/gtest.h>

namespace cachefs::fetch {
namespace {

TEST(ListingTest, ParsesListObjectsV2Page) {
  auto page = ParseListObjectsV2(R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>models</Name><Prefix>m/</Prefix><KeyCount>2</KeyCount>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1/abc&amp;+==</NextContinuationToken>
  <Contents><Key>m/a&amp;b &#233;</Key><LastModified>2026-11-21T05:08:13.000Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>42</Size></Contents>
  <Contents><Key>m/dir/</Key><ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag><Size>0</Size></Contents>
</ListBucketResult>)");
  ASSERT_TRUE(page) << page.error().message();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "m/a&b \xC3\xA9");
  EXPECT_EQ(page->objects[0].size, 42u);
  EXPECT_EQ(page->objects[0].etag, "\"9b2cf535f27731c974343645a3985328\"");
  EXPECT_EQ(page->objects[0].mtime_sec, 1795237693);
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_continuation_token, "1/abc&+==");
}

TEST(ListingTest, RejectsMalformedPages) {
  EXPECT_FALSE(ParseListObjectsV2("<Error><Code>AccessDenied</Code></Error>"));
  EXPECT_FALSE(ParseListObjectsV2("<ListBucketResult><Contents><Key>a</Key></Contents>"));
  EXPECT_FALSE(ParseListObjectsV2(
      "<ListBucketResult><Contents><Key>a</Key><Size>x1</Size></Contents></ListBucketResult>"));
  EXPECT_FALSE(
      ParseListObjectsV2("<ListBucketResult><IsTruncated>true</IsTruncated>"
                         "</ListBucketResult>"));
  EXPECT_FALSE(
      ParseListObjectsV2("<ListBucketResult><Contents><Key>&bogus;</Key><Size>1</Size></Contents>"
                         "</ListBucketResult>"));
}

TEST(ListingTest, ErrorBody) {
  EXPECT_EQ(ParseErrorBody("<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"),
            "NoSuchKey: gone");
  EXPECT_EQ(ParseErrorBody("not xml"), "");
}

TEST(ListingTest, CompleteTreeAddsImpliedDirectoriesAndMarkers) {
  std::vector<ObjectInfo> in(5);
  in[0].key = "a/b/c";
  in[1].key = "marker/";
  in[2].key = "a/x";
  in[3].key = "";     // the prefix's own marker
  in[4].key = "a/x";  // duplicate
  auto tree = CompleteTree(in);
  ASSERT_TRUE(tree);
  std::vector<std::pair<std::string, ObjectType>> got;
  for (const auto& o : *tree) {
    got.emplace_back(o.key, o.type);
  }
  std::vector<std::pair<std::string, ObjectType>> want = {{"a", ObjectType::kDirectory},
                                                          {"a/b", ObjectType::kDirectory},
                                                          {"a/b/c", ObjectType::kFile},
                                                          {"a/x", ObjectType::kFile},
                                                          {"marker", ObjectType::kDirectory}};
  EXPECT_EQ(got, want);
}

TEST(ListingTest, CompleteTreeRefusesEscapingKeys) {
  for (const char* bad : {"a//b", "../x", "a/./b", "/abs"}) {
    std::vector<ObjectInfo> in(1);
    in[0].key = bad;
    EXPECT_FALSE(CompleteTree(in)) << bad;
  }
}

TEST(ListingTest, ManifestRoundTrip) {
  std::vector<ObjectInfo> objects(3);
  objects[0].key = "d";
  objects[0].type = ObjectType::kDirectory;
  objects[1].key = "d/f";
  objects[1].size = 12;
  objects[1].etag = "\"5f-c\"";
  objects[1].mtime_sec = 95;
  objects[2].key = "d/l";
  objects[2].type = ObjectType::kSymlink;
  objects[2].link_target = "f";
  auto parsed = ParseManifest(SerializeManifest(objects));
  ASSERT_TRUE(parsed) << parsed.error().message();
  ASSERT_EQ(parsed->size(), 3u);
  EXPECT_EQ((*parsed)[1].key, "d/f");
  EXPECT_EQ((*parsed)[1].size, 12u);
  EXPECT_EQ((*parsed)[1].etag, "\"5f-c\"");
  EXPECT_EQ((*parsed)[1].mtime_sec, 95);
  EXPECT_EQ((*parsed)[2].type, ObjectType::kSymlink);
  EXPECT_EQ((*parsed)[2].link_target, "f");
}

TEST(ListingTest, ManifestRejectsBadInput) {
  EXPECT_FALSE(ParseManifest("[]"));
  EXPECT_FALSE(ParseManifest("{\"format\":\"cachefs-manifest\",\"version\":1}"));
  EXPECT_EQ(ParseManifest("{\"format\":\"cachefs-manifest\",\"version\":2,\"objects\":[]}")
                .error()
                .code(),
            Errc::kUnsupported);
  EXPECT_FALSE(ParseManifest(
      "{\"format\":\"cachefs-manifest\",\"version\":1,\"objects\":[{\"key\":\"a\",\"size\":-1}]}"));
  EXPECT_FALSE(ParseManifest(
      "{\"format\":\"cachefs-manifest\",\"version\":1,\"objects\":[{\"key\":\"../a\"}]}"));
}

TEST(ListingTest, NginxEtag) { EXPECT_EQ(NginxEtag(0x6560a1b3, 0x200000), "\"6560a1b3-200000\""); }

}  // namespace
}  // namespace cachefs::fetch
