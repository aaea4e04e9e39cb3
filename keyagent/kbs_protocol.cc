#include "keyagent/kbs_protocol.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <regex>

#include "keyagent/encoding.h"

namespace cachefs::keyagent {
namespace {

constexpr std::string_view kErrorTypePrefix = "/errors/";

const char* DigestName(HashAlgorithm algorithm) {
  switch (algorithm) {
    case HashAlgorithm::kSha256:
      return "SHA256";
    case HashAlgorithm::kSha384:
      return "SHA384";
    case HashAlgorithm::kSha512:
      return "SHA512";
    case HashAlgorithm::kSm3:
      return "SM3";
  }
  return "SHA384";
}

bool ValidSegment(std::string_view segment) {
  static const std::regex kSegment("^[A-Za-z0-9_-][A-Za-z0-9_.-]*$");
  return std::regex_match(segment.begin(), segment.end(), kSegment);
}

}  // namespace

Result<ProtocolLayout> LayoutOf(std::string_view version) {
  if (version == "0.4.0") {
    return ProtocolLayout{.runtime_data_object = true, .legacy_0_1 = false};
  }
  if (version == "0.2.0") {
    return ProtocolLayout{.runtime_data_object = false, .legacy_0_1 = false};
  }
  if (version == "0.1.0" || version == "0.1.1") {
    return ProtocolLayout{.runtime_data_object = false, .legacy_0_1 = true};
  }
  return Error(Errc::kUnsupported, "Trustee speaks KBS protocol " + OneLine(version, 20) +
                                       "; this client implements 0.4.0, 0.2.0, 0.1.1 and 0.1.0");
}

std::optional<std::string> ExpectedVersionFromDetail(std::string_view detail) {
  static const std::regex kExpect(R"(expect\w*\s*[:=]*\s*=?\s*v?(\d+\.\d+\.\d+))",
                                  std::regex::icase);
  std::match_results<std::string_view::const_iterator> match;
  if (std::regex_search(detail.begin(), detail.end(), match, kExpect)) {
    return match[1].str();
  }
  return std::nullopt;
}

Result<HashAlgorithm> ParseHashAlgorithm(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  HashAlgorithm algorithm;
  if (lower == "sha256") {
    algorithm = HashAlgorithm::kSha256;
  } else if (lower == "sha384") {
    algorithm = HashAlgorithm::kSha384;
  } else if (lower == "sha512") {
    algorithm = HashAlgorithm::kSha512;
  } else if (lower == "sm3") {
    algorithm = HashAlgorithm::kSm3;
  } else {
    return Error(Errc::kUnsupported,
                 "Trustee selected hash algorithm \"" + OneLine(name, 20) + "\"");
  }
  EVP_MD* md = EVP_MD_fetch(nullptr, DigestName(algorithm), nullptr);
  if (md == nullptr) {
    return Error(Errc::kUnsupported, "this OpenSSL build has no " + lower);
  }
  EVP_MD_free(md);
  return algorithm;
}

std::vector<uint8_t> Hash(HashAlgorithm algorithm, std::string_view data) {
  EVP_MD* md = EVP_MD_fetch(nullptr, DigestName(algorithm), nullptr);
  std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  if (md == nullptr || EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1) {
    len = 0;  // unreachable after ParseHashAlgorithm; an empty digest never matches evidence
  }
  EVP_MD_free(md);
  out.resize(len);
  return out;
}

Json BuildAuthRequest(std::string_view version, std::string_view tee,
                      std::string_view trustee_policy) {
  Json request = Json::object();
  request["version"] = version;
  request["tee"] = tee;
  if (version.starts_with("0.1.")) {
    request["extra-params"] = "";
  } else {
    Json extra = Json::object();
    extra["supported-hash-algorithms"] = Json::array({"sha256", "sha384", "sha512", "sm3"});
    if (!trustee_policy.empty()) {
      extra["trustee-policy"] = trustee_policy;
    }
    request["extra-params"] = std::move(extra);
  }
  return request;
}

Result<Challenge> ParseChallenge(std::string_view body) {
  CACHEFS_ASSIGN_OR_RETURN(Json json, ParseJson(body, "Trustee /auth reply"));
  const std::string* nonce = FindString(json, "nonce");
  if (nonce == nullptr || nonce->empty() || nonce->size() > 1024) {
    return Error(Errc::kCorrupt, "Trustee /auth reply has no usable nonce");
  }
  Challenge challenge;
  challenge.nonce = *nonce;
  const Json* extra = FindMember(json, "extra-params");
  if (extra != nullptr && extra->is_object()) {
    const std::string* selected = FindString(*extra, "selected-hash-algorithm");
    if (selected != nullptr) {
      CACHEFS_ASSIGN_OR_RETURN(challenge.hash, ParseHashAlgorithm(*selected));
    }
  }
  return challenge;
}

std::string DeviceRuntimeData(std::string_view nonce, const Json& tee_pubkey) {
  Json runtime = Json::object();
  runtime["nonce"] = nonce;
  runtime["tee-pubkey"] = tee_pubkey;
  return CanonicalJson(runtime);
}

std::string PrimaryRuntimeData(std::string_view additional_evidence, std::string_view nonce,
                               const Json& tee_pubkey) {
  Json runtime = Json::object();
  runtime["additional-evidence"] = additional_evidence;
  runtime["nonce"] = nonce;
  runtime["tee-pubkey"] = tee_pubkey;
  return CanonicalJson(runtime);
}

Json BuildAttestation(const ProtocolLayout& layout, std::string_view nonce, const Json& tee_pubkey,
                      const Json& primary_evidence, const std::string& additional_evidence) {
  Json attestation = Json::object();
  if (layout.runtime_data_object) {
    attestation["init-data"] = nullptr;
    attestation["runtime-data"] = {{"nonce", nonce}, {"tee-pubkey", tee_pubkey}};
    attestation["tee-evidence"] = {{"primary_evidence", primary_evidence},
                                   {"additional_evidence", additional_evidence}};
  } else if (layout.legacy_0_1) {
    attestation["tee-pubkey"] = tee_pubkey;
    attestation["tee-evidence"] = DumpJson(primary_evidence);
  } else {
    attestation["tee-pubkey"] = tee_pubkey;
    attestation["tee-evidence"] = primary_evidence;
  }
  return attestation;
}

Result<std::string> ParseAttestReply(std::string_view body) {
  CACHEFS_ASSIGN_OR_RETURN(Json json, ParseJson(body, "Trustee /attest reply"));
  const std::string* token = FindString(json, "token");
  if (token == nullptr || token->empty()) {
    return Error(Errc::kCorrupt, "Trustee /attest reply has no token");
  }
  return *token;
}

Result<Json> UnverifiedJwtClaims(std::string_view token) {
  size_t first = token.find('.');
  size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos) {
    return Error(Errc::kCorrupt, "attestation token is not a JWT");
  }
  auto payload = Base64Decode(token.substr(first + 1, second - first - 1));
  if (!payload) {
    return payload.error().WithContext("attestation token payload");
  }
  std::string text(payload->begin(), payload->end());
  CACHEFS_ASSIGN_OR_RETURN(Json claims, ParseJson(text, "attestation token payload"));
  if (!claims.is_object()) {
    return Error(Errc::kCorrupt, "attestation token payload is not an object");
  }
  return claims;
}

