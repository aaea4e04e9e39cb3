#pragma once

// Request signers for object stores, on OpenSSL HMAC. curl is only the transport: its
// CURLOPT_AWS_SIGV4 (7.88) neither sorts nor encodes query strings and cannot do OSS V4.
//
// Every signer is checked against vectors produced by the official SDKs (botocore for SigV4,
// ali-oss for OSS V1 and V4; tests/unit/fetch/vectors/).
//
// Thread-safe: Sign() is const and may run on many threads at once. Failure modes: none; a
// signer only adds headers. Secrets stay in SecretBytes and never reach a log or an error.

#include <ctime>
#include <memory>
#include <string>

#include "common/secret_bytes.h"
#include "fetch/http_request.h"

namespace cachefs::fetch {

struct Credentials {
  std::string access_key_id;
  SecretBytes secret_access_key;
  SecretBytes session_token;  // STS; empty when none

  Credentials Clone() const {
    return {access_key_id, secret_access_key.Clone(), session_token.Clone()};
  }
};

class Signer {
 public:
  virtual ~Signer() = default;
  // Adds the date, token and Authorization headers for a request made at `now` (UTC seconds).
  // The request's other headers must be final: the signature covers some of them.
  virtual void Sign(HttpRequest& request, std::time_t now) const = 0;
  // "anonymous", "aws-sigv4", "oss-v1" or "oss-v4", for logs.
  virtual const char* Name() const = 0;
};

// No credentials: public-read buckets and plain HTTP servers.
std::unique_ptr<Signer> MakeAnonymousSigner();

// AWS Signature Version 4 for S3 (service "s3"): signs every header present plus host,
// x-amz-date, x-amz-content-sha256 (`payload_hash`, default the SHA-256 of an empty body,
// which S3 and OSS's S3 endpoint accept for GET) and x-amz-security-token when set.
std::unique_ptr<Signer> MakeAwsSigV4Signer(Credentials credentials, std::string region,
                                           std::string payload_hash = "");

// OSS V1 (HMAC-SHA1 over verb, Content-MD5, Content-Type, x-oss-date, x-oss-* headers and the
// canonical resource /bucket/key plus signed sub-resources). Alibaba is retiring it.
std::unique_ptr<Signer> MakeOssV1Signer(Credentials credentials);

// OSS V4 (OSS4-HMAC-SHA256, key chain seeded with "aliyun_v4" + secret, scope
// date/region/oss/aliyun_v4_request, UNSIGNED-PAYLOAD). `region` is like "cn-beijing"; an
// "oss-" prefix is dropped.
std::unique_ptr<Signer> MakeOssV4Signer(Credentials credentials, std::string region);

// Formats `t` as 20261121T050813Z (SigV4/OSS V4) or "Sat, 21 Nov 2026 05:08:13 GMT".
std::string FormatIso8601Basic(std::time_t t);
std::string FormatHttpDate(std::time_t t);

// Hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace cachefs::fetch
