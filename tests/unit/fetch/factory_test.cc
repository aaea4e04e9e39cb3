#include <gtest/gtest.h>

#include <cstdlib>

#include "fetch/origin_factory.h"

namespace cachefs::fetch {
namespace {

OriginOptions Remote(std::string location) {
  OriginOptions o;
  o.location = std::move(location);
  o.access_key_id = "AK";
  o.secret_access_key = "SK";
  return o;
}

std::string DescribeOf(const OriginOptions& options) {
  auto origin = OpenOrigin(options);
  EXPECT_TRUE(origin) << origin.error().message();
  return origin ? (*origin)->Describe() : "";
}

TEST(OriginFactoryTest, OssAddressingAndRegion) {
  auto o = Remote("conf-ai:/qwen2.5-3b-gocryptfs/");
  o.endpoint = "oss-cn-beijing-internal.aliyuncs.com";
  EXPECT_EQ(DescribeOf(o),
            "oss://conf-ai/qwen2.5-3b-gocryptfs/ via https://oss-cn-beijing-internal.aliyuncs.com "
            "(virtual-hosted, oss-v4)");
  o.location = "oss://conf-ai/m";
  o.endpoint = "http://127.0.0.1:9000";
  o.oss_signature = "v1";
  EXPECT_EQ(DescribeOf(o), "oss://conf-ai/m/ via http://127.0.0.1:9000 (path-style, oss-v1)");
  // V4 without a region the endpoint does not name is refused.
  o.oss_signature = "v4";
  EXPECT_FALSE(OpenOrigin(o));
  o.region = "cn-hangzhou";
  EXPECT_TRUE(OpenOrigin(o));
}

TEST(OriginFactoryTest, S3AndHttp) {
  auto o = Remote("s3://models/llm");
  o.region = "eu-west-1";
  EXPECT_EQ(DescribeOf(o),
            "s3://models/llm/ via https://s3.eu-west-1.amazonaws.com (virtual-hosted, aws-sigv4)");
  o.endpoint = "https://s3.oss-cn-beijing.aliyuncs.com";
  o.path_style = true;
  EXPECT_EQ(DescribeOf(o),
            "s3://models/llm/ via https://s3.oss-cn-beijing.aliyuncs.com (path-style, aws-sigv4)");
  // The scheme's default port is not part of the host (curl leaves it out of Host, which
  // SigV4 signs); other ports are.
  o.path_style = false;
  o.endpoint = "http://s3.cachefs.test:80/";
  EXPECT_EQ(DescribeOf(o),
            "s3://models/llm/ via http://s3.cachefs.test (virtual-hosted, aws-sigv4)");
  o.endpoint = "https://[::1]:443";
  EXPECT_EQ(DescribeOf(o), "s3://models/llm/ via https://[::1] (path-style, aws-sigv4)");
  o.endpoint = "http://127.0.0.1:443";
  EXPECT_EQ(DescribeOf(o), "s3://models/llm/ via http://127.0.0.1:443 (path-style, aws-sigv4)");
  OriginOptions h;
  h.location = "http://cdn.example:8080/models/qwen";
  EXPECT_EQ(DescribeOf(h), "http://cdn.example:8080/models/qwen/");
}

// Path-style for bucket names that cannot lead a host name (the AWS SDKs' rule): dots over
// HTTPS (outside the endpoint's wildcard certificate), upper case, '_', bad lengths or labels.
TEST(OriginFactoryTest, BucketsThatCannotBeHostNamesGoPathStyle) {
  auto style = [](const std::string& bucket, const std::string& endpoint) {
    auto o = Remote("s3://" + bucket + "/m");
    o.endpoint = endpoint;
    std::string d = DescribeOf(o);
    return d.substr(d.rfind('(') + 1, d.find(',', d.rfind('(')) - d.rfind('(') - 1);
  };
  EXPECT_EQ(style("my.models", "https://s3.cachefs.test"), "path-style");
  EXPECT_EQ(style("my.models", "http://s3.cachefs.test"), "virtual-hosted");
  EXPECT_EQ(style("a-b-3", "https://s3.cachefs.test"), "virtual-hosted");
  for (const char* bucket : {"Models", "my_models", "ab", "-models", "models-", "my..models",
                             "my.-models", "192.168.1.2"}) {
    EXPECT_EQ(style(bucket, "http://s3.cachefs.test"), "path-style") << bucket;
  }
  EXPECT_EQ(style(std::string(63, 'a'), "http://s3.cachefs.test"), "virtual-hosted");
  EXPECT_EQ(style(std::string(64, 'a'), "http://s3.cachefs.test"), "path-style");
}

TEST(OriginFactoryTest, ClearErrors) {
  OriginOptions o;
  o.location = "oss://b/p";
  o.anonymous = true;
  auto r = OpenOrigin(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("--endpoint"), std::string::npos);
  o.endpoint = "oss-cn-beijing.aliyuncs.com";
  o.anonymous = false;
  r = OpenOrigin(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("no credentials"), std::string::npos);
  o.access_key_id = "AK";
  EXPECT_FALSE(OpenOrigin(o));  // id without secret
  o.location = "ftp://x/y";
  EXPECT_FALSE(OpenOrigin(o));
  o.location = "relative/path";
  EXPECT_FALSE(OpenOrigin(o));
}

TEST(OriginFactoryTest, EnvironmentPrecedenceAndScrubbing) {
  setenv("OSS_ACCESS_KEY_ID", "env-id", 1);
  setenv("OSS_ACCESS_KEY_SECRET", "env-secret", 1);
  setenv("AWS_ACCESS_KEY_ID", "aws-id", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "aws-secret", 1);
  OriginOptions o;
  std::map<std::string, std::string> file = {{"MODEL_OSS_BUCKET_PATH", "conf-ai:/m"},
                                             {"MODEL_OSS_ENDPOINT", "oss-cn-beijing.aliyuncs.com"},
                                             {"MODEL_OSS_ACCESS_KEY_ID", "file-id"},
                                             {"MODEL_OSS_SECRET_ACCESS_KEY", "file-secret"}};
  ASSERT_TRUE(ApplyEnvironment(o, file));
  EXPECT_EQ(o.location, "conf-ai:/m");
  EXPECT_EQ(o.endpoint, "oss-cn-beijing.aliyuncs.com");
  EXPECT_EQ(o.access_key_id, "env-id");  // environment before env-file
  EXPECT_EQ(o.secret_access_key, "env-secret");
  EXPECT_EQ(std::getenv("OSS_ACCESS_KEY_SECRET"), nullptr);  // scrubbed
  EXPECT_EQ(std::getenv("AWS_SECRET_ACCESS_KEY"), nullptr);

  OriginOptions flags;
  flags.access_key_id = "flag-id";
  flags.secret_access_key = "flag-secret";
  ASSERT_TRUE(ApplyEnvironment(flags, file));
  EXPECT_EQ(flags.access_key_id, "flag-id");

  OriginOptions from_file;
  ASSERT_TRUE(ApplyEnvironment(from_file, file));
  EXPECT_EQ(from_file.access_key_id, "file-id");
  EXPECT_EQ(from_file.secret_access_key, "file-secret");

  OriginOptions half;
  EXPECT_FALSE(ApplyEnvironment(half, {{"MODEL_OSS_ACCESS_KEY_ID", "only-id"}}));
}

}  // namespace
}  // namespace cachefs::fetch
