#include "fetch/signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <set>
#include <span>

namespace cachefs::fetch {
namespace {

constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

using Digest = std::array<uint8_t, 32>;

std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

Digest HmacSha256(std::span<const uint8_t> key, std::string_view msg) {
  Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(), &len);
  return out;
}

// The four-step key chain shared by AWS SigV4 and OSS V4; only the seed and the names differ.
// Intermediate keys are cleansed: each one signs for a whole day.
Digest DeriveSigningKey(std::string_view seed_prefix, const SecretBytes& secret,
                        std::string_view date, std::string_view region, std::string_view service,
                        std::string_view terminator) {
  SecretBytes seed(seed_prefix.size() + secret.size());
  std::memcpy(seed.data(), seed_prefix.data(), seed_prefix.size());
  if (!secret.empty()) {
    std::memcpy(seed.data() + seed_prefix.size(), secret.data(), secret.size());
  }
  Digest k_date = HmacSha256(seed.span(), date);
  Digest k_region = HmacSha256(k_date, region);
  Digest k_service = HmacSha256(k_region, service);
  Digest k_signing = HmacSha256(k_service, terminator);
  OPENSSL_cleanse(k_date.data(), k_date.size());
  OPENSSL_cleanse(k_region.data(), k_region.size());
  OPENSSL_cleanse(k_service.data(), k_service.size());
  return k_signing;
}

struct V4Signature {
  std::string scope;      // DATE/REGION/SERVICE/TERMINATOR
  std::string signature;  // hex
};

// The shared tail of AWS SigV4 and OSS V4: credential scope, string to sign, derived key and
// signature over the canonical request.
V4Signature SignV4(std::string_view algorithm, std::string_view seed_prefix,
                   const SecretBytes& secret, const std::string& timestamp, const std::string& date,
                   const std::string& region, const std::string& service,
                   const std::string& terminator, const std::string& canonical_request) {
  V4Signature out;
  out.scope = date + "/" + region + "/" + service + "/" + terminator;
  std::string string_to_sign = std::string(algorithm) + "\n" + timestamp + "\n" + out.scope + "\n" +
                               Sha256Hex(canonical_request);
  Digest key = DeriveSigningKey(seed_prefix, secret, date, region, service, terminator);
  out.signature = Hex(HmacSha256(key, string_to_sign));
  OPENSSL_cleanse(key.data(), key.size());
  return out;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) {
    return "";
  }
  size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

// SigV4 "Trimall": trims and collapses runs of spaces, as botocore does.
std::string TrimAll(std::string_view s) {
  std::string out;
  bool in_space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      in_space = !out.empty();
      continue;
    }
    if (in_space) {
      out.push_back(' ');
      in_space = false;
    }
    out.push_back(c);
  }
  return out;
}

std::string SortedEncodedQuery(const HttpRequest& request) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& [k, v] : request.query) {
    pairs.emplace_back(UriEncode(k, false), UriEncode(v, false));
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out += k + "=" + v;
  }
  return out;
}

class AnonymousSigner final : public Signer {
 public:
  void Sign(HttpRequest&, std::time_t) const override {}
  const char* Name() const override { return "anonymous"; }
};

class AwsSigV4Signer final : public Signer {
 public:
  AwsSigV4Signer(Credentials credentials, std::string region, std::string payload_hash)
      : credentials_(std::move(credentials)),
        region_(std::move(region)),
        payload_hash_(payload_hash.empty() ? std::string(kEmptySha256) : payload_hash) {}

  const char* Name() const override { return "aws-sigv4"; }

