#include "fetch/http_request.h"

namespace cachefs::fetch {

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string HttpRequest::EncodedQuery() const {
  std::string out;
  for (const auto& [k, v] : query) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out += UriEncode(k, false);
    out.push_back('=');
    out += UriEncode(v, false);
  }
  return out;
}

std::string HttpRequest::LogUrl() const { return scheme + "://" + host + UriEncode(path, true); }

std::string HttpRequest::Url() const {
  std::string url = LogUrl();
  if (!query.empty()) {
    url.push_back('?');
    url += EncodedQuery();
  }
  return url;
}

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

void HttpRequest::SetHeader(std::string name, std::string value) {
  for (auto& [k, v] : headers) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

}  // namespace cachefs::fetch
