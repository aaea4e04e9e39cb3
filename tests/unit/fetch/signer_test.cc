// Checks our signers against vectors produced by the official SDKs (botocore for AWS SigV4,
// ali-oss for OSS V1/V4); see vectors/gen_*.{py,js}. Never against our own expectations.

#include "fetch/signer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "fetch/remote_origin.h"

namespace cachefs::fetch {
namespace {

nlohmann::json LoadVectors(const std::string& name) {
  std::ifstream in(std::string(CACHEFS_SOURCE_DIR) + "/tests/unit/fetch/vectors/" + name);
  EXPECT_TRUE(in.good()) << name;
  return nlohmann::json::parse(in)["vectors"];
}

Credentials CredentialsOf(const nlohmann::json& v) {
  Credentials c;
  c.access_key_id = v["access_key_id"];
  c.secret_access_key = SecretBytes::CopyOf(v["secret_access_key"].get<std::string>());
  c.session_token = SecretBytes::CopyOf(v["session_token"].get<std::string>());
  return c;
}

void FillCommon(const nlohmann::json& v, HttpRequest& request) {
  for (const auto& pair : v["query"]) {
    request.query.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
  }
  for (const auto& [name, value] : v["headers"].items()) {
    request.headers.emplace_back(name, value.get<std::string>());
  }
}

using HeaderMap = std::map<std::string, std::string>;

HeaderMap HeadersOf(const HttpRequest& request) {
  return {request.headers.begin(), request.headers.end()};
}

TEST(SignerTest, AwsSigV4MatchesBotocore) {
  auto vectors = LoadVectors("sigv4_vectors.json");
  ASSERT_GE(vectors.size(), 4u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v["name"].get<std::string>());
    HttpRequest request;
    request.scheme = v["scheme"];
    request.host = v["host"];
    request.path = v["path"];
    FillCommon(v, request);
    auto signer = MakeAwsSigV4Signer(CredentialsOf(v), v["region"], v["payload_hash"]);
    signer->Sign(request, v["time"].get<std::time_t>());
    EXPECT_EQ(HeadersOf(request), v["signed_headers"].get<HeaderMap>());
  }
}

TEST(SignerTest, OssV1AndV4MatchAliOss) {
  auto vectors = LoadVectors("oss_vectors.json");
  ASSERT_GE(vectors.size(), 8u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v["name"].get<std::string>());
    HttpRequest request;
    request.scheme = "http";
    request.bucket = v["bucket"];
    request.key = v["key"];
    request.host = request.bucket + "." + v["region"].get<std::string>() + ".aliyuncs.com";
    request.path = "/" + request.key;
    FillCommon(v, request);
    auto signer = v["version"] == 4 ? MakeOssV4Signer(CredentialsOf(v), v["region"])
                                    : MakeOssV1Signer(CredentialsOf(v));
    signer->Sign(request, v["time"].get<std::time_t>());
    EXPECT_EQ(HeadersOf(request), v["signed_headers"].get<HeaderMap>());
  }
}