  void Sign(HttpRequest& request, std::time_t now) const override {
    std::string timestamp = FormatIso8601Basic(now);
    std::string date = timestamp.substr(0, 8);
    request.SetHeader("x-amz-date", timestamp);
    if (!credentials_.session_token.empty()) {
      request.SetHeader("x-amz-security-token", std::string(credentials_.session_token.view()));
    }
    request.SetHeader("x-amz-content-sha256", payload_hash_);

    // Every header we send is signed (as botocore does), host included.
    std::map<std::string, std::string> signed_headers;
    signed_headers["host"] = request.host;
    for (const auto& [name, value] : request.headers) {
      std::string lname = ToLower(name);
      if (lname == "authorization" || lname == "user-agent" || lname == "expect") {
        continue;
      }
      signed_headers[lname] = TrimAll(value);
    }
    std::string canonical_headers;
    std::string signed_list;
    for (const auto& [name, value] : signed_headers) {
      canonical_headers += name + ":" + value + "\n";
      if (!signed_list.empty()) {
        signed_list.push_back(';');
      }
      signed_list += name;
    }
    std::string canonical_request = request.method + "\n" + UriEncode(request.path, true) + "\n" +
                                    SortedEncodedQuery(request) + "\n" + canonical_headers + "\n" +
                                    signed_list + "\n" + payload_hash_;
    V4Signature signed_request =
        SignV4("AWS4-HMAC-SHA256", "AWS4", credentials_.secret_access_key, timestamp, date, region_,
               "s3", "aws4_request", canonical_request);
    request.SetHeader("authorization", "AWS4-HMAC-SHA256 Credential=" + credentials_.access_key_id +
                                           "/" + signed_request.scope + ", SignedHeaders=" +
                                           signed_list + ", Signature=" + signed_request.signature);
  }

 private:
  Credentials credentials_;
  std::string region_;
  std::string payload_hash_;
};

// Query parameters that OSS V1 includes in the canonical resource ("sub-resources"); all
// other parameters (prefix, max-keys, list-type, ...) are left out of the signature.
const std::set<std::string, std::less<>>& OssV1SubResources() {
  static const std::set<std::string, std::less<>> kSet = {"acl",
                                                          "append",
                                                          "bucketInfo",
                                                          "cname",
                                                          "comp",
                                                          "continuation-token",
                                                          "cors",
                                                          "delete",
                                                          "endTime",
                                                          "img",
                                                          "lifecycle",
                                                          "live",
                                                          "location",
                                                          "logging",
                                                          "objectMeta",
                                                          "partNumber",
                                                          "position",
                                                          "qos",
                                                          "referer",
                                                          "replication",
                                                          "replicationLocation",
                                                          "replicationProgress",
                                                          "response-cache-control",
                                                          "response-content-disposition",
                                                          "response-content-encoding",
                                                          "response-content-language",
                                                          "response-content-type",
                                                          "response-expires",
                                                          "restore",
                                                          "security-token",
                                                          "startTime",
                                                          "status",
                                                          "style",
                                                          "styleName",
                                                          "symlink",
                                                          "tagging",
                                                          "uploadId",
                                                          "uploads",
                                                          "versionId",
                                                          "versioning",
                                                          "versions",
                                                          "vod",
                                                          "website",
                                                          "x-oss-process"};
  return kSet;
}

class OssV1Signer final : public Signer {
 public:
  explicit OssV1Signer(Credentials credentials) : credentials_(std::move(credentials)) {}

  const char* Name() const override { return "oss-v1"; }

  void Sign(HttpRequest& request, std::time_t now) const override {
    request.SetHeader("x-oss-date", FormatHttpDate(now));
    if (!credentials_.session_token.empty()) {
      request.SetHeader("x-oss-security-token", std::string(credentials_.session_token.view()));
    }
    std::map<std::string, std::string> oss_headers;
    std::string content_md5;
    std::string content_type;
    for (const auto& [name, value] : request.headers) {
      std::string lname = ToLower(name);
      if (lname.rfind("x-oss-", 0) == 0) {
        oss_headers[lname] = Trim(value);
      } else if (lname == "content-md5") {
        content_md5 = value;
      } else if (lname == "content-type") {
        content_type = value;
      }
    }
    std::string to_sign = request.method + "\n" + content_md5 + "\n" + content_type + "\n" +
                          std::string(request.Header("x-oss-date")) + "\n";
    for (const auto& [name, value] : oss_headers) {
      to_sign += name + ":" + value + "\n";
    }
    // The resource is the raw key, not URL-encoded; sub-resources sorted, values raw.
    to_sign += "/";
    if (!request.bucket.empty()) {
      to_sign += request.bucket + "/";
    }
    to_sign += request.key;
    std::map<std::string, std::string> sub;
    for (const auto& [k, v] : request.query) {
      if (OssV1SubResources().contains(k)) {
        sub[k] = v;
      }
    }
    char sep = '?';
    for (const auto& [k, v] : sub) {
      to_sign.push_back(sep);
      to_sign += k;
      if (!v.empty()) {
        to_sign += "=" + v;
      }
      sep = '&';
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha1(), credentials_.secret_access_key.data(),
         static_cast<int>(credentials_.secret_access_key.size()),
         reinterpret_cast<const unsigned char*>(to_sign.data()), to_sign.size(), mac, &mac_len);
    unsigned char b64[64];
    int b64_len = EVP_EncodeBlock(b64, mac, static_cast<int>(mac_len));
    request.SetHeader("authorization",
                      "OSS " + credentials_.access_key_id + ":" +
                          std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(b64_len)));
  }

 private:
  Credentials credentials_;
};

