#include "fetch/listing.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>

namespace cachefs::fetch {
namespace {

// Decodes the five XML entities and numeric character references; false on a bad one.
bool XmlUnescape(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '&') {
      out.push_back(in[i]);
      continue;
    }
    size_t semi = in.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      return false;
    }
    std::string_view ent = in.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out.push_back('&');
    } else if (ent == "lt") {
      out.push_back('<');
    } else if (ent == "gt") {
      out.push_back('>');
    } else if (ent == "quot") {
      out.push_back('"');
    } else if (ent == "apos") {
      out.push_back('\'');
    } else if (!ent.empty() && ent[0] == '#') {
      unsigned long cp = 0;
      std::string num(ent.substr(1));
      char* end = nullptr;
      if (!num.empty() && (num[0] == 'x' || num[0] == 'X')) {
        cp = std::strtoul(num.c_str() + 1, &end, 16);
      } else {
        cp = std::strtoul(num.c_str(), &end, 10);
      }
      if (end == nullptr || *end != '\0' || cp == 0 || cp > 0x10FFFF) {
        return false;
      }
      // UTF-8 encode.
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      return false;
    }
    i = semi;
  }
  return true;
}

// The text of the first <tag>...</tag> inside `xml` (escaped), or nullopt.
std::optional<std::string_view> Element(std::string_view xml, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t b = xml.find(open);
  if (b == std::string_view::npos) {
    return std::nullopt;
  }
  b += open.size();
  size_t e = xml.find(close, b);
  if (e == std::string_view::npos) {
    return std::nullopt;
  }
  return xml.substr(b, e - b);
}

// "2026-11-21T05:08:13.000Z" -> seconds since the epoch; 0 when unparsable.
int64_t ParseIsoTime(std::string_view text) {
  struct tm tm = {};
  int y, mo, d, h, mi, s;
  std::string copy(text.substr(0, 19));
  if (std::sscanf(copy.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &s) != 6) {
    return 0;
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm));
}

const char* TypeName(ObjectType type) {
  switch (type) {
    case ObjectType::kDirectory:
      return "dir";
    case ObjectType::kSymlink:
      return "symlink";
    case ObjectType::kOther:
      return "other";
    case ObjectType::kFile:
      break;
  }
  return "file";
}

}  // namespace

Result<ListPage> ParseListObjectsV2(std::string_view xml) {
  if (xml.find("<ListBucketResult") == std::string_view::npos) {
    return Error(Errc::kCorrupt, "listing: not a ListBucketResult document");
  }
  ListPage page;
  size_t pos = 0;
  std::string text;
  while (true) {
    size_t b = xml.find("<Contents>", pos);
    if (b == std::string_view::npos) {
      break;
    }
    size_t e = xml.find("</Contents>", b);
    if (e == std::string_view::npos) {
      return Error(Errc::kCorrupt, "listing: unterminated <Contents>");
    }
    std::string_view entry = xml.substr(b, e - b);
    pos = e + 11;
    auto key = Element(entry, "Key");
    auto size = Element(entry, "Size");
    if (!key || !size) {
      return Error(Errc::kCorrupt, "listing: <Contents> without <Key> or <Size>");
    }
    ObjectInfo info;
    if (!XmlUnescape(*key, info.key)) {
      return Error(Errc::kCorrupt, "listing: bad XML entity in a key");
    }
    char* end = nullptr;
    std::string size_text(*size);
    info.size = std::strtoull(size_text.c_str(), &end, 10);
    if (size_text.empty() || end == nullptr || *end != '\0') {
      return Error(Errc::kCorrupt, "listing: bad <Size> for " + info.key);
    }
    if (auto etag = Element(entry, "ETag")) {
      if (!XmlUnescape(*etag, info.etag)) {
        return Error(Errc::kCorrupt, "listing: bad XML entity in an ETag");
      }
    }
    if (auto modified = Element(entry, "LastModified")) {
      info.mtime_sec = ParseIsoTime(*modified);
    }
    page.objects.push_back(std::move(info));
  }
  auto truncated = Element(xml, "IsTruncated");
  page.truncated = truncated && *truncated == "true";
  if (page.truncated) {
    auto token = Element(xml, "NextContinuationToken");
    if (!token || !XmlUnescape(*token, page.next_continuation_token) ||
        page.next_continuation_token.empty()) {
      return Error(Errc::kCorrupt, "listing: truncated page without NextContinuationToken");
    }
  }
  return page;
}

std::string ParseErrorBody(std::string_view xml) {
  std::string code;
  std::string message;
  if (auto c = Element(xml, "Code")) {
    XmlUnescape(c->substr(0, 128), code);
  }
  if (auto m = Element(xml, "Message")) {
    XmlUnescape(m->substr(0, 256), message);
  }
  if (code.empty()) {
    return "";
  }
  return message.empty() ? code : code + ": " + message;
}

