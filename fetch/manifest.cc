#include "fetch/manifest.h"

#include "fetch/file_origin.h"
#include "fetch/listing.h"

namespace cachefs::fetch {

Result<std::string> BuildManifest(Origin& origin, bool include_etags) {
  CACHEFS_ASSIGN_OR_RETURN(auto objects, origin.List());
  bool local = dynamic_cast<FileOrigin*>(&origin) != nullptr;
  for (auto& object : objects) {
    if (!include_etags || object.type != ObjectType::kFile) {
      object.etag.clear();
    } else if (local) {
      object.etag = NginxEtag(object.mtime_sec, object.size);
    }
  }
  return SerializeManifest(objects);
}

}  // namespace cachefs::fetch
