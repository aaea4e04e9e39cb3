#include "keyagent/json_util.h"

namespace cachefs::keyagent {

Result<Json> ParseJson(std::string_view text, std::string_view what) {
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return Error(Errc::kCorrupt, std::string(what) + " is not valid JSON");
  }
  return value;
}

const Json* FindMember(const Json& obj, std::string_view key) {
  if (!obj.is_object()) {
    return nullptr;
  }
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

const std::string* FindString(const Json& obj, std::string_view key) {
  const Json* member = FindMember(obj, key);
  if (member == nullptr || !member->is_string()) {
    return nullptr;
  }
  return member->get_ptr<const std::string*>();
}

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

std::string CanonicalJson(const Json& value) {
  // nlohmann's compact dump already escapes exactly as JCS does: '"', '\\', \b \f \n \r \t and
  // \u00xx (lower-case hex) for the other control characters; '/' and non-ASCII stay literal.
  return DumpJson(value);
}

std::string OneLine(std::string_view text, size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  return out;
}

}  // namespace cachefs::keyagent