Result<std::vector<ObjectInfo>> CompleteTree(std::vector<ObjectInfo> objects) {
  std::vector<ObjectInfo> out;
  std::set<std::string, std::less<>> seen;
  std::set<std::string, std::less<>> dirs;
  for (auto& object : objects) {
    if (!object.key.empty() && object.key.back() == '/') {
      object.key.pop_back();
      object.type = ObjectType::kDirectory;
      object.size = 0;
    }
    if (object.key.empty()) {
      continue;  // the root's own marker
    }
    std::string_view key = object.key;
    size_t start = 0;
    while (true) {
      size_t slash = key.find('/', start);
      std::string_view part = key.substr(start, slash - start);
      if (part.empty() || part == "." || part == "..") {
        return Error(Errc::kCorrupt, "listing: unusable object key '" + object.key + "'");
      }
      if (slash == std::string_view::npos) {
        break;
      }
      dirs.emplace(key.substr(0, slash));
      start = slash + 1;
    }
    if (!seen.emplace(object.key).second) {
      continue;
    }
    out.push_back(std::move(object));
  }
  for (const auto& dir : dirs) {
    if (seen.contains(dir)) {
      continue;
    }
    ObjectInfo info;
    info.key = dir;
    info.type = ObjectType::kDirectory;
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Result<std::vector<ObjectInfo>> ParseManifest(std::string_view json) {
  if (json.size() > kMaxManifestSize) {
    return Error(Errc::kCorrupt, "manifest larger than 256 MiB");
  }
  auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Error(Errc::kCorrupt, "manifest: not a JSON object");
  }
  auto format = doc.find("format");
  auto version = doc.find("version");
  if (format == doc.end() || *format != "cachefs-manifest" || version == doc.end() ||
      !version->is_number_integer()) {
    return Error(Errc::kCorrupt, "manifest: missing \"format\": \"cachefs-manifest\"/version");
  }
  if (*version != 1) {
    return Error(Errc::kUnsupported, "manifest: version " + version->dump() + " is not supported");
  }
  auto objects = doc.find("objects");
  if (objects == doc.end() || !objects->is_array()) {
    return Error(Errc::kCorrupt, "manifest: missing \"objects\" array");
  }
  std::vector<ObjectInfo> out;
  out.reserve(objects->size());
  for (const auto& entry : *objects) {
    if (!entry.is_object()) {
      return Error(Errc::kCorrupt, "manifest: an entry is not an object");
    }
    auto key = entry.find("key");
    if (key == entry.end() || !key->is_string()) {
      return Error(Errc::kCorrupt, "manifest: an entry has no \"key\"");
    }
    ObjectInfo info;
    info.key = key->get<std::string>();
    std::string type = entry.value("type", "file");
    if (type == "dir") {
      info.type = ObjectType::kDirectory;
    } else if (type == "symlink") {
      info.type = ObjectType::kSymlink;
    } else if (type == "file") {
      info.type = ObjectType::kFile;
    } else {
      return Error(Errc::kCorrupt, "manifest: unknown type '" + type + "' for " + info.key);
    }
    auto size = entry.find("size");
    if (size != entry.end()) {
      if (!size->is_number_unsigned()) {
        return Error(Errc::kCorrupt, "manifest: bad size for " + info.key);
      }
      info.size = size->get<uint64_t>();
    }
    auto etag = entry.find("etag");
    if (etag != entry.end() && etag->is_string()) {
      info.etag = etag->get<std::string>();
    }
    auto mtime = entry.find("mtime");
    if (mtime != entry.end() && mtime->is_number_integer()) {
      info.mtime_sec = mtime->get<int64_t>();
    }
    auto target = entry.find("target");
    if (info.type == ObjectType::kSymlink) {
      if (target == entry.end() || !target->is_string()) {
        return Error(Errc::kCorrupt, "manifest: symlink without target: " + info.key);
      }
      info.link_target = target->get<std::string>();
    }
    out.push_back(std::move(info));
  }
  return CompleteTree(std::move(out));
}

std::string SerializeManifest(const std::vector<ObjectInfo>& objects) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& object : objects) {
    if (object.key == kManifestName) {
      continue;
    }
    nlohmann::json entry = {{"key", object.key}, {"type", TypeName(object.type)}};
    if (object.type == ObjectType::kFile) {
      entry["size"] = object.size;
    }
    if (!object.etag.empty()) {
      entry["etag"] = object.etag;
    }
    if (object.mtime_sec != 0) {
      entry["mtime"] = object.mtime_sec;
    }
    if (object.type == ObjectType::kSymlink) {
      entry["target"] = object.link_target;
    }
    list.push_back(std::move(entry));
  }
  nlohmann::json doc = {{"format", "cachefs-manifest"}, {"version", 1}, {"objects", list}};
  return doc.dump(1) + "\n";
}

std::string NginxEtag(int64_t mtime_sec, uint64_t size) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "\"%llx-%llx\"", static_cast<unsigned long long>(mtime_sec),
                static_cast<unsigned long long>(size));
  return buf;
}

}  // namespace cachefs::fetch
