#pragma once

// Writes the manifest that lets a plain HTTP server, CDN or P2P proxy act as an origin.

#include <string>

#include "common/error.h"
#include "fetch/origin.h"

namespace cachefs::fetch {

// Lists `origin` and returns the JSON text of cachefs-manifest.json for it (format in
// listing.h). Local trees (file://) get nginx-style ETags ("<mtime hex>-<size hex>"), which
// is what nginx sends when it serves them; pass include_etags = false for servers that
// compute other ETags (reads then check sizes only). Object stores keep their own ETags.
Result<std::string> BuildManifest(Origin& origin, bool include_etags = true);

}  // namespace cachefs::fetch