// "%41b%2F" -> "Ab/": the SDKs and we may escape different (equally valid) characters.
std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The requests RemoteOrigin builds (MakeRemoteRequest: host, path, bucket and key by
// addressing style), signed, are the requests the SDKs build and sign: botocore's S3 requests
// virtual-hosted and path-style, ali-oss's virtual-hosted OSS requests (its default for a
// named endpoint).
TEST(SignerTest, BuiltRequestsMatchBotocore) {
  struct Case {
    const char* name;
    RemoteConfig config;
    const char* key;  // below the prefix; nullptr: the listing
  };
  auto s3 = [](const char* scheme, const char* host, const char* bucket, const char* prefix,
               bool path_style) {
    RemoteConfig c;
    c.protocol = RemoteProtocol::kS3;
    c.scheme = scheme;
    c.host = host;
    c.bucket = bucket;
    c.prefix = prefix;
    c.path_style = path_style;
    return c;
  };
  const Case cases[] = {
      {"get-virtual-hosted-range",
       s3("https", "s3.us-east-1.amazonaws.com", "models", "qwen/", false), "AbC-dEf_gh"},
      {"get-path-style-port-token-ifmatch", s3("http", "127.0.0.1:4568", "bucket", "", true),
       "dir with space/\xc3\xa4+x=y!(1)*'"},
      {"list-objects-v2-continuation",
       s3("https", "s3.oss-cn-beijing-internal.aliyuncs.com", "conf-ai", "", true), nullptr},
      {"get-unsigned-payload", s3("https", "s3.eu-west-1.amazonaws.com", "b", "", false), "k"},
  };
  auto vectors = LoadVectors("sigv4_vectors.json");
  ASSERT_EQ(vectors.size(), std::size(cases));
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const nlohmann::json* v = nullptr;
    for (const auto& candidate : vectors) {
      if (candidate["name"] == c.name) {
        v = &candidate;
      }
    }
    ASSERT_NE(v, nullptr);
    HttpRequest request = MakeRemoteRequest(c.config, c.key ? c.key : "", c.key == nullptr);
    EXPECT_EQ(request.scheme, (*v)["scheme"]);
    EXPECT_EQ(request.host, (*v)["host"]);
    EXPECT_EQ(request.path, (*v)["path"]);
    FillCommon(*v, request);
    auto signer = MakeAwsSigV4Signer(CredentialsOf(*v), (*v)["region"], (*v)["payload_hash"]);
    signer->Sign(request, (*v)["time"].get<std::time_t>());
    EXPECT_EQ(HeadersOf(request), (*v)["signed_headers"].get<HeaderMap>());
  }
}

TEST(SignerTest, BuiltVirtualHostedRequestsMatchAliOss) {
  auto vectors = LoadVectors("oss_vectors.json");
  ASSERT_GE(vectors.size(), 8u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v["name"].get<std::string>());
    RemoteConfig config;
    config.protocol = RemoteProtocol::kOss;
    config.scheme = "http";
    config.host = v["region"].get<std::string>() + ".aliyuncs.com";
    config.bucket = v["bucket"];
    std::string key = v["key"];
    HttpRequest request = MakeRemoteRequest(config, key, key.empty());
    FillCommon(v, request);
    // The SDK's URL: scheme://host/path?query.
    std::string url = v["url"];
    size_t host_at = url.find("://") + 3;
    size_t path_at = url.find('/', host_at);
    size_t query_at = url.find('?', path_at);
    EXPECT_EQ(request.scheme + "://", url.substr(0, host_at));
    EXPECT_EQ(request.host, url.substr(host_at, path_at - host_at));
    EXPECT_EQ(request.path, PercentDecode(url.substr(path_at, query_at - path_at)));
    EXPECT_EQ(request.EncodedQuery(),
              query_at == std::string::npos ? "" : url.substr(query_at + 1));
    auto signer = v["version"] == 4 ? MakeOssV4Signer(CredentialsOf(v), v["region"])
                                    : MakeOssV1Signer(CredentialsOf(v));
    signer->Sign(request, v["time"].get<std::time_t>());
    EXPECT_EQ(HeadersOf(request), v["signed_headers"].get<HeaderMap>());
  }
}

TEST(SignerTest, AnonymousAddsNothing) {
  HttpRequest request;
  request.headers.emplace_back("range", "bytes=0-1");
  MakeAnonymousSigner()->Sign(request, 0);
  EXPECT_EQ(request.headers.size(), 1u);
}

TEST(SignerTest, UriEncodeAndDates) {
  EXPECT_EQ(UriEncode("a b/ä+~", true), "a%20b/%C3%A4%2B~");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(FormatIso8601Basic(1795237693), "20261121T050813Z");
  EXPECT_EQ(FormatHttpDate(1795237693), "Sat, 21 Nov 2026 05:08:13 GMT");
}

}  // namespace
}  // namespace cachefs::fetch