class OssV4Signer final : public Signer {
 public:
  OssV4Signer(Credentials credentials, std::string region)
      : credentials_(std::move(credentials)), region_(std::move(region)) {
    if (region_.rfind("oss-", 0) == 0) {
      region_ = region_.substr(4);
    }
  }

  const char* Name() const override { return "oss-v4"; }

  void Sign(HttpRequest& request, std::time_t now) const override {
    std::string timestamp = FormatIso8601Basic(now);
    std::string date = timestamp.substr(0, 8);
    request.SetHeader("x-oss-date", timestamp);
    request.SetHeader("x-oss-content-sha256", "UNSIGNED-PAYLOAD");
    if (!credentials_.session_token.empty()) {
      request.SetHeader("x-oss-security-token", std::string(credentials_.session_token.view()));
    }
    std::map<std::string, std::string> canonical;
    for (const auto& [name, value] : request.headers) {
      std::string lname = ToLower(name);
      if (lname == "content-type" || lname == "content-md5" || lname.rfind("x-oss-", 0) == 0) {
        canonical[lname] = Trim(value);
      }
    }
    std::string resource = "/";
    if (!request.bucket.empty()) {
      resource += request.bucket + "/";
    }
    resource += request.key;
    std::string canonical_request = request.method + "\n" + UriEncode(resource, true) + "\n" +
                                    SortedEncodedQuery(request) + "\n";
    for (const auto& [name, value] : canonical) {
      canonical_request += name + ":" + value + "\n";
    }
    // No additional signed headers; the payload is unsigned.
    canonical_request += "\n\nUNSIGNED-PAYLOAD";
    V4Signature signed_request =
        SignV4("OSS4-HMAC-SHA256", "aliyun_v4", credentials_.secret_access_key, timestamp, date,
               region_, "oss", "aliyun_v4_request", canonical_request);
    request.SetHeader("authorization", "OSS4-HMAC-SHA256 Credential=" + credentials_.access_key_id +
                                           "/" + signed_request.scope +
                                           ",Signature=" + signed_request.signature);
  }

 private:
  Credentials credentials_;
  std::string region_;
};

}  // namespace

std::unique_ptr<Signer> MakeAnonymousSigner() { return std::make_unique<AnonymousSigner>(); }

std::unique_ptr<Signer> MakeAwsSigV4Signer(Credentials credentials, std::string region,
                                           std::string payload_hash) {
  return std::make_unique<AwsSigV4Signer>(std::move(credentials), std::move(region),
                                          std::move(payload_hash));
}

std::unique_ptr<Signer> MakeOssV1Signer(Credentials credentials) {
  return std::make_unique<OssV1Signer>(std::move(credentials));
}

std::unique_ptr<Signer> MakeOssV4Signer(Credentials credentials, std::string region) {
  return std::make_unique<OssV4Signer>(std::move(credentials), std::move(region));
}

std::string FormatIso8601Basic(std::time_t t) {
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string FormatHttpDate(std::time_t t) {
  // strftime's %a/%b follow the locale; HTTP dates must be English.
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday], tm.tm_mday,
           kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string Sha256Hex(std::string_view data) {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return Hex(d);
}

}  // namespace cachefs::fetch
