#include "fetch/origin_factory.h"

#include "fetch/file_origin.h"

namespace cachefs::fetch {

Result<std::unique_ptr<Origin>> OpenOrigin(const OriginOptions& options) {
  std::string path = options.location;
  if (path.rfind("file://", 0) == 0) {
    path = path.substr(7);
  }
  if (path.empty() || path[0] != '/') {
    return Error(Errc::kInvalidArgument,
                 "origin '" + options.location + "': expected an absolute path or file:///path");
  }
  CACHEFS_ASSIGN_OR_RETURN(auto origin, FileOrigin::Open(path));
  return std::unique_ptr<Origin>(std::move(origin));
}

}  // namespace cachefs::fetch

namespace cachefs::fetch {

Status ApplyEnvironment(OriginOptions& options,
                        const std::map<std::string, std::string>& env_file) {
  // Local origins need no credentials; remote origins (fetch/ issue 3) extend this.
  (void)options;
  (void)env_file;
  return Status::Ok();
}

}  // namespace cachefs::fetch