KbsErrorInfo ParseKbsError(std::string_view body) {
  KbsErrorInfo info;
  Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  const std::string* type = json.is_discarded() ? nullptr : FindString(json, "type");
  const std::string* detail = json.is_discarded() ? nullptr : FindString(json, "detail");
  if (type != nullptr) {
    size_t at = type->rfind(kErrorTypePrefix);
    info.variant =
        OneLine(at == std::string::npos ? *type : type->substr(at + kErrorTypePrefix.size()), 60);
  }
  info.detail = OneLine(detail != nullptr ? *detail : body);
  return info;
}

std::string ResourceUri::RequestPath() const {
  std::string path = "/kbs/v0/" + plugin;
  for (const std::string& segment : segments) {
    path += '/';
    path += segment;
  }
  if (!query.empty()) {
    path += '?';
    path += query;
  }
  return path;
}

std::string ResourceUri::Display() const {
  std::string out = plugin == "resource" ? "" : plugin + ":";
  for (size_t i = 0; i < segments.size(); ++i) {
    out += (i == 0 ? "" : "/") + segments[i];
  }
  return out;
}

std::string ResourceUri::KbsUri() const {
  std::string out = plugin == "resource" ? "kbs://" : "kbs+" + plugin + "://";
  for (const std::string& segment : segments) {
    out += '/';
    out += segment;
  }
  if (!query.empty()) {
    out += '?';
    out += query;
  }
  return out;
}

Result<ResourceUri> ParseResourceUri(std::string_view key_id) {
  ResourceUri uri;
  std::string_view rest = key_id;
  auto invalid = [&](std::string_view why) {
    return Error(Errc::kInvalidArgument, "key id \"" + OneLine(key_id, 200) +
                                             "\": " + std::string(why) +
                                             " (expected kbs:///repo/type/tag or repo/type/tag)");
  };
  if (rest.starts_with("kbs")) {
    size_t scheme_end = rest.find("://");
    if (scheme_end == std::string_view::npos) {
      return invalid("no ://");
    }
    std::string_view scheme = rest.substr(0, scheme_end);
    if (scheme.starts_with("kbs+")) {
      uri.plugin = std::string(scheme.substr(4));
      if (!ValidSegment(uri.plugin)) {
        return invalid("bad plugin name");
      }
    } else if (scheme != "kbs") {
      return invalid("unknown scheme");
    }
    rest.remove_prefix(scheme_end + 3);
    // The authority (host:port) is ignored: the KBS address comes from --trustee-url.
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos) {
      return invalid("no path");
    }
    rest.remove_prefix(slash + 1);
  }
  size_t q = rest.find('?');
  if (q != std::string_view::npos) {
    uri.query = std::string(rest.substr(q + 1));
    rest = rest.substr(0, q);
    for (char c : uri.query) {
      if (static_cast<unsigned char>(c) <= 0x20 || c == '#' ||
          static_cast<unsigned char>(c) > 0x7e) {
        return invalid("bad character in query");
      }
    }
  }
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view segment = rest.substr(0, slash);
    if (!ValidSegment(segment)) {
      return invalid("bad path segment");
    }
    uri.segments.emplace_back(segment);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (slash != std::string_view::npos && rest.empty()) {
      return invalid("trailing slash");
    }
  }
  if (uri.plugin == "resource" && uri.segments.size() != 3) {
    return invalid("a resource needs exactly three segments");
  }
  if (uri.segments.empty()) {
    return invalid("empty path");
  }
  return uri;
}

}  // namespace cachefs::keyagent
